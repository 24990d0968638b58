"""API-server audit events for the requests real kubectl made.

The sandbox does not authenticate users yet, so these tests play the API server's audit
backend: kubectl runs at ``-v=7``, which logs each request it sends (method, URL with its
query, headers) and each response (status); each mutating request becomes the
``ResponseComplete`` event kube-apiserver writes for it, in the ``audit.k8s.io/v1`` format
(staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go), as the user the test says made it.
The verb is the API server's for the method (PATCH → ``patch``, PUT → ``update``, POST →
``create``, DELETE → ``delete``; staging/src/k8s.io/apiserver/pkg/endpoints/request/
requestinfo.go), ``objectRef`` comes from the request path, and the two timestamps are when
kubectl sent the request and when it read the response (the sandbox runs on this clock).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

ARGOCD_SA = "system:serviceaccount:argocd:argocd-application-controller"
ARGOCD_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:argocd",
                 "system:authenticated")
PERSON_GROUPS = ("sre", "system:authenticated")

_LINE = re.compile(r'^I(\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d{6})\s+\d+ round_trippers\.go:\d+\] '
                   r'"(Request|Response)"(?: verb="([A-Z]+)" url="([^"]+)")?'
                   r'(?: status="(\d{3})[^"]*")?')
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "GET": "get"}


@dataclass(frozen=True)
class Request:
    """One mutating request kubectl made, as its ``-v=7`` log shows it."""

    method: str
    url: str
    user_agent: str
    sent: datetime
    answered: datetime
    status: int

    @property
    def request_uri(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


def _stamp(line_match: re.Match[str]) -> datetime:
    month, day, clock = line_match.group(1), line_match.group(2), line_match.group(3)
    year = datetime.now(UTC).year
    return datetime.strptime(f"{year}-{month}-{day}T{clock}", "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=UTC)


def requests_of(stderr: str, reads: bool = False) -> list[Request]:
    """The mutating requests in a ``kubectl -v=7`` log (run with ``TZ=UTC``), in order; with
    ``reads``, GETs of resources too (not discovery or OpenAPI)."""
    # kubectl sends one request at a time: a "Response" line answers the "Request" before it
    # (at -v=7 it names only the status).
    out: list[Request] = []
    pending: tuple[str, str, datetime, str] | None = None
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if not m:
            continue
        if m.group(4) == "Request":
            agent = ""
            for header in lines[i + 1:]:
                if not header.startswith("\t"):
                    break
                if header.strip().lower().startswith("user-agent:"):
                    agent = header.split(":", 1)[1].strip()
            pending = (m.group(5), m.group(6), _stamp(m), agent)
        elif pending is not None:
            method, url, sent, agent = pending
            pending = None
            path = urlsplit(url).path
            resource = path.startswith("/api/") or (path.startswith("/apis/")
                                                    and path.count("/") >= 4)
            if method in _VERBS and (method != "GET" or (reads and resource)):
                out.append(Request(method, url, agent, sent, _stamp(m), int(m.group(7))))
    return out


def _object_ref(path: str) -> dict[str, str]:
    parts = [p for p in path.split("/") if p]
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        group, version, rest = parts[1], parts[2], parts[3:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    ref = {"resource": rest[0], "namespace": namespace, "name": rest[1] if len(rest) > 1 else "",
           "apiGroup": group, "apiVersion": version}
    if len(rest) > 2:
        ref["subresource"] = rest[2]
    return {k: v for k, v in ref.items() if v}


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(request: Request, user: str, groups: tuple[str, ...] = PERSON_GROUPS, *,
          impersonated: str = "") -> dict[str, Any]:
    """The ``ResponseComplete`` audit event kube-apiserver writes for ``request`` made by
    ``user`` (at the ``Metadata`` level, as a typical policy logs writes)."""
    path = urlsplit(request.url).path
    ref = _object_ref(path)
    verb = _VERBS[request.method]
    if verb == "get" and "name" not in ref:
        verb = "list"  # a collection
    out: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": str(uuid.uuid4()), "stage": "ResponseComplete",
        "requestURI": request.request_uri, "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": ["127.0.0.1"], "userAgent": request.user_agent,
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": request.status},
        "requestReceivedTimestamp": _micro(request.sent),
        "stageTimestamp": _micro(request.answered),
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": ""},
    }
    if impersonated:
        out["impersonatedUser"] = {"username": impersonated, "groups": ["system:authenticated"]}
    return out


def write_log(path: Path, events: list[dict[str, Any]]) -> Path:
    """JSON lines, as the API server's log backend writes them."""
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def as_user(kubectl: Any, user: str, groups: tuple[str, ...], *args: str,
            impersonated: str = "", reads: bool = False) -> list[dict[str, Any]]:
    """Run kubectl and return the audit events of its mutating requests (and, with
    ``reads``, of its reads of the API's resources) made by ``user``."""
    proc = kubectl(*args, "-v=7", env={"TZ": "UTC"})
    found = [r for r in requests_of(proc.stderr, reads=reads)]
    assert found, f"kubectl {' '.join(args)} made no such request:\n{proc.stderr}"
    return [event(r, user, groups, impersonated=impersonated) for r in found]
