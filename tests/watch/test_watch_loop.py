"""``drift-auditor watch`` against the sandbox, changed with the real kubectl 1.35: every
change between scheduled runs reaches the ledger with its actor, drifts open and resolve as
they happen, and neither a lost connection, a compacted history, a SIGKILL nor a scheduled
run writing the same ledger loses or repeats a change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor import config as config_mod
from auditor.config import Config
from auditor.ledger import reading
from auditor.pipeline import run_once
from auditor.sandbox import Sandbox
from auditor.watch import BatchReport, WatchOutcome, watch
from tests.alerts.conftest import SlackServer, slack_server  # noqa: F401 (a fixture)
from tests.gitopsfixtures import config_file, sync_from_git

pytestmark = pytest.mark.kubectl

NS = "app"
GIT = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
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
metadata: {{name: cm-{i}, namespace: {NS}}}
data: {{MODE: prod}}
""" for i in range(3))

# Watch only the shop's namespace: a cluster's own namespaces are not the test's business.
SCOPE = f"scope: {{include-namespaces: [{NS}]}}\nwatch: {{batch-seconds: 0.2}}\n"


class Watching:
    """``watch()`` on a thread until :meth:`stop`; batches collected as they are recorded."""

    def __init__(self, cfg: Config, apps: Path, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.stop_event = threading.Event()
        self.reports: list[BatchReport] = []
        self.outcome: WatchOutcome | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(cfg, apps), daemon=True)
        self._thread.start()

    def _run(self, cfg: Config, apps: Path) -> None:
        try:
            self.outcome = watch(cfg, stop=self.stop_event, env=self.env, desired_path=str(apps),
                                 on_batch=self.reports.append)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> WatchOutcome:
        self.stop_event.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "watch did not stop"
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


@pytest.fixture
def shop(sandbox: Sandbox, kubectl: Any, kubeconfig: Path, tmp_path: Path) -> dict[str, Any]:
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, GIT)
    cfg = config_mod.load(str(config_file(tmp_path, kubeconfig, extra=SCOPE)), env={})
    first = run_once(cfg, desired_path=str(apps))
    assert first.status == "complete", first.audit.problems
    return {"cfg": cfg, "apps": apps, "ledger": tmp_path / "ledger.db", "kubectl": kubectl,
            "sandbox": sandbox, "config_file": tmp_path / "drift-auditor.yaml",
            "tmp": tmp_path}


@pytest.fixture
def watching(shop: dict[str, Any]) -> Iterator[Callable[[], Watching]]:
    started: list[Watching] = []

    def start() -> Watching:
        w = Watching(shop["cfg"], shop["apps"])
        started.append(w)
        return w

    yield start
    for w in started:
        if not w.stop_event.is_set():
            w.stop_event.set()


