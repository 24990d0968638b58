"""Ledgers for the alert tests, written through the real ledger API run by run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditor.config import Config, SlackConfig, SlackRoute
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger

T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
IMAGE = "spec.template.spec.containers[name=web].image"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def key(name: str, kind: str = "Deployment", group: str = "apps", ns: str = "shop") -> ResourceKey:
    return ResourceKey(group, kind, ns, name)


def drifted(k: ResourceKey, *items: tuple[str, Any, Any], manager: str = "kubectl-set",
            category: str = "human", commit: str = "c0ffee1234567890") -> ObjectResult:
    return ObjectResult(k, "apps/v1" if k.group == "apps" else "v1", "drifted",
                        tuple(DriftItem(p, "changed", d, live, manager, "Update",
                                        "2026-11-20T08:59:00Z", category)  # type: ignore[arg-type]
                              for p, d, live in items),
                        SourceInfo(f"apps/{k.name}.yaml", commit=commit))


def in_sync(k: ResourceKey) -> ObjectResult:
    return ObjectResult(k, "apps/v1", "in-sync", (), SourceInfo(f"apps/{k.name}.yaml",
                                                              commit="c0ffee1234567890"))


def record(db: Path, hours: float, results: Iterable[ObjectResult]) -> int:
    """One complete run at ``T0 + hours`` recording ``results``; returns its id."""
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(hours))
        for result in results:
            run.record(result)
        return run.finish("complete", counts={"in-sync": 1}).run_id


def webhook_config(**slack: Any) -> Config:
    settings: dict[str, Any] = {"backoff_seconds": 0.05, "budget_seconds": 20, **slack}
    return Config(slack=SlackConfig(webhook_url_env="SLACK_WEBHOOK", **settings))


def bot_config(base_url: str, **slack: Any) -> Config:
    routes = slack.pop("routes", ())
    return Config(slack=SlackConfig(token_env="SLACK_TOKEN", channel="#drift", base_url=base_url,
                                    backoff_seconds=0.05, budget_seconds=20,
                                    routes=tuple(SlackRoute(**r) for r in routes), **slack))
