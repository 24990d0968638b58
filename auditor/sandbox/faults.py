"""Fault injection: make the sandbox answer like a struggling or restricted API server.

``sandbox.faults.add(method="GET", path_regex=r"/apis/apps/v1/deployments", status=429,
times=2, retry_after=1)`` answers the next two matching requests with a ``Status`` error
(403 Forbidden, 429 TooManyRequests, 500, 503 ...); ``delay=`` slows matching requests down
instead (or as well); ``expire_continue()`` makes the next list continuation answer 410 Gone
the way an API server does once etcd has compacted the token's revision.
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
    hits: int = 0


@dataclass
class Faults:
    """The rules in force for one sandbox. Thread-safe."""

    _rules: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _expire_continue: int = 0

    def add(self, *, method: str | None = None, path_regex: str = ".*", status: int | None = None,
            times: int | None = None, retry_after: int | None = None, delay: float = 0.0,
            message: str | None = None) -> Fault:
        """Add a rule matching ``method`` (any if None) and ``path_regex`` (searched in the path)."""
        rule = Fault(method.upper() if method else None, re.compile(path_regex), status, times,
                     retry_after, delay, message or "")
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._expire_continue = 0

    def expire_continue(self, times: int = 1) -> None:
        """Make the next ``times`` requests carrying a continue token fail with 410 Expired."""
        with self._lock:
            self._expire_continue += times

    def take_expired_continue(self) -> bool:
        with self._lock:
            if self._expire_continue > 0:
                self._expire_continue -= 1
                return True
            return False

    def match(self, method: str, path: str) -> tuple[float, ApiError | None]:
        """The delay and the error (if any) for a request; consumes one use of the rule."""
        delay = 0.0
        with self._lock:
            for rule in self._rules:
                if rule.method not in (None, method) or not rule.path_regex.search(path):
                    continue
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                rule.hits += 1
                delay = max(delay, rule.delay)
                if rule.status is None:
                    continue
                reason = _REASONS.get(rule.status, "InternalError")
                headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else {}
                msg = rule.message or _default_message(rule.status, method, path)
                details = {"retryAfterSeconds": rule.retry_after} if rule.retry_after else None
                return delay, ApiError(reason, msg, code=rule.status, headers=headers,
                                       details=details)
        return delay, None


def _default_message(status: int, method: str, path: str) -> str:
    if status == 403:
        return (f'User "system:serviceaccount:drift:auditor" cannot {method.lower()} '
                f'resource at path "{path}"')
    if status == 429:
        return "Too many requests, please try again later."
    if status == 503:
        return "The server is currently unable to handle the request"
    return "Internal error occurred: injected fault"