def _wait(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _versions(ledger: Path, kind: str, name: str) -> list[tuple[str, int, str]]:
    """(resourceVersion, deleted, run mode) of each recorded version, oldest first."""
    with reading(ledger) as conn:
        return [(str(rv), int(d), str(mode)) for rv, d, mode in conn.execute(
            "SELECT v.resource_version, v.deleted, r.mode FROM object_versions v "
            "JOIN objects o ON o.id = v.object_id JOIN runs r ON r.id = v.run_id "
            "WHERE o.kind = ? AND o.name = ? AND o.namespace = ? ORDER BY v.id",
            (kind, name, NS))]


def _changes(ledger: Path, kind: str, name: str) -> list[tuple[str, str, str]]:
    """(change, manager, category) of each recorded change, oldest first."""
    with reading(ledger) as conn:
        return [tuple(map(str, row)) for row in conn.execute(  # type: ignore[misc]
            "SELECT c.change, c.manager, c.category FROM changes c "
            "JOIN objects o ON o.id = c.object_id WHERE o.kind = ? AND o.name = ? "
            "AND o.namespace = ? ORDER BY c.id", (kind, name, NS))]


def _drifts(ledger: Path, name: str) -> list[tuple[int, str]]:
    """(drift id, current state) of every drift of ``name``."""
    with reading(ledger) as conn:
        return [(int(i), str(s)) for i, s in conn.execute(
            "SELECT d.id, s.state FROM drifts d JOIN drift_state s ON s.drift_id = d.id "
            "JOIN objects o ON o.id = d.object_id WHERE o.name = ? AND o.namespace = ? "
            "ORDER BY d.id", (name, NS))]


def _positions(ledger: Path) -> dict[str, str]:
    with reading(ledger) as conn:
        return {str(k): str(v) for k, v in conn.execute(
            "SELECT group_kind, resource_version FROM watch_positions")}


def _patch(kubectl: Any, name: str, mode: str) -> None:
    kubectl("-n", NS, "patch", "configmap", name, "-p", f'{{"data":{{"MODE":"{mode}"}}}}')


def _rv(kubectl: Any, kind: str, name: str) -> str:
    return str(kubectl("-n", NS, "get", kind, name, "-o",
                       "jsonpath={.metadata.resourceVersion}").stdout.strip())


def test_a_change_made_and_undone_between_runs_is_in_the_ledger_with_its_actor(
        shop: dict[str, Any], watching: Callable[[], Watching]) -> None:
    ledger, kubectl = shop["ledger"], shop["kubectl"]
    w = watching()
    _wait(lambda: "ConfigMap" in _positions(ledger), "the watch to list ConfigMaps")
    _patch(kubectl, "cm-0", "debug")
    debug_rv = _rv(kubectl, "configmap", "cm-0")
    _wait(lambda: any(rv == debug_rv for rv, _, _ in _versions(ledger, "ConfigMap", "cm-0")),
          "the change to reach the ledger")
    _wait(lambda: [s for _, s in _drifts(ledger, "cm-0")] == ["open"], "the drift to open")
    _patch(kubectl, "cm-0", "prod")
    prod_rv = _rv(kubectl, "configmap", "cm-0")
    _wait(lambda: any(rv == prod_rv for rv, _, _ in _versions(ledger, "ConfigMap", "cm-0")),
          "the change back to reach the ledger")
    _wait(lambda: [s for _, s in _drifts(ledger, "cm-0")] == ["resolved"],
          "the drift to resolve")
    outcome = w.stop()
    assert outcome.versions >= 2 and outcome.opened == 1 and outcome.resolved == 1

    # The scheduled run afterwards finds the cluster as it was: the change is only known
    # because the watch saw it, and nothing is recorded twice.
    later = run_once(shop["cfg"], desired_path=str(shop["apps"]))
    assert later.status == "complete"
    versions = _versions(ledger, "ConfigMap", "cm-0")
    assert [mode for _, _, mode in versions] == ["run", "watch", "watch"]
    assert [rv for rv, _, _ in versions][1:] == [debug_rv, prod_rv]
    changes = _changes(ledger, "ConfigMap", "cm-0")
    assert [c[1] for c in changes[-2:]] == ["kubectl-patch", "kubectl-patch"]
    assert [c[2] for c in changes[-2:]] == ["human", "human"]

    # History and the report show the change as transient (made and undone between runs).
    from auditor.ledger import HistoryFilter, query

    with reading(ledger) as conn:
        rows = [r for r in query(conn, HistoryFilter(types=("change",)))
                if r.get("name") == "cm-0"]
    flagged = [r for r in rows if r.get("transient")]
    assert len(flagged) == 1, rows  # the change to debug; the change back is current
    done = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "-q", "--config", str(shop["config_file"]),
         # The period ends a minute from now: "now" at the second could cut off changes
         # recorded within the current second.
         "report", "--from", "2020-01-01", "--to",
         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60)), "--format", "json",
         "--output", str(shop["tmp"] / "report.json")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (shop["tmp"] / "report.json").read_text()
    assert "transient" in text and "cm-0" in text


def test_deletions_creations_and_orphans_are_judged_as_they_happen(
        shop: dict[str, Any], watching: Callable[[], Watching]) -> None:
    ledger, kubectl = shop["ledger"], shop["kubectl"]
    w = watching()
    _wait(lambda: "ConfigMap" in _positions(ledger), "the watch to list ConfigMaps")
    kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: stray, namespace: {NS}}}\ndata: {{a: b}}\n")
    _wait(lambda: [s for _, s in _drifts(ledger, "stray")] == ["open"], "the orphan drift")
    kubectl("-n", NS, "delete", "configmap", "stray")
    _wait(lambda: [s for _, s in _drifts(ledger, "stray")] == ["resolved"],
          "the orphan drift to resolve with its deletion")
    kubectl("-n", NS, "delete", "configmap", "cm-2")
    _wait(lambda: [s for _, s in _drifts(ledger, "cm-2")] == ["open"], "the missing drift")
    assert _versions(ledger, "ConfigMap", "cm-2")[-1][1] == 1
    # Objects the batch did not name keep their state: cm-1 was never touched.
    assert _drifts(ledger, "cm-1") == []
    w.stop()
    with reading(ledger) as conn:
        status = conn.execute("SELECT status FROM runs WHERE mode = 'watch' "
                              "AND status != 'complete'").fetchall()
    assert status == []


