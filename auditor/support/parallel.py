"""Work split over forked processes: :func:`fork_map`, for CPU-bound stages of one command
on a machine with more than one core.

Forking after the inputs are in memory hands them to the workers for free (copy-on-write);
only each part's result travels back, pickled. The parent works on the first part itself,
so two cores take one extra process. Nothing here knows Kubernetes.

Used where it pays (bench/diff_bench.py, 9,999 pairs, two cores): parsing the manifest
files, and comparing the pairs of ``diff --live`` (0.37-0.63 s on one core, 0.31 s on two:
results travel back pickled). Below the callers' thresholds, or with one core, or without
``fork`` (macOS spawns, Windows has no fork), the work runs in this process: the result is
the same.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Fewer items than this are not worth a fork (a fork and its results cost ~20 ms).
MIN_ITEMS = 2_000

_JOB: Callable[[int], Any] | None = None
# True in a worker: a worker does its part itself (pool workers may not fork again).
_IN_WORKER = False


def workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _run(index: int) -> Any:
    global _IN_WORKER
    _IN_WORKER = True
    assert _JOB is not None
    return _JOB(index)


def fork_map(job: Callable[[int], T], parts: int) -> list[T]:
    """``[job(0), …, job(parts - 1)]``, part 0 in this process and the others in forked
    workers. ``job`` reads what it needs from memory it shares with this process; what it
    returns must pickle. An exception in a worker is raised here.

    With one core, or in a process with other threads running (``watch``, a test's
    in-process API server), the parts run here, one after the other: no fork. Threads, because a child would inherit whatever lock another thread held at that moment.
    """
    global _JOB
    if (parts <= 1 or _IN_WORKER or workers() < 2 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        return [job(i) for i in range(parts)]
    _JOB = job
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(parts - 1) as pool:
            pending = pool.map_async(_run, range(1, parts))
            first = job(0)
            rest: list[T] = pending.get()
    finally:
        _JOB = None
    return [first, *rest]


def split(items: Sequence[Any], parts: int) -> list[Sequence[Any]]:
    """``items`` in ``parts`` contiguous slices of nearly equal length."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out
