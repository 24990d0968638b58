"""One run of a job: a child process in its own process group (so that a stop reaches the
tools it started too), its exit status, and its deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .jobs import Job


@dataclass
class Run:
    job: Job
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    terminated: float | None = None  # when SIGTERM was sent
    killed: bool = False             # SIGKILL sent
    past_deadline: bool = False

    @classmethod
    def start(cls, job: Job, command: Sequence[str], env: Mapping[str, str]) -> Run:
        """Start ``command`` + the job's args; stdout and stderr are this process's (the
        pod's log), stdin is empty."""
        process = subprocess.Popen([*command, *job.args], env=dict(env),
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        return cls(job, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def poll(self) -> int | None:
        return self.process.poll()

    def terminate(self) -> None:
        """SIGTERM to the run's process group (once)."""
        if self.terminated is None:
            self.terminated = time.monotonic()
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the run's process group."""
        self.killed = True
        self._signal(signal.SIGKILL)

    def since_terminated(self) -> float:
        return 0.0 if self.terminated is None else time.monotonic() - self.terminated

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - the group's leader is gone, its pid reused
            self.process.send_signal(signum)


def describe_exit(code: int) -> str:
    """``exit 2``, or ``killed by SIGTERM`` for a negative status."""
    if code >= 0:
        return f"exit {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # pragma: no cover
        return f"killed by signal {-code}"


def reap_orphans(own: set[int]) -> int:
    """As PID 1 of a container (no init process), collect the exit status of orphaned
    grandchildren re-parented to us, never of our own runs (their ``Popen`` does that).
    Returns how many were collected."""
    collected = 0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return collected
        if info is None or info.si_pid in own:
            return collected
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:  # pragma: no cover
            return collected
        collected += 1
