"""`drift-auditor adopt` as the CronJob's configuration would run it: a configured Git
source (cloned into the cache), the ledger's open drifts (``--all-open``), ``--push`` to the
source's origin, then the merge upstream and the next `run` resolving the drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor.ledger import adoptions, drifts, reading
from auditor.ledger.schema import connect_reader
from auditor.ledger.verify import verify
from tests.gitfixtures import TOOLS, RepoBuilder, git

from .test_adopt_e2e import NAMESPACE, SHOP, apply_as_gitops, diff_lines

pytestmark = pytest.mark.kubectl



def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
           "DRIFT_AUDITOR_TOOLS": str(TOOLS), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(tmp_path / "cfg.yaml"),
                           *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)


@pytest.fixture
def origin(tmp_path: Path, kubeconfig: Path) -> RepoBuilder:
    repo = RepoBuilder(tmp_path / "origin")
    repo.write("apps/namespace.yaml", NAMESPACE)
    repo.write("apps/shop.yaml", SHOP)
    repo.commit("shop: web 1.4.2")
    (tmp_path / "cfg.yaml").write_text(
        f"sources:\n  - url: {repo.path}\n    revision: main\n    paths: [apps]\n"
        f"cluster: {{kubeconfig: {kubeconfig}}}\n"
        f"ledger: {{path: {tmp_path / 'ledger.db'}}}\n")
    return repo


def test_all_open_push_merge_and_run_resolves(sandbox: Any, kubectl: Any, origin: RepoBuilder,
                                              tmp_path: Path) -> None:
    apply_as_gitops(kubectl, "-f", str(origin.path / "apps"))
    assert cli(tmp_path, "run").returncode == 0
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=4")
    kubectl("-n", "shop", "delete", "service/web")
    assert cli(tmp_path, "run").returncode == 1

    proc = cli(tmp_path, "adopt", "--all-open", "--push", "--by", "oncall@shop")

    # The deletion is not adopted (exit 1, named); the scale is.
    assert proc.returncode == 1, proc.stderr
    assert "refused Service shop/web: it is missing from the cluster" in proc.stderr
    branch = next(ln.split(" on branch ")[1].split(" in ")[0] for ln in proc.stdout.splitlines()
                  if " on branch " in ln)
    assert f"pushed {branch} to {origin.path}" in proc.stdout
    assert "recorded in the ledger as adoption 1" in proc.stdout
    assert "adopted Deployment.apps shop/web spec.replicas -> apps/shop.yaml" in proc.stderr
    # The branch is upstream now; main is not touched.
    assert git(origin.path, "branch", "--list", branch).strip() == branch
    assert git(origin.path, "log", "-1", "--format=%s", "main") == "shop: web 1.4.2"
    new = git(origin.path, "show", f"{branch}:apps/shop.yaml") + "\n"
    assert diff_lines(SHOP, new) == ["-  replicas: 2    # two is enough by day",
                                     "+  replicas: 4    # two is enough by day"]
    with reading(tmp_path / "ledger.db") as conn:
        (adoption,) = adoptions.adoptions(conn)
        assert adoption["pushed"] is True and adoption["branch"] == branch
    # The adoption is part of the hash chain, and the chain still verifies.
    conn = connect_reader(tmp_path / "ledger.db")
    try:
        result = verify(conn)
        kinds = {r[0] for r in conn.execute("SELECT type FROM events")}
    finally:
        conn.close()
    assert result.ok, result.message
    assert "adoption" in kinds

    origin.merge(branch, "Merge pull request #12 from oncall/adopt")
    proc = cli(tmp_path, "run")
    assert "0 drifted, 1 missing" in proc.stdout, proc.stdout + proc.stderr
    with reading(tmp_path / "ledger.db") as conn:
        (resolved,) = drifts(conn, states=("resolved",))
        (adoption,) = adoptions.adoptions(conn)
    assert (resolved["object"], resolved["resolved_how"]) == ("Deployment.apps shop/web",
                                                              "git-changed")
    assert adoption["outcome"].startswith("resolved: Git changed to match (commit ")


def test_nothing_to_adopt_exits_1_and_bad_names_exit_2(sandbox: Any, kubectl: Any,
                                                       origin: RepoBuilder,
                                                       tmp_path: Path) -> None:
    apply_as_gitops(kubectl, "-f", str(origin.path / "apps"))
    proc = cli(tmp_path, "adopt", "Deployment/web")
    assert proc.returncode == 1
    assert "refused Deployment.apps shop/web: it is in sync" in proc.stderr
    proc = cli(tmp_path, "adopt", "Secret/shop/db", "-o", "json")
    assert proc.returncode == 2  # no Secret in this repo: not found, exit 2
    proc = cli(tmp_path, "adopt", "Service/web", "-o", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert doc["adopted"] == [] and doc["branch"] is None
    assert doc["refused"] == [{"object": "Service shop/web", "path": "",
                               "reason": "it is in sync", "file": ""}]
    proc = cli(tmp_path, "adopt", "Deployment/nope")
    assert proc.returncode == 2
    assert "Deployment/nope (Deployment.apps nope): no such object in Git or in the cluster" \
        in proc.stderr
    proc = cli(tmp_path, "adopt")
    assert proc.returncode == 2 and "name one OBJECT or pass --all-open" in proc.stderr
