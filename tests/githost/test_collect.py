"""One run's approvals against the fake host and a real repository whose pull requests were
merged with ``git merge --no-ff``: an independent approval authorizes, a self-approval is an
exception, a rate limit leaves the commit unknown (never unapproved), a cached answer serves
an offline run, and without a host the trailers decide, labelled as not verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.config import ApprovalsConfig, Source
from auditor.desired.gitrepo import Repository
from auditor.githost import Change, HostSettings, changes_of, collect, resolve
from auditor.githost.model import TRAILER_LABEL
from tests.gitfixtures import RepoBuilder, configmap
from tests.githost.fakehost import FakeHost

BOB = ("Bob", "bob@example.com")
ALICE = ("Alice", "alice@example.com")
REPO_URL = "https://github.com/acme/gitops.git"


def _repo(tmp_path: Path) -> tuple[RepoBuilder, list[Change], dict[str, str]]:
    """Two pull requests merged with --no-ff: #1 by alice, #2 by bob."""
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("apps/a.yaml", configmap("a", namespace="shop"))
    base = repo.commit("Bootstrap")
    shas: dict[str, str] = {}
    repo.checkout("feature-1", new=True)
    repo.write("apps/a.yaml", configmap("a", "v2", namespace="shop"))
    shas["head1"] = repo.commit("Tune a", author=ALICE)
    repo.checkout("main")
    shas["merge1"] = repo.merge("feature-1", "Merge pull request #1 from acme/feature-1")
    repo.checkout("feature-2", new=True)
    repo.write("apps/b.yaml", configmap("b", namespace="shop"))
    shas["first2"] = repo.commit("Add b", author=BOB)
    repo.write("apps/b.yaml", configmap("b", "v2", namespace="shop"))
    shas["head2"] = repo.commit("Tune b", author=BOB)
    repo.checkout("main")
    shas["merge2"] = repo.merge("feature-2", "Merge pull request #2 from acme/feature-2")
    commits = Repository(repo.path).commits_between(base)
    changes = changes_of("shop", REPO_URL, commits, repo.head(), {
        shas["head1"]: [("", "ConfigMap", "shop", "a")],
        shas["head2"]: [("", "ConfigMap", "shop", "b")]})
    return repo, changes, shas


def _host(host: FakeHost, shas: dict[str, str]) -> None:
    # #1: alice approved her own pull request (GitHub forbids it; an admin bypass or another
    # host may not), #2: approved by carol on its head commit, after a stale approval.
    host.github_pr(1, merge_sha=shas["merge1"], head=shas["head1"], author="alice",
                   merged_by="alice", commits=[(shas["head1"], "alice")],
                   reviews=[("alice", "APPROVED", shas["head1"])])
    host.github_pr(2, merge_sha=shas["merge2"], head=shas["head2"], author="bob",
                   merged_by="dave", commits=[(shas["first2"], "bob"), (shas["head2"], "bob")],
                   reviews=[("erin", "APPROVED", shas["first2"]),
                            ("carol", "COMMENTED", shas["first2"]),
                            ("carol", "APPROVED", shas["head2"])],
                   checks=[("ci", "success"), ("lint", "failure")])
    host.protection["main"] = {
        "url": "", "required_status_checks": {"strict": True, "contexts": ["ci"],
                                              "checks": [{"context": "ci", "app_id": 15368}]},
        "required_pull_request_reviews": {"dismiss_stale_reviews": True,
                                          "require_code_owner_reviews": False,
                                          "required_approving_review_count": 1,
                                          "require_last_push_approval": True},
        "enforce_admins": {"url": "", "enabled": False},
        "allow_force_pushes": {"enabled": False}, "required_linear_history": {"enabled": False}}


def _settings(host: FakeHost, token: str = "t0k", wait: float = 0.0) -> HostSettings:
    return HostSettings("github", host.url, "acme/gitops", "main", token, wait, 5.0)


def test_independent_approval_authorizes_and_self_approval_is_an_exception(
        tmp_path: Path) -> None:
    _, changes, shas = _repo(tmp_path)
    with FakeHost(token="t0k", page_size=1) as host:  # every list over 2+ pages
        _host(host, shas)
        out = collect(changes, {"shop": _settings(host)}, cache_root=tmp_path / "cache",
                      now="2026-11-02T00:00:00Z")
    by_pr = {a.pr: a for a in out.approvals}
    assert set(by_pr) == {1, 2} and len(out.approvals) == 2  # merges only, not their commits
    own = by_pr[1]
    assert own.verdict == "exception" and own.reason.startswith("approved by its own author")
    assert own.change.sha == shas["merge1"] and own.change.objects == (("", "ConfigMap", "shop",
                                                                        "a"),)
    good = by_pr[2]
    assert good.verdict == "authorized" and good.approvers == ("carol",)
    assert good.source == "git host (github)" and good.merged_by == "dave"
    assert good.author == "bob" and good.last_pusher == "bob" and good.head == shas["head2"]
    assert [(r.reviewer, r.state, r.commit) for r in good.reviews][-1] == \
        ("carol", "APPROVED", shas["head2"])
    assert {(c.name, c.required) for c in good.checks} == {("ci", True), ("lint", False)}
    [(source, protection)] = out.protections
    assert source == "shop" and protection.state == "protected"
    assert protection.required_checks == ("ci",)
    assert protection.rules["require_last_push_approval"] is True
    assert not out.problems
    assert max(int(s.query.get("page", "1")) for s in host.seen) >= 2


