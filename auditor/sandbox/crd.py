"""Custom resources against their CRD's structural schema: pruning, defaulting, strictness.

As kube-apiserver's apiextensions server does for ``apiextensions.k8s.io/v1`` CRDs: fields
the schema does not declare are dropped (unless ``x-kubernetes-preserve-unknown-fields``),
or refused with 400 when the request asked for ``fieldValidation=Strict`` (kubectl's
default); ``default`` values in the schema fill absent fields.
"""

from __future__ import annotations

import copy
from typing import Any

from auditor.sandbox.status import ApiError

Obj = dict[str, Any]
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def unknown_fields(obj: Obj, schema: Obj | None) -> list[str]:
    """Dotted paths of fields the schema does not declare (and would be pruned)."""
    if not schema:
        return []
    out: list[str] = []
    _walk(obj, schema, "", out, prune=False, root=True)
    return out


def prune_and_default(obj: Obj, schema: Obj | None) -> None:
    """Drop undeclared fields and fill schema defaults, in place."""
    if not schema:
        return
    _walk(obj, schema, "", [], prune=True, root=True)


def prune(obj: Obj, schema: Obj | None) -> None:
    """Drop undeclared fields only (an apply configuration must not gain defaults)."""
    if not schema:
        return
    _walk(obj, schema, "", [], prune=True, root=True, defaults=False)


def check(kind: str, version: str, obj: Obj, schema: Obj | None,
          field_validation: str | None) -> None:
    """Refuse undeclared fields under ``fieldValidation=Strict``; else prune and default."""
    if field_validation == "Strict":
        unknown = unknown_fields(obj, schema)
        if unknown:
            detail = ", ".join(f'unknown field "{p}"' for p in unknown)
            raise ApiError("BadRequest", f'{kind} in version "{version}" cannot be handled as '
                           f"a {kind}: strict decoding error: {detail}")
    prune_and_default(obj, schema)


def _walk(value: Any, schema: Obj, path: str, out: list[str], *, prune: bool,
          root: bool = False, defaults: bool = True) -> None:
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and not isinstance(extra, dict):
            if schema.get("type") == "object" and not schema.get(
                    "x-kubernetes-preserve-unknown-fields") and extra is not True:
                # an object without properties keeps nothing but what root always has
                for key in [k for k in value if not (root and k in _ROOT_FIELDS)]:
                    out.append(f"{path}{key}")
                    if prune:
                        del value[key]
            return
        for key in list(value):
            sub_path = f"{path}{key}"
            if root and key in _ROOT_FIELDS:
                continue
            sub = (props or {}).get(key) if props is not None else None
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if not schema.get("x-kubernetes-preserve-unknown-fields"):
                    out.append(sub_path)
                    if prune:
                        del value[key]
                continue
            _walk(value[key], sub, sub_path + ".", out, prune=prune, defaults=defaults)
        if prune and defaults and props:
            for key, sub in props.items():
                if key not in value and isinstance(sub, dict) and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                    _walk(value[key], sub, f"{path}{key}.", out, prune=prune)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _walk(item, items, f"{path.rstrip('.')}[{i}].", out, prune=prune,
                      defaults=defaults)
