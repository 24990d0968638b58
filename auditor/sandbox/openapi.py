"""OpenAPI v3 documents: only what kubectl 1.35 reads before it writes.

``kubectl apply/create/replace`` (``--validate=strict``, the default) asks ``/openapi/v3``
whether each kind's PATCH operation takes the ``fieldValidation`` query parameter; if it
does, validation is left to the server and no client-side schema is needed. So each
group/version document lists every resource's paths with their operations, the
``x-kubernetes-group-version-kind`` extension and that parameter — but no schemas. Without
schemas kubectl computes strategic-merge patches from its compiled-in Go types, which is
what it does against any server whose OpenAPI lacks a kind. ``/openapi/v2`` is 404 (it
would have to be protobuf for kubectl).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from auditor.sandbox.catalog import Catalog, Resource

_FIELD_VALIDATION = {"name": "fieldValidation", "in": "query", "schema": {"type": "string",
                                                                         "uniqueItems": True}}


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _paths(r: Resource) -> dict[str, Any]:
    prefix = "/" + _gv_path(r.group, r.version)
    gvk = {"group": r.group, "version": r.version, "kind": r.kind}
    ops_item = {verb: {"x-kubernetes-group-version-kind": gvk,
                       "x-kubernetes-action": action,
                       "parameters": [_FIELD_VALIDATION] if verb != "get" else [],
                       "responses": {"200": {"description": "OK"}}}
                for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"),
                                     ("delete", "delete"))}
    ops_coll = {verb: {"x-kubernetes-group-version-kind": gvk,
                       "x-kubernetes-action": action,
                       "parameters": [_FIELD_VALIDATION] if verb == "post" else [],
                       "responses": {"200": {"description": "OK"}}}
                for verb, action in (("get", "list"), ("post", "post"))}
    base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced \
        else f"{prefix}/{r.plural}"
    return {base: ops_coll, base + "/{name}": ops_item}


def serve(catalog: Catalog, path: str, url: str) -> bytes | None:
    """The document at ``path`` (``/openapi/v3`` or ``/openapi/v3/<gv path>``), or None."""
    if path.rstrip("/") == "/openapi/v3":
        index: dict[str, Any] = {}
        for group, versions in catalog.groups().items():
            for version in versions:
                gv = _gv_path(group, version)
                digest = hashlib.sha256(_doc(catalog, group, version)).hexdigest()[:32].upper()
                index[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        return orjson.dumps({"paths": index})
    if not path.startswith("/openapi/v3/"):
        return None
    gv = path[len("/openapi/v3/"):].strip("/")
    parts = gv.split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    if not catalog.in_group_version(group, version):
        return None
    return _doc(catalog, group, version)


def _doc(catalog: Catalog, group: str, version: str) -> bytes:
    paths: dict[str, Any] = {}
    for r in catalog.in_group_version(group, version):
        paths.update(_paths(r))
    return orjson.dumps({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
