"""Work split over forked processes: :func:`fork_map`, for CPU-bound stages of one command
on a machine with more than one core.

Forking after the inputs are in memory hands them to the workers for free (copy-on-write);
only each part's result travels back, pickled. The parent works on the first part itself,
so two cores take one extra process. Nothing here knows Kubernetes.

Used where it pays (bench/diff_bench.py, 9,999 pairs, two cores): parsing the manifest
files, and comparing the pairs of ``diff --live`` (0.37-0.63 s on one core, 0.31 s on two:
results travel back pickled). Below the callers' thresholds, or with one core, or without
a fork-safe ``fork`` (Linux only), the work runs in this process: the result is the same.
Plain ``os.fork`` and a pipe per child, not a ``multiprocessing`` pool: no pool threads to
start, and a child may fork once more (:data:`MAX_DEPTH`).
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Fewer items than this are not worth a fork (a fork and its results cost ~20 ms).
MIN_ITEMS = 2_000

# How deep forks nest: a worker may split its own part once more. ``diff --live`` forks the
# manifest parsing beside the snapshot decode, and the parsing splits again: the decode is
# the shorter half, and the parse's second half takes the core it leaves (bench diff, one
# run: 0.78 -> 0.5 s for the two sides; 3 processes on 2 cores cost less than an idle one).
MAX_DEPTH = 2
_depth = 0


def workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _can_fork() -> bool:
    # Linux only: macOS has fork, but libraries there are not fork-safe; Windows has none.
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _child(job: Callable[[int], Any], index: int, fd: int) -> None:
    """Run part ``index`` in a forked child, send its result (or exception) and exit
    without running the parent's clean-up (atexit, open files' buffers, locks)."""
    global _depth
    code = 0
    try:
        _depth += 1
        try:
            payload = pickle.dumps((True, job(index)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # any failure travels back to be raised
            try:
                payload = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an exception that does not pickle
                payload = pickle.dumps((False, RuntimeError(f"in a worker: {exc!r}")))
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
    except BaseException:  # nothing may escape into the parent's code
        code = 1
    finally:
        os._exit(code)


def _receive(pid: int, fd: int) -> tuple[bool, Any]:
    with os.fdopen(fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"a worker process ended without a result (status {status})")
    result: tuple[bool, Any] = pickle.loads(data)
    return result


def fork_map(job: Callable[[int], T], parts: int) -> list[T]:
    """``[job(0), …, job(parts - 1)]``, part 0 in this process and the others in forked
    children. ``job`` reads what it needs from memory it shares with this process; what it
    returns must pickle. An exception in a child is raised here.

    With one core, in a process with other threads running (``watch``, a test's in-process
    API server: a child would inherit whatever lock another thread held at that moment),
    past :data:`MAX_DEPTH` nested calls, or without a fork-safe ``fork``, the parts run
    here, one after the other. The result is the same.
    """
    if (parts <= 1 or _depth >= MAX_DEPTH or workers() < 2 or threading.active_count() > 1
            or not _can_fork()):
        return [job(i) for i in range(parts)]
    for stream in (sys.stdout, sys.stderr):  # or the children would write it out again
        stream.flush()
    children: list[tuple[int, int]] = []
    try:
        for index in range(1, parts):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's coverage is not collected
                os.close(read_fd)
                _child(job, index, write_fd)
            os.close(write_fd)
            children.append((pid, read_fd))
        first = job(0)
        received = [_receive(pid, fd) for pid, fd in children]
        children = []
    finally:
        for pid, fd in children:  # part 0 failed: the others are not waited for
            os.close(fd)
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
    out = [first]
    for ok, value in received:
        if not ok:
            raise value
        out.append(value)
    return out


def split(items: Sequence[Any], parts: int) -> list[Sequence[Any]]:
    """``items`` in ``parts`` contiguous slices of nearly equal length."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out
