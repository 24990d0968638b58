"""Desired-state assembly on a real repository: plain files, a kustomize overlay, a Helm chart."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitfixtures import TOOLS, RepoBuilder, configmap, deployment, git, tool

from auditor.config import HelmSource, Source
from auditor.desired.state import DesiredObject, _may_be_in_work_tree, load_desired, load_folder
from auditor.engine.records import ResourceKey
from auditor.errors import GitError, ToolMissingError

ALICE = ("Alice", "alice@example.com")
BOB = ("Bob", "bob@example.com")
CAROL = ("Carol", "carol@example.com")

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gates.example.com
spec:
  group: example.com
  scope: Cluster
  names: {kind: Gate, plural: gates}
  versions: [{name: v1, served: true, storage: true}]
"""

CHART = {
    "charts/shop/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.0.0\n",
    "charts/shop/values.yaml": "replicas: 1\n",
    "charts/shop/templates/deploy.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
        spec:
          replicas: {{ .Values.replicas }}
        """,
    "charts/shop/templates/role.yaml": """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata:
          name: {{ .Release.Name }}-reader
          namespace: should-be-dropped
        rules: []
        """,
}


@pytest.fixture
def repo(tmp_path: Path) -> tuple[RepoBuilder, dict[str, str]]:
    r = RepoBuilder(tmp_path / "origin")
    shas: dict[str, str] = {}
    r.write("apps/web.yaml", deployment("web") + "---\n" + configmap("web-config"))
    r.write("apps/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: x}\n")
    r.write("apps/other/cm.yaml", configmap("pinned", namespace="other"))
    r.write("apps/crd.yaml", CRD)
    r.write("apps/gate.yaml", "apiVersion: example.com/v1\nkind: Gate\nmetadata: {name: main}\n")
    r.write("apps/secret.yaml", """
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
        stringData: {password: p4ss-w0rd-value}
        """)
    r.write("k/base/kustomization.yaml", "resources: [deploy.yaml]\n")
    r.write("k/base/deploy.yaml", deployment("api"))
    r.write("k/overlays/prod/kustomization.yaml",
            "namespace: prod\nresources: [../../base]\npatches: [{path: replicas.yaml}]\n")
    r.write("k/overlays/prod/replicas.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 3}\n")
    for path, text in CHART.items():
        r.write(path, text)
    r.write("env/prod-values.yaml", "replicas: 4\n")
    shas["initial"] = r.commit("Initial", author=ALICE, date="2026-02-01T10:00:00Z")
    r.write("apps/web.yaml", deployment("web", "nginx:2") + "---\n" + configmap("web-config"))
    shas["web"] = r.commit("Bump web (#5)\n\nReviewed-by: Carol <carol@example.com>\n",
                           author=BOB, date="2026-02-02T10:00:00Z")
    r.checkout("tune", new=True)
    r.write("k/overlays/prod/replicas.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 6}\n")
    shas["patch"] = r.commit("More api replicas", author=CAROL, date="2026-02-03T10:00:00Z")
    r.checkout("main")
    shas["merge"] = r.merge("tune", "Merge pull request #9 from shop/tune",
                            date="2026-02-04T10:00:00Z")
    r.write("env/prod-values.yaml", "replicas: 7\n")
    shas["values"] = r.commit("Scale shop", author=ALICE, date="2026-02-05T10:00:00Z")
    return r, shas


def _sources(url: str) -> list[Source]:
    return [
        Source(url=url, name="apps", paths=("apps", "k/overlays/prod"), namespace="shop"),
        Source(url=url, name="chart", paths=("charts/shop",), namespace="store", render="helm",
               helm=HelmSource(release="store", values=("env/prod-values.yaml",))),
    ]


def _by_name(objects: dict[ResourceKey, DesiredObject]) -> dict[str, DesiredObject]:
    return {f"{k.kind}/{k.namespace}/{k.name}": v for k, v in objects.items()}


def test_sources_render_default_namespaces_and_attribute(
        tmp_path: Path, repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    tool("kubectl")
    tool("helm")
    origin, shas = repo
    state = load_desired(_sources(str(origin.path)), cache_dir=tmp_path / "cache",
                         tools_dir=TOOLS, secrets_env={})
    assert state.problems == ()
    assert state.commits == {"apps": shas["values"], "chart": shas["values"]}
    objs = _by_name(state.objects)
    assert sorted(objs) == [
        "ClusterRole//store-reader",
        "ConfigMap/other/pinned",
        "ConfigMap/shop/web-config",
        "CustomResourceDefinition//gates.example.com",
        "Deployment/prod/api",
        "Deployment/shop/web",
        "Deployment/store/store",
        "Gate//main",          # cluster-scoped through the CRD found in Git
        "Namespace//shop",
        "Secret/shop/creds",
    ]
    assert list(state.objects) == sorted(state.objects)
    # Namespace handling edits the object too, not only the key.
    assert "namespace" not in objs["Namespace//shop"].obj["metadata"]
    assert "namespace" not in objs["ClusterRole//store-reader"].obj["metadata"]
    assert objs["Deployment/shop/web"].obj["metadata"]["namespace"] == "shop"

    web = objs["Deployment/shop/web"].source
    assert (web.file, web.commit, web.author, web.author_email, web.pr, web.subject) == (
        "apps/web.yaml", shas["web"], "Bob", "bob@example.com", 5, "Bump web (#5)")
    assert web.trailers == (("Reviewed-by", "Carol <carol@example.com>"),)
    assert web.date == "2026-02-02T10:00:00+00:00"
    assert web.repo == str(origin.path)
    assert objs["ConfigMap/other/pinned"].source.commit == shas["initial"]

    # Kustomize: the object comes from the base file, but the overlay patch changed it last.
    api = objs["Deployment/prod/api"]
    assert api.obj["spec"]["replicas"] == 6
    assert api.source.file == "k/base/deploy.yaml"
    assert (api.source.commit, api.source.author, api.source.pr) == (shas["patch"], "Carol", 9)

    # Helm: the template file, attributed to the values change that last changed the render.
    store = objs["Deployment/store/store"]
    assert store.obj["spec"]["replicas"] == 7
    assert store.source.file == "charts/shop/templates/deploy.yaml"
    assert store.source.commit == shas["values"]


def test_bad_files_and_duplicates_are_problems_not_failures(
        tmp_path: Path, repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, _shas = repo
    origin.write("apps/dupe.yaml", configmap("web-config", namespace="shop"))
    origin.write("apps/broken.yaml", """
        apiVersion: v1
        kind: Secret
        metadata: {name: leaky}
        stringData:
          token: "abc-secret-123
        """)
    origin.write("apps/nameless.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    origin.commit("Mistakes", author=BOB)
    source = Source(url=str(origin.path), name="apps", paths=("apps",), namespace="shop")
    state = load_desired([source], cache_dir=tmp_path / "cache", secrets_env={})
    assert not state.ok
    messages = [p.message for p in state.problems]
    assert messages == [
        "apps/broken.yaml: document 1, line 6: invalid YAML (while scanning a quoted scalar "
        "(line 5): found unexpected end of stream)",
        "apps/nameless.yaml: document 1, line 1: ConfigMap has no metadata.name",
        "ConfigMap shop/web-config is defined twice: in apps/dupe.yaml (document 1) and in "
        "apps/web.yaml (document 2); keeping the first",
    ]
    assert [p.where for p in state.problems] == ["apps/broken.yaml", "apps/nameless.yaml",
                                                 "apps/web.yaml"]
    assert dict(state.problems[0].extra) == {"source": "apps", "document": 1, "line": 6}
    assert not any("abc-secret" in str(p) for p in state.problems)
    # Everything else is still audited, and the first definition wins.
    objs = _by_name(state.objects)
    assert objs["ConfigMap/shop/web-config"].source.file == "apps/dupe.yaml"
    assert "Deployment/shop/web" in objs and "Secret/shop/creds" in objs
    assert objs["Secret/shop/creds"].obj["stringData"] == {"password": "p4ss-w0rd-value"}


def test_changes_since_the_previous_audit(tmp_path: Path,
                                          repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = repo
    source = Source(url=str(origin.path), name="apps", paths=("apps",))
    state = load_desired([source], cache_dir=tmp_path / "cache", secrets_env={},
                         previous={"apps": shas["web"]})
    assert [(c.sha, c.pr) for c in state.changes["apps"]] == [
        (shas["values"], None), (shas["merge"], 9), (shas["patch"], 9)]
    same = load_desired([source], cache_dir=tmp_path / "cache", secrets_env={},
                        previous={"apps": shas["values"]})
    assert same.changes == {}
    gone = load_desired([source], cache_dir=tmp_path / "cache", secrets_env={},
                        previous={"apps": "0" * 40})
    assert [p.kind for p in gone.problems] == ["warning"]
    assert "cannot list the commits since the last audit" in gone.problems[0].message


def test_discovery_decides_scope_for_unknown_kinds(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "x.yaml").write_text(
        "apiVersion: example.org/v1\nkind: Tenant\nmetadata: {name: t, namespace: n}\n---\n"
        "apiVersion: example.org/v1\nkind: Quota\nmetadata: {name: q}\n")
    default = _by_name(load_folder(folder, namespace="team").objects)
    assert sorted(default) == ["Quota/team/q", "Tenant/n/t"]
    discovered = {("example.org", "Tenant"): False}
    found = _by_name(load_folder(folder, namespace="team", discovered=discovered).objects)
    assert sorted(found) == ["Quota/team/q", "Tenant//t"]


def test_unreachable_source_and_missing_tools_raise(tmp_path: Path,
                                                    repo: tuple[RepoBuilder, dict[str, str]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    origin, _shas = repo
    with pytest.raises(GitError):
        load_desired([Source(url=str(tmp_path / "gone"), name="x")], cache_dir=tmp_path / "c")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}:/usr/bin:/bin")
    source = Source(url=str(origin.path), name="k", paths=("charts/shop",), render="helm")
    with pytest.raises(ToolMissingError, match="helm"):
        load_desired([source], cache_dir=tmp_path / "c", tools_dir=empty, secrets_env={})


def test_load_folder_inside_a_work_tree_is_attributed(
        repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = repo
    state = load_folder(origin.path / "apps", namespace="dev")
    objs = _by_name(state.objects)
    web = objs["Deployment/dev/web"].source
    # Paths are relative to the repository root, so they match what a Git source reports.
    assert (web.file, web.commit, web.pr) == ("apps/web.yaml", shas["web"], 5)
    assert state.commits == {str(origin.path / "apps"): shas["values"]}
    single = load_folder(origin.path / "apps" / "web.yaml")
    assert sorted(_by_name(single.objects)) == ["ConfigMap/default/web-config",
                                                "Deployment/default/web"]


def test_load_folder_without_git(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(configmap("a"))
    (tmp_path / "b.json").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}')
    state = load_folder(tmp_path)
    assert [(k.name, v.source.file, v.source.commit) for k, v in state.objects.items()] == [
        ("a", "a.yaml", ""), ("b", "b.json", "")]
    assert state.commits == {} and state.ok


def test_work_tree_guess_never_misses_a_work_tree(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The guess only lets a plain folder skip GitPython: wherever Git could find a work tree
    # (a .git folder or file in any ancestor, or GIT_DIR/GIT_WORK_TREE) it must say yes.
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert not _may_be_in_work_tree(deep)
    (tmp_path / "a" / ".git").write_text("gitdir: /elsewhere\n")  # a linked worktree
    assert _may_be_in_work_tree(deep)
    (tmp_path / "a" / ".git").unlink()
    monkeypatch.setenv("GIT_DIR", str(tmp_path))
    assert _may_be_in_work_tree(deep)


def test_duplicates_across_sources_name_both_sources(
        tmp_path: Path, repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, _shas = repo
    sources = [Source(url=str(origin.path), name="one", paths=("apps/web.yaml",), namespace="a"),
               Source(url=str(origin.path), name="two", paths=("apps",), namespace="a")]
    state = load_desired(sources, cache_dir=tmp_path / "cache", secrets_env={})
    duplicates = [p.message for p in state.problems]
    assert duplicates == [
        "ConfigMap a/web-config is defined twice: in apps/web.yaml (document 2) of source one "
        "and in apps/web.yaml (document 2) of source two; keeping the first",
        "Deployment.apps a/web is defined twice: in apps/web.yaml (document 1) of source one "
        "and in apps/web.yaml (document 1) of source two; keeping the first",
    ]
    assert len([k for k in state.objects if k.namespace == "a"]) == 3  # + the secret


def test_load_folder_in_a_shallow_ci_checkout_deepens(tmp_path: Path) -> None:
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("deploy/cm.yaml", configmap("settings"))
    first = origin.commit("Add settings", author=CAROL)
    for i in range(5):
        origin.write("deploy/web.yaml", deployment("web", f"nginx:1.{i}"))
        origin.commit(f"Release {i}", author=BOB)
    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--depth", "1", origin.path.as_uri(), str(ci))
    state = load_folder(ci / "deploy")
    objs = _by_name(state.objects)
    assert objs["ConfigMap/default/settings"].source.commit == first
    assert objs["ConfigMap/default/settings"].source.author == "Carol"
    assert objs["Deployment/default/web"].source.subject == "Release 4"


def test_crd_in_one_source_scopes_objects_of_another(
        tmp_path: Path, repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, _shas = repo
    sources = [Source(url=str(origin.path), name="gates", paths=("apps/gate.yaml",)),
               Source(url=str(origin.path), name="crds", paths=("apps/crd.yaml",))]
    state = load_desired(sources, cache_dir=tmp_path / "cache", secrets_env={})
    assert sorted(_by_name(state.objects)) == ["CustomResourceDefinition//gates.example.com",
                                               "Gate//main"]
