"""Loaders for the recorded live objects in ``tests/data/live`` and their Git manifests in
``tests/data/desired`` (shared by the normalisation and comparison tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data"

Key = tuple[str, str, str, str]


def key_of(obj: dict[str, Any]) -> Key:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    meta = obj.get("metadata") or {}
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def _objects(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if not doc:
            continue
        if doc.get("kind") == "List":
            yield from doc["items"]
        else:
            yield doc


def live_objects() -> dict[Key, dict[str, Any]]:
    """Every recorded live object by ``(group, kind, namespace, name)``."""
    out: dict[Key, dict[str, Any]] = {}
    for path in sorted((DATA / "live").glob("*.yaml")):
        for obj in _objects(path):
            out[key_of(obj)] = obj
    return out


def desired_objects() -> dict[Key, dict[str, Any]]:
    """The Git manifests of the live objects, by the same key."""
    out: dict[Key, dict[str, Any]] = {}
    for path in sorted((DATA / "desired").glob("*.yaml")):
        for obj in _objects(path):
            meta = obj.setdefault("metadata", {})
            if obj["kind"] not in ("Namespace", "ClusterRoleBinding", "ClusterRole"):
                meta.setdefault("namespace", "default")
            out[key_of(obj)] = obj
    return out
