"""The report's "Tool configuration during the period" and control DA-15: the version in force
at the period's start, each change in the period with its diff, who made it and whether it
was approved (a Git commit with a Reviewed-by/Approved-by trailer by someone else), in the
HTML, the CSV (``--table config``) and the JSON."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

import orjson

from auditor import config as config_mod
from auditor.config import Config
from auditor.ledger import Ledger, configlog
from auditor.pipeline import configuration, record_configuration
from auditor.report import configchanges, export, period
from auditor.report.html import render_html
from auditor.report.model import Report
from tests.gitfixtures import RepoBuilder
from tests.ledger.helpers import at

CONFIG = """\
scope: {exclude-namespaces: [kube-system]}
policies: {directory: POLICIES}
"""
IGNORE = """\
apiVersion: drift-auditor.io/v1
kind: DriftIgnore
metadata: {name: hpa-replicas}
spec:
  match: {group: apps, kind: Deployment}
  paths: [spec.replicas]
"""
ALICE = ("Alice Admin", "alice@example.com")


def _run(db: Path, cfg: Config, origin: configlog.Origin, hours: float) -> None:
    snap = configuration(cfg, origin)
    with Ledger.open(db, config_hash=snap.digest) as ledger:
        run = ledger.begin_run(started_at=at(hours))
        record_configuration(run, snap)
        run.finish("complete")


def _report(db: Path, cfg: Config, start: float, end: float) -> Report:
    return period.build(db, at(start), at(end), cfg, now=at(end + 1))


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name == "href" and value and value.startswith("#"):
                self.links.append(value[1:])


def _links_resolve(page: str) -> None:
    found = _Anchors()
    found.feed(page)
    assert len(set(found.ids)) == len(found.ids), "duplicate ids"
    assert set(found.links) <= set(found.ids), set(found.links) - set(found.ids)


def _plain_setup(tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ignore.yaml").write_text(IGNORE)
    file = tmp_path / "drift-auditor.yaml"
    file.write_text(CONFIG.replace("POLICIES", str(policies)))
    return file, policies


def test_a_settings_change_mid_period_appears_with_its_diff(tmp_path: Path) -> None:
    file, _ = _plain_setup(tmp_path)
    db = tmp_path / "ledger.db"
    origin = configlog.Origin.of(file, [])
    for hour in (0, 1, 2):
        _run(db, config_mod.load(file), origin, hour)
    file.write_text(file.read_text().replace("[kube-system]", "[kube-system, monitoring]"))
    cfg = config_mod.load(file)
    for hour in (3, 4):
        _run(db, cfg, origin, hour)
    report = _report(db, cfg, 0.5, 5)
    tc = report.configuration
    assert tc.recorded
    assert [v.id for v in tc.in_force] == [1] and not tc.in_force[0].in_period
    [change] = tc.changes
    assert change.id == 2 and change.at == "2026-11-20T12:00:00Z" and change.in_period
    assert change.previous_digest == tc.in_force[0].digest and not change.baseline
    assert "+    - monitoring" in change.diff
    assert change.changed == [f"{file.resolve()} (changed)"]
    assert change.who == [configchanges.UNKNOWN_WHO] and not change.approved
    assert "not under version control" in change.exception
    control = {c.id: c for c in report.controls}["DA-15"]
    assert (control.population, control.exceptions, control.result) == (1, 1, "exceptions")
    assert "#cfgv-2" in [e.href for e in control.evidence]

    page = render_html(report)
    assert "Tool configuration during the period" in page and 'id="cfgv-2"' in page
    assert "+    - monitoring" in page and "no approval" in page
    assert 'id="cfgv-1"' in page and "Configuration in force (YAML)" in page
    _links_resolve(page)
    rows = list(csv.DictReader(io.StringIO(export.to_csv(report, "config"))))
    assert [(r["version_id"], r["in_period"], r["approved"]) for r in rows] == [
        ("1", "no", "no"), ("2", "yes", "no")]
    assert "+    - monitoring" in rows[1]["diff"]
    doc = orjson.loads(export.to_json(report))
    assert doc["configuration"]["changes"][0]["diff"] == change.diff

    # A period without a change: the version in force, nothing to test.
    quiet = _report(db, cfg, 3.5, 5)
    assert [v.id for v in quiet.configuration.in_force] == [2]
    assert not quiet.configuration.changes
    assert {c.id: c for c in quiet.controls}["DA-15"].result == "not-tested"


def test_approved_in_git_passes_a_self_review_does_not(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "ops")
    repo.write("policies/ignore.yaml", IGNORE)
    file = repo.write("drift-auditor.yaml", CONFIG.replace("POLICIES",
                                                           str(repo.path / "policies")))
    first = repo.commit("Audit config\n\nReviewed-by: Bob Reviewer <bob@example.com>",
                        author=ALICE)
    db = tmp_path / "ledger.db"
    origin = configlog.Origin.of(file, [])
    _run(db, config_mod.load(file), origin, 0)
    repo.write("policies/ignore.yaml", IGNORE.replace("[spec.replicas]",
                                                      "[spec.replicas, spec.paused]"))
    second = repo.commit("Ignore paused too\n\nReviewed-by: Alice Admin <alice@example.com>",
                         author=ALICE)
    cfg = config_mod.load(file)
    _run(db, cfg, origin, 1)
    report = _report(db, cfg, -1, 2)
    baseline, change = report.configuration.changes
    assert baseline.baseline and baseline.approved and not baseline.exception
    assert baseline.who == ["Alice Admin <alice@example.com>"]
    assert baseline.approvers == ["Bob Reviewer <bob@example.com>"]
    assert baseline.commits == [f"{first[:12]} Audit config"]
    assert change.changed == [f"{repo.path / 'policies' / 'ignore.yaml'} (changed)"]
    assert change.who == ["Alice Admin <alice@example.com>"]
    assert change.commits == [f"{second[:12]} Ignore paused too"]
    assert not change.approved and "no Reviewed-by or Approved-by trailer by someone else" \
        in change.exception
    control = {c.id: c for c in report.controls}["DA-15"]
    assert (control.population, control.exceptions) == (2, 1)
    _links_resolve(render_html(report))


def test_an_uncommitted_edit_or_an_environment_setting_has_no_author(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "ops")
    file = repo.write("drift-auditor.yaml", CONFIG.replace("POLICIES", "nowhere"))
    repo.commit("Audit config\n\nApproved-by: Bob Reviewer <bob@example.com>", author=ALICE)
    db = tmp_path / "ledger.db"
    origin = configlog.Origin.of(file, [])
    _run(db, config_mod.load(file), origin, 0)
    file.write_text(file.read_text().replace("[kube-system]", "[]"))  # not committed
    _run(db, config_mod.load(file), origin, 1)
    env = {"DRIFT_AUDITOR_SCOPE_EXCLUDE_NAMESPACES": "kube-public"}
    cfg = config_mod.load(file, env=env)
    _run(db, cfg, configlog.Origin.of(file, env), 2)
    report = _report(db, cfg, -1, 3)
    baseline, edited, from_env = report.configuration.changes
    assert baseline.approved and baseline.approvers == ["Bob Reviewer <bob@example.com>"]
    assert edited.who == [configchanges.UNKNOWN_WHO] and not edited.approved
    assert edited.exception == f"uncommitted: differs from what Git holds: {file.resolve()}"
    assert from_env.who == [configchanges.UNKNOWN_WHO] and not from_env.approved
    assert "settings changed outside the config file" in from_env.exception
    assert "+    - kube-public" in from_env.diff


def test_a_ledger_without_configuration_versions(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db) as ledger:
        ledger.begin_run(started_at=at(0)).finish("complete")
    report = _report(db, Config(), -1, 1)
    assert not report.configuration.recorded
    assert "DA-15" not in {c.id for c in report.controls}
    page = render_html(report)
    assert "holds no configuration version" in page
    _links_resolve(page)