def test_rate_limited_is_unknown_not_unapproved(tmp_path: Path) -> None:
    _, changes, shas = _repo(tmp_path)
    with FakeHost(token="t0k", limit_after=2, reset_in=3600) as host:
        _host(host, shas)
        out = collect(changes, {"shop": _settings(host)}, cache_root=tmp_path / "cache",
                      now="2026-11-02T00:00:00Z")
        asked = len(host.seen)
    assert {a.verdict for a in out.approvals} == {"unknown"}
    assert all(a.reason.startswith("rate limited") for a in out.approvals)
    assert [p for _s, p in out.problems] and "asked again next run" in out.problems[0][1]
    assert asked <= 4  # after the limit, nothing more is asked this run
    # Nothing unknown is cached: the next run asks again, and gets its answers.
    with FakeHost(token="t0k") as host:
        _host(host, shas)
        again = collect(changes, {"shop": _settings(host)}, cache_root=tmp_path / "cache",
                        now="2026-11-03T00:00:00Z")
    assert sorted(a.verdict for a in again.approvals) == ["authorized", "exception"]


def test_offline_from_the_cache(tmp_path: Path) -> None:
    _, changes, shas = _repo(tmp_path)
    with FakeHost(token="t0k") as host:
        _host(host, shas)
        online = collect(changes, {"shop": _settings(host)}, cache_root=tmp_path / "cache",
                         now="2026-11-02T00:00:00Z")
        url = host.url
    # The host is gone: the same commits are judged from the cache, and say so.
    offline = collect(changes, {"shop": HostSettings("github", url, "acme/gitops", "main",
                                                     "t0k", 0.0, 1.0)},
                      cache_root=tmp_path / "cache", now="2026-11-03T00:00:00Z")
    assert [(a.pr, a.verdict, a.approvers) for a in offline.approvals] == \
        [(a.pr, a.verdict, a.approvers) for a in online.approvals]
    assert all(a.cached for a in offline.approvals)
    assert all(a.fetched_at == "2026-11-02T00:00:00Z" for a in offline.approvals)
    [(_s, protection)] = offline.protections
    assert protection.state == "protected" and protection.cached
    for path in (tmp_path / "cache").rglob("*.json"):
        assert "t0k" not in path.read_text()


def test_without_a_host_trailers_decide_labelled(tmp_path: Path) -> None:
    _, changes, _shas = _repo(tmp_path)
    out = collect(changes, {}, cache_root=None, now="2026-11-02T00:00:00Z")
    assert {a.source for a in out.approvals} == {TRAILER_LABEL}
    assert {a.verdict for a in out.approvals} == {"exception"}  # no trailer in these merges
    assert out.protections == []


def test_gitlab_merge_requests(tmp_path: Path) -> None:
    _, changes, shas = _repo(tmp_path)
    with FakeHost(provider="gitlab", token="glpat", page_size=1) as host:
        host.gitlab_mr(1, merge_sha=shas["merge1"], head=shas["head1"], author="alice",
                       merged_by="alice", commits=[(shas["head1"], "Alice")],
                       approvers=["alice"])
        host.gitlab_mr(2, merge_sha=shas["merge2"], head=shas["head2"], author="bob",
                       merged_by="dave",
                       commits=[(shas["first2"], "Bob"), (shas["head2"], "Bob")],
                       approvers=["carol"])
        host.protected["main"] = {"id": 1, "name": "main", "allow_force_push": False,
                                  "push_access_levels": [{"access_level": 40,
                                                          "access_level_description":
                                                              "Maintainers"}],
                                  "merge_access_levels": [{"access_level": 30,
                                                           "access_level_description":
                                                               "Developers + Maintainers"}]}
        settings = HostSettings("gitlab", host.url, "acme/gitops", "main", "glpat", 0.0, 5.0)
        out = collect(changes, {"shop": settings}, cache_root=tmp_path / "cache",
                      now="2026-11-02T00:00:00Z")
    by_pr = {a.pr: a for a in out.approvals}
    assert by_pr[1].verdict == "exception" and "own author" in by_pr[1].reason
    assert by_pr[2].verdict == "authorized" and by_pr[2].approvers == ("carol",)
    assert by_pr[2].merged_by == "dave" and by_pr[2].source == "git host (gitlab)"
    [(_s, protection)] = out.protections
    assert protection.rules["reset_approvals_on_push"] is True
    assert protection.rules["push_access_levels"] == ["Maintainers"]


@pytest.mark.parametrize(("url", "provider", "repo", "api"), [
    ("https://github.com/acme/gitops.git", "github", "acme/gitops", "https://api.github.com"),
    ("git@github.com:acme/gitops.git", "github", "acme/gitops", "https://api.github.com"),
    ("ssh://git@gitlab.com/acme/platform/gitops.git", "gitlab", "acme/platform/gitops",
     "https://gitlab.com/api/v4"),
])
def test_provider_and_repo_from_the_url(url: str, provider: str, repo: str, api: str) -> None:
    settings, warnings = resolve(Source(url=url, revision="main",
                                        approvals=ApprovalsConfig(token_env="TOKEN")),
                                 "sources[0]", {"TOKEN": "abc"})
    assert (settings.provider, settings.repo, settings.api_url, settings.branch) == \
        (provider, repo, api, "main")
    assert settings.token == "abc" and "abc" not in repr(settings) and warnings == []


def test_a_host_that_cannot_be_told_is_a_config_error() -> None:
    from auditor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sources\[0\]\.approvals\.provider"):
        resolve(Source(url="/srv/gitops", approvals=ApprovalsConfig()), "sources[0]", {})
    settings, warnings = resolve(
        Source(url="https://git.example.com/acme/gitops.git",
               approvals=ApprovalsConfig(provider="github", token_env="MISSING")),
        "sources[0]", {})
    assert settings.api_url == "https://git.example.com/api/v3"
    assert warnings and "MISSING is not set" in warnings[0]
