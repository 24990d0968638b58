"""`drift-auditor adopt` with the ledger in the PostgreSQL fleet store (a real server,
:mod:`tests.pgkit`): it reads the open drift from this cluster's schema, records the adoption
there (chain verifying), and the next run after the merge resolves the drift as Git changed;
the command takes ``--ledger URL#CLUSTER``; an unreachable store is one line and exit 2, with
nothing committed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor import config as config_mod
from auditor.adopt.workflow import Request
from auditor.ledger import adoptions, backend, drifts
from auditor.ledger.backend import StoreLedger
from auditor.ledger.verify import verify
from auditor.pipeline import run_once
from auditor.support import secretkey
from tests.adopt.test_adopt_e2e import NAMESPACE, SHOP, adopt, apply_as_gitops
from tests.gitfixtures import TOOLS, RepoBuilder, git
from tests.ledger.backends import pg_url
from tests.pgkit import PgDatabase, pg_database, pg_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.kubectl

CLUSTER = "prod-eu"


def _config(tmp_path: Path, kubeconfig: Path, url: str) -> Path:
    hash_key = tmp_path / "secret-hash.key"
    secretkey.load_or_create(hash_key)
    password = tmp_path / "pg-password"
    password.write_text("anything: the kit's server trusts its socket\n")
    path = tmp_path / "drift-auditor.yaml"
    path.write_text(f"cluster: {{name: {CLUSTER}, kubeconfig: {kubeconfig}, retries: 1}}\n"
                    f"ledger: {{path: {tmp_path / 'unused.db'}, url: '{url}', "
                    f"cluster: {CLUSTER}, password-file: {password}}}\n"
                    f"compare: {{secret-hash-key-file: {hash_key}}}\n")
    return path


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)})


def test_adopt_reads_and_records_in_the_store_cluster(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path,
        pg_database: PgDatabase) -> None:  # noqa: F811
    shop = RepoBuilder(tmp_path / "gitops")
    shop.write("apps/namespace.yaml", NAMESPACE)
    shop.write("apps/shop.yaml", SHOP)
    shop.commit("shop: web 1.4.2")
    apps = shop.path / "apps"
    url = pg_url(pg_database)
    config = _config(tmp_path, kubeconfig, url)
    cfg = config_mod.load(config, env={})
    store = backend.configured_ledger(cfg.ledger)
    assert isinstance(store, StoreLedger) and store.cluster == CLUSTER
    apply_as_gitops(kubectl, "-f", str(apps))
    run_once(cfg, desired_path=str(apps))
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=5")
    assert run_once(cfg, desired_path=str(apps)).ledger["drifts_opened"] == 1
    with backend.reader(store) as conn:
        (drift,) = drifts(conn)

    report = adopt(Request(target=str(drift["id"]), desired=str(apps), by="oncall@shop",
                           tools_dir=str(TOOLS)), cfg)

    assert report.refusals == [] and [a.item.path for a in report.adopted] == ["spec.replicas"]
    assert len(report.adoption_ids) == 1
    with backend.reader(store) as conn:
        (adoption,) = adoptions.adoptions(conn)
        assert verify(conn).ok
    assert (adoption["drift_id"], adoption["commit"], adoption["by"]) == (
        drift["id"], report.commit, "oncall@shop")
    assert not (tmp_path / "unused.db").exists(), "the store, not ledger.path"

    shop.merge(report.branch, "Merge adoption of the scale-up")
    assert run_once(cfg, desired_path=str(apps)).ledger["drifts_resolved"] == {"git-changed": 1}
    with backend.reader(store) as conn:
        (adoption,) = adoptions.adoptions(conn)
        assert verify(conn).ok
    assert adoption["resolution"] == "git-changed" and adoption["merged"] is True

    # The command: --ledger URL#CLUSTER names the store cluster (here the configured one).
    kubectl("-n", "shop", "set", "env", "deployment/web", "DEBUG=1")
    run_once(cfg, desired_path=str(apps))
    proc = _cli(config, "adopt", "deployment/web", "-n", "shop", "--desired", str(apps),
                "--by", "oncall@shop", "--ledger", f"{url}#{CLUSTER}", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    with backend.reader(store) as conn:
        assert len(adoptions.adoptions(conn)) == 2
        assert verify(conn).ok


def test_an_unreachable_store_is_one_line_and_nothing_is_committed(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    shop = RepoBuilder(tmp_path / "gitops")
    shop.write("apps/namespace.yaml", NAMESPACE)
    shop.write("apps/shop.yaml", SHOP)
    shop.commit("shop: web 1.4.2")
    apps = shop.path / "apps"
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=5")
    gone = f"postgresql://postgres@/fleet?host={tmp_path / 'no-server'}&port=5432"
    config = _config(tmp_path, kubeconfig, gone)
    head = shop.head()
    proc = _cli(config, "adopt", "deployment/web", "-n", "shop", "--desired", str(apps),
                "--by", "oncall@shop")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no-server" in lines[0]
    assert shop.head() == head and git(shop.path, "branch", "--list", "drift-auditor/*") == ""
