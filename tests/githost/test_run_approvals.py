"""Approvals end to end: real runs (sandbox API server, kubectl 1.35 as the GitOps sync, a
Git repository whose pull requests are merged with ``git merge --no-ff``) asking the fake
GitHub, recorded in the ledger on the hash chain, and read back by the report.

Sequence: sync → run 1 (baseline) → PR #1 (alice, approved by bob on its head) and PR #2
(carol, approved by carol alone) merged, synced → run 2 → PR #3 merged, synced, the host
rate limited → run 3 (PR #3 unknown) → run 3b (still limited: asked again, nothing new
recorded) → the limit lifted → run 4 (PR #3 judged).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor import config as config_mod
from auditor.config import Config
from auditor.ledger import approvals as ledger_approvals
from auditor.ledger.schema import reading
from auditor.ledger.verify import verify
from auditor.pipeline import run_once
from auditor.report import export, period
from auditor.report.html import render_html
from auditor.sandbox import Sandbox
from tests.conftest import kubectl_binary
from tests.gitfixtures import RepoBuilder, configmap, git
from tests.githost.fakehost import FakeHost

pytestmark = pytest.mark.kubectl

ALICE, BOB, CAROL = ("Alice", "alice@example.com"), ("Bob", "bob@example.com"), \
    ("Carol", "carol@example.com")
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
ENV = {"GH_TOKEN": "t0k-never-stored"}


@dataclass
class World:
    cfg: Config
    repo: RepoBuilder
    host: FakeHost
    shas: dict[str, str]
    start: datetime
    tmp: Path
    outcomes: list[object]


def _pr(repo: RepoBuilder, branch: str, file: str, value: str, who: tuple[str, str],
        number: int) -> tuple[str, str]:
    repo.checkout(branch, new=True)
    repo.write(file, configmap(Path(file).stem, value, namespace="shop"))
    head = repo.commit(f"Change {Path(file).stem}", author=who)
    repo.checkout("main")
    merge = repo.merge(branch, f"Merge pull request #{number} from acme/{branch}")
    return head, merge


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("approvals")
    repo = RepoBuilder(tmp / "gitops")
    repo.write("apps/namespace.yaml", NAMESPACE)
    repo.write("apps/settings.yaml", configmap("settings", "v1", namespace="shop"))
    repo.write("apps/flags.yaml", configmap("flags", "v1", namespace="shop"))
    repo.write("apps/limits.yaml", configmap("limits", "v1", namespace="shop"))
    repo.commit("Bootstrap the shop")
    binary = kubectl_binary()
    start = datetime.now(UTC).replace(microsecond=0)
    shas: dict[str, str] = {}
    outcomes: list[object] = []
    with Sandbox() as sandbox, FakeHost(token=ENV["GH_TOKEN"], page_size=1) as host:
        kubeconfig = sandbox.write_kubeconfig(tmp / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp),
               "KUBECACHEDIR": str(tmp / "kube-cache")}

        def sync() -> None:
            for target in ("apps/namespace.yaml", "apps"):  # the namespace first
                proc = subprocess.run([str(binary), "apply", "--server-side",
                                       "--force-conflicts", "--field-manager=argocd-controller",
                                       "-f", str(repo.path / target)], env=env,
                                      capture_output=True, text=True, timeout=60)
                assert proc.returncode == 0, proc.stderr

        (tmp / "drift-auditor.yaml").write_text(f"""
sources:
  - name: shop
    url: {repo.path}
    revision: main
    paths: [apps]
    approvals: {{provider: github, repo: acme/gitops, api-url: "{host.url}",
                 token-env: GH_TOKEN, max-wait-seconds: 0}}
