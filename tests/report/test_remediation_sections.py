"""The report's remediation evidence: the Reverts subsection (auto-revert attempts and capped
runs) and the Emergency changes section (drift adopted into Git, then merged), from ledgers
written by real runs against the sandbox API server with real kubectl 1.35 changes and real
Git repositories; rendered as HTML (and in Chromium), CSV and JSON, single-ledger and fleet.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from auditfixtures import PERSON_GROUPS, as_user, write_log
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.adopt.workflow import Request
from auditor.config import Config, RevertConfig
from auditor.ledger import drifts, reading
from auditor.pipeline import run_once
from auditor.report import export, fleet, period
from auditor.report.html import render_html
from auditor.report.model import Report
from auditor.sandbox import Sandbox
from tests.adopt.test_adopt_e2e import NAMESPACE, adopt
from tests.adopt.test_adopt_e2e import SHOP as ADOPT_SHOP
from tests.gitfixtures import TOOLS, RepoBuilder

from .browser import Browser, available

pytestmark = pytest.mark.kubectl

SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shop}
stringData: {token: s3cr3t-value-never-shown}
"""
SECRET_VALUES = ("s3cr3t-value-never-shown", "hum4n-added-s3cret")


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if tag == "a" and name == "href" and value and value.startswith("#"):
                self.links.append(value[1:])


def anchors(page: str) -> _Anchors:
    parser = _Anchors()
    parser.feed(page)
    return parser


def assert_links_resolve(report: Report, page: str) -> None:
    found = anchors(page)
    ids = set(found.ids)
    assert len(ids) == len(found.ids), "duplicate ids"
    assert set(found.links) <= ids, set(found.links) - ids
    for control in report.controls:
        for evidence in control.evidence:
            assert evidence.href[1:] in ids, evidence


def assert_no_secret(*outputs: str | bytes) -> None:
    for out in outputs:
        text = out.decode() if isinstance(out, bytes) else out
        for value in SECRET_VALUES:
            assert value not in text
            assert base64.b64encode(value.encode()).decode() not in text


def with_revert(cfg: Config, **kw: Any) -> Config:
    base = {"mode": "enforce", "recreate_missing": True, "max_objects": 10}
    return replace(cfg, revert=RevertConfig(**{**base, **kw}))