def test_a_dropped_connection_and_a_compacted_history_lose_and_repeat_nothing(
        shop: dict[str, Any], watching: Callable[[], Watching]) -> None:
    ledger, kubectl, sandbox = shop["ledger"], shop["kubectl"], shop["sandbox"]
    w = watching()
    _wait(lambda: "ConfigMap" in _positions(ledger), "the watch to list ConfigMaps")
    expected: list[str] = []
    for i in range(6):
        if i == 2:
            sandbox.faults.drop_watch()  # every open watch connection cut
        if i == 4:
            sandbox.store.compact()  # positions before now are gone: 410, relist
            sandbox.faults.drop_watch()
        _patch(kubectl, "cm-1", f"m{i}")
        expected.append(_rv(kubectl, "configmap", "cm-1"))
        time.sleep(0.3)
    _wait(lambda: [rv for rv, _, _ in _versions(ledger, "ConfigMap", "cm-1")][1:] == expected,
          f"exactly the six versions {expected}", timeout=40)
    w.stop()
    assert [rv for rv, _, _ in _versions(ledger, "ConfigMap", "cm-1")][1:] == expected


def test_a_killed_watch_catches_up_from_the_ledger_positions(shop: dict[str, Any]) -> None:
    ledger, kubectl = shop["ledger"], shop["kubectl"]
    cmd = [sys.executable, "-m", "auditor.cli", "-q", "--config", str(shop["config_file"]),
           "watch", "--desired", str(shop["apps"])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(lambda: "ConfigMap" in _positions(ledger), "the watch to list ConfigMaps")
        _patch(kubectl, "cm-0", "one")
        first = _rv(kubectl, "configmap", "cm-0")
        _wait(lambda: first in [rv for rv, _, _ in _versions(ledger, "ConfigMap", "cm-0")],
              "the first change")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    before = _positions(ledger)
    # Changes while nobody watches.
    _patch(kubectl, "cm-0", "two")
    second = _rv(kubectl, "configmap", "cm-0")
    kubectl("-n", NS, "delete", "configmap", "cm-1")
    restarted = subprocess.run([*cmd, "--for", "6"], env=env, capture_output=True, text=True,
                               timeout=60)
    assert restarted.returncode == 0, restarted.stderr
    rvs = [rv for rv, _, _ in _versions(ledger, "ConfigMap", "cm-0")]
    assert rvs[1:] == [first, second]
    assert _versions(ledger, "ConfigMap", "cm-1")[-1][1] == 1  # its deletion
    after = _positions(ledger)
    assert int(after["ConfigMap"].split("=")[-1]) > int(before["ConfigMap"].split("=")[-1])


def test_watch_and_a_scheduled_run_together_record_one_drift_per_change(
        shop: dict[str, Any], watching: Callable[[], Watching]) -> None:
    ledger, kubectl = shop["ledger"], shop["kubectl"]
    w = watching()
    _wait(lambda: "ConfigMap" in _positions(ledger), "the watch to list ConfigMaps")
    changed: list[str] = []
    for i in range(3):
        _patch(kubectl, f"cm-{i}", "debug")
        changed.append(_rv(kubectl, "configmap", f"cm-{i}"))
        # The scheduled run holds the ledger while the watch has events to write.
        outcome = run_once(shop["cfg"], desired_path=str(shop["apps"]))
        assert outcome.status == "complete"
    for i in range(3):
        _wait(lambda i=i: _drifts(ledger, f"cm-{i}"), f"cm-{i}'s drift")
    time.sleep(1.0)  # let the watch write whatever it still holds
    w.stop()
    for i in range(3):
        assert [s for _, s in _drifts(ledger, f"cm-{i}")] == ["open"], i
        rvs = [rv for rv, _, _ in _versions(ledger, "ConfigMap", f"cm-{i}")]
        assert rvs.count(changed[i]) == 1, rvs
        # The first run saw the object (no change); the patch is one change, whoever saw it.
        assert len(_changes(ledger, "ConfigMap", f"cm-{i}")) == 1
    with reading(ledger) as conn:
        from auditor.ledger.verify import verify

        assert verify(conn).ok


def test_a_drift_seen_by_the_watch_reaches_slack_at_once(
        shop: dict[str, Any], slack_server: SlackServer) -> None:  # noqa: F811
    ledger, kubectl = shop["ledger"], shop["kubectl"]
    cfg = config_mod.load(str(config_file(
        shop["tmp"], shop["cfg"].cluster.kubeconfig,
        extra=SCOPE + f"slack: {{token-env: SLACK_TOKEN, channel: '#drift', base-url: '{slack_server.api}',"
        " backoff-seconds: 0.05}\n")), env={})
    w = Watching(cfg, shop["apps"], env={"SLACK_TOKEN": "xoxb-test"})
    try:
        _wait(lambda: "ConfigMap" in _positions(ledger), "the watch to list ConfigMaps")
        _patch(kubectl, "cm-1", "debug")
        sent = _wait(lambda: [r for r in slack_server.requests if "cm-1" in r.text()],
                     "the drift's Slack message")
        assert sent[0].method == "chat.postMessage"
        assert "kubectl-patch" in sent[0].text()
    finally:
        w.stop()
    assert [s for _, s in _drifts(ledger, "cm-1")] == ["open"]