cluster: {{name: test-cluster, kubeconfig: {kubeconfig}, retries: 1}}
ledger: {{path: {tmp / 'ledger.db'}}}
policies: {{enabled: false}}
reports: {{schedule-minutes: 60}}
""")
        cfg = config_mod.load(tmp / "drift-auditor.yaml")
        host.protection["main"] = {
            "required_status_checks": {"strict": True, "contexts": ["ci"], "checks": []},
            "required_pull_request_reviews": {"required_approving_review_count": 1,
                                              "dismiss_stale_reviews": True},
            "enforce_admins": {"enabled": True}}
        sync()
        outcomes.append(run_once(cfg, env=ENV))
        shas["head1"], shas["merge1"] = _pr(repo, "pr-1", "apps/settings.yaml", "v2", ALICE, 1)
        shas["head2"], shas["merge2"] = _pr(repo, "pr-2", "apps/flags.yaml", "v2", CAROL, 2)
        host.github_pr(1, merge_sha=shas["merge1"], head=shas["head1"], author="alice",
                       merged_by="bob", commits=[(shas["head1"], "alice")],
                       reviews=[("bob", "APPROVED", shas["head1"])], checks=[("ci", "success")])
        host.github_pr(2, merge_sha=shas["merge2"], head=shas["head2"], author="carol",
                       merged_by="carol", commits=[(shas["head2"], "carol")],
                       reviews=[("carol", "APPROVED", shas["head2"])],
                       checks=[("ci", "success")])
        sync()
        outcomes.append(run_once(cfg, env=ENV))
        shas["head3"], shas["merge3"] = _pr(repo, "pr-3", "apps/limits.yaml", "v2", ALICE, 3)
        host.github_pr(3, merge_sha=shas["merge3"], head=shas["head3"], author="alice",
                       merged_by="bob", commits=[(shas["head3"], "alice")],
                       reviews=[("bob", "APPROVED", shas["head3"])], checks=[("ci", "success")])
        sync()
        host.limit_after = len(host.seen) + 1  # the protection snapshot, then the limit
        outcomes.append(run_once(cfg, env=ENV))
        host.limit_after = len(host.seen) + 1  # still limited: nothing new to record
        outcomes.append(run_once(cfg, env=ENV))
        host.limit_after = None
        time.sleep(1.1)  # ledger times are whole seconds: run 4 starts after run 3's second
        outcomes.append(run_once(cfg, env=ENV))
        yield World(cfg, repo, host, shas, start, tmp, outcomes)


def _bootstrap(world: World) -> str:
    return git(world.repo.path, "rev-list", "--max-parents=0", "HEAD")


def _report(world: World) -> period.Report:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return period.build(world.cfg.ledger.path, world.start, end, world.cfg)


def test_the_ledger_records_each_merge_once_per_judgement_on_the_chain(world: World) -> None:
    with reading(world.cfg.ledger.path) as conn:
        rows = ledger_approvals.rows_until(conn, "9999")
        assert verify(conn).ok
    changes = [(r["sha"], r["verdict"], r["run_id"]) for r in rows if r["kind"] == "change"]
    s = world.shas
    run2, run3, _still, run4 = (o.run_id for o in world.outcomes[1:])  # type: ignore[attr-defined]
    # Merges only: the feature-branch commits are part of their merge, not changes.
    assert sorted(changes) == sorted([(s["merge1"], "authorized", run2),
                                      (s["merge2"], "exception", run2),
                                      (s["merge3"], "unknown", run3),
                                      (s["merge3"], "authorized", run4)])
    protections = [r for r in rows if r["kind"] == "protection"]
    assert len(protections) == 5 and {r["verdict"] for r in protections} == {"protected"}
    assert protections[0]["protection"]["required_checks"] == ["ci"]
    first = next(r for r in rows if r["sha"] == s["merge1"])
    assert first["merged_by"] == "bob" and first["author"] == "alice"
    assert [(r["reviewer"], r["state"], r["commit"]) for r in first["reviews"]] == \
        [("bob", "APPROVED", s["head1"])]
    assert first["objects"] == [["", "ConfigMap", "shop", "settings"]]
    text = Path(world.cfg.ledger.path).read_bytes()
    assert ENV["GH_TOKEN"].encode() not in text
    for path in (Path(world.cfg.ledger.path).parent / ".drift-auditor-cache").rglob("*.json"):
        assert ENV["GH_TOKEN"] not in path.read_text()
    # Every request carried the token, to the configured API only.
    assert all(seen.headers.get("authorization") == f"Bearer {ENV['GH_TOKEN']}"
               for seen in world.host.seen)


def test_rate_limited_run_is_unknown_and_a_warning_not_an_exception(world: World) -> None:
    run3 = world.outcomes[2]
    warnings = [p.message for p in run3.audit.problems  # type: ignore[attr-defined]
                if "approvals:" in p.message]
    assert warnings and "rate limited" in warnings[0] and "asked again next run" in warnings[0]


def test_the_report_shows_each_change_with_its_approval(world: World) -> None:
    report = _report(world)
    s = world.shas
    by_sha = {a.sha: a for a in report.approvals}
    assert set(by_sha) == {s["merge1"], s["merge2"], s["merge3"]}
    assert by_sha[s["merge1"]].verdict == "authorized"
    assert by_sha[s["merge1"]].evidence == "git host (github)"
    assert by_sha[s["merge2"]].verdict == "exception"
    assert by_sha[s["merge2"]].reason.startswith("approved by its own author")
    late = by_sha[s["merge3"]]
    assert late.verdict == "authorized" and late.run_id != late.first_run_id
    # Authorized live changes name the merge that brought their file in, not the Git head.
    changes = {c.name: c for c in report.changes if c.authorization == "authorized"}
    settings, flags = changes["settings"], changes["flags"]
    assert settings.git_commit == s["merge1"] and settings.pr == 1
    assert settings.approval == "authorized" and settings.approvers == ["bob"]
    assert settings.approval_source == "git host (github)"
    assert flags.git_commit == s["merge2"] and flags.approval == "exception"
    head = world.repo.head()
    assert settings.git_commit != head
    # DA-9: the self-approved merge is an exception; the one unknown for a run never was.
    # The baseline run judged no range: its commits are the files' last commits, as before
    # (the bootstrap commit, without a pull request, is the other exception).
    da9 = next(c for c in report.controls if c.id == "DA-9")
    commits = {c.sha: c for c in report.commits}
    assert set(commits) == {s["merge1"], s["merge2"], s["merge3"], _bootstrap(world)}
    assert da9.exceptions == 2 and "without a pull request or independent approver" in da9.note
    assert {e.href for e in da9.evidence} >= {f"#commit-{s['merge2'][:12]}",
                                              f"#commit-{_bootstrap(world)[:12]}"}
    page = render_html(report)
    assert f'id="appr-{s["merge2"][:12]}"' in page and "approved by its own author" in page
    assert 'id="t-protection"' in page
    for control in report.controls:
        for evidence in control.evidence:
            assert f'id="{evidence.href[1:]}"' in page, evidence
    table = export.to_csv(report, "approvals")
    assert table.splitlines()[0].startswith("source,repo,commit,subject,pull_request,verdict")
    assert len(table.splitlines()) == 4
    population = export.changes_csv(report.changes)
    assert "git host (github)" in population


def test_a_period_with_only_the_rate_limited_run_says_unknown(world: World) -> None:
    with reading(world.cfg.ledger.path) as conn:
        run3_at = conn.execute("SELECT started_at FROM runs WHERE id = ?",
                               (world.outcomes[2].run_id,)).fetchone()[0]  # type: ignore[attr-defined]
        run4_at = conn.execute("SELECT started_at FROM runs WHERE id = ?",
                               (world.outcomes[4].run_id,)).fetchone()[0]  # type: ignore[attr-defined]
    start = datetime.fromisoformat(run3_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(run4_at.replace("Z", "+00:00"))
    assert end > start
    report = period.build(world.cfg.ledger.path, start, end, world.cfg)
    # As of the period's end, the rate-limited merge is unknown (run 4 has not judged it yet).
    item = next(a for a in report.approvals if a.sha == world.shas["merge3"])
    assert item.verdict == "unknown" and item.reason.startswith("rate limited")
    da9 = next(c for c in report.controls if c.id == "DA-9")
    assert "not judged" in da9.note
    assert not any(e.href.endswith(item.sha[:12]) for e in da9.evidence)
