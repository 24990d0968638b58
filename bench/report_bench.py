"""Report benchmark: a quarter of hourly runs (≈2,200) with 20,000 changes, rendered as the
compliance report (HTML + change population CSV, and JSON).

The ledger is built through the ledger API itself (``begin_run`` / ``observe`` / ``record`` /
``finish`` / ``ack``), so its hash chain verifies and the report reads exactly what real runs
write; only SQLite's fsync is switched off for the build (the report only reads).

The quarter: 400 objects in 8 namespaces; one run an hour from 2026-07-01 to 2026-09-30 with a
4-hour outage and a failed run (monitoring gaps); per run about 9 changes: mostly GitOps syncs
(authorized), some controller scaling, and about 1 in 10 an out-of-band ``kubectl`` change
that opens a drift, later fixed live within 1–36 hours (some beyond the 24 h SLA) or accepted
with an expiry. Git commits arrive daily, most with a PR and a reviewer.

Usage: python -m bench.report_bench
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from auditor.config import Config, ReportsConfig
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation

START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
OBJECTS = 400
NAMESPACES = 8
CHANGES_PER_RUN = 9
OUTAGE = (datetime(2026, 8, 14, 6, tzinfo=UTC), datetime(2026, 8, 14, 10, tzinfo=UTC))
FAILED_AT = datetime(2026, 9, 2, 13, tzinfo=UTC)
REPO = "https://git.example.com/platform/clusters.git"


def _key(i: int) -> ResourceKey:
    ns = f"team-{i % NAMESPACES}"
    if i % 40 == 0:
        return ResourceKey("rbac.authorization.k8s.io", "Role", ns, f"role-{i}")
    if i % 20 == 0:
        return ResourceKey("", "Service", ns, f"svc-{i}")
    if i % 10 == 0:
        return ResourceKey("", "ConfigMap", ns, f"config-{i}")
    return ResourceKey("apps", "Deployment", ns, f"app-{i}")


def _content(key: ResourceKey, version: int, *, replicas: int = 2, image_tag: str = "") -> dict[str, Any]:
    meta = {"name": key.name, "namespace": key.namespace,
            "labels": {"app.kubernetes.io/name": key.name, "team": key.namespace}}
    if key.kind == "Deployment":
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": key.name}},
                         "template": {"metadata": {"labels": {"app": key.name}}, "spec": {
                             "containers": [{"name": "app",
                                             "image": f"registry.example.com/{key.name}:"
                                                      f"{image_tag or '1.' + str(version)}",
                                             "env": [{"name": "LOG_LEVEL", "value": "info"}],
                                             "resources": {"requests": {"cpu": "100m"}}}]}}}}
    if key.kind == "Role":
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                           "verbs": ["get", "list"] + (["watch"] * (version % 2))}]}
    if key.kind == "Service":
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"ports": [{"port": 80 + version % 3, "protocol": "TCP"}],
                         "selector": {"app": key.name}}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {"config.yaml": f"revision: {version}\n"}}


def _hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class _Drift:
    key: ResourceKey
    fix_at: datetime
    ack: bool
    items: tuple[DriftItem, ...]


@dataclass
class _State:
    versions: dict[ResourceKey, int] = field(default_factory=dict)
    drifts: dict[ResourceKey, _Drift] = field(default_factory=dict)
    commit: str = "0" * 40
    rv: int = 0


def _source(key: ResourceKey, commit: str) -> SourceInfo:
    return SourceInfo(f"clusters/prod/{key.namespace}.yaml", repo=REPO, commit=commit)


def build_ledger(path: Path, *, start: datetime = START, end: datetime = END,
                 changes_per_run: int = CHANGES_PER_RUN, objects: int = OBJECTS,
                 outage: tuple[datetime, datetime] | None = OUTAGE,
                 failed_at: datetime | None = FAILED_AT, seed: int = 7) -> dict[str, int]:
    """Write a ledger of hourly runs from ``start`` to ``end`` through the ledger API."""
    rng = random.Random(seed)
    state = _State()
    keys = [_key(i) for i in range(objects)]
    totals = {"runs": 0, "changes": 0, "drifts": 0, "acks": 0}
    with Ledger.open(path, tool_version="0.1.0", config_hash="b" * 64,
                     batch_size=20000) as ledger:
        # Bench-only: the build is not what is measured and a crash just means a rebuild.
        ledger.conn.execute("PRAGMA synchronous=OFF")
        moment = start + timedelta(minutes=5)
        first = True
        day = -1
        while moment < end:
            if outage and outage[0] <= moment < outage[1]:
                moment += timedelta(hours=1)
                continue
            commits: list[SourceInfo] = []
            if moment.day != day:
                day = moment.day
                state.commit = hashlib.sha1(moment.isoformat().encode()).hexdigest()
                reviewed = rng.random() < 0.9
                commits.append(SourceInfo(
                    "clusters/prod", repo=REPO, commit=state.commit,
                    author="Lee Dev", author_email="lee@example.com",
                    date=(moment - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    subject=f"Release train {moment:%Y-%m-%d}" + (f" (#{1000 + totals['runs']})"
                                                                   if reviewed else ""),
                    pr=1000 + totals["runs"] if reviewed else None,
                    trailers=(("Reviewed-by", "Dana Ops <dana@example.com>"),) if reviewed else ()))
            run = ledger.begin_run(cluster="prod", git_commits={"clusters": state.commit},
                                   started_at=moment)
            if failed_at and moment.replace(minute=0) == failed_at:
                run.finish("failed")
                totals["runs"] += 1
                moment += timedelta(hours=1)
                continue
            run.record_commits(commits)
            stamp = (moment - timedelta(minutes=rng.randint(1, 50))).strftime("%Y-%m-%dT%H:%M:%SZ")
            touched: set[ResourceKey] = set()
            chosen = keys if first else rng.sample(keys, changes_per_run)
            for key in chosen:
                if key in state.drifts and not first:
                    continue
                state.rv += 1
                version = state.versions.get(key, 0) + 1
                state.versions[key] = version
                roll = rng.random()
                manager, category, status = "argocd-controller", "gitops", "in-sync"
                content = _content(key, version)
                items: tuple[DriftItem, ...] = ()
                if not first and roll < 0.1:
                    manager, category, status = "kubectl-set", "human", "drifted"
                    content = _content(key, version - 1, image_tag="hotfix")
                    path = ("spec.template.spec.containers[name=app].image"
                            if key.kind == "Deployment" else "metadata.labels[\"team\"]")
                    items = (DriftItem(path, "changed", "registry.example.com/app:1.0",
                                       "registry.example.com/app:hotfix", manager, "Update",
                                       stamp, "human"),)
                    fix = moment + timedelta(hours=rng.choice((1, 2, 3, 5, 8, 13, 30, 36)))
                    state.drifts[key] = _Drift(key, fix, rng.random() < 0.08, items)
                    totals["drifts"] += 1
                elif not first and roll < 0.2 and key.kind == "Deployment":
                    manager, category = "horizontal-pod-autoscaler", "controller"
                    content = _content(key, version - 1, replicas=3 + version % 4)
                run.observe(Observation(key, content["apiVersion"], str(state.rv), _hash(content),
                                        content, manager, "Apply" if category == "gitops" else
                                        "Update", stamp, category))
                touched.add(key)
                if status == "drifted":
                    run.record(ObjectResult(key, content["apiVersion"], "drifted", items,
                                            _source(key, state.commit)))
                else:
                    run.record(ObjectResult(key, content["apiVersion"], "in-sync", (),
                                            _source(key, state.commit)))
            for key, drift in list(state.drifts.items()):
                if key in touched:
                    continue
                if drift.fix_at <= moment:
                    # Fixed live by a sync: a new version back to Git's content.
                    state.rv += 1
                    version = state.versions[key] + 1
                    state.versions[key] = version
                    content = _content(key, version)
                    run.observe(Observation(key, content["apiVersion"], str(state.rv),
                                            _hash(content), content, "argocd-controller",
                                            "Apply", stamp, "gitops"))
                    run.record(ObjectResult(key, content["apiVersion"], "in-sync", (),
                                            _source(key, state.commit)))
                    del state.drifts[key]
                else:
                    run.record(ObjectResult(key, "v1", "drifted", drift.items,
                                            _source(key, state.commit)))
            drifted = len(state.drifts)
            summary = run.finish("complete", counts={
                "in-sync": objects - drifted, "drifted": drifted, "missing": 0, "orphan": 0,
                "ignored": 0})
            totals["changes"] += summary.changes
            totals["runs"] += 1
            for drift in state.drifts.values():
                if drift.ack:
                    drift.ack = False
                    ledger.ack(drift.key, by="Dana Ops", reason="hotfix pending release train",
                               expires="3d", at=moment + timedelta(minutes=20))
                    totals["acks"] += 1
            first = False
            moment += timedelta(hours=1)
    return totals


def bench_report(tmpdir: str) -> dict[str, Any]:
    from auditor.report import export, period
    from auditor.report.html import render_html

    path = Path(tmpdir) / "quarter.db"
    started = time.perf_counter()
    totals = build_ledger(path)
    build_s = time.perf_counter() - started
    cfg = Config(reports=ReportsConfig(schedule_minutes=60, remediation_sla_hours=24.0))
    now = END + timedelta(days=1)
    started = time.perf_counter()
    report = period.build(path, START, END, cfg, now=now,
                          options=period.Options(changes_csv_name="quarter.changes.csv"))
    model_s = time.perf_counter() - started
    t = time.perf_counter()
    csv_text = export.changes_csv(report.changes)
    html = render_html(report)
    render_s = time.perf_counter() - t
    out = Path(tmpdir) / "quarter.html"
    out.write_text(html, encoding="utf-8")
    (Path(tmpdir) / "quarter.changes.csv").write_text(csv_text, encoding="utf-8")
    t = time.perf_counter()
    export.to_json(report)
    json_s = time.perf_counter() - t
    return {
        "runs": totals["runs"], "changes_written": totals["changes"],
        "changes_in_report": len(report.changes), "drift_occurrences": len(report.drifts),
        "gaps": len(report.monitoring.gaps), "ledger_build_s": round(build_s, 1),
        "report_model_s": round(model_s, 2), "html_csv_render_s": round(render_s, 2),
        "report_total_s": round(model_s + render_s, 2), "json_s": round(json_s, 2),
        "html_mb": round(len(html) / 1e6, 1), "verify_ok": report.header.integrity.ok,
        "within_10s": model_s + render_s < 10.0,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = bench_report(tmp)
    print(json.dumps(result, indent=2))
    return 0 if result["within_10s"] else 1


if __name__ == "__main__":
    sys.exit(main())
