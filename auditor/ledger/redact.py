"""Last line of defence for Secret values: the pipeline hands the ledger content whose
Secret values are already keyed hashes; anything under a Secret's ``data``/``stringData`` (or
its last-applied annotation) that is not such a hash is replaced before it reaches SQLite.

API-server audit events bring Secrets in every shape a request can take — a whole object, a
``SecretList``, a merge or apply patch, a JSON patch, a body that is no JSON at all — and
their values raw (``stringData`` plain, ``data`` base64, both inside the last-applied
annotation): :func:`audit_object` replaces every one of them, and is the only form in which
the ledger stores (and hashes) an audit event's objects."""

from __future__ import annotations

from typing import Any

from auditor.engine.records import ResourceKey

HASH_PREFIX = "hmac-sha256:"
REDACTED = "<redacted>"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_secret(key: ResourceKey) -> bool:
    return key.kind == "Secret" and key.group == ""


def _safe(value: Any, raw: bool = False) -> Any:
    """``value`` if it is a keyed hash the pipeline made; else :data:`REDACTED`. ``raw``: the
    value comes straight from a request (an audit event), where a string that merely starts
    like a hash is still the user's Secret value."""
    if value is None or (not raw and isinstance(value, str) and value.startswith(HASH_PREFIX)):
        return value
    return REDACTED


def content(key: ResourceKey, obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """``obj`` with every non-hashed Secret value replaced by :data:`REDACTED`."""
    if obj is None or not is_secret(key):
        return obj
    return _secret(obj)


def _secret(obj: dict[str, Any], raw: bool = False) -> dict[str, Any]:
    out = dict(obj)
    for field in ("data", "stringData"):
        values = obj.get(field)
        if isinstance(values, dict):
            out[field] = {k: _safe(v, raw) for k, v in values.items()}
        elif values is not None:
            out[field] = REDACTED
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) \
            and _LAST_APPLIED in meta["annotations"]:
        out["metadata"] = {**meta, "annotations": {
            **meta["annotations"],
            _LAST_APPLIED: _safe(meta["annotations"][_LAST_APPLIED], raw)}}
    return out


def drift_value(key: ResourceKey, path: str, value: Any) -> Any:
    """A drifted value as the ledger may keep it: Secret values only as keyed hashes."""
    if not is_secret(key):
        return value
    if path.startswith(("data", "stringData")) or _LAST_APPLIED in path:
        if isinstance(value, dict):
            return {k: _safe(v) for k, v in value.items()}
        return _safe(value)
    return value


# JSON pointers (RFC 6901) into a Secret whose value holds Secret values.
_POINTER_LAST_APPLIED = "/metadata/annotations/" + _LAST_APPLIED.replace("~", "~0").replace(
    "/", "~1")


def _patch_op(op: Any) -> Any:
    """One operation of a JSON patch on a Secret, its value redacted where it holds one."""
    if not isinstance(op, dict) or "value" not in op:
        return op
    path = str(op.get("path", ""))
    value = op["value"]
    if path.startswith(("/data", "/stringData")) or path == _POINTER_LAST_APPLIED:
        if isinstance(value, dict):
            return {**op, "value": {k: _safe(v, True) for k, v in value.items()}}
        return {**op, "value": _safe(value, True)}
    if path in ("", "/"):
        return {**op, "value": _secret_body(value)}
    if path == "/metadata" and isinstance(value, dict):
        return {**op, "value": _secret({"metadata": value}, True)["metadata"]}
    if path == "/metadata/annotations" and isinstance(value, dict) and _LAST_APPLIED in value:
        return {**op, "value": {**value, _LAST_APPLIED: _safe(value[_LAST_APPLIED], True)}}
    return op


def _secret_body(obj: Any) -> Any:
    """A request or response body of a write on ``secrets``, whatever its shape."""
    if isinstance(obj, dict):
        out = _secret(obj, True)  # audit bodies only: every value is a raw one
        items = obj.get("items")
        if isinstance(items, list):  # a SecretList (deletecollection)
            out["items"] = [_secret_body(i) for i in items]
        return out
    if isinstance(obj, list):  # a JSON patch
        return [_patch_op(op) for op in obj]
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    return REDACTED  # a body that is no JSON (a YAML apply patch kept as text)


def _nested(obj: Any) -> Any:
    """Any other body: Secrets inside it (a ``List`` of mixed objects) redacted."""
    if isinstance(obj, dict):
        if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
            return _secret_body(obj)
        return {k: _nested(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nested(v) for v in obj]
    return obj


def audit_object(obj: Any, *, secret: bool) -> Any:
    """The request or response object of an audit event as the ledger may keep it:
    ``secret`` (a write on core ``secrets``) redacts its values in any shape; otherwise any
    Secret object nested inside is redacted."""
    return _secret_body(obj) if secret else _nested(obj)
