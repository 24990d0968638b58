"""Last line of defence for Secret values: the pipeline hands the ledger content whose
Secret values are already keyed hashes; anything under a Secret's ``data``/``stringData`` (or
its last-applied annotation) that is not such a hash is replaced before it reaches SQLite."""

from __future__ import annotations

from typing import Any

from auditor.engine.records import ResourceKey

HASH_PREFIX = "hmac-sha256:"
REDACTED = "<redacted>"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_secret(key: ResourceKey) -> bool:
    return key.kind == "Secret" and key.group == ""


def _safe(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.startswith(HASH_PREFIX)):
        return value
    return REDACTED


def content(key: ResourceKey, obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """``obj`` with every non-hashed Secret value replaced by :data:`REDACTED`."""
    if obj is None or not is_secret(key):
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        values = obj.get(field)
        if isinstance(values, dict):
            out[field] = {k: _safe(v) for k, v in values.items()}
        elif values is not None:
            out[field] = REDACTED
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) \
            and _LAST_APPLIED in meta["annotations"]:
        out["metadata"] = {**meta, "annotations": {
            **meta["annotations"], _LAST_APPLIED: _safe(meta["annotations"][_LAST_APPLIED])}}
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
