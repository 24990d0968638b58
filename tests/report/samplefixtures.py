"""A small day of hourly runs written through the ledger API (its chain verifies, its
checkpoints are signed), for the sampling and per-occurrence exception tests.

2026-03-01, one scheduled run at HH:05 except 10:00–13:00 (an outage: one gap of three missed
runs), SLA 1 h:
  - Deployment shop/web (image by tag) set by hand with ``kubectl set image`` at 02:05, fixed
    by the GitOps controller at 04:05, set by hand to the same image again at 06:05 (the same
    drift reopened: a second occurrence), fixed at 08:05. Both occurrences are open 2 h.
  - Deployment shop/api (image by digest) moved to a new digest by the GitOps controller at
    09:05 (authorized).
  - Role shop/reader edited by hand at 14:05 and left drifted to the end.
  - Secret shop/token patched by hand at 15:05 (values are keyed hashes, as the pipeline
    stores them) and accepted at 15:20 for 3 days.
  - ConfigMap shop/settings synced by the GitOps controller at 01:05, 17:05, 19:05, 21:05.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from auditor.config import Config, ReportsConfig
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation
from auditor.ledger.signing import generate

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)
OUTAGE_HOURS = (10, 11, 12)
COMMIT = "c0ffee" + "0" * 34
DIGEST_OLD = "registry.example.com/api@sha256:" + "1" * 64
DIGEST_NEW = "registry.example.com/api@sha256:" + "2" * 64
SECRET_HASHES = ("hmac-sha256:" + "a" * 64, "hmac-sha256:" + "b" * 64)

WEB = ResourceKey("apps", "Deployment", "shop", "web")
API = ResourceKey("apps", "Deployment", "shop", "api")
ROLE = ResourceKey("rbac.authorization.k8s.io", "Role", "shop", "reader")
TOKEN = ResourceKey("", "Secret", "shop", "token")
SETTINGS = ResourceKey("", "ConfigMap", "shop", "settings")
IMAGE_PATH = "spec.template.spec.containers[name=web].image"


@dataclass(frozen=True)
class SampleLedger:
    path: Path
    key_file: Path
    start: datetime
    end: datetime
    cfg: Config


def config() -> Config:
    return Config(reports=ReportsConfig(schedule_minutes=60, remediation_sla_hours=1.0))


def _deployment(key: ResourceKey, image: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": key.name, "namespace": key.namespace},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": key.name}},
                     "template": {"metadata": {"labels": {"app": key.name}},
                                  "spec": {"containers": [{"name": key.name, "image": image}]}}}}


def _content(key: ResourceKey, state: dict[ResourceKey, Any]) -> dict[str, Any]:
    value = state[key]
    if key.kind == "Deployment":
        return _deployment(key, value)
    if key.kind == "Role":
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": key.name, "namespace": key.namespace},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": value}]}
    if key.kind == "Secret":
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": key.name, "namespace": key.namespace},
                "type": "Opaque", "data": {"token": value}}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": key.name, "namespace": key.namespace},
            "data": {"MODE": value}}


def _hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_sample_ledger(directory: Path) -> SampleLedger:
    path = directory / "ledger.db"
    key_file = directory / "signing.pem"
    generate(key_file)
    state: dict[ResourceKey, Any] = {WEB: "shop/web:1.0.0", API: DIGEST_OLD,
                                     ROLE: ["get", "list"], TOKEN: SECRET_HASHES[0],
                                     SETTINGS: "prod"}
    git = dict(state)
    drift_items: dict[ResourceKey, tuple[DriftItem, ...]] = {}
    rv = 0
    # hour → [(key, new value, manager, category)]
    plan: dict[int, list[tuple[ResourceKey, Any, str, str]]] = {
        1: [(SETTINGS, "prod-1", "argocd-controller", "gitops")],
        2: [(WEB, "shop/web:6.6.6", "kubectl-set", "human")],
        4: [(WEB, "shop/web:1.0.0", "argocd-controller", "gitops")],
        6: [(WEB, "shop/web:6.6.6", "kubectl-set", "human")],
        8: [(WEB, "shop/web:1.0.0", "argocd-controller", "gitops")],
        9: [(API, DIGEST_NEW, "argocd-controller", "gitops")],
        14: [(ROLE, ["get", "list", "delete"], "kubectl-edit", "human")],
        15: [(TOKEN, SECRET_HASHES[1], "kubectl-patch", "human")],
        17: [(SETTINGS, "prod-2", "argocd-controller", "gitops")],
        19: [(SETTINGS, "prod-3", "argocd-controller", "gitops")],
        21: [(SETTINGS, "prod-4", "argocd-controller", "gitops")],
    }
    with Ledger.open(path, tool_version="0.1.0", config_hash="b" * 64,
                     signing_key_file=key_file) as ledger:
        for hour in range(24):
            if hour in OUTAGE_HOURS:
                continue
            moment = START + timedelta(hours=hour, minutes=5)
            changed_at = _stamp(moment - timedelta(minutes=20))
            run = ledger.begin_run(cluster="shop-cluster", git_commits={"shop": COMMIT},
                                   started_at=moment)
            if hour == 0:
                run.record_commits([SourceInfo(
                    "apps", repo="https://git.example.com/shop.git", commit=COMMIT,
                    author="Lee Dev", author_email="lee@example.com",
                    date="2026-02-28T12:00:00Z", subject="Release 1.0 (#42)", pr=42,
                    trailers=(("Reviewed-by", "Dana Ops <dana@example.com>"),))])
            touched = [(key, state[key], "argocd-controller", "gitops") for key in state] \
                if hour == 0 else plan.get(hour, [])
            for key, value, manager, category in touched:
                state[key] = value
                if category == "gitops":
                    git[key] = value  # the GitOps controller applies what Git says
                rv += 1
                content = _content(key, state)
                run.observe(Observation(key, content["apiVersion"], str(rv), _hash(content),
                                        content, manager,
                                        "Apply" if category == "gitops" else "Update",
                                        changed_at, category))
                if state[key] == git[key]:
                    drift_items.pop(key, None)
                else:
                    path_ = {"Deployment": IMAGE_PATH, "Role": "rules[0].verbs[2]",
                             "Secret": "data.token"}[key.kind]
                    desired = git[key] if key.kind != "Role" else None
                    live = state[key] if key.kind != "Role" else "delete"
                    drift_items[key] = (DriftItem(path_, "added" if key.kind == "Role"
                                                  else "changed", desired, live, manager,
                                                  "Update", changed_at, category),)
            seen = {key for key, *_ in touched}
            for key in sorted(seen | set(drift_items)):
                content = _content(key, state)
                items = drift_items.get(key, ())
                run.record(ObjectResult(key, content["apiVersion"],
                                        "drifted" if items else "in-sync", items,
                                        SourceInfo(f"apps/{key.name}.yaml", commit=COMMIT)))
            run.finish("complete", counts={"in-sync": 5 - len(drift_items),
                                           "drifted": len(drift_items), "missing": 0,
                                           "orphan": 0, "ignored": 0})
            if hour == 15:
                ledger.ack(TOKEN, by="Dana Ops", reason="token rotation in progress",
                           expires="3d", at=moment + timedelta(minutes=15))
    return SampleLedger(path, key_file, START, END, config())
