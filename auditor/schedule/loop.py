"""The scheduler loop: each job started as a child process at its cron fire times, one run
of a job at a time, deadlines enforced, and a clean stop.

As a CronJob with ``concurrencyPolicy: Forbid``: a job whose previous run is still going at
a fire time is skipped for that fire (and the log says so). Fire times missed while the
process was not running (or could not keep up) are not caught up: after a start or a stall
the next fire is the next one from now. A run past its deadline gets SIGTERM, and SIGKILL
``kill_grace`` seconds later if still running. On stop (SIGTERM, Ctrl-C, ``--for``) the
running children get SIGTERM and ``kill_grace`` seconds to finish, then SIGKILL.

Every start, finish, skip and kill is one plain log line naming the job, its command line,
its exit status and duration; a failed run is logged as an error and the loop goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from .child import Run, describe_exit, reap_orphans
from .jobs import Job

log = logging.getLogger("auditor.schedule")

# How long a run stopped (deadline or shutdown) has after SIGTERM before SIGKILL.
KILL_GRACE_SECONDS = 30.0
# How often running children are checked (their end, their deadline).
POLL_SECONDS = 0.2


@dataclass
class Outcome:
    """What one scheduler process did, for its closing line."""

    started: int = 0
    failed: int = 0     # non-zero exit (past-deadline runs included)
    skipped: int = 0    # fires skipped: the job's previous run still going
    deadline: int = 0   # runs stopped at their deadline


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _State:
    job: Job
    next: datetime
    run: Run | None = None


def run_schedule(jobs: Sequence[Job], *, tz: tzinfo, command: Sequence[str],
                 env: Mapping[str, str], stop: threading.Event, run_now: bool = False,
                 once: bool = False, clock: Callable[[], datetime] = _utcnow,
                 tick: float = 1.0, kill_grace: float = KILL_GRACE_SECONDS) -> Outcome:
    """Run ``jobs`` until ``stop`` is set; each run is ``command`` + the job's args with
    ``env``. ``run_now`` fires every job once at the start; ``once`` does that and returns
    when those runs have ended, firing nothing else. ``clock`` (aware) is what the cron
    expressions are read against; ``tick`` bounds each wait, so a clock change is noticed
    within it. Returns when every child has ended."""
    outcome = Outcome()
    now = clock()
    states = [_State(job, job.cron.next_fire(now, tz)) for job in jobs]
    for state in states:
        log.info("job %s: %r in %s, next at %s: %s", state.job.name,
                 state.job.cron.expression, tz, _stamp(state.next), state.job.describe())
    if run_now or once:
        for state in states:
            _fire(state, command, env, outcome, "once (--once)" if once else
                  "at start (--run-now)")
    while not stop.is_set():
        if once:
            _check(states, outcome, kill_grace)
            if all(s.run is None for s in states):
                break
            stop.wait(POLL_SECONDS)
            continue
        _check(states, outcome, kill_grace)
        if os.getpid() == 1:
            reap_orphans({s.run.pid for s in states if s.run is not None})
        now = clock()
        for state in states:
            if now >= state.next:
                _fire(state, command, env, outcome, f"for {_stamp(state.next)}")
                state.next = state.job.cron.next_fire(now, tz)
        until = min((s.next - now).total_seconds() for s in states)
        running = any(s.run is not None for s in states)
        stop.wait(max(0.0, min(until, POLL_SECONDS if running else tick, tick)))
    _shutdown(states, outcome, kill_grace)
    return outcome


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _fire(state: _State, command: Sequence[str], env: Mapping[str, str], outcome: Outcome,
          why: str) -> None:
    job = state.job
    if state.run is not None:
        outcome.skipped += 1
        log.warning("job %s skipped %s: its run started %.0fs ago (pid %d) is still "
                    "going (concurrency: forbid): %s", job.name, why, state.run.elapsed(),
                    state.run.pid, job.describe())
        return
    try:
        state.run = Run.start(job, command, env)
    except OSError as exc:
        outcome.failed += 1
        log.error("job %s could not start %s: %s: %s", job.name, why, exc,
                  job.describe())
        return
    outcome.started += 1
    log.info("job %s started %s (pid %d): %s", job.name, why, state.run.pid,
             job.describe())


def _check(states: Sequence[_State], outcome: Outcome, kill_grace: float) -> None:
    """Collect finished runs; stop the runs past their deadline."""
    for state in states:
        run = state.run
        if run is None:
            continue
        code = run.poll()
        if code is not None:
            _finished(state, code, outcome)
            continue
        deadline = run.job.deadline_seconds
        if deadline and run.terminated is None and run.elapsed() >= deadline:
            run.past_deadline = True
            outcome.deadline += 1
            log.warning("job %s passed its deadline of %gs (pid %d): SIGTERM sent, "
                        "SIGKILL in %gs: %s", run.job.name, deadline, run.pid, kill_grace,
                        run.job.describe())
            run.terminate()
        elif run.terminated is not None and not run.killed \
                and run.since_terminated() >= kill_grace:
            log.warning("job %s still running %gs after SIGTERM (pid %d): SIGKILL "
                        "sent: %s", run.job.name, kill_grace, run.pid, run.job.describe())
            run.kill()


def _finished(state: _State, code: int, outcome: Outcome) -> None:
    run = state.run
    assert run is not None
    state.run = None
    job = run.job
    how = describe_exit(code)
    if run.past_deadline:
        how += f" (stopped at its deadline of {job.deadline_seconds:g}s)"
    line = f"job {job.name} finished after {run.elapsed():.1f}s: {how}: {job.describe()}"
    if code == 0 and not run.past_deadline:
        log.info(line)
    else:
        outcome.failed += 1
        log.error(line)


def _shutdown(states: Sequence[_State], outcome: Outcome, kill_grace: float) -> None:
    """SIGTERM to every running child; SIGKILL to those still running after the grace."""
    running = [s for s in states if s.run is not None]
    for state in running:
        assert state.run is not None
        log.info("stopping: SIGTERM to job %s (pid %d), up to %gs to finish: %s",
                 state.job.name, state.run.pid, kill_grace, state.job.describe())
        state.run.terminate()
    end = time.monotonic() + kill_grace
    killed = False
    while any(s.run is not None for s in states):
        for state in states:
            if state.run is not None and (code := state.run.poll()) is not None:
                _finished(state, code, outcome)
        if not killed and time.monotonic() >= end:
            killed = True
            for state in states:
                if state.run is not None:
                    log.warning("job %s still running %gs after SIGTERM (pid %d): "
                                "SIGKILL sent: %s", state.job.name, kill_grace, state.run.pid,
                                state.job.describe())
                    state.run.kill()
        time.sleep(0.05)
