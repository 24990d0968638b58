"""Delivery is never lost: 429 waits Retry-After, 5xx and network errors back off within the
run, and what is still undelivered goes out on the next pass — exactly once."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.notify import alerts_group
from auditor.ledger.outbox import Outbox
from auditor.outputs import alerts

from .conftest import SlackServer
from .ledgers import IMAGE, bot_config, drifted, in_sync, key, record, webhook_config

WEB = key("web")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    record(path, 0, [in_sync(WEB)])
    return path


def _announced(db: Path, cfg: object, env: dict[str, str]) -> None:
    """The first pass's summary delivered; then one drift recorded, not yet alerted."""
    report = alerts.send(cfg, db, env=env)  # type: ignore[arg-type]
    assert report.delivered == 1
    record(db, 1, [drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0"))])


def test_429_waits_retry_after_then_delivers(db: Path, slack_server: SlackServer) -> None:
    env = {"SLACK_WEBHOOK": slack_server.hook()}
    cfg = webhook_config()
    _announced(db, cfg, env)
    slack_server.answer("429:1")
    report = alerts.send(cfg, db, env=env)
    assert (report.delivered, report.pending) == (1, 0)
    limited, ok = slack_server.requests[-2:]
    assert (limited.status, ok.status) == (429, 200)
    assert ok.at - limited.at >= 1.0  # Retry-After: 1 was honoured
    assert report.waited_seconds == pytest.approx(1.0)
    assert limited.body == ok.body


def test_bot_429_and_5xx_retry_with_backoff(db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api)
    env = {"SLACK_TOKEN": "xoxb-1"}
    _announced(db, cfg, env)
    slack_server.answer("429:1", 500, 503)
    report = alerts.send(cfg, db, env=env)
    assert (report.delivered, report.pending) == (1, 0)
    statuses = [r.status for r in slack_server.requests[-4:]]
    assert statuses == [429, 500, 503, 200]
    last = slack_server.requests[-4:]
    gaps = [b.at - a.at for a, b in itertools.pairwise(last)]
    assert gaps[0] >= 1.0 and gaps[2] >= gaps[1] * 1.5  # exponential backoff after 5xx
    with Outbox.open(db) as box:
        [msg] = [m for m in (box.get(i) for i in range(1, 5)) if m and m.kind == "drift"]
        assert msg.status == "delivered" and msg.attempts == 4 and msg.slack_ts


def test_persistent_5xx_stays_queued_and_goes_out_next_run_once(
        db: Path, slack_server: SlackServer) -> None:
    env = {"SLACK_WEBHOOK": slack_server.hook()}
    cfg = webhook_config(max_retries=2)
    _announced(db, cfg, env)
    slack_server.answer(500, 500, 500)
    report = alerts.send(cfg, db, env=env)
    assert (report.delivered, report.pending) == (0, 1)
    assert "HTTP 500" in report.errors[0] and "3 attempt(s)" in report.errors[0]
    with Outbox.open(db) as box:
        [pending] = box.pending()
        assert pending.attempts == 3 and "HTTP 500" in pending.last_error
    # Next run: the same message goes out, once, and nothing is queued twice.
    run_id = record(db, 2, [drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0"))])
    report = alerts.after_run(cfg, db, run_id, env=env)
    assert (report.queued, report.delivered, report.pending) == (0, 1, 0)
    delivered = [r for r in slack_server.delivered() if "shop/web:1.5.0" in r.text()]
    assert len(delivered) == 1


def test_network_errors_retry_then_wait_for_the_next_pass(
        db: Path, slack_server: SlackServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hooks/x"  # nothing listens there
    cfg = webhook_config(max_retries=1)
    _announced(db, cfg, {"SLACK_WEBHOOK": slack_server.hook()})
    report = alerts.send(cfg, db, env={"SLACK_WEBHOOK": dead})
    assert report.pending == 1 and "network error" in report.errors[0]
    slack_server.answer("drop")  # the connection dies mid-request once, then it works
    report = alerts.send(cfg, db, env={"SLACK_WEBHOOK": slack_server.hook()})
    assert (report.delivered, report.pending) == (1, 0)
    assert [r.status for r in slack_server.requests[-2:]] == [-1, 200]


def test_missing_token_keeps_messages_queued(db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api)
    report = alerts.send(cfg, db, env={})
    assert report.pending == 1 and "SLACK_TOKEN is not set" in report.errors[0]
    assert slack_server.requests == []
    assert alerts.send(cfg, db, env={"SLACK_TOKEN": "xoxb-1"}).delivered == 1


def test_retry_after_beyond_the_budget_leaves_it_for_the_next_run(
        db: Path, slack_server: SlackServer) -> None:
    env = {"SLACK_WEBHOOK": slack_server.hook()}
    cfg = webhook_config(budget_seconds=2)
    _announced(db, cfg, env)
    record(db, 2, [drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0")),
                   drifted(key("api"), ("spec.replicas", 1, 9))])
    slack_server.answer("429:30")
    report = alerts.send(cfg, db, env=env)
    assert report.pending == 2 and report.waited_seconds == 0
    assert "429" in report.errors[0]
    assert len(slack_server.requests) == 2  # the pass stopped: the second would be refused too


def test_slack_refusal_is_reported_and_kept(db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api)
    env = {"SLACK_TOKEN": "xoxb-1"}
    slack_server.refuse = "channel_not_found"
    report = alerts.send(cfg, db, env=env)
    assert report.pending == 1
    assert "Slack refused the message: channel_not_found" in report.errors[0]
    assert len(slack_server.requests) == 1  # not retried: retrying cannot help


def test_cli_dry_run_sends_and_records_nothing(db: Path, slack_server: SlackServer,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger: {{path: {db}}}\nslack: {{webhook-url-env: SLACK_WEBHOOK, backoff-seconds: 0.01}}\n")
    monkeypatch.setenv("SLACK_WEBHOOK", slack_server.hook())
    runner = CliRunner()
    result = runner.invoke(alerts_group, ["send", "--dry-run"], obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    assert "watching this cluster" in result.output and "nothing sent or recorded" in result.output
    assert slack_server.requests == []
    with Outbox.open(db) as box:
        assert box.meta("initialized") is None and box.pending() == []
    result = runner.invoke(alerts_group, ["send"], obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    assert "1 delivered, 0 pending" in result.output and len(slack_server.requests) == 1
    slack_server.answer(500, 500, 500, 500)
    record(db, 1, [drifted(WEB, ("spec.replicas", 3, 5))])
    result = runner.invoke(alerts_group, ["send"], obj=Context(str(config)))
    assert result.exit_code == 2 and "1 message(s) still queued" in result.output
    result = runner.invoke(alerts_group, ["status"], obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "outbox: 1 pending, 1 delivered, 0 skipped"
    assert "post drift → webhook $SLACK_WEBHOOK: 4 attempt(s), last error: HTTP 500" in lines[1]


def test_concurrent_passes_never_post_the_same_news_twice(
        db: Path, slack_server: SlackServer) -> None:
    import threading

    env = {"SLACK_WEBHOOK": slack_server.hook()}
    cfg = webhook_config()
    _announced(db, cfg, env)
    record(db, 2, [drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0")),
                   drifted(key("api"), ("spec.replicas", 1, 9))])
    reports: list[alerts.AlertReport] = []
    threads = [threading.Thread(target=lambda: reports.append(alerts.send(cfg, db, env=env)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.queued for r in reports) == 2 and sum(r.delivered for r in reports) == 2
    assert [r.body["text"].split(" ")[1] for r in slack_server.requests[1:]].count(
        "Deployment.apps") == 2
    assert len(slack_server.requests) == 3


@pytest.mark.parametrize("transport", ["bot", "webhook"])
def test_slack_down_is_one_line_of_ours_on_stderr_and_every_attempt_at_debug(
        db: Path, slack_server: SlackServer, tmp_path: Path, transport: str) -> None:
    """Slack's library logs an ERROR line per failed attempt; the outcome is ours to tell,
    once. With -vv each attempt is still there to read, as debug."""
    config = tmp_path / "drift-auditor.yaml"
    where = (f"token-env: SLACK_TOKEN, channel: '#drift', base-url: '{slack_server.api}'"
             if transport == "bot" else "webhook-url-env: SLACK_WEBHOOK")
    config.write_text(f"ledger: {{path: {db}}}\n"
                      f"slack: {{{where}, max-retries: 2, backoff-seconds: 0.01}}\n")
    env = {"PATH": "/usr/bin:/bin", "SLACK_TOKEN": "xoxb-1", "SLACK_WEBHOOK": slack_server.hook()}

    def send(*flags: str) -> subprocess.CompletedProcess[str]:
        slack_server.answer("drop", "drop", "drop")  # every attempt of this pass fails
        return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config),
                               *flags, "alerts", "send"], capture_output=True, text=True, env=env)

    proc = send()
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "drift-auditor: error: 1 message(s) still queued: message 1 (summary): network error: "
        "Remote end closed connection without response after 3 attempt(s); left queued"]
    assert [r.status for r in slack_server.requests] == [-1, -1, -1]

    proc = send("-vv")
    assert proc.returncode == 2
    attempts = [ln for ln in proc.stderr.splitlines()
                if "Failed to send a request to Slack API server" in ln]
    assert len(attempts) == 3 and all(" DEBUG " in ln for ln in attempts), proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if " ERROR " in ln or " WARNING " in ln]
    assert proc.stderr.splitlines()[-1].startswith("drift-auditor: error: 1 message(s) still")