def render_in_chromium(tmp_path: Path, name: str, page: str) -> list[str]:
    if not available():
        pytest.fail("chromium not found: apt-get install -y chromium", pytrace=False)
    path = tmp_path / name
    path.write_text(page, encoding="utf-8")
    # Screenshots to look at: the test's folder, or $DRIFT_AUDITOR_SCREENSHOTS when set.
    shots = Path(os.environ.get("DRIFT_AUDITOR_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with Browser() as browser:
        browser.open(path, width=1280)
        errors = browser.errors()
        for section in ("drifts", "emergency"):
            browser.section_screenshot(section, shots / f"{path.stem}-{section}.png")
        # The new sections are there and laid out (not just present in the source).
        assert browser.eval("document.getElementById('reverts').getBoundingClientRect()"
                            ".height") > 0
        assert browser.eval("document.getElementById('emergency').getBoundingClientRect()"
                            ".height") > 0
        browser.open(path, width=390)
        errors += browser.errors()
        assert browser.eval("document.documentElement.scrollWidth") <= 390
    return errors


@pytest.fixture
def revert_ledger(tmp_path: Path, kubeconfig: Path, kubectl: Any,
                  sandbox: Sandbox) -> tuple[Config, datetime, Path]:
    """Baseline → human changes → a capped run → a dry-run → an enforce run whose Deployment
    PATCH is refused (403) while the ConfigMap and Secret are reverted → the Deployment
    reverted once the permission is back."""
    apps = tmp_path / "git"
    apps.mkdir()
    sync_from_git(kubectl, apps, SHOP)
    cfg_file = config_file(tmp_path, kubeconfig, cluster="prod-eu", extra=(
        "reports: {schedule-minutes: 60, remediation-sla-hours: 24}\n"))
    cfg = config_mod.load(cfg_file, env={})
    start = datetime.now(UTC).replace(microsecond=0)
    desired = str(apps)
    run_once(cfg, desired_path=desired)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    kubectl("-n", "shop", "label", "configmap/settings", "touched-by=ops")
    kubectl("-n", "shop", "patch", "secret/token", "--type=merge", "-p",
            orjson.dumps({"stringData": {"extra": SECRET_VALUES[1]}}).decode())
    capped = run_once(with_revert(cfg, max_objects=1), desired_path=desired)
    assert [p.kind for p in capped.audit.problems if p.kind == "revert-capped"]
    run_once(with_revert(cfg, mode="dry-run"), desired_path=desired)
    fault = sandbox.faults.add(method="PATCH", path_regex=r"/deployments/web$", status=403)
    refused = run_once(with_revert(cfg), desired_path=desired)
    assert fault.hits == 1
    assert refused.ledger["drifts_resolved"] == {"reverted": 2}
    sandbox.faults.clear()
    fixed = run_once(with_revert(cfg, failure_backoff_minutes=0), desired_path=desired)
    assert fixed.ledger["drifts_resolved"] == {"reverted": 1}
    return cfg, start, tmp_path / "ledger.db"


def _end() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


def test_reverts_failed_and_capped_runs_are_reported_and_linked(
        revert_ledger: tuple[Config, datetime, Path], tmp_path: Path) -> None:
    cfg, start, ledger = revert_ledger
    report = period.build(ledger, start, _end(), cfg)

    # Every attempt of the period, in ledger order, with its mode and result.
    rows = [(r.kind, r.mode, r.result) for r in report.reverts]
    assert rows == [
        ("ConfigMap", "dry-run", "dry-run"), ("Secret", "dry-run", "dry-run"),
        ("Deployment", "dry-run", "dry-run"),
        ("ConfigMap", "enforce", "reverted"), ("Secret", "enforce", "reverted"),
        ("Deployment", "enforce", "failed"),
        ("Deployment", "enforce", "reverted")]
    assert {r.cluster for r in report.reverts} == {"prod-eu"}
    failed = next(r for r in report.reverts if r.result == "failed")
    assert "forbidden" in failed.error and failed.resource_version_after == ""
    web = report.reverts[-1]
    image = next(v for v in web.values if v.path.endswith("containers[name=web].image"))
    # Previous live → Git, as the ledger holds them.
    assert (image.live, image.desired) == ("shop/web:6.6.6-hotfix", "shop/web:1.0.0")
    assert web.managers == ["kubectl-set"]
    assert web.resource_version_before and web.resource_version_after \
        and web.resource_version_before != web.resource_version_after
    secret = next(r for r in report.reverts if r.kind == "Secret" and r.result == "reverted")
    assert secret.secret and secret.values and all(v.desired == v.live == ""
                                                   for v in secret.values)

    # The capped run: what would have been reverted, and the cap.
    [cap] = report.revert_caps
    assert (cap.mode, cap.cap, cap.planned) == ("enforce", 1, 3)
    assert len(cap.objects) == 3 and any("settings" in o for o in cap.objects)

    # Each reverted drift row links its attempt, and each attempt links its drift.
    by_anchor = {d.anchor: d for d in report.drifts}
    reverted = [d for d in report.drifts if d.how == "reverted"]
    assert len(reverted) == 3
    for d in reverted:
        attempt = next(r for r in report.reverts if r.anchor == d.revert_anchor)
        assert attempt.result == "reverted" and attempt.drift_anchor == d.anchor
        assert attempt.run_id == d.resolved_run_id and attempt.kind == d.kind
    # The failed and dry-run attempts point at the occurrence they acted on (then open).
    assert by_anchor[failed.drift_anchor].kind == "Deployment"
    assert by_anchor[failed.drift_anchor].revert_anchor == web.anchor

    s = report.summary
    assert (s.reverts_reverted, s.reverts_failed, s.reverts_dry_run, s.revert_caps) == (
        3, 1, 3, 1)
    controls = {c.id: c for c in report.controls}
    da11 = controls["DA-11"]
    assert da11.criteria == ["CC7.4"]
    assert (da11.population, da11.exceptions, da11.result) == (8, 2, "exceptions")
    assert {e.href for e in da11.evidence} >= {f"#{failed.anchor}", f"#{cap.anchor}"}
    assert "#reverts" in {e.href for e in controls["DA-8"].evidence}
    # Nothing adopted: the emergency-change control is shown, not applicable in the period.
    assert (controls["DA-12"].result, controls["DA-12"].population) == ("not-applicable", 0)
    assert controls["DA-12"].note.startswith("Not applicable in period: no drift was adopted")

    page = render_html(report)
    assert_links_resolve(report, page)
    found = anchors(page)
    for r in report.reverts:
        assert r.anchor in found.ids
    for d in reverted:
        assert d.revert_anchor in found.links
    assert f'href="#{failed.drift_anchor}"' in page
    # Long values may wrap at their separators (<wbr>): the text reads the same.
    assert "shop/web:6.6.6-hotfix → shop/web:1.0.0" in page.replace("<wbr>", "")
    assert failed.error in page.replace("&#39;", "'").replace("&#34;", '"')
    assert 'id="t-revert-caps"' in page and "Revert attempt" in page  # appendix term

    csv_reverts = export.to_csv(report, "reverts")
    table = list(csv.DictReader(io.StringIO(csv_reverts)))
    assert [r["result"] for r in table] == [r.result for r in report.reverts]
    assert table[-1]["previous_live"].split(";")[0] and "6.6.6-hotfix" in \
        table[-1]["previous_live"]
    json_doc = export.to_json(report)
    doc = json.loads(json_doc)
    assert len(doc["reverts"]) == 7 and doc["revert_caps"][0]["planned"] == 3
    everything: list[str | bytes] = [page, csv_reverts, json_doc, export.to_csv(report, "drifts"),
                  export.to_csv(report, "changes"), export.to_csv(report, "emergency")]
    assert_no_secret(*everything)

    # Fleet: the same ledger twice (two files) — anchors qualified, links still resolve.
    other = tmp_path / "other.db"
    shutil.copy(ledger, other)
    model = fleet.load_fleet([ledger, other], start, _end(), cfg)
    fpage = render_html(model.report)
    assert_links_resolve(model.report, fpage)
    assert len(model.report.reverts) == 14 and len(model.report.revert_caps) == 2
    assert {r.anchor.split(":")[0] for r in model.report.reverts} == {
        m.cluster for m in model.members}
    for d in model.report.drifts:
        if d.how == "reverted":
            assert d.revert_anchor.split(":")[0] == d.cluster
    assert model.report.summary.reverts_failed == 2
    assert_no_secret(fpage, export.to_json(model.report), export.to_csv(model.report, "reverts"))

    assert render_in_chromium(tmp_path, "reverts.html", page) == []


def _adopt_config(kubeconfig: Path, tmp_path: Path) -> Config:
    return config_mod.load("/dev/null", env={}, overrides={
        "cluster": {"name": "prod-eu", "kubeconfig": str(kubeconfig)},
        "ledger": {"path": str(tmp_path / "ledger.db")}})


def test_adopted_and_merged_drift_is_an_emergency_change_with_its_merge(
        sandbox: Sandbox, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("apps/namespace.yaml", NAMESPACE)
    repo.write("apps/shop.yaml", ADOPT_SHOP)
    repo.commit("shop: web 1.4.2")
    apps = repo.path / "apps"
    cfg = _adopt_config(kubeconfig, tmp_path)
    start = datetime.now(UTC).replace(microsecond=0)
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f", str(apps))
    run_once(cfg, desired_path=str(apps))
    # The audit events of the very requests kubectl made, by alice.
    events = [e for args in (("set", "image", "deployment/web", "web=shop/web:1.5.0-hotfix"),
                             ("scale", "deployment/web", "--replicas=5"))
              for e in as_user(kubectl, "alice@shop.example", PERSON_GROUPS, "-n", "shop",
                               *args)]
    audit_log = write_log(tmp_path / "audit.log", events)
    run_once(cfg, desired_path=str(apps), audit_log=str(audit_log))
    with reading(cfg.ledger.path) as conn:
        (drift,) = drifts(conn)
    adopted = adopt(Request(target=str(drift["id"]), desired=str(apps), by="oncall@shop",
                              tools_dir=str(TOOLS)), cfg)
    assert adopted.refusals == []

    # Before the merge: pending review.
    pending = period.build(cfg.ledger.path, start, _end(), cfg)
    [before] = pending.emergency
    assert (before.state, before.merged, before.approved_at) == ("pending", False, "")
    assert before.outcome == "pending merge" and before.time_to_approval_s is None

    # Ledger times have whole seconds: the merge is seen in a later second than the adoption,
    # so a period can end between them.
    time.sleep(1.1)
    repo.merge(adopted.branch, "Merge pull request #77 from drift-auditor/adopt\n\n"
                               "Reviewed-by: Dana Ops <dana@example.com>")
    merged = run_once(cfg, desired_path=str(apps))
    assert merged.ledger["drifts_resolved"] == {"git-changed": 1}
    # A second emergency change, adopted and not merged at the period's end.
    kubectl("-n", "shop", "label", "service/web", "incident=inc-4712")
    run_once(cfg, desired_path=str(apps))
    with reading(cfg.ledger.path) as conn:
        (second,) = drifts(conn)
    again = adopt(Request(target=str(second["id"]), desired=str(apps), by="oncall@shop",
                            tools_dir=str(TOOLS)), cfg)
    assert again.refusals == []

    report = period.build(cfg.ledger.path, start, _end(), cfg)
    first, later = report.emergency
    assert first.drift_id == drift["id"] and later.drift_id == second["id"]
    assert (first.branch, first.commit, first.adopted_by) == (
        adopted.branch, adopted.commit, "oncall@shop")
    assert first.merged and first.merged_commit == adopted.commit
    assert first.state == "approved"
    assert first.outcome == f"resolved: Git changed to match (commit {adopted.commit[:12]})"
    assert first.users == ["alice@shop.example"]
    assert "kubectl-set" in first.changed_by
    assert first.changed_at and first.approved_at > first.adopted_at >= first.changed_at
    assert first.time_to_approval_s == int(
        (datetime.fromisoformat(first.approved_at) - datetime.fromisoformat(first.changed_at))
        .total_seconds()) > 0
    assert sorted(first.paths) == ["spec.replicas",
                                   "spec.template.spec.containers[name=web].image"]
    assert (later.state, later.merged, later.outcome) == ("pending", False, "pending merge")

    # The drift row links its adoption, the adoption links its drift occurrence.
    ep = next(d for d in report.drifts if d.anchor == first.drift_anchor)
    assert ep.how == "git-changed" and ep.adoption_anchor == first.anchor
    s = report.summary
    assert (s.emergency_changes, s.emergency_approved) == (2, 1)
    controls = {c.id: c for c in report.controls}
    da12 = controls["DA-12"]
    # The pending adoption is minutes old: within the SLA, not an exception.
    assert (da12.criteria, da12.population, da12.exceptions, da12.result) == (
        ["CC8.1"], 2, 0, "pass")
    assert "#emergency" in {e.href for e in controls["DA-9"].evidence}
    # Three days on, the unmerged adoption has outlived the 24 h SLA: an exception, linked.
    later_end = start + timedelta(days=3)
    stale = {c.id: c for c in period.build(cfg.ledger.path, start, later_end, cfg,
                                           now=later_end).controls}["DA-12"]
    assert (stale.exceptions, stale.result) == (1, "exceptions")
    assert f"#{later.anchor}" in {e.href for e in stale.evidence}
    assert controls["DA-11"].result == "not-applicable"  # no revert attempted

    page = render_html(report)
    assert_links_resolve(report, page)
    found = anchors(page)
    assert first.anchor in found.ids and first.drift_anchor in found.links
    assert first.anchor in found.links  # from the drift table
    assert adopted.commit[:12] in page and adopted.branch in page
    assert "resolved: Git changed to match" in page and "alice@shop.example" in page
    assert "Emergency change" in page and "Retroactive approval" in page  # appendix
    table = list(csv.DictReader(io.StringIO(export.to_csv(report, "emergency"))))
    assert [(r["state"], r["merged_commit"]) for r in table] == [
        ("approved", adopted.commit), ("pending", "")]
    doc = json.loads(export.to_json(report))
    assert doc["emergency"][0]["merged_commit"] == adopted.commit

    # A period that ended before the merge was seen shows it pending, as it was then.
    cut = datetime.fromisoformat(first.approved_at.replace("Z", "+00:00"))
    earlier = period.build(cfg.ledger.path, start, cut, cfg)
    [then] = earlier.emergency
    assert (then.state, then.approved_at, then.merged, then.merged_commit) == (
        "pending", "", False, "")
    assert then.outcome == "pending merge at the period's end"

    # Fleet over this ledger and a copy: qualified anchors, links resolve.
    other = tmp_path / "copy.db"
    shutil.copy(cfg.ledger.path, other)
    model = fleet.load_fleet([cfg.ledger.path, other], start, _end(), cfg)
    fpage = render_html(model.report)
    assert_links_resolve(model.report, fpage)
    assert len(model.report.emergency) == 4
    assert all(c.anchor.startswith(f"{c.cluster.split(' ')[0]}:adopt-")
               for c in model.report.emergency)

    assert render_in_chromium(tmp_path, "emergency.html", page) == []
