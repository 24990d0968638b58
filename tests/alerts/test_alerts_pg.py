"""Alerts from a ledger in the PostgreSQL fleet store: real ``drift-auditor run``s of one
sandbox cluster, recorded once into an SQLite file and once into a store cluster (a real
server, :mod:`tests.pgkit`), each posting to the local fake Slack; both ledgers must deliver
the same messages, and ``alerts status``/``alerts send`` read the store's outbox."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitopsfixtures import sync_from_git

from tests.ledger.backends import pg_url
from tests.pgkit import PgDatabase, pg_database, pg_server  # noqa: F401 (fixtures)

from .conftest import Recorded, SlackServer

# The shop test_e2e audits, with the Secret value no message may carry.
from .test_e2e import APPS, SECRET_VALUE

pytestmark = pytest.mark.kubectl

def _configs(root: Path, kubeconfig: Path, slack: SlackServer,
             database: PgDatabase) -> dict[str, Path]:
    """The same configuration twice: the ledger a file, or cluster ``e2e`` of the store (its
    caches in a folder of their own, one Secret-hash key for both)."""
    key = root / "fleet.key"
    key.write_text("k" * 64)
    password = root / "pg-password"
    password.write_text("unused: the kit's server trusts its socket\n")
    found = {}
    for name, ledger in (("file", ""),
                         ("store", f", url: '{pg_url(database)}', cluster: e2e, "
                                   f"password-file: {password}")):
        folder = root / name
        folder.mkdir()
        found[name] = folder / "drift-auditor.yaml"
        found[name].write_text(
            f"cluster: {{name: e2e, kubeconfig: {kubeconfig}, retries: 1}}\n"
            f"ledger: {{path: {folder / 'ledger.db'}{ledger}}}\n"
            f"policies: {{directory: {root / 'no-policies'}}}\n"
            f"compare: {{secret-hash-key-file: {key}}}\n"
            f"slack: {{token-env: SLACK_TOKEN, channel: '#drift', base-url: '{slack.api}', "
            "backoff-seconds: 0.05}\n")
    return found


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "SLACK_TOKEN": "xoxb-pg"})


# Moments in a message: Slack's date token, ISO stamps and durations ("after 3s"). The two
# ledgers' runs are a second or so apart, so only these may differ.
MOMENTS = re.compile(r"<!date\^\d+\^[^|]*\|[^>]*>|\d{4}-\d\d-\d\dT[\d:.]+Z|after \d+s")


def _message(request: Recorded) -> tuple[str, Any]:
    """What a human sees of one request: the method and the body, less the message ids
    Slack assigned (each ledger's messages got their own) and the moments."""
    body = {k: v for k, v in request.body.items() if k not in ("ts", "thread_ts")}
    return request.method, json.loads(MOMENTS.sub("<moment>", json.dumps(body)))


def test_a_run_on_the_store_delivers_the_same_slack_messages_as_on_a_file(
        tmp_path: Path, kubeconfig: Path, kubectl: Any, slack_server: SlackServer,
        pg_database: PgDatabase) -> None:  # noqa: F811
    apps = tmp_path / "git"
    apps.mkdir()
    sync_from_git(kubectl, apps, APPS)
    configs = _configs(tmp_path, kubeconfig, slack_server, pg_database)
    sent: dict[str, list[tuple[str, dict[str, Any]]]] = {"file": [], "store": []}

    def cycle(expect: int) -> None:
        for name, config in configs.items():
            before = len(slack_server.requests)
            proc = _cli(config, "run", "--desired", str(apps), "--output", "json")
            assert proc.returncode == expect, (name, proc.stderr)
            assert "alerts" in proc.stdout
            sent[name] += [_message(r) for r in slack_server.requests[before:]]

    cycle(0)  # the first summary
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
    encoded = base64.b64encode(b"rotated-by-hand").decode()
    kubectl("-n", "shop", "patch", "secret", "token", "-p",
            '{"data": {"token": "' + encoded + '"}}')
    cycle(1)  # two drifts announced
    cycle(1)  # still drifted: nothing new
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.0.0")
    cycle(1)  # web fixed live: the announcement updated and a thread reply

    assert sent["store"] == sent["file"]
    methods = [m for m, _ in sent["store"]]
    assert methods == ["chat.postMessage"] * 3 + ["chat.update", "chat.postMessage"]
    assert "everything matches Git" in sent["store"][0][1]["text"]
    assert not (tmp_path / "store" / "ledger.db").exists(), "the store run wrote no file"
    for request in slack_server.requests:
        assert SECRET_VALUE not in request.text()

    # The store's outbox: status and a manual pass read the configured store cluster.
    status = _cli(configs["store"], "alerts", "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout == _cli(configs["file"], "alerts", "status").stdout
    assert status.stdout.startswith("outbox: 0 pending, 5 delivered, 0 skipped")
    again = _cli(configs["store"], "alerts", "send")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("alerts (bot): 0 queued, 0 delivered, 0 pending")
    metrics = _cli(configs["store"], "metrics", "--print")
    assert metrics.returncode == 0, metrics.stderr
    assert "drift_auditor_alerts_delivered_total 5.0" in metrics.stdout


def test_a_store_run_without_the_fleets_secret_hash_key_is_refused_in_one_line(
        tmp_path: Path, kubeconfig: Path, slack_server: SlackServer,
        pg_database: PgDatabase) -> None:  # noqa: F811
    config = _configs(tmp_path, kubeconfig, slack_server, pg_database)["store"]
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("compare:")) + "\n")
    proc = _cli(config, "run", "--desired", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "drift-auditor: error: compare.secret-hash-key-file: required with a PostgreSQL "
        "ledger (ledger.url): every pod writing the store must hash Secret values with one "
        "key (a key made on one pod's disk makes every Secret look changed)"]
    assert not slack_server.requests
