"""Fault injection: make the sandbox answer like a struggling or restricted API server.

``sandbox.faults.add(method="GET", path_regex=r"/apis/apps/v1/deployments", status=429,
times=2, retry_after=1)`` answers the next two matching requests with a ``Status`` error
(403 Forbidden, 429 TooManyRequests, 500, 503 ...); ``delay=`` slows matching requests down
instead (or as well: longer than a client's timeout, it is a hang); ``drop=True`` starts the
response and closes the connection halfway through its body, as a crashing API server or a
load balancer cutting an idle-looking connection does; ``continued=True`` (``False``) limits
a rule to requests that carry (do not carry) a ``continue`` token, to hit a list's later
pages (its first page); ``watch=True`` (``False``) to watch requests (other requests), to
refuse a watch the list of the same path is allowed. ``expire_continue()`` makes the next
list continuation answer 410 Expired the way an API server does once etcd has compacted the
token's revision (``path_regex=`` for one kind's lists, ``after=`` to let that many
continuations pass first). ``drop_watch()`` cuts an open watch mid-stream: its connection
closes halfway through an event, as a restarting API server or a load balancer does.
Compacting the event history, after which a watch from an older resourceVersion gets 410,
is the store's: ``sandbox.store.compact()``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from auditor.sandbox.status import ApiError

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            409: "Conflict", 410: "Gone", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


@dataclass
class Fault:
    """One rule; ``times=None`` keeps it forever."""

    method: str | None
    path_regex: re.Pattern[str]
    status: int | None
    times: int | None
    retry_after: int | None
    delay: float
    message: str
    drop: bool = False
    continued: bool | None = None
    watch: bool | None = None
    hits: int = 0


@dataclass(frozen=True)
class Outcome:
    """What the matching rules make of one request: wait ``delay`` seconds, then answer
    ``error``, cut the connection (``drop``), or serve the request as usual."""

    delay: float = 0.0
    error: ApiError | None = None
    drop: bool = False


@dataclass
class Faults:
    """The rules in force for one sandbox. Thread-safe."""

    _rules: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # [path pattern (None: any list), continuations to let through first, to expire]
    _expire_continue: list[tuple[re.Pattern[str] | None, int, int]] = field(
        default_factory=list)
    # [path pattern (None: any watch), lines to send before the cut, watches left to cut]
    _drop_watch: list[tuple[re.Pattern[str] | None, int, int]] = field(default_factory=list)

    def add(self, *, method: str | None = None, path_regex: str = ".*", status: int | None = None,
            times: int | None = None, retry_after: int | None = None, delay: float = 0.0,
            message: str | None = None, drop: bool = False,
            continued: bool | None = None, watch: bool | None = None) -> Fault:
        """Add a rule matching ``method`` (any if None), ``path_regex`` (searched in the path)
        and, unless ``continued`` (``watch``) is None, whether the request carries a continue
        token (is a watch)."""
        if drop and status is not None:
            raise ValueError("a rule either answers with a status or drops the connection")
        rule = Fault(method.upper() if method else None, re.compile(path_regex), status, times,
                     retry_after, delay, message or "", drop, continued, watch)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._expire_continue.clear()
            self._drop_watch.clear()

    def drop_watch(self, times: int = 1, *, path_regex: str | None = None,
                   after: int = 0) -> None:
        """Cut ``times`` watches (of a path matching ``path_regex``, any if None), open ones
        included: the first to have an event to send after ``after`` events (bookmarks count)
        sends half of it, and its connection closes."""
        with self._lock:
            self._drop_watch.append(
                (re.compile(path_regex) if path_regex is not None else None, after, times))

    def watch_cut(self, path: str, sent: int) -> bool:
        """Whether a watch of ``path`` that has sent ``sent`` events is cut before its next
        one; a cut uses up one of its rule's ``times``."""
        with self._lock:
            for i, (pattern, after, left) in enumerate(self._drop_watch):
                if left <= 0 or sent < after or (pattern is not None and not pattern.search(path)):
                    continue
                self._drop_watch[i] = (pattern, after, left - 1)
                return True
            return False

    def expire_continue(self, times: int = 1, *, path_regex: str | None = None,
                        after: int = 0) -> None:
        """Make list requests carrying a continue token (to a path matching ``path_regex``,
        any if None) fail with 410 Expired: ``times`` of them, once ``after`` have passed."""
        with self._lock:
            self._expire_continue.append(
                (re.compile(path_regex) if path_regex is not None else None, after, times))

    def take_expired_continue(self, path: str = "") -> bool:
        """Whether this continuation of a list of ``path`` expires; counts it either way."""
        with self._lock:
            for i, (pattern, skip, left) in enumerate(self._expire_continue):
                if left <= 0 or (pattern is not None and not pattern.search(path)):
                    continue
                if skip > 0:
                    self._expire_continue[i] = (pattern, skip - 1, left)
                    return False
                self._expire_continue[i] = (pattern, 0, left - 1)
                return True
            return False

    def match(self, method: str, path: str, *, continued: bool = False,
              watch: bool = False) -> Outcome:
        """What to do with a request (``continued``: it carries a continue token; ``watch``:
        it is a watch); consumes one use of each rule that matches, up to the first that
        answers or drops."""
        delay = 0.0
        with self._lock:
            for rule in self._rules:
                if rule.method not in (None, method) or not rule.path_regex.search(path):
                    continue
                if rule.continued is not None and rule.continued != continued:
                    continue
                if rule.watch is not None and rule.watch != watch:
                    continue
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                rule.hits += 1
                delay = max(delay, rule.delay)
                if rule.drop:
                    return Outcome(delay, drop=True)
                if rule.status is None:
                    continue
                reason = _REASONS.get(rule.status, "InternalError")
                headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else {}
                msg = rule.message or _default_message(rule.status, method, path)
                details = {"retryAfterSeconds": rule.retry_after} if rule.retry_after else None
                return Outcome(delay, ApiError(reason, msg, code=rule.status, headers=headers,
                                               details=details))
        return Outcome(delay)


def _default_message(status: int, method: str, path: str) -> str:
    if status == 403:
        return (f'User "system:serviceaccount:drift:auditor" cannot {method.lower()} '
                f'resource at path "{path}"')
    if status == 429:
        return "Too many requests, please try again later."
    if status == 503:
        return "The server is currently unable to handle the request"
    return "Internal error occurred: injected fault"
