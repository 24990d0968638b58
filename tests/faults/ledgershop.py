"""What the ledger fault suites share: a shop in the sandbox audited from a Git folder by real
runs (``run_once``), ledgers copied with their Secret hash key so that copies compare, the
real CLI, and a snapshot of what a ledger recorded to compare two ledgers by."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.ledger.schema import reading
from auditor.pipeline import RunOutcome, run_once

ROOT = Path(__file__).resolve().parents[2]

APPS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shop}
stringData: {token: s3cr3t-value-never-shown}
"""


@dataclass
class Shop:
    """One installation: a folder with its config file, its ledger (and the ledger's Secret
    hash key beside it), auditing the Git folder ``apps`` against one sandbox."""

    folder: Path
    apps: Path
    kubeconfig: Path

    @property
    def config(self) -> Path:
        return self.folder / "drift-auditor.yaml"

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.db"

    def cfg(self) -> config_mod.Config:
        return config_mod.load(str(self.config), env={})

    def run(self) -> RunOutcome:
        return run_once(self.cfg(), desired_path=str(self.apps))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``python -m auditor.cli --config <this shop's config> ARGS``, as a user types it."""
        return finish(self.start(*args), timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """:meth:`cli` started, not waited for (:func:`finish` waits)."""
        return subprocess.Popen([sys.executable, "-m", "auditor.cli", "--config",
                                 str(self.config), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=child_env())

    def copy(self, folder: Path) -> Shop:
        """The same installation in ``folder``: the ledger (checkpointed into one file) and
        its key copied, the config file pointing at the copy."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.ledger.exists():
            with sqlite3.connect(self.ledger) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copy(self.ledger, folder / "ledger.db")
        key = self.ledger.with_suffix(".key")
        if key.exists():
            shutil.copy(key, folder / "ledger.key")
        config_file(folder, self.kubeconfig)
        return Shop(folder, self.apps, self.kubeconfig)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def child_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}


def make_shop(folder: Path, kubeconfig: Path, kubectl: Any) -> Shop:
    """The shop's manifests in a Git folder, synced to the sandbox as the GitOps controller
    does, and an installation auditing them (no run yet)."""
    apps = folder / "git" / "apps"
    sync_from_git(kubectl, apps, APPS)
    config_file(folder, kubeconfig)
    return Shop(folder, apps, kubeconfig)


def live_changes(kubectl: Any) -> None:
    """What people do between two runs: a hotfix image, a changed setting, an object Git does
    not declare, a label on the Secret."""
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
    kubectl("-n", "shop", "patch", "configmap", "settings", "-p", '{"data": {"MODE": "debug"}}')
    kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: extra, namespace: shop}\ndata: {a: b}\n")
    kubectl("-n", "shop", "label", "secret", "token", "rotated=yes")


def one_line(stderr: str) -> str:
    """The single line of ``stderr`` (asserting there is exactly one, and no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def untriggered(db: Path) -> sqlite3.Connection:
    """What someone with write access to the file does first: drop the append-only triggers."""
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


@dataclass(frozen=True)
class Recorded:
    """What a ledger holds, in terms that two ledgers of the same cluster share (no ids, no
    sequence numbers, no times): each object's newest version, the open drifts, and every
    version, change and drift event of the runs after ``after_run``."""

    newest: dict[str, tuple[str, str, int]]
    open_drifts: dict[str, str]
    versions: Counter[tuple[str, str, str, int]]
    changes: Counter[tuple[str, ...]]
    drift_events: Counter[tuple[str, str, str]]
    runs: list[tuple[int, str]]


def _label(grp: str, kind: str, ns: str, name: str) -> str:
    return f"{kind}.{grp}/{ns}/{name}"


def recorded(db: Path, after_run: int = 0) -> Recorded:
    with reading(db) as conn:
        newest: dict[str, tuple[str, str, int]] = {}
        versions: Counter[tuple[str, str, str, int]] = Counter()
        for run_id, grp, kind, ns, name, rv, chash, deleted in conn.execute(
                "SELECT v.run_id, o.grp, o.kind, o.namespace, o.name, v.resource_version, "
                "v.content_hash, v.deleted FROM object_versions v JOIN objects o "
                "ON o.id = v.object_id ORDER BY v.id"):
            label = _label(grp, kind, ns, name)
            newest[label] = (rv or "", chash or "", int(deleted))
            if run_id > after_run:
                versions[(label, rv or "", chash or "", int(deleted))] += 1
        changes: Counter[tuple[str, ...]] = Counter(
            (_label(*r[:4]), *map(str, r[4:])) for r in conn.execute(
                "SELECT o.grp, o.kind, o.namespace, o.name, c.change, c.manager, c.category, "
                "c.authorized FROM changes c JOIN objects o ON o.id = c.object_id "
                "WHERE c.run_id > ?", (after_run,)))
        drift_events: Counter[tuple[str, str, str]] = Counter(
            (_label(*r[:4]), str(r[4]), str(r[5] or "")) for r in conn.execute(
                "SELECT o.grp, o.kind, o.namespace, o.name, e.event, e.how FROM drift_events e "
                "JOIN drifts d ON d.id = e.drift_id JOIN objects o ON o.id = d.object_id "
                "WHERE e.run_id > ?", (after_run,)))
        open_drifts = {_label(*r[:4]): str(r[4]) for r in conn.execute(
            "SELECT o.grp, o.kind, o.namespace, o.name, d.fingerprint FROM drift_state s "
            "JOIN drifts d ON d.id = s.drift_id JOIN objects o ON o.id = d.object_id "
            "WHERE s.state IN ('open', 'accepted')")}
        runs = [(int(i), str(s)) for i, s in conn.execute("SELECT id, status FROM runs ORDER BY id")]
    return Recorded(newest, open_drifts, versions, changes, drift_events, runs)
