"""JSON over HTTPS to a git host's REST API, with urllib from the standard library.

What every provider needs: one ``GET`` answered as JSON, pagination (GitHub's ``Link:
<…>; rel="next"``, GitLab's ``X-Next-Page``), and rate limits. A 403 or 429 that is a rate
limit (``x-ratelimit-remaining: 0``, a ``Retry-After``, or a 429 at all) is waited out when
the wait fits the run's budget (``max_wait_seconds``, shared by every request of the run);
otherwise :class:`RateLimited` is raised and the client asks nothing more until the reset,
so a run never hammers a host that said stop. 5xx and network errors are retried a little,
then :class:`Unavailable`.

The token is sent in a header only, never in a URL, and only to the API's own scheme, host
and port: a pagination link or redirect elsewhere is refused, so a hostile ``Link`` header
cannot collect it. Messages never contain it.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.errors import AuditorError

USER_AGENT = "drift-auditor"
MAX_PAGES = 50  # 5,000 reviews or commits at 100 a page: beyond any real pull request
MAX_BODY = 16 * 1024 * 1024
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHostError(AuditorError):
    """The git host answered with an error, or not at all."""


class RateLimited(GitHostError):
    """The host's rate limit is exhausted beyond what the run may wait."""

    def __init__(self, message: str, reset_at: float | None = None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class Unavailable(GitHostError):
    """The host could not be reached (network, TLS, timeout, 5xx): offline this run."""


class NotFound(GitHostError):
    """404 (or GitHub's 422 for an unknown commit): the thing asked for is not there."""


class Denied(GitHostError):
    """401 or a 403 that is not a rate limit: the token is missing, wrong or lacks a scope."""


@dataclass
class Budget:
    """How long one run may spend waiting for rate limits and retries, in total."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _start: float | None = None

    def left(self) -> float:
        if self._start is None:
            self._start = self.clock()
        return max(0.0, self.seconds - (self.clock() - self._start))

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` if the budget allows; False (and no sleep) otherwise."""
        if seconds > self.left():
            return False
        if seconds > 0:
            self.sleep(seconds)
        return True


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follow redirects on the API's own origin only (a renamed repository answers 301);
    anywhere else the request is not repeated, so its token goes nowhere else."""

    def __init__(self, origin: tuple[str, str]) -> None:
        self.origin = origin

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != self.origin:
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


@dataclass
class Client:
    """GETs against one API base URL with one set of headers (the token among them)."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    budget: Budget = field(default_factory=lambda: Budget(60.0))
    timeout: float = 10.0
    retries: int = 2
    wall: Callable[[], float] = time.time  # epoch seconds, for x-ratelimit-reset
    _blocked_until: float | None = None
    # Set once the host could not be reached: the rest of the run asks it nothing more
    # (each request would only wait out its retries again).
    _offline: str | None = None
    requests: int = 0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._opener = urllib.request.build_opener(_SameOrigin(self._origin))

    # -- one request

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        text = self.base_url + path
        if query:
            text += ("&" if "?" in text else "?") + urllib.parse.urlencode(query)
        return text

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Response:
        return self._get(self.url(path, query))

    def _get(self, url: str) -> Response:
        if _origin(url) != self._origin:
            raise GitHostError(f"{_shown(url)}: not on the API's host {self._origin[1]}; "
                               "not followed")
        attempt = 0
        while True:
            self._check_blocked()
            attempt += 1
            try:
                return self._once(url)
            except _Retry as retry:
                if attempt > self.retries or not self.budget.wait(retry.after):
                    self._offline = retry.message
                    raise Unavailable(retry.message) from None
            except _Limited as limited:
                if attempt <= self.retries + 1 and limited.after is not None \
                        and self.budget.wait(limited.after):
                    continue
                self._blocked_until = limited.reset_at
                raise RateLimited(limited.message, limited.reset_at) from None

    def _check_blocked(self) -> None:
        if self._offline is not None:
            raise Unavailable(f"{self._offline} (not asked again this run)")
        if self._blocked_until is None:
            return
        if self.wall() >= self._blocked_until:
            self._blocked_until = None
            return
        raise RateLimited(f"{self._origin[1]}: rate limit exhausted until "
                          f"{_when(self._blocked_until)}; not asked again this run",
                          self._blocked_until)

    def _once(self, url: str) -> Response:
        request = urllib.request.Request(url, headers={
            "User-Agent": USER_AGENT, "Accept": "application/json", **self.headers})
        self.requests += 1
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read(MAX_BODY + 1)
                status = int(response.status)
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
            try:
                text = exc.read(4096).decode("utf-8", "replace")
            except OSError:
                text = ""
            finally:
                exc.close()
            raise self._error_for(int(exc.code), headers, text, url) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retry(f"{_shown(url)}: {reason}", 1.0) from None
        if len(raw) > MAX_BODY:
            raise GitHostError(f"{_shown(url)}: answer larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise GitHostError(f"{_shown(url)}: the answer is not JSON") from None
        return Response(status, headers, body)

    def _error_for(self, code: int, headers: Mapping[str, str], text: str,
                   url: str) -> Exception:
        message = _message(text)
        where = f"{_shown(url)}: HTTP {code}"
        if code in (403, 429) and _is_rate_limit(code, headers, message):
            reset_at, after = self._reset(headers)
            return _Limited(f"{where} rate limited ({message or 'rate limit exceeded'}); "
                            f"resets {_when(reset_at) if reset_at else 'later'}", after,
                            reset_at)
        if code in (401, 403):
            return Denied(f"{where}: {message or 'access denied'} (check the token and its "
                          "permissions)")
        if code in (404, 410, 422):
            return NotFound(f"{where}: {message or 'not found'}")
        if code >= 500 or code == 408:
            return _Retry(f"{where}: {message or 'server error'}", 2.0)
        return GitHostError(f"{where}: {message or 'unexpected answer'}")

    def _reset(self, headers: Mapping[str, str]) -> tuple[float | None, float | None]:
        """(when the limit resets as epoch seconds, how long to wait) from the headers."""
        now = self.wall()
        after: float | None = None
        retry_after = headers.get("retry-after", "").strip()
        if retry_after:
            if retry_after.isdigit():
                after = float(retry_after)
            else:
                parsed = email.utils.parsedate_to_datetime(retry_after) \
                    if _looks_like_date(retry_after) else None
                if parsed is not None:
                    after = max(0.0, parsed.timestamp() - now)
        for name in ("x-ratelimit-reset", "ratelimit-reset"):
            value = headers.get(name, "").strip()
            if value.isdigit() and after is None:
                after = max(0.0, float(value) - now) + 1.0  # the reset second itself
        if after is None:
            after = 60.0  # GitHub: "wait for at least one minute" when it says nothing
        return now + after, after

    # -- pages

    def pages(self, path: str, query: Mapping[str, Any] | None = None, *,
              key: str = "") -> Iterator[Any]:
        """Each item of a paginated list, following ``Link: rel="next"`` or ``X-Next-Page``;
        ``key`` names the list when each page is an object (GitHub's ``check_runs``)."""
        url: str | None = self.url(path, {"per_page": 100, **(query or {})})
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self._get(url)
            body = response.body
            if key and isinstance(body, dict):
                body = body.get(key)
            items = body if isinstance(body, list) else []
            yield from items
            url = _next_page(url, response.headers)
        raise GitHostError(f"{_shown(self.url(path))}: more than {MAX_PAGES} pages; stopped")


def _next_page(url: str, headers: Mapping[str, str]) -> str | None:
    match = _LINK_NEXT.search(headers.get("link", ""))
    if match:
        return urllib.parse.urljoin(url, match.group(1))
    page = headers.get("x-next-page", "").strip()
    if page.isdigit():
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["page"] = page
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return None


class _Retry(Exception):
    def __init__(self, message: str, after: float) -> None:
        super().__init__(message)
        self.message = message
        self.after = after


class _Limited(Exception):
    def __init__(self, message: str, after: float | None, reset_at: float | None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after
        self.reset_at = reset_at


def _is_rate_limit(code: int, headers: Mapping[str, str], message: str) -> bool:
    if code == 429 or "retry-after" in headers:
        return True
    if headers.get("x-ratelimit-remaining", "").strip() == "0":
        return True
    return "rate limit" in message.lower()


def _message(text: str) -> str:
    """The host's own error message (GitHub ``message``, GitLab ``message``/``error``)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return " ".join(text.split())[:200]
    if isinstance(doc, dict):
        value = doc.get("message") or doc.get("error") or ""
        return " ".join(str(value).split())[:200]
    return ""


def _shown(url: str) -> str:
    """The URL without its query (page numbers are noise; nothing secret is ever in it)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _looks_like_date(text: str) -> bool:
    return any(c.isalpha() for c in text)
