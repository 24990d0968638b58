"""The API fault suite's installation: a shop declared in Git and synced to the sandbox the way
a GitOps controller does it, audited once without faults, then handed to each test as a copy
(the ledger, its key and caches) so that every fault meets the same recorded past.

The shop's namespace, ``app``, sorts before every namespace a cluster starts with, so its
objects lead each cluster-wide list: with two objects a page, a list that fails on a
continuation has already handed some of them on. Between the baseline run and the fault, one
drift is fixed live (``cm-1``: a complete list resolves it) and one is made (``cm-2``: a
complete list opens it), so a run that judged a kind it could not read in full shows in the
ledger.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor import config as config_mod
from auditor.config import Config
from auditor.engine.records import ObjectResult
from auditor.ledger import drifts, reading
from auditor.pipeline import RunOutcome, run_once
from auditor.sandbox import Sandbox
from tests.conftest import kubectl_binary
from tests.gitopsfixtures import sync_from_git

NAMESPACE = "app"
CONFIGMAPS = 6

GIT = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
""" + "".join(f"""\
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cm-{i}, namespace: {NAMESPACE}}}
data: {{MODE: prod, INDEX: "{i}"}}
""" for i in range(CONFIGMAPS))

# Created by hand, declared nowhere: an orphan of each of the two kinds the suite watches.
STRAYS = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: a-stray, namespace: {NAMESPACE}}}
data: {{LEFT: over}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: a-stray, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{app: stray}}}}
  template:
    metadata: {{labels: {{app: stray}}}}
    spec:
      containers:
        - name: stray
          image: shop/stray:0.1
"""

# Small pages and one retry: every fault plays out in about a second. The request timeout
# is short only where a test makes the sandbox hang: elsewhere a slow answer on a busy
# machine must not pass for a fault.
TIMEOUT_SECONDS = 0.5
HANG_SECONDS = 3 * TIMEOUT_SECONDS
PATIENT_SECONDS = 10.0


class Kubectl:
    """kubectl 1.35 against one sandbox (the shared fixture is per test; the shop is not)."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.binary = kubectl_binary()
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home),
                    "KUBECACHEDIR": str(home / "kube-cache"), "KUBE_EDITOR": "true"}

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), *args], input=input, env=self.env, text=True,
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


@dataclass
class Shop:
    """The sandbox, Git and the recorded baseline every test starts from."""

    sandbox: Sandbox
    kubeconfig: Path
    apps: Path
    baseline: Path  # the folder holding the baseline's ledger, key and caches
    listed: dict[str, set[tuple[str, str]]]  # Kind[.group] -> what the baseline judged


@dataclass
class Install:
    """One test's copy of the installation."""

    shop: Shop
    folder: Path
    config_file: Path
    cfg: Config

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.db"

    def expect_hangs(self) -> None:
        """Use the short request timeout (:data:`TIMEOUT_SECONDS`) from now on."""
        self.config_file = write_config(self.folder, self.shop.kubeconfig, TIMEOUT_SECONDS)
        self.cfg = config_mod.load(str(self.config_file), env={})

    def run(self) -> RunOutcome:
        return run_once(self.cfg, desired_path=str(self.shop.apps))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real ``drift-auditor`` command with this installation's config file."""
        return subprocess.run(
            [sys.executable, "-m", "auditor.cli", "-q", "--config", str(self.config_file), *args],
            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})

    def drifts(self) -> dict[str, tuple[int, str, str | None]]:
        """Every drift the ledger holds: object -> (id, state, how it was resolved)."""
        with reading(self.ledger) as conn:
            return {d["object"]: (d["id"], d["state"], d["resolved_how"])
                    for d in drifts(conn, ("open", "accepted", "resolved"))}


def write_config(folder: Path, kubeconfig: Path, timeout: float = PATIENT_SECONDS) -> Path:
    path = folder / "drift-auditor.yaml"
    path.write_text(
        f"cluster: {{name: test, kubeconfig: {kubeconfig}, retries: 1, page-size: 2, "
        f"timeout-seconds: {timeout}}}\n"
        f"ledger: {{path: {folder / 'ledger.db'}}}\n"
        f"policies: {{directory: {folder / 'no-policies'}}}\n")
    return path


def judged(outcome: RunOutcome) -> dict[str, set[tuple[str, str]]]:
    """``Kind[.group]`` -> the (namespace, name) of each object the run has a result for."""
    out: dict[str, set[tuple[str, str]]] = {}
    for r in outcome.audit.results:
        out.setdefault(r.key.group_kind, set()).add((r.key.namespace, r.key.name))
    return out


