"""Label and field selectors as the API server parses them (``k8s.io/apimachinery/pkg/labels``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from auditor.sandbox.status import ApiError

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\((.*)\)\s*$")
_OP_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


def _split(selector: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _label_test(labels: dict[str, Any], op: str, key: str, values: frozenset[str]) -> bool:
    if op == "in":
        return key in labels and labels[key] in values
    if op == "notin":
        return key not in labels or labels[key] not in values
    if op == "!=":
        return labels.get(key) not in values
    if op == "=":
        return key in labels and labels[key] in values
    if op == "!":
        return key not in labels
    return key in labels


def label_matcher(selector: str | None) -> Matcher | None:
    """A predicate over a ``labels`` dict; None when the selector selects everything."""
    if not selector or not selector.strip():
        return None
    reqs: list[tuple[str, str, frozenset[str]]] = []
    for term in _split(selector):
        m = _SET_RE.match(term)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append((m.group(2), m.group(1), values))
            continue
        m = _OP_RE.match(term)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append((op, m.group(1), frozenset({m.group(3)})))
            continue
        m = _EXISTS_RE.match(term)
        if m:
            reqs.append(("!" if m.group(1) else "exists", m.group(2), frozenset()))
            continue
        raise ApiError("BadRequest", f"unable to parse requirement: {term.strip()!r}")

    def match(labels: dict[str, Any]) -> bool:
        return all(_label_test(labels, op, key, values) for op, key, values in reqs)

    return match


# Fields each kind supports in fieldSelector beyond metadata.name / metadata.namespace.
_EXTRA_FIELDS = {
    "Pod": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
            "spec.serviceAccountName", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "Node": {"spec.unschedulable"},
    "ReplicaSet": {"status.replicas"},
    "Job": {"status.successful"},
}


def _lookup(obj: dict[str, Any], dotted: str) -> str:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_matcher(selector: str | None, kind: str) -> Matcher | None:
    """A predicate over a whole object; None when the selector selects everything."""
    if not selector or not selector.strip():
        return None
    allowed = {"metadata.name", "metadata.namespace"} | _EXTRA_FIELDS.get(kind, set())
    reqs: list[tuple[str, str, str]] = []
    for term in _split(selector):
        m = _OP_RE.match(term)
        if not m:
            raise ApiError("BadRequest", f"invalid selector: {selector!r}")
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in allowed:
            raise ApiError("BadRequest", f'"{field}" is not a known field selector: only '
                           f'"metadata.name", "metadata.namespace"')
        reqs.append((field, op, value))

    def match(obj: dict[str, Any]) -> bool:
        return all((_lookup(obj, f) != v) if op == "!=" else (_lookup(obj, f) == v)
                   for f, op, v in reqs)

    return match
