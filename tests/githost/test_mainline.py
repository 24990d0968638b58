"""The first-parent chain of an audited range, from a real repository with ``git merge
--no-ff`` merges: the same commits ``git rev-list --first-parent`` lists, each merge owning
exactly what ``M^1..M`` adds, feature-branch commits never counted as changes."""

from __future__ import annotations

from pathlib import Path

from auditor.desired.gitrepo import Repository
from auditor.githost import changes_of
from auditor.githost.mainline import first_parent
from tests.gitfixtures import RepoBuilder, configmap, git

BOB = ("Bob", "bob@example.com")


def _history(tmp_path: Path) -> tuple[RepoBuilder, str]:
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("apps/a.yaml", configmap("a", namespace="shop"))
    base = repo.commit("Bootstrap")
    repo.checkout("feature-1", new=True)
    repo.write("apps/b.yaml", configmap("b", namespace="shop"))
    repo.commit("Add b", author=BOB)
    repo.write("apps/b.yaml", configmap("b", "v2", namespace="shop"))
    repo.commit("Tune b\n\nReviewed-by: Carol <carol@example.com>", author=BOB)
    repo.checkout("main")
    repo.merge("feature-1", "Merge pull request #1 from acme/feature-1")
    repo.write("apps/a.yaml", configmap("a", "hot", namespace="shop"))
    repo.commit("Hotfix straight on main")
    repo.checkout("feature-2", new=True)
    repo.write("apps/c.yaml", configmap("c", namespace="shop"))
    repo.commit("Add c", author=BOB)
    repo.checkout("main")
    repo.merge("feature-2", "Merge pull request #2 from acme/feature-2")
    return repo, base


def test_first_parent_matches_git_rev_list(tmp_path: Path) -> None:
    repo, base = _history(tmp_path)
    commits = Repository(repo.path).commits_between(base)
    assert len(commits) == 6  # what the range holds, feature commits included
    chain = first_parent(commits, repo.head())
    expected = git(repo.path, "rev-list", "--first-parent", f"{base}..HEAD").split()
    assert [c.sha for c in chain] == expected and len(chain) == 3
    for link in chain:
        parents = git(repo.path, "rev-list", "--parents", "-n1", link.sha).split()[1:]
        added = git(repo.path, "rev-list", f"{parents[0]}..{link.sha}").split()
        assert sorted(link.introduced) == sorted(s for s in added if s != link.sha)


def test_changes_carry_the_merged_commits_trailers_and_objects(tmp_path: Path) -> None:
    repo, base = _history(tmp_path)
    commits = Repository(repo.path).commits_between(base)
    by_sha = {c.sha: c for c in commits}
    tune = next(c for c in commits if c.subject == "Tune b")
    changes = changes_of("shop", "https://github.com/acme/gitops", commits, repo.head(),
                         {tune.sha: [("", "ConfigMap", "shop", "b")]})
    merge1 = next(c for c in changes if c.pr_hint == 1)
    assert ("Reviewed-by", "Carol <carol@example.com>") in merge1.trailers
    assert merge1.authors == ("Bob <bob@example.com>",)
    assert merge1.objects == (("", "ConfigMap", "shop", "b"),)
    hotfix = next(c for c in changes if c.subject == "Hotfix straight on main")
    assert hotfix.introduced == () and hotfix.pr_hint is None
    assert len(by_sha[merge1.sha].parents) == 2