def build_shop(folder: Path, sandbox: Sandbox) -> Shop:
    """Sync Git, add the strays, record a clean baseline, then fix ``cm-1`` and break ``cm-2``."""
    kubeconfig = sandbox.write_kubeconfig(folder / "kubeconfig")
    kubectl = Kubectl(kubeconfig, folder)
    apps = folder / "git" / "apps"
    sync_from_git(kubectl, apps, GIT)
    kubectl("create", "-f", "-", input=STRAYS)
    kubectl("-n", NAMESPACE, "patch", "configmap", "cm-1", "-p", '{"data":{"MODE":"debug"}}')
    baseline = folder / "baseline"
    baseline.mkdir()
    cfg = config_mod.load(str(write_config(baseline, kubeconfig)), env={})
    first = run_once(cfg, desired_path=str(apps))
    assert first.status == "complete", first.audit.problems
    statuses = {(r.key.kind, r.key.name): r.status for r in first.audit.results}
    assert statuses[("ConfigMap", "cm-1")] == "drifted"
    assert statuses[("ConfigMap", "a-stray")] == statuses[("Deployment", "a-stray")] == "orphan"
    kubectl("-n", NAMESPACE, "patch", "configmap", "cm-1", "-p", '{"data":{"MODE":"prod"}}')
    kubectl("-n", NAMESPACE, "patch", "configmap", "cm-2", "-p", '{"data":{"MODE":"debug"}}')
    return Shop(sandbox, kubeconfig, apps, baseline, judged(first))


def install(shop: Shop, folder: Path) -> Install:
    """A copy of the baseline installation in ``folder`` (its own ledger, key and caches)."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in shop.baseline.iterdir():
        if entry.name == "drift-auditor.yaml":
            continue
        if entry.is_dir():
            shutil.copytree(entry, folder / entry.name)
        else:
            shutil.copy2(entry, folder / entry.name)
    config_file = write_config(folder, shop.kubeconfig)
    return Install(shop, folder, config_file, config_mod.load(str(config_file), env={}))


# ------------------------------------------------------------------------- checks


def assert_each_object_judged_once(results: list[ObjectResult]) -> None:
    twice = {key: n for key, n in Counter(r.key for r in results).items() if n > 1}
    assert not twice, f"objects judged more than once: {twice}"


def assert_complete(shop: Shop, outcome: RunOutcome) -> None:
    """Every kind listed: the same objects as the baseline, each once; cm-1 resolved (fixed
    live), cm-2 opened, nothing else opened or resolved."""
    assert_each_object_judged_once(outcome.audit.results)
    assert outcome.status == "complete", outcome.audit.problems
    assert outcome.audit.skipped_kinds == []
    assert judged(outcome) == shop.listed
    statuses = {(r.key.kind, r.key.name): r.status for r in outcome.audit.results}
    assert statuses[("ConfigMap", "cm-1")] == "in-sync"
    assert statuses[("ConfigMap", "cm-2")] == "drifted"
    assert sorted(k for k, s in statuses.items() if s == "orphan") == [
        ("ConfigMap", "a-stray"), ("Deployment", "a-stray")]
    assert outcome.ledger["drifts_opened"] == 1, outcome.ledger
    assert outcome.ledger["drifts_resolved"] == {"fixed-live": 1}, outcome.ledger


def assert_kind_skipped(shop: Shop, outcome: RunOutcome, kind: str, before: dict[str, Any],
                        after: dict[str, Any], fragment: str) -> None:
    """``kind`` (``Kind[.group]``) named as skipped (its problem saying ``fragment``), none of
    its objects missing or orphan, its drifts neither opened nor resolved; every other kind
    judged in full."""
    assert_each_object_judged_once(outcome.audit.results)
    assert outcome.status == "partial"
    assert outcome.audit.skipped_kinds == [kind]
    [problem] = [p for p in outcome.audit.problems if p.where == kind]
    assert fragment in problem.message, problem.message
    assert "\n" not in problem.message
    others = {k: v for k, v in judged(outcome).items() if k != kind}
    assert others == {k: v for k, v in shop.listed.items() if k != kind}, "nothing lost"
    assert {o: d for o, d in after.items() if o.startswith(f"{kind} ")} == \
        {o: d for o, d in before.items() if o.startswith(f"{kind} ")}, \
        "no drift of a skipped kind opened or resolved"
    # The ConfigMap drifts prepared by the shop move only when ConfigMaps were listed.
    listed = kind != "ConfigMap"
    assert outcome.ledger["drifts_opened"] == int(listed), outcome.ledger
    assert outcome.ledger["drifts_resolved"] == ({"fixed-live": 1} if listed else {})
    # Last: the one check a kind that fails after its first page does not pass yet.
    wrong = [(r.key.name, r.status) for r in outcome.audit.results
             if r.key.group_kind == kind and r.status in ("missing", "orphan")]
    assert not wrong, f"objects of a skipped kind reported: {wrong}"
