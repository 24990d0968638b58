"""Watch-mode benchmark: how soon a change made between scheduled runs reaches the ledger and
Slack, what the watch costs, what only the watch sees, and how fast the audit webhook takes
kube-apiserver's batches.

``watch`` (the suite, ≲ 10 minutes):

1. **MTTD.** The sandbox holds 10,000 synthetic objects applied by ``argocd-controller``
   and a Git folder declaring them (as :mod:`bench.run_bench` builds it); a first ``run``
   (child process) baselines the ledger and initialises Slack; ``drift-auditor watch`` runs
   as a child process, telling a fake Slack server in this process. Once the watch has
   listed every kind (a ``watch_positions`` row each), 1,000 human changes are made at
   10/s, each to a different object (server-side apply by ``kubectl-edit``, as
   :func:`bench.run_bench._drift`). A poller reads the ``drifts`` table every 20 ms and the
   fake Slack notes the first message naming each object: time-to-ledger and time-to-Slack
   from the moment the apply returned. Then 20 more changes with the real kubectl
   (``kubectl patch``), timed from kubectl's return (0 when the ledger had it before the
   kubectl process exited). The watch's own CPU and peak RSS come from ``/proc/<pid>``.
2. **Transient changes.** With the watch still running, 100 changes each undone 3 s later,
   then a scheduled ``run``: the ledger's history marks each as transient with its actor.
   The same 100-style make-and-undo against a second ledger that only the scheduled runs
   write (no watch) records nothing for those objects.
3. **Audit webhook ingestion.** :class:`~auditor.web.auditwebhook.AuditWebhook` with a
   :class:`~auditor.web.auditwebhook.LedgerSink` and a bearer token in a child process; a
   second child posts 100,000 realistic Metadata-level events (~1.5 KB each, reads and
   writes) as 250 ``EventList`` bodies of 400 over 4 keep-alive connections, as fast as
   answers come (retrying a 503 after its ``Retry-After``, as kube-apiserver does).

``watch-soak`` (long): the same setup, then ``BENCH_SOAK_SECONDS`` (600) of 10 changes/s;
the watch's CPU and RSS sampled every ``BENCH_SOAK_SAMPLE_SECONDS`` (30).

The machine is shared and has two cores: the sandbox, the poller and the fake Slack share
this process, the watch has its own.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml

from bench.childproc import PRELUDE, run_child
from bench.run_bench import _drift
from bench.synth import MIX, objects

SLACK_TOKEN = "xoxb-bench-0000"
WEBHOOK_TOKEN = "bench-webhook-token-0123456789"
OBJECTS = 10_000
RATE = 10.0  # changes per second
CHANGES = 1_000
KUBECTL_SAMPLE = 20
TRANSIENT = 100
UNDO_AFTER_S = 3.0
# "bench-03/app-00012": how a drift's object shows in the Slack messages (and is unique here:
# each namespace holds each name once, see bench.synth.objects).
OBJECT_RE = re.compile(r"bench-\d{2}/app-\d{5}")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- helpers


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def _dist(values: list[float], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        v = _pct(values, p)
        out[f"{prefix}_{name}_s"] = None if v is None else round(v, 3)
    return out


def _proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_mem(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def _kubectl() -> str:
    tools = os.environ.get("DRIFT_AUDITOR_TOOLS") or str(
        Path.home() / ".cache" / "drift-auditor" / "bin")
    found = shutil.which("kubectl", path=os.pathsep.join([tools, os.environ.get("PATH", "")]))
    if not found:
        raise RuntimeError(f"kubectl not found in {tools} or PATH")
    return found


def _wait(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _paced(count: int, rate: float) -> Iterator[int]:
    """0 … count-1, each yielded at its slot of a steady ``rate`` per second."""
    start = time.monotonic()
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n


# ------------------------------------------------------------------------ fake Slack


class FakeSlack:
    """A Slack Web API stand-in: ``chat.postMessage`` and ``chat.update`` answered ok; the
    arrival time of every message naming each object is noted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.named: dict[str, list[float]] = {}
        self.methods: dict[str, int] = {}
        self.grouped = 0
        ts = iter(range(1, 10**9))
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                at = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in self.headers.get("Content-Type", ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                method = self.path.rsplit("/", 1)[-1]
                text = raw if "json" in self.headers.get("Content-Type", "") else json.dumps(body)
                with fake.lock:
                    fake.methods[method] = fake.methods.get(method, 0) + 1
                    if " new drifts" in str(body.get("text", "")):
                        fake.grouped += 1
                    if method == "chat.postMessage":
                        for key in set(OBJECT_RE.findall(text)):
                            fake.named.setdefault(key, []).append(at)
                    n = next(ts)
                payload = json.dumps({"ok": True, "channel": "CDRIFT",
                                      "ts": body.get("ts") or f"1700000000.{n:06d}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.api = f"http://127.0.0.1:{self._httpd.server_address[1]}/api/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def first_after(self, key: str, t: float) -> float | None:
        with self.lock:
            return next((a for a in self.named.get(key, ()) if a >= t), None)

    def messages(self) -> int:
        with self.lock:
            return self.methods.get("chat.postMessage", 0)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -------------------------------------------------------------------- ledger poller


class DriftPoller:
    """Reads new ``drifts`` rows every ``interval`` seconds (its own read-only connection);
    notes when each object's drifts first appeared."""

    def __init__(self, ledger: Path, interval: float = 0.02) -> None:
        self.ledger = ledger
        self.interval = interval
        self.seen: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._last = 0
        self.polls = 0
        self._conn = _ro(ledger)
        self._last = int(self._conn.execute("SELECT coalesce(max(id), 0) FROM drifts")
                         .fetchone()[0])
        self._thread = threading.Thread(target=self._run, name="drift-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rows = self._conn.execute(
                    "SELECT d.id, o.namespace, o.name FROM drifts d "
                    "JOIN objects o ON o.id = d.object_id WHERE d.id > ? ORDER BY d.id",
                    (self._last,)).fetchall()
            except sqlite3.OperationalError:
                continue  # busy for a moment: next poll
            at = time.monotonic()
            self.polls += 1
            with self.lock:
                for did, ns, name in rows:
                    self.seen.setdefault(f"{ns}/{name}", []).append(at)
                    self._last = max(self._last, int(did))

    def first_after(self, key: str, t: float) -> float | None:
        with self.lock:
            return next((a for a in self.seen.get(key, ()) if a >= t), None)

    def positions(self) -> set[str]:
        try:
            return {str(r[0]) for r in self._conn.execute(
                "SELECT group_kind FROM watch_positions")}
        except sqlite3.OperationalError:
            return set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


# ------------------------------------------------------------------------- the setup

RUN_CHILD = r"""
import json, os, sys, time
t0 = time.process_time(); w0 = time.perf_counter()
from auditor import config
from auditor.pipeline import run_once
cfg = config.load(sys.argv[1], env={})
out = run_once(cfg, desired_path=sys.argv[2])
alerted = None
if cfg.slack.token_env:
    from auditor.outputs import alerts
    alerted = alerts.after_run(cfg, cfg.ledger.path, out.run_id, env=os.environ).line()
print(json.dumps({"cpu_s": time.process_time() - t0, "wall_s": time.perf_counter() - w0,
                  "peak_rss_mib": peak_mib(), "status": out.status, "run_id": out.run_id,
                  "counts": out.audit.counts, "alerts": alerted}))
"""


def _scheduled_run(cfg: Path, apps: Path) -> dict[str, Any]:
    return run_child(RUN_CHILD, str(cfg), str(apps))


class Setup:
    """The sandbox with its objects, the Git folder and a baselined ledger (see module)."""

    def __init__(self, sb: Any, tmp: Path, count: int = OBJECTS) -> None:
        self.sb = sb
        self.tmp = tmp
        self.desired = list(objects(count))
        self.apps = tmp / "apps"
        self.apps.mkdir()
        for i in range(0, count, 20):
            (self.apps / f"app-{i // 20:04d}.yaml").write_text(
                yaml.safe_dump_all(self.desired[i:i + 20], sort_keys=False))
        t = time.perf_counter()
        for ns in sorted({o["metadata"]["namespace"] for o in self.desired}):
            sb.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                     field_manager="argocd-controller")
        for obj in self.desired:
            sb.apply(obj, field_manager="argocd-controller")
        self.setup_s = time.perf_counter() - t
        self.kubeconfig = sb.write_kubeconfig(tmp / "kubeconfig")

    def config(self, name: str, slack_api: str | None) -> Path:
        cfg = self.tmp / f"{name}.yaml"
        text = (f"cluster: {{kubeconfig: {self.kubeconfig}}}\n"
                f"ledger: {{path: {self.tmp / name}.db}}\n"
                f"policies: {{directory: {self.tmp}/none}}\n")
        if slack_api:
            text += (f"slack: {{token-env: SLACK_TOKEN, channel: '#drift', "
                     f"base-url: '{slack_api}', backoff-seconds: 0.05}}\n")
        cfg.write_text(text)
        return cfg

    def watched_kinds(self, cfg: Path) -> set[str]:
        """The group_kinds the watch will list and watch (one position row each)."""
        from auditor import config
        from auditor.live.client import Cluster, in_scope

        c = config.load(str(cfg), env={})
        with Cluster(c.cluster) as cluster:
            return {r.group_kind for r in cluster.discover()
                    if in_scope(r, c.scope) and (not r.verbs or "watch" in r.verbs)}

    def change(self, obj: dict[str, Any], tag: str) -> dict[str, Any]:
        result: dict[str, Any] = self.sb.apply(_drift(obj, tag), field_manager="kubectl-edit",
                                               force=True)
        return result

    def undo(self, obj: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.sb.apply(obj, field_manager="kubectl-edit", force=True)
        return result


class WatchChild:
    """``drift-auditor watch`` in a child process, its CPU and memory read from /proc."""

    def __init__(self, cfg: Path, apps: Path, tmp: Path) -> None:
        self.out = tmp / "watch.out"
        self.err = tmp / "watch.err"
        env = {**os.environ, "PYTHONPATH": ".", "SLACK_TOKEN": SLACK_TOKEN,
               "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "auditor.cli", "-q", "--config", str(cfg), "watch",
                 "--desired", str(apps)], env=env, stdout=out, stderr=err)
        self.pid = self.proc.pid

    def cpu(self) -> float:
        return _proc_cpu(self.pid)

    def mem(self) -> dict[str, float]:
        return _proc_mem(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return (self.err.read_text()[-2000:] if self.err.exists() else "")

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        cpu, mem = self.cpu(), self.mem()
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return {"exit_code": code, "cpu_s": cpu, "rss_mib": mem.get("VmRSS"),
                "peak_rss_mib": mem.get("VmHWM"), "stop_s": time.monotonic() - t,
                "said": self.out.read_text().strip()[-300:]}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def _watching(setup: Setup) -> Iterator[tuple[Path, FakeSlack, WatchChild, DriftPoller,
                                              dict[str, Any]]]:
    """Baseline run, fake Slack, watch child, poller; yields once the watch listed every
    kind (with the figures of the baseline and the catch-up)."""
    slack = FakeSlack()
    watch: WatchChild | None = None
    poller: DriftPoller | None = None
    try:
        cfg = setup.config("watched", slack.api)
        os.environ.setdefault("SLACK_TOKEN", SLACK_TOKEN)
        baseline = _scheduled_run(cfg, setup.apps)
        kinds = setup.watched_kinds(cfg)
        poller = DriftPoller(setup.tmp / "watched.db")
        cpu0 = 0.0
        watch = WatchChild(cfg, setup.apps, setup.tmp)
        p = poller
        w = watch
        if not _wait(lambda: kinds <= p.positions() or not w.alive(), 300, 0.02):
            raise RuntimeError(f"the watch did not list every kind in 300 s: "
                               f"{sorted(kinds - p.positions())}; {w.tail()}")
        if not watch.alive():
            raise RuntimeError(f"the watch ended: {watch.tail()}")
        catch_up = time.monotonic() - watch.started
        cpu0 = watch.cpu()
        figures = {
            "baseline_run_wall_s": round(baseline["wall_s"], 2),
            "baseline_run_counts": baseline["counts"],
            "watched_kinds": len(kinds),
            "watch_initial_list_s": round(catch_up, 2),
            "watch_initial_list_cpu_s": round(cpu0, 2),
            "watch_rss_after_list_mib": round(watch.mem()["VmRSS"], 1),
        }
        yield cfg, slack, watch, poller, figures
    finally:
        if watch is not None:
            watch.kill()
        if poller is not None:
            poller.close()
        slack.close()


# --------------------------------------------------------------------------- 1. MTTD


def _targets(desired: list[dict[str, Any]], offset: int, count: int,
             start: int = 0) -> list[dict[str, Any]]:
    """``count`` different objects (up to all of them), one per group of 10 from group
    ``start`` on, the kind rotating through the mix; after the last group the next round
    takes each group's next kind. The first round of two ``offset`` values never meet."""
    groups = len(desired) // len(MIX)
    return [desired[(g % groups) * len(MIX) + (g + offset + g // groups) % len(MIX)]
            for g in range(start, start + count)]


def _detect(changed: list[tuple[str, float, float]], poller: DriftPoller, slack: FakeSlack,
            ledger_timeout: float = 60.0, slack_timeout: float = 60.0
            ) -> tuple[list[float], list[float], int, int, int]:
    """Time-to-ledger and time-to-Slack of each ``(key, started, applied)``: from
    ``applied`` (the change call returned) to the first sighting after ``started`` (it
    began), 0 when seen before the call returned (a kubectl process still exiting while
    its change was already recorded); the counts never seen in each, and the count seen in
    the ledger before the call returned."""
    _wait(lambda: all(poller.first_after(k, s) is not None for k, s, _ in changed),
          ledger_timeout, 0.1)
    _wait(lambda: all(slack.first_after(k, s) is not None for k, s, _ in changed),
          slack_timeout, 0.1)
    ledger, slacked = [], []
    early = 0
    for key, started, applied in changed:
        seen = poller.first_after(key, started)
        if seen is not None:
            ledger.append(max(0.0, seen - applied))
            early += seen < applied
        told = slack.first_after(key, started)
        if told is not None:
            slacked.append(max(0.0, told - applied))
    return (ledger, slacked, len(changed) - len(ledger), len(changed) - len(slacked), early)


def _mttd(setup: Setup, slack: FakeSlack, watch: WatchChild,
          poller: DriftPoller) -> dict[str, Any]:
    targets = _targets(setup.desired, 0, CHANGES)
    messages0 = slack.messages()
    cpu0, t0 = watch.cpu(), time.monotonic()
    changed: list[tuple[str, float, float]] = []
    apply_s: list[float] = []
    for n in _paced(len(targets), RATE):
        a = time.monotonic()
        setup.change(targets[n], f"w{n}")
        done = time.monotonic()
        apply_s.append(done - a)
        changed.append((_key(targets[n]), a, done))
    load_s = time.monotonic() - t0
    ledger, slacked, missed_ledger, missed_slack, _ = _detect(changed, poller, slack)
    cpu1, t1 = watch.cpu(), time.monotonic()
    mem = watch.mem()
    out: dict[str, Any] = {
        "changes": len(changed),
        "change_rate_per_s": round(len(changed) / load_s, 2),
        "sandbox_apply_p50_s": round(_pct(apply_s, 50) or 0, 4),
        **_dist(ledger, "ledger"),
        "ledger_never_detected": missed_ledger,
        **_dist(slacked, "slack"),
        "slack_never_named": missed_slack,
        "slack_messages": slack.messages() - messages0,
        "slack_grouped_messages": slack.grouped,
        "goal_ledger_p99_lt_2s": (_pct(ledger, 99) or 99) < 2 and not missed_ledger,
        "goal_slack_p99_lt_5s": (_pct(slacked, 99) or 99) < 5 and not missed_slack,
        "watch_cpu_s_during_changes": round(cpu1 - cpu0, 2),
        "watch_cpu_ms_per_change": round((cpu1 - cpu0) / len(changed) * 1000, 2),
        "watch_cpu_pct_one_core": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
        "watch_rss_mib": round(mem["VmRSS"], 1),
        "watch_peak_rss_mib": round(mem["VmHWM"], 1),
    }
    out.update(_kubectl_sample(setup, slack, poller))
    return out


def _kubectl_sample(setup: Setup, slack: FakeSlack, poller: DriftPoller) -> dict[str, Any]:
    """Changes with the real kubectl: ConfigMaps none of the other phases touch."""
    kubectl = _kubectl()
    skip = {_key(o) for o in _targets(setup.desired, 0, CHANGES)} | \
        {_key(o) for o in _targets(setup.desired, 5, TRANSIENT)}
    cms = [o for o in setup.desired if o["kind"] == "ConfigMap" and _key(o) not in skip]
    cms = cms[:KUBECTL_SAMPLE]
    changed: list[tuple[str, float, float]] = []
    took: list[float] = []
    for n, obj in enumerate(cms):
        meta = obj["metadata"]
        a = time.monotonic()
        proc = subprocess.run(
            [kubectl, "--kubeconfig", str(setup.kubeconfig), "-n", meta["namespace"], "patch",
             "configmap", meta["name"], "-p", json.dumps({"data": {"mode": f"kubectl-{n}"}})],
            capture_output=True, text=True, timeout=60)
        done = time.monotonic()
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl patch failed: {proc.stderr[-500:]}")
        took.append(done - a)
        changed.append((_key(obj), a, done))
        time.sleep(max(0.0, 0.5 - (done - a)))
    ledger, slacked, missed_ledger, missed_slack, early = _detect(changed, poller, slack)
    return {
        "kubectl_changes": len(changed),
        "kubectl_patch_wall_p50_s": round(_pct(took, 50) or 0, 3),
        **_dist(ledger, "kubectl_ledger"),
        "kubectl_ledger_never_detected": missed_ledger,
        "kubectl_in_ledger_before_kubectl_exited": early,
        **_dist(slacked, "kubectl_slack"),
        "kubectl_slack_never_named": missed_slack,
    }


# ---------------------------------------------------------------------- 2. transient


def _make_and_undo(setup: Setup, targets: list[dict[str, Any]], tag: str
                   ) -> dict[str, str]:
    """Each target changed, then put back ``UNDO_AFTER_S`` later, 10 operations a second in
    all; the resourceVersion each ends at."""
    plan = sorted([(n / (RATE / 2), 0, n) for n in range(len(targets))]
                  + [(n / (RATE / 2) + UNDO_AFTER_S, 1, n) for n in range(len(targets))])
    start = time.monotonic()
    final: dict[str, str] = {}
    for due, undo, n in plan:
        delay = start + due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        obj = targets[n]
        result = setup.undo(obj) if undo else setup.change(obj, f"{tag}{n}")
        final[_key(obj)] = str(result["metadata"]["resourceVersion"])
    return final


def _ledger_has(ledger: Path, final: dict[str, str]) -> bool:
    conn = _ro(ledger)
    try:
        held = {f"{ns}/{name}": str(rv) for ns, name, rv in conn.execute(
            "SELECT o.namespace, o.name, l.resource_version FROM latest l "
            "JOIN objects o ON o.id = l.object_id WHERE o.namespace LIKE 'bench-%'")}
    finally:
        conn.close()
    return all(held.get(k) == rv for k, rv in final.items())


def _transient(setup: Setup, cfg: Path) -> dict[str, Any]:
    from auditor.ledger import HistoryFilter, query, reading

    ledger = setup.tmp / "watched.db"
    targets = _targets(setup.desired, 5, TRANSIENT)
    keys = {_key(o) for o in targets}
    t = time.monotonic()
    final = _make_and_undo(setup, targets, "t")
    made_s = time.monotonic() - t
    caught = _wait(lambda: _ledger_has(ledger, final), 60, 0.2)
    run = _scheduled_run(cfg, setup.apps)
    with reading(ledger) as conn:
        rows = [r for r in query(conn, HistoryFilter(types=("change",)))
                if f"{r['namespace']}/{r['name']}" in keys]
    flagged = [r for r in rows if r.get("transient")]
    actors: dict[str, int] = {}
    for r in flagged:
        actors[r["actor"]] = actors.get(r["actor"], 0) + 1
    by = {r.get("detected_by") for r in flagged}
    return {
        "transient_made_and_undone": len(targets),
        "transient_phase_s": round(made_s, 1),
        "transient_watch_caught_final_versions": caught,
        "transient_after_run_status": run["status"],
        "transient_after_run_wall_s": round(run["wall_s"], 2),
        "transient_changes_in_ledger": len(flagged),
        "transient_actors": actors,
        "transient_detected_by": sorted(str(b) for b in by),
        "transient_objects_with_changes": len({f"{r['namespace']}/{r['name']}" for r in rows}),
    }


def _cronjob_only(setup: Setup) -> dict[str, Any]:
    """A ledger only the scheduled runs write: what do they see of make-and-undo?"""
    cfg = setup.config("cronjob", None)
    first = _scheduled_run(cfg, setup.apps)
    targets = _targets(setup.desired, 3, TRANSIENT, start=200)
    keys = {_key(o) for o in targets}
    _make_and_undo(setup, targets, "c")
    second = _scheduled_run(cfg, setup.apps)
    conn = _ro(setup.tmp / "cronjob.db")
    try:
        found = [f"{ns}/{name}" for ns, name in conn.execute(
            "SELECT o.namespace, o.name FROM changes c JOIN objects o ON o.id = c.object_id "
            "WHERE c.run_id = ?", (second["run_id"],))]
    finally:
        conn.close()
    return {
        "cronjob_only_first_run_wall_s": round(first["wall_s"], 2),
        "cronjob_only_made_and_undone": len(targets),
        "cronjob_only_changes_recorded": sum(1 for k in found if k in keys),
        "cronjob_only_second_run_changes_total": len(found),
    }


# ------------------------------------------------------------------ 3. audit webhook

RECEIVER = r"""
import json, sys
from auditor.web.access import BearerToken
from auditor.web.auditwebhook import AuditWebhook, LedgerSink
hook = AuditWebhook(LedgerSink(sys.argv[1], lock_wait=60), host="127.0.0.1", port=0,
                    token=BearerToken(sys.argv[2]))
hook.start()
print(json.dumps({"port": hook.port}), flush=True)
for line in sys.stdin:
    if line.strip() == "stop":
        break
hook.stop()
s = hook.stats
print(json.dumps({"accepted_requests": s.accepted_requests,
                  "accepted_events": s.accepted_events, "committed_events": s.committed_events,
                  "new_events": s.new_events, "commit_batches": s.commit_batches,
                  "failed_batches": s.failed_batches,
                  "rejected": {str(k): v for k, v in s.rejected.items()}}), flush=True)
"""

SENDER = r"""
import datetime as dt, http.client, json, sys, threading, time, uuid
import orjson
port, token, total, per, threads, first = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                           int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
WRITES = ("create", "update", "patch", "delete", "deletecollection")
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

def sa(ns, name, n):
    return {"username": f"system:serviceaccount:{ns}:{name}",
            "uid": str(uuid.UUID(int=n * 7919 + 17)),
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                       "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={uuid.UUID(int=n)}"],
                      "authentication.kubernetes.io/node-name": [f"node-{n % 12:02d}"],
                      "authentication.kubernetes.io/node-uid": [str(uuid.UUID(int=n % 12 + 5))],
                      "authentication.kubernetes.io/pod-name": [f"{name}-7d9f8c6b5-{n % 97:05d}"],
                      "authentication.kubernetes.io/pod-uid": [str(uuid.UUID(int=n % 97 + 9))]}}

def node(n):
    return {"username": f"system:node:node-{n % 12:02d}", "groups": ["system:nodes",
            "system:authenticated"], "extra": {"authentication.kubernetes.io/credential-id":
            [f"X509SHA256={'%064x' % (n % 12 * 1299709)}"]}}

def human(n):
    return {"username": f"user{n % 5}@example.com", "groups": ["oidc:sre", "oidc:platform",
            "system:authenticated"], "extra": {"oidc.example.com/issuer":
            ["https://login.example.com/realms/corp"], "authentication.kubernetes.io/credential-id":
            [f"JTI={uuid.UUID(int=n % 5 + 100)}"]}}

KCM = "kube-controller-manager/v1.35.0 (linux/amd64) kubernetes/8a2f7ac/system:serviceaccount:kube-system:"
REASON = ('RBAC: allowed by ClusterRoleBinding "{b}" of ClusterRole "{r}" to {who}')

def event(n):
    at = T0 + dt.timedelta(microseconds=n * 1500)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    recv = (at - dt.timedelta(microseconds=2300)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ns = f"team-{n % 40:02d}"
    app = f"svc-{n % 400:03d}"
    k = n % 20
    code = 200
    if k < 4:    # node lease renewals
        verb, group, res, sub, name, ns, user, agent = ("update", "coordination.k8s.io",
            "leases", "", f"node-{n % 12:02d}", "kube-node-lease", node(n),
            "kubelet/v1.35.0 (linux/amd64) kubernetes/8a2f7ac")
        rb = ("system:node", "system:node", f'Node "node-{n % 12:02d}"')
    elif k < 7:  # pod status from the kubelet
        verb, group, res, sub, name, user, agent = ("patch", "", "pods", "status",
            f"{app}-7d9f8c6b5-{n % 997:05d}", node(n),
            "kubelet/v1.35.0 (linux/amd64) kubernetes/8a2f7ac")
        rb = ("system:node", "system:node", f'Node "node-{n % 12:02d}"')
    elif k < 8:  # events created by controllers
        verb, group, res, sub, name, user, agent = ("create", "", "events", "",
            f"{app}.18a{n:013x}", sa("kube-system", "replicaset-controller", n),
            KCM + "replicaset-controller")
        code = 201
        rb = ("system:controller:replicaset-controller", "system:controller:replicaset-controller",
              'ServiceAccount "replicaset-controller/kube-system"')
    elif k < 9:  # deployment status
        verb, group, res, sub, name, user, agent = ("update", "apps", "deployments", "status",
            app, sa("kube-system", "deployment-controller", n), KCM + "deployment-controller")
        rb = ("system:controller:deployment-controller", "system:controller:deployment-controller",
              'ServiceAccount "deployment-controller/kube-system"')
    elif k < 10:  # a person or a pipeline
        verb, group, res, sub, name, user, agent = ("patch", "apps", "deployments", "", app,
            human(n), "kubectl/v1.35.0 (linux/amd64) kubernetes/8a2f7ac")
        rb = ("sre-edit", "edit", f'User "user{n % 5}@example.com"')
    elif k < 15:  # operators reading
        verb, group, res, sub, name, user, agent = ("get", "", "configmaps", "", f"{app}-config",
            sa(ns, app, n), f"{app}-operator/v1.8.2 (linux/amd64) sigs.k8s.io/controller-runtime")
        rb = (f"{app}-reader", f"{app}-reader", f'ServiceAccount "{app}/{ns}"')
    elif k < 18:  # informers listing
        verb, group, res, sub, name, user, agent = ("list", "", "pods", "", "",
            sa("monitoring", "kube-state-metrics", n), "kube-state-metrics/v2.15.0 (linux/amd64)")
        rb = ("kube-state-metrics", "kube-state-metrics",
              'ServiceAccount "kube-state-metrics/monitoring"')
    else:         # watches ending
        verb, group, res, sub, name, user, agent = ("watch", "apps", "replicasets", "", "",
            sa("argocd", "argocd-application-controller", n),
            "argocd-application-controller/v3.1.0 (linux/amd64)")
        rb = ("argocd-application-controller", "argocd-application-controller",
              'ServiceAccount "argocd-application-controller/argocd"')
    base = f"/apis/{group}/v1" if group else "/api/v1"
    path = f"{base}/namespaces/{ns}/{res}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
    if verb in ("list", "watch"):
        path += "?resourceVersion=0&limit=500" if verb == "list" else \
            "?allowWatchBookmarks=true&resourceVersion=48211&timeout=8m37s&watch=true"
    elif verb in ("patch", "update", "create"):
        path += "?fieldManager=" + ("kubectl-patch" if agent.startswith("kubectl") else
                                    agent.split("/")[0])
    ref = {"resource": res, "namespace": ns, "apiVersion": "v1"}
    if group:
        ref["apiGroup"] = group
    if name:
        ref["name"] = name
    if sub:
        ref["subresource"] = sub
    if verb in WRITES and verb != "create":
        ref["uid"] = str(uuid.UUID(int=hash((ns, res, name)) & ((1 << 128) - 1)))
        ref["resourceVersion"] = str(480000 + n)
    ev = {"level": "Metadata", "auditID": str(uuid.UUID(int=(first + n) * 104729 + 1, version=4)),
          "stage": "ResponseComplete", "requestURI": path, "verb": verb, "user": user,
          "sourceIPs": [f"10.{n % 4}.{n % 250}.{n % 200 + 2}", "192.168.49.1"], "userAgent": agent,
          "objectRef": ref, "responseStatus": {"metadata": {}, "code": code},
          "requestReceivedTimestamp": recv, "stageTimestamp": stamp,
          "annotations": {"authorization.k8s.io/decision": "allow",
                          "authorization.k8s.io/reason": REASON.format(b=rb[0], r=rb[1], who=rb[2])}}
    if verb in WRITES:  # an admission webhook in the path, as most clusters have
        ev["annotations"]["mutation.webhook.admission.k8s.io/round_0_index_0"] = (
            '{"configuration":"kyverno-resource-mutating-webhook-cfg",'
            '"webhook":"mutate.kyverno.svc-fail","mutated":false}')
        ev["annotations"]["pod-security.kubernetes.io/enforce-policy"] = "baseline:latest"
    else:
        ev["requestURI"] = path.replace("?", f"?labelSelector=app.kubernetes.io%2Fpart-of%3D{app}&", 1) \
            if "?" in path else path
    if n % 50 == 0:
        ev["annotations"]["apiserver.latency.k8s.io/etcd"] = "1.271ms"
        ev["annotations"]["apiserver.latency.k8s.io/total"] = "3.915ms"
    return ev, verb in WRITES

bodies, writes, size = [], 0, 0
for b in range(total // per):
    items = []
    for i in range(per):
        ev, w = event(first + b * per + i)
        items.append(ev)
        writes += w
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                         "metadata": {}, "items": items})
    size += len(body)
    bodies.append(body)
statuses, retries, lock = {}, [0], threading.Lock()
todo = iter(range(len(bodies)))
headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
           "User-Agent": "kube-apiserver-admission"}
def send():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with lock:
            i = next(todo, None)
        if i is None:
            break
        while True:
            try:
                conn.request("POST", "/audit", body=bodies[i], headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    retries[0] += 1
                continue
            with lock:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status == 200:
                break
            with lock:
                retries[0] += 1
            time.sleep(float(resp.getheader("Retry-After") or 1))
    conn.close()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()
w0 = time.perf_counter()
pool = [threading.Thread(target=send) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
print(json.dumps({"seconds": time.perf_counter() - w0, "events": len(bodies) * per,
                  "writes": writes, "bytes": size, "statuses": statuses,
                  "retries": retries[0]}), flush=True)
"""


def _child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PRELUDE + script, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": "."})


def _line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"child {proc.args!r} ended: {proc.wait()}")
    return dict(json.loads(line))


def _tell(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(text + "\n")
    proc.stdin.flush()


def _sender(port: int, total: int, first: int) -> subprocess.Popen[str]:
    """The sender child, its bodies built; it sends on "go"."""
    sender = _child(SENDER, str(port), WEBHOOK_TOKEN, str(total), "400", "4", str(first))
    _line(sender)
    return sender


def bench_webhook(tmp: Path, total: int = 100_000) -> dict[str, Any]:
    ledger = tmp / "audit.db"
    receiver = _child(RECEIVER, str(ledger), WEBHOOK_TOKEN)
    try:
        port = int(_line(receiver)["port"])
        # One batch first: the ledger is created and migrated outside the timing.
        warm = _sender(port, 400, 10_000_000)
        _tell(warm, "go")
        warm_out = _line(warm)
        warm.wait()
        sender = _sender(port, total, 0)
        before = _proc_mem(receiver.pid)
        cpu0 = _proc_cpu(receiver.pid)
        peak = [before["VmRSS"]]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                try:
                    peak[0] = max(peak[0], _proc_mem(receiver.pid)["VmRSS"])
                except OSError:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _tell(sender, "go")
        sent = _line(sender)
        sender.wait()
        stop.set()
        sampler.join()
        cpu1 = _proc_cpu(receiver.pid)
        after = _proc_mem(receiver.pid)
        _tell(receiver, "stop")
        stats = _line(receiver)
        receiver.wait(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    conn = _ro(ledger)
    try:
        rows = int(conn.execute("SELECT count(*) FROM audit_events").fetchone()[0])
    finally:
        conn.close()
    writes = sent["writes"] + warm_out["writes"]
    return {
        "webhook_events_sent": sent["events"],
        "webhook_event_bytes_avg": round(sent["bytes"] / sent["events"]),
        "webhook_write_events_sent": sent["writes"],
        "webhook_seconds": round(sent["seconds"], 2),
        "webhook_events_per_s": round(sent["events"] / sent["seconds"]),
        "webhook_write_events_per_s": round(sent["writes"] / sent["seconds"]),
        "webhook_goal_5000_per_s_met": sent["events"] / sent["seconds"] >= 5000,
        "webhook_statuses": sent["statuses"],
        "webhook_retries": sent["retries"],
        "webhook_rows_in_ledger": rows,
        "webhook_writes_sent_incl_warmup": writes,
        "webhook_dropped": writes - rows,
        "webhook_commit_batches": stats["commit_batches"],
        "webhook_failed_batches": stats["failed_batches"],
        "webhook_receiver_cpu_s": round(cpu1 - cpu0, 2),
        "webhook_receiver_rss_before_mib": round(before["VmRSS"], 1),
        "webhook_receiver_rss_peak_mib": round(max(peak[0], after["VmHWM"]), 1),
        "webhook_receiver_rss_growth_mib": round(max(peak[0], after["VmHWM"])
                                                 - before["VmRSS"], 1),
        "webhook_ledger_mib": round(sum(p.stat().st_size for p in tmp.glob("audit.db*"))
                                    / 2**20, 1),
    }


# ------------------------------------------------------------------------- the suites


def bench_watch(tmp_name: str) -> dict[str, Any]:
    from auditor.sandbox import Sandbox

    tmp = Path(tmp_name)
    out: dict[str, Any] = {"objects": OBJECTS}
    with Sandbox() as sb:
        setup = Setup(sb, tmp)
        out["sandbox_setup_s"] = round(setup.setup_s, 2)
        with _watching(setup) as (cfg, slack, watch, poller, figures):
            out.update(figures)
            out.update(_mttd(setup, slack, watch, poller))
            out.update(_transient(setup, cfg))
            stopped = watch.stop()
            out["watch_exit_code"] = stopped["exit_code"]
            out["watch_total_cpu_s"] = round(stopped["cpu_s"], 2)
            out["watch_peak_rss_mib_at_end"] = round(stopped["peak_rss_mib"], 1)
            out["watch_stop_s"] = round(stopped["stop_s"], 2)
            out["watch_said"] = stopped["said"]
        out.update(_cronjob_only(setup))
    hook_dir = tmp / "webhook"
    hook_dir.mkdir()
    out.update(bench_webhook(hook_dir))
    return out


def bench_watch_soak(tmp_name: str, seconds: float | None = None,
                     sample_every: float | None = None) -> dict[str, Any]:
    from auditor.sandbox import Sandbox

    seconds = seconds or float(os.environ.get("BENCH_SOAK_SECONDS", "600"))
    sample_every = sample_every or float(os.environ.get("BENCH_SOAK_SAMPLE_SECONDS", "30"))
    tmp = Path(tmp_name)
    out: dict[str, Any] = {"objects": OBJECTS, "soak_seconds": seconds,
                           "sample_every_s": sample_every}
    with Sandbox() as sb:
        setup = Setup(sb, tmp)
        with _watching(setup) as (_cfg, slack, watch, poller, figures):
            out.update(figures)
            count = int(seconds * RATE)
            groups = len(setup.desired) // len(MIX)
            order = _targets(setup.desired, 0, count)
            samples: list[tuple[float, float, float]] = []  # (t, cpu, rss)
            t0 = time.monotonic()
            samples.append((0.0, watch.cpu(), watch.mem()["VmRSS"]))
            next_sample = t0 + sample_every
            changed: list[tuple[str, float, float]] = []
            for n in _paced(count, RATE):
                a = time.monotonic()
                setup.change(order[n], f"s{n // groups}-{n}")
                changed.append((_key(order[n]), a, time.monotonic()))
                if time.monotonic() >= next_sample:
                    samples.append((time.monotonic() - t0, watch.cpu(), watch.mem()["VmRSS"]))
                    next_sample += sample_every
            ledger, slacked, missed_ledger, missed_slack, _ = _detect(changed, poller, slack)
            wall = time.monotonic() - t0
            samples.append((wall, watch.cpu(), watch.mem()["VmRSS"]))
            stopped = watch.stop()
    ts = [s[0] for s in samples]
    rss = [s[2] for s in samples]
    mean_t, mean_r = sum(ts) / len(ts), sum(rss) / len(rss)
    var = sum((t - mean_t) ** 2 for t in ts)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in zip(ts, rss, strict=True)) / var \
        if var else 0.0
    intervals = [round((b[1] - a[1]) / (b[0] - a[0]) * 100, 1)
                 for a, b in itertools.pairwise(samples) if b[0] > a[0]]
    out.update({
        "changes": len(changed),
        **_dist(ledger, "ledger"),
        "ledger_never_detected": missed_ledger,
        **_dist(slacked, "slack"),
        "slack_never_named": missed_slack,
        "rss_start_mib": round(rss[0], 1),
        "rss_end_mib": round(rss[-1], 1),
        "rss_slope_mib_per_hour": round(slope * 3600, 1),
        "rss_samples_mib": [round(r, 1) for r in rss],
        "cpu_pct_one_core": round((samples[-1][1] - samples[0][1]) / wall * 100, 1),
        "cpu_pct_per_interval": intervals,
        "watch_peak_rss_mib": round(stopped["peak_rss_mib"], 1),
        "watch_exit_code": stopped["exit_code"],
    })
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        which = sys.argv[1] if len(sys.argv) > 1 else "watch"
        fn = bench_watch_soak if which == "watch-soak" else bench_watch
        print(json.dumps(fn(d), indent=2))
