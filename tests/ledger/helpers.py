"""Builders shared by the ledger tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Observation

T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def key(name: str, kind: str = "Deployment", group: str = "apps", ns: str = "shop") -> ResourceKey:
    return ResourceKey(group, kind, ns, name)


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def obs(k: ResourceKey, content: dict[str, Any], rv: str = "1", *, manager: str = "kubectl-edit",
        category: str = "human", time: str = "2026-11-20T08:59:00Z",
        authorized: bool | None = None) -> Observation:
    return Observation(k, "apps/v1", rv, content_hash(content), content, manager, "Update", time,
                       category, authorized)


def drifted(k: ResourceKey, *items: tuple[str, Any, Any], commit: str = "c1",
            category: str = "human", manager: str = "kubectl-edit") -> ObjectResult:
    return ObjectResult(k, "apps/v1", "drifted",
                        tuple(DriftItem(p, "changed", d, live, manager, "Update",
                                        "2026-11-20T08:59:00Z", category)  # type: ignore[arg-type]
                              for p, d, live in items),
                        SourceInfo("apps/web.yaml", commit=commit))


def in_sync(k: ResourceKey, commit: str = "c1") -> ObjectResult:
    return ObjectResult(k, "apps/v1", "in-sync", (), SourceInfo("apps/web.yaml", commit=commit))


def status(k: ResourceKey, value: str, commit: str = "c1") -> ObjectResult:
    return ObjectResult(k, "apps/v1", value, (), SourceInfo("apps/web.yaml", commit=commit))  # type: ignore[arg-type]
