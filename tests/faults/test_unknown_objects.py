"""A file of Git that cannot be read this run makes the objects it declared unknown, not
orphans: no orphan result, no revert or prune, their drifts left as they were; the problem is
named, the run is partial, and the rest of Git is audited. Fixing the file picks up exactly
where the last good run left off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.ledger import drifts, reading
from auditor.pipeline import run_once

pytestmark = pytest.mark.kubectl

APP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
"""

FLAGS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: banner, namespace: shop}
data: {TEXT: hello}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: flags, namespace: shop}
data: {BETA: "off"}
"""

# The second document loses its closing bracket: the first still parses.
FLAGS_TYPO = FLAGS.replace('data: {BETA: "off"}', 'data: {BETA: "off"')


@pytest.fixture
def shop(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, APP, name="app.yaml")
    sync_from_git(kubectl, apps, FLAGS, name="flags.yaml")
    # Prune on: an orphan would be deleted in the run that reports it.
    cfg_file = config_file(tmp_path, kubeconfig, extra=(
        "revert: {mode: enforce, prune: true, namespaces: [shop], kinds: [ConfigMap]}\n"))
    return {"apps": apps, "config": cfg_file, "cfg": config_mod.load(str(cfg_file), env={})}


def _run(shop: dict[str, Any]) -> Any:
    return run_once(shop["cfg"], desired_path=str(shop["apps"]))


def _open_drifts(shop: dict[str, Any]) -> dict[str, tuple[int, str]]:
    with reading(shop["cfg"].ledger.path) as conn:
        return {d["name"]: (d["id"], d["state"]) for d in drifts(conn)}


def test_a_typo_in_git_leaves_the_objects_of_its_document_unknown(
        shop: dict[str, Any], kubectl: Any) -> None:
    assert _run(shop).status == "complete"
    # Changed by hand, not reverted: revert only prunes here, and flags is human drift...
    kubectl("-n", "shop", "patch", "configmap", "flags", "-p", '{"data": {"BETA": "on"}}')
    # ...which revert would put back; take it out of revert's hands for this test.
    kubectl("-n", "shop", "annotate", "configmap", "flags", "drift-auditor.io/revert=false")
    drifted = _run(shop)
    assert {r.key.name: r.status for r in drifted.audit.results}["flags"] == "drifted"
    before = _open_drifts(shop)
    assert before["flags"][1] == "open"

    (shop["apps"] / "flags.yaml").write_text(FLAGS_TYPO)
    broken = _run(shop)
    statuses = {r.key.name: r.status for r in broken.audit.results}
    assert "flags" not in statuses, "an object whose document failed to parse has no verdict"
    assert statuses["banner"] == "in-sync" and statuses["settings"] == "in-sync"
    assert "orphan" not in statuses.values()
    assert broken.status == "partial"
    problems = {p.where: p for p in broken.audit.problems}
    assert any(where.endswith("flags.yaml") and p.kind == "error"
               for where, p in problems.items())
    undecided = [p for p in broken.audit.problems if "not decided" in p.message]
    assert len(undecided) == 1 and "flags.yaml" in undecided[0].message
    # Nothing pruned, and the drift is left exactly as it was.
    assert kubectl("-n", "shop", "get", "configmap", "flags", "-o", "name").stdout.strip() \
        == "configmap/flags"
    assert broken.ledger.get("drifts_resolved", {}) == {}
    assert _open_drifts(shop) == before

    # The file fixed: the same drift, still open, neither resolved nor reopened.
    (shop["apps"] / "flags.yaml").write_text(FLAGS)
    fixed = _run(shop)
    assert fixed.status == "complete"
    assert {r.key.name: r.status for r in fixed.audit.results}["flags"] == "drifted"
    assert fixed.ledger.get("drifts_opened", 0) == 0 and fixed.ledger.get("drifts_reopened", 0) == 0
    assert _open_drifts(shop) == before


def test_diff_reports_no_orphan_while_a_file_is_unreadable(
        shop: dict[str, Any], kubectl: Any) -> None:
    (shop["apps"] / "flags.yaml").write_text(FLAGS_TYPO)
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", str(shop["config"]), "diff",
         "--desired", str(shop["apps"]), "-o", "json"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    doc = orjson.loads(proc.stdout)
    names = {r["name"]: r["status"] for r in doc["resources"]}
    assert "flags" not in names and "orphan" not in names.values()
    assert names["banner"] == "in-sync"
    assert any("not decided" in p["message"] for p in doc["problems"]), doc["problems"]
