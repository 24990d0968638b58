"""Watch events gathered into batches: each batch becomes one ledger transaction.

A batch closes ``seconds`` after its first event or at ``max_size`` events, whichever comes
first: a change reaches the ledger at most ``seconds`` (plus the write) after the API server
reported it, and a burst (a relist of ten thousand objects) is written in a few large
transactions instead of ten thousand small ones. The watcher's iterator blocks until its
next event, so it is pumped by a thread into a bounded queue the batcher can wait on with a
deadline; the queue's bound passes back-pressure on to the watch streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from queue import Empty, Full, Queue
from typing import Generic, TypeVar

T = TypeVar("T")

# Events waiting between the pump and the batcher (the watcher has its own bounded queue).
QUEUE_SIZE = 4096
_END = object()


class Batches(Generic[T]):
    """``for batch in Batches(events, seconds=0.5, max_size=2000, stop=stop):`` — lists of
    events in arrival order; ends when ``events`` ends or ``stop`` is set (then the events
    already taken form one last batch). Whenever ``idle_seconds`` pass without an event,
    an empty batch comes (the loop's chance to do periodic work:
    re-reading Git, heartbeats)."""

    def __init__(self, events: Iterable[T], *, seconds: float, max_size: int,
                 stop: threading.Event, idle_seconds: float = 1.0) -> None:
        self._events = events
        self._seconds = seconds
        self._max = max(1, max_size)
        self._stop = stop
        self._idle_seconds = idle_seconds
        self._queue: Queue[object] = Queue(maxsize=QUEUE_SIZE)
        self._error: BaseException | None = None
        self._pump = threading.Thread(target=self._run, name="watch-pump", daemon=True)

    def _run(self) -> None:
        try:
            for event in self._events:
                if not self._put(event):
                    break
        except BaseException as exc:  # handed to the consumer, which raises it
            self._error = exc
        finally:
            self._put(_END, always=True)

    def _put(self, item: object, always: bool = False) -> bool:
        """Queue ``item`` unless stopping (``always``: a little longer, for the end mark)."""
        give_up = time.monotonic() + 5.0
        while always or not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except Full:
                if always and time.monotonic() > give_up:
                    return False  # nobody reads any more
        return False

    def __iter__(self) -> Iterator[list[T]]:
        self._pump.start()
        batch: list[T] = []
        deadline = 0.0
        while True:
            if batch and time.monotonic() >= deadline:
                yield batch
                batch = []
            wait = deadline - time.monotonic() if batch else self._idle_seconds
            try:
                item = self._queue.get(timeout=max(0.001, wait))
            except Empty:
                if batch:
                    continue  # its deadline passed: yielded at the top
                yield []  # idle
                if self._stop.is_set():
                    break
                continue
            if item is _END:
                break
            if not batch:
                deadline = time.monotonic() + self._seconds
            batch.append(item)  # type: ignore[arg-type]
            if len(batch) >= self._max:
                yield batch
                batch = []
        if batch:
            yield batch
        self._pump.join(timeout=5.0)
        if self._error is not None:
            raise self._error
