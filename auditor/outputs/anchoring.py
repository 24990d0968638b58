"""Anchoring: the ledger's newest checkpoint copied to an evidence repository outside the
cluster (``ledger.anchor-repo``), so that integrity does not end at the ledger's volume.

After each scheduled run (:func:`anchor`, called by the pipeline once the run is closed) and
at most every ``ledger.anchor-interval-minutes`` from ``watch`` (:class:`Anchorer`, on a
thread of its own), the newest checkpoint becomes one line of
``checkpoints/<cluster>.jsonl`` in that repository (:mod:`auditor.ledger.anchor` owns the
record), committed and pushed (:func:`auditor.desired.gitrepo.commit_evidence`). The commit
is a plain Git commit; what proves the checkpoint is its Ed25519 signature inside the line.

A failure never fails the run: it is logged, returned as a warning for the run's output, and
kept in ``anchor-state.json`` in the cache folder, so that the next run records it among its
problems (in the chain) and anchors its own, newer checkpoint, which covers everything
before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from auditor.config import Config
from auditor.desired import gitrepo
from auditor.engine.records import Problem
from auditor.errors import AuditorError
from auditor.ledger import anchor as anchor_mod
from auditor.ledger import backend, times
from auditor.support import files

log = logging.getLogger(__name__)

STATE_FILE = "anchor-state.json"
# After a failure, watch tries again this soon, however long the interval (the run after it
# would anyway).
RETRY_SECONDS = 300.0

Status = Literal["off", "not-due", "no-checkpoint", "anchored", "already", "failed"]


@dataclass(frozen=True)
class AnchorOutcome:
    """What one anchoring did; ``problem`` is set when it failed."""

    status: Status
    record: anchor_mod.AnchorRecord | None = None
    commit: str = ""
    problem: Problem | None = None


def pending(cfg: Config, state_dir: Path) -> list[Problem]:
    """The last anchoring's failure, as a warning for the run about to close: recorded in
    the chain with that run, while the state file itself is only a cache."""
    if not cfg.ledger.anchor_repo:
        return []
    failed = _load(state_dir).get("failed")
    if not isinstance(failed, Mapping):
        return []
    return [Problem("anchor", f"the last anchoring to {failed.get('repo', '?')} failed at "
                    f"{failed.get('at', '?')} (checkpoint at event {failed.get('seq', '?')}): "
                    f"{failed.get('message', '?')}; this run's checkpoint is anchored once the "
                    "run is closed", "warning")]


def anchor(cfg: Config, state_dir: Path, *, env: Mapping[str, str] | None = None,
           min_interval_seconds: float = 0.0, now: datetime | None = None) -> AnchorOutcome:
    """Anchor the ledger's newest checkpoint now, or when ``min_interval_seconds`` have
    passed since the last anchor (watch). Never raises for the repository: a failure is the
    outcome's ``problem``. ``env``: where credentials' environment variables are read."""
    if not cfg.ledger.anchor_repo:
        return AnchorOutcome("off")
    moment = now or times.now()
    state = _load(state_dir)
    if min_interval_seconds and not _due(state, moment, min_interval_seconds):
        return AnchorOutcome("not-due")
    try:
        # The configured ledger: the file, or this cluster's ledger in the store.
        with backend.reader(backend.configured_ledger(cfg.ledger)) as conn:
            record = anchor_mod.latest(conn, cfg.cluster.name, times.stamp(moment))
    except AuditorError as exc:
        return _failed(cfg, state_dir, moment, None, exc)
    if record is None:
        return AnchorOutcome("no-checkpoint")
    rel = anchor_mod.file_for(record.cluster)

    def edit(tree: Path) -> Sequence[str]:
        target = tree / rel
        text = target.read_text(encoding="utf-8") if target.is_file() else ""
        if anchor_mod.holds(anchor_mod.parse(text, rel, strict=False), record):
            return []
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as fh:
            if text and not text.endswith("\n"):
                fh.write("\n")
            fh.write(record.line())
        return [rel]

    run = f" (run {record.run_id})" if record.run_id is not None else ""
    message = (f"anchor {record.cluster}: checkpoint at event {record.seq}{run} "
               f"{record.head_hash[:12]}\n\nSigned inside the line with the ledger's key "
               f"{record.fingerprint or '(unsigned ledger)'}; checked by "
               "`drift-auditor verify --anchor`.\n")
    try:
        sha = gitrepo.commit_evidence(
            cfg.ledger.anchor_repo, cfg.ledger.anchor_branch, edit, message,
            cache_dir=state_dir / "anchor", credentials=cfg.ledger.anchor_credentials,
            secrets_env=env)
    except AuditorError as exc:
        return _failed(cfg, state_dir, moment, record, exc)
    _save(state_dir, {"anchored_at": times.stamp(moment), "seq": record.seq,
                      "head_hash": record.head_hash})
    if sha:
        log.info("anchored the checkpoint at event %d in %s (commit %s)", record.seq,
                 _shown(cfg), sha[:12])
    return AnchorOutcome("anchored" if sha else "already", record, sha or "")


class Anchorer:
    """``watch``'s anchoring, off the recording path: each recorded batch pokes it, and it
    anchors when ``ledger.anchor-interval-minutes`` have passed since the last anchor (a
    scheduled run's included), on a thread of its own, so that a slow or unreachable
    evidence repository never delays the ledger."""

    def __init__(self, cfg: Config, state_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self._cfg = cfg
        self._state_dir = state_dir
        self._env = env
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watch-anchor", daemon=True)

    def start(self) -> None:
        if self._cfg.ledger.anchor_repo:
            self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60.0)

    def _loop(self) -> None:
        interval = self._cfg.ledger.anchor_interval_minutes * 60.0
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                anchor(self._cfg, self._state_dir, env=self._env, min_interval_seconds=interval)
            except OSError as exc:  # the state file: the thread must outlive it
                log.warning("watch: anchoring: %s", exc)


# ---------------------------------------------------------------------------- state


def _shown(cfg: Config) -> str:
    return gitrepo.redact_url(cfg.ledger.anchor_repo)


def _failed(cfg: Config, state_dir: Path, moment: datetime,
            record: anchor_mod.AnchorRecord | None, exc: AuditorError) -> AnchorOutcome:
    seq = record.seq if record is not None else None
    what = f"the checkpoint at event {seq}" if seq is not None else "the newest checkpoint"
    problem = Problem("anchor", f"{what} was not anchored in {_shown(cfg)}: {exc}; tried "
                      "again after the next run", "warning")
    log.warning("%s", problem.message)
    previous = _load(state_dir)
    _save(state_dir, {**{k: v for k, v in previous.items() if k != "failed"},
                      "failed": {"at": times.stamp(moment), "seq": seq, "repo": _shown(cfg),
                                 "message": str(exc)}})
    return AnchorOutcome("failed", record, problem=problem)


def _due(state: Mapping[str, Any], moment: datetime, interval: float) -> bool:
    failed = state.get("failed")
    if isinstance(failed, Mapping):
        last, wait = failed.get("at"), min(interval, RETRY_SECONDS)
    else:
        last, wait = state.get("anchored_at"), interval
    if not isinstance(last, str):
        return True
    try:
        since = moment - times.parse(last, what="anchor state")
    except AuditorError:
        return True
    return since >= timedelta(seconds=wait)


def _load(state_dir: Path) -> dict[str, Any]:
    try:
        data = orjson.loads((state_dir / STATE_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(state_dir: Path, state: Mapping[str, Any]) -> None:
    try:
        files.write_whole(state_dir / STATE_FILE, [orjson.dumps(dict(state))])
    except OSError as exc:
        # Only the retry note and the watch's interval live here: the anchor itself is in Git.
        log.warning("anchor state not saved in %s: %s", state_dir, exc)
