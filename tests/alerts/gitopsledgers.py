"""Ledgers whose runs carry the GitOps controllers' view in their counts, exactly as
``auditor.pipeline.GitopsView.counts`` writes it, for the metrics, report and Slack tests
(tests/gitops runs the real thing against the controllers' CRDs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from auditor.ledger import Ledger

from .ledgers import at, in_sync, key

APPLIED = "a" * 40
HEAD = "b" * 40
SHOP, WEB, API = "Application argocd/shop", "Application argocd/web", "Kustomization flux-system/api"
OWNERS = {SHOP: "argocd:argocd/shop", WEB: "argocd:argocd/web", API: "flux:flux-system/api"}
URL = "https://deploy-bot:s3cr3t-token@git.example.com/platform/gitops.git"


def lag(owner: str, behind: int, since_hours: float | None, ref: str = "main") -> dict[str, Any]:
    """A sync lag entry: ``behind`` commits since ``T0 + since_hours``."""
    since = "" if since_hours is None else at(since_hours).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return {"source": OWNERS[owner], "owner": owner, "ref": ref, "applied": APPLIED,
            "head": HEAD, "behind": behind, "since": since}


def view(lags: Sequence[dict[str, Any]] = (), *, owners: Iterable[str] = tuple(OWNERS),
         skipped: Sequence[tuple[str, str]] = (), uncovered: Sequence[str] = ()
         ) -> dict[str, Any]:
    """``counts["gitops"]`` of one run."""
    return {"sources": [{"name": OWNERS[o], "owner": o, "via": "", "ref": "main",
                         "applied": APPLIED, "url": URL} for o in owners],
            "skipped": [{"owner": o, "reason": r} for o, r in skipped],
            "sync_lag": list(lags), "not_under_gitops": list(uncovered)}


def record_gitops(db: Path, hours: float, gitops: dict[str, Any] | None, *,
                  status: str = "complete", cluster: str = "prod-eu") -> int:
    """One run at ``T0 + hours`` (one in-sync object) whose counts carry ``gitops``."""
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster=cluster, started_at=at(hours))
        run.record(in_sync(key("web")))
        counts: dict[str, Any] = {"in-sync": 1}
        if gitops is not None:
            counts["gitops"] = gitops
        return run.finish(status, counts=counts).run_id
