"""The desired-state cache on real folders and real Git repositories: a hit is the same
state as a fresh render (keys, order, bytes, attribution), anything that changes the state
misses (a file's content, a new commit, discovered scopes), what cannot be cached
exactly (problems, kustomize/Helm, sources sharing a clone) never is, and Secrets stay out:
a hit reads them again from Git."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from gitfixtures import TOOLS, RepoBuilder, configmap, deployment, tool
from test_parsecache import SECRET_DOC, SECRET_STRING, files_holding_a_secret

from auditor.config import Source
from auditor.desired.parsecache import ParseCache
from auditor.desired.state import DesiredState, load_desired, load_folder
from auditor.desired.statecache import StateCache
from auditor.engine.records import ResourceKey

ALICE = ("Alice", "alice@example.com")
BOB = ("Bob", "bob@example.com")


def _same(a: DesiredState, b: DesiredState) -> None:
    assert list(a.objects) == list(b.objects)  # same keys, same (key) order
    for key, obj in a.objects.items():
        other = b.objects[key]
        assert (obj.key, obj.raw, obj.source, obj.api_version, obj.digest) == \
            (other.key, other.raw, other.source, other.api_version, other.digest)
    assert (a.problems, a.commits, a.repos) == (b.problems, b.commits, b.repos)


def _folder(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    (apps / "sub").mkdir(parents=True)
    (apps / "web.yaml").write_text(deployment("web") + "---\n" + configmap("web-config"))
    (apps / "sub" / "cm.yaml").write_text(configmap("pinned", namespace="other"))
    (apps / "gate.yaml").write_text("apiVersion: example.com/v1\nkind: Gate\n"
                                    "metadata: {name: main, namespace: x}\n")
    return apps


def test_folder_hit_is_the_fresh_state_and_skips_parsing(tmp_path: Path) -> None:
    apps = _folder(tmp_path)
    fresh = load_folder(apps, "shop")
    parse = ParseCache(tmp_path / "cache")
    cache = StateCache(tmp_path / "cache" / "state")
    first = load_folder(apps, "shop", parse_cache=parse, state_cache=cache)
    parsed = (parse.hits, parse.misses)
    second = load_folder(apps, "shop", parse_cache=parse, state_cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert (parse.hits, parse.misses) == parsed  # the hit opened no parse-cache file
    _same(first, fresh)
    _same(second, fresh)
    web = second.objects[ResourceKey("apps", "Deployment", "shop", "web")]
    assert web.obj["metadata"]["namespace"] == "shop"
    assert web.source.file == "web.yaml"


def test_folder_misses_when_content_namespace_or_scopes_change(tmp_path: Path) -> None:
    apps = _folder(tmp_path)
    cache = StateCache(tmp_path / "cache")
    load_folder(apps, "shop", state_cache=cache)
    # Same size, same name, other content: the digest goes by content, not by stat.
    (apps / "web.yaml").write_text(deployment("web", "nginx:1.28") + "---\n"
                                   + configmap("web-config"))
    changed = load_folder(apps, "shop", state_cache=cache)
    image = changed.objects[ResourceKey("apps", "Deployment", "shop", "web")].obj[
        "spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginx:1.28"
    assert (cache.hits, cache.misses) == (0, 2)
    # Another default namespace is another state.
    other = load_folder(apps, "store", state_cache=cache)
    assert ResourceKey("apps", "Deployment", "store", "web") in other.objects
    # Discovery says Gate is cluster-scoped: its key loses the namespace.
    scoped = load_folder(apps, "store", state_cache=cache,
                         discovered={("example.com", "Gate"): False})
    assert ResourceKey("example.com", "Gate", "", "main") in scoped.objects
    assert cache.hits == 0
    again = load_folder(apps, "store", state_cache=cache,
                        discovered={("example.com", "Gate"): False})
    assert cache.hits == 1
    _same(again, scoped)
    # A new file is a new state too.
    (apps / "more.yaml").write_text(configmap("more"))
    assert ResourceKey("", "ConfigMap", "store", "more") in load_folder(
        apps, "store", state_cache=cache, discovered={("example.com", "Gate"): False}).objects


def test_states_with_problems_are_never_cached(tmp_path: Path) -> None:
    apps = _folder(tmp_path)
    (apps / "bad.yaml").write_text("kind: [\n")
    cache = StateCache(tmp_path / "cache")
    for _ in range(2):
        state = load_folder(apps, "shop", state_cache=cache)
        assert any("bad.yaml" in p.where for p in state.problems)
    assert cache.hits == 0
    assert not list((tmp_path / "cache").glob("*"))


def test_unreadable_entry_renders_again_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    apps = _folder(tmp_path)
    cache = StateCache(tmp_path / "cache")
    fresh = load_folder(apps, "shop", state_cache=cache)
    (entry,) = (tmp_path / "cache").glob("*.bin")
    entry.write_bytes(entry.read_bytes()[:-10])  # cut short
    with caplog.at_level(logging.INFO, logger="auditor.desired.statecache"):
        again = load_folder(apps, "shop", state_cache=cache)
    assert cache.hits == 0
    assert "unreadable" in caplog.text
    _same(again, fresh)
    _same(load_folder(apps, "shop", state_cache=cache), fresh)  # rewritten, then hit
    assert cache.hits == 1


def test_git_source_hit_needs_the_same_commit(tmp_path: Path) -> None:
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("apps/web.yaml", deployment("web"))
    origin.write("apps/cm.yaml", configmap("settings"))
    first_sha = origin.commit("Initial", author=ALICE)
    origin.write("apps/web.yaml", deployment("web", "nginx:2"))
    web_sha = origin.commit("Bump web (#5)", author=BOB)
    sources = [Source(url=str(origin.path), name="apps", paths=("apps",), namespace="shop")]
    clones = tmp_path / "clones"
    fresh = load_desired(sources, cache_dir=clones, secrets_env={})

    cache = StateCache(tmp_path / "cache")
    parse = ParseCache(tmp_path / "parse")
    load_desired(sources, cache_dir=clones, secrets_env={}, state_cache=cache,
                 parse_cache=parse)
    parsed = (parse.hits, parse.misses)
    hit = load_desired(sources, cache_dir=clones, secrets_env={}, state_cache=cache,
                       parse_cache=parse, previous={"apps": first_sha})
    assert cache.hits == 1 and (parse.hits, parse.misses) == parsed
    _same(hit, fresh)
    web = hit.objects[ResourceKey("apps", "Deployment", "shop", "web")].source
    assert (web.commit, web.author, web.pr) == (web_sha, "Bob", 5)
    # The commits since the previous audit are listed on a hit as on a render.
    assert [c.sha for c in hit.changes["apps"]] == [web_sha]

    origin.write("apps/cm.yaml", configmap("settings", "v2"))
    origin.commit("Change settings", author=ALICE)
    moved = load_desired(sources, cache_dir=clones, secrets_env={}, state_cache=cache)
    assert cache.hits == 1
    settings = moved.objects[ResourceKey("", "ConfigMap", "shop", "settings")]
    assert settings.obj["data"] == {"key": "v2"}
    assert settings.source.subject == "Change settings"


def test_sources_sharing_a_clone_are_rendered_each_at_its_revision(tmp_path: Path) -> None:
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("apps/cm.yaml", configmap("settings", "old"))
    old = origin.commit("Old", author=ALICE)
    origin.write("apps/cm.yaml", configmap("settings", "new"))
    origin.commit("New", author=BOB)
    sources = [
        Source(url=str(origin.path), name="pinned", revision=old, paths=("apps",),
               namespace="a"),
        Source(url=str(origin.path), name="head", paths=("apps",), namespace="b"),
    ]
    cache = StateCache(tmp_path / "cache")
    for _ in range(2):
        state = load_desired(sources, cache_dir=tmp_path / "clones", secrets_env={},
                             state_cache=cache)
        pinned = state.objects[ResourceKey("", "ConfigMap", "a", "settings")]
        head = state.objects[ResourceKey("", "ConfigMap", "b", "settings")]
        assert (pinned.obj["data"], pinned.source.subject) == ({"key": "old"}, "Old")
        assert (head.obj["data"], head.source.subject) == ({"key": "new"}, "New")
    assert cache.hits == 0 and not (tmp_path / "cache").exists()


def test_kustomize_renders_are_never_cached(tmp_path: Path) -> None:
    """A kustomization may pull remote bases no commit pins: it renders every run."""
    tool("kubectl")
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("k/kustomization.yaml", "resources: [cm.yaml]\n")
    origin.write("k/cm.yaml", configmap("settings"))
    origin.commit("Kustomized", author=ALICE)
    sources = [Source(url=str(origin.path), name="k", paths=("k",), namespace="shop")]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (folder / "cm.yaml").write_text(configmap("local"))
    cache = StateCache(tmp_path / "cache")
    for _ in range(2):
        state = load_desired(sources, cache_dir=tmp_path / "clones", secrets_env={},
                             tools_dir=TOOLS, state_cache=cache)
        assert list(state.objects) == [ResourceKey("", "ConfigMap", "shop", "settings")]
        local = load_folder(folder, "shop", tools_dir=TOOLS, state_cache=cache)
        assert list(local.objects) == [ResourceKey("", "ConfigMap", "shop", "local")]
    assert cache.hits == 0 and not (tmp_path / "cache").exists()


def test_unwritable_cache_folder_only_costs_speed(tmp_path: Path) -> None:
    apps = _folder(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    cache = StateCache(tmp_path / "file" / "state")
    for _ in range(2):
        assert ResourceKey("apps", "Deployment", "shop", "web") in load_folder(
            apps, "shop", state_cache=cache).objects
    assert cache.hits == 0


def test_prune_removes_states_unused_for_the_given_days(tmp_path: Path) -> None:
    import time

    apps = _folder(tmp_path)
    cache = StateCache(tmp_path / "state")
    load_folder(apps, "shop", state_cache=cache)
    assert len(list((tmp_path / "state").glob("*.bin"))) == 1
    assert cache.prune(30) == 0
    assert cache.prune(30, now=time.time() + 31 * 86400) == 1
    assert not list((tmp_path / "state").glob("*.bin"))
    assert StateCache(tmp_path / "missing").prune(30) == 0


def test_a_folder_behind_a_swapped_link_keeps_one_entry(tmp_path: Path) -> None:
    """git-sync publishes each revision in a new folder and points a link at it: the state
    follows the link's target, and the cache keeps one entry for the path, not one per
    revision."""
    first = _folder(tmp_path / "rev-1")
    second = _folder(tmp_path / "rev-2")
    (second / "web.yaml").write_text(deployment("web", "nginx:1.28"))
    current = tmp_path / "current"
    cache = StateCache(tmp_path / "cache")
    images = []
    for target in (first, second, second):
        current.unlink(missing_ok=True)
        current.symlink_to(target, target_is_directory=True)
        state = load_folder(current, "shop", state_cache=cache)
        web = state.objects[ResourceKey("apps", "Deployment", "shop", "web")]
        images.append(web.obj["spec"]["template"]["spec"]["containers"][0]["image"])
    assert images == ["nginx:1.27", "nginx:1.28", "nginx:1.28"]
    assert (cache.misses, cache.hits) == (2, 1)
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 1


def test_secrets_stay_out_and_a_hit_reads_them_again_from_git(tmp_path: Path) -> None:
    """What a revert applies must be Git's Secret, so a hit carries the real values; the
    cache file beside the ledger holds none of them, in any form."""
    secret_and_map = configmap("settings") + "---\n" + SECRET_DOC
    apps = _folder(tmp_path)
    (apps / "secret.yaml").write_text(secret_and_map)
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("apps/secret.yaml", secret_and_map)
    origin.write("apps/cm.yaml", configmap("other"))
    origin.commit("Initial", author=ALICE)
    sources = [Source(url=str(origin.path), name="apps", paths=("apps",), namespace="shop")]
    clones = tmp_path / "clones"

    def loads(cache: StateCache, parse: ParseCache) -> list[DesiredState]:
        return [load_folder(apps, "shop", state_cache=cache, parse_cache=parse),
                load_desired(sources, cache_dir=clones, secrets_env={}, state_cache=cache,
                             parse_cache=parse)]

    fresh = [load_folder(apps, "shop"), load_desired(sources, cache_dir=clones, secrets_env={})]
    cache, parse = StateCache(tmp_path / "cache" / "state"), ParseCache(tmp_path / "cache" / "m")
    loads(cache, parse)
    parsed = (parse.hits, parse.misses)
    hits = loads(cache, parse)
    assert cache.hits == 2 and (parse.hits, parse.misses) == parsed
    for hit, render in zip(hits, fresh, strict=True):
        _same(hit, render)
        token = hit.objects[ResourceKey("", "Secret", "x", "token")]
        assert token.obj["stringData"] == {"b": SECRET_STRING}
    assert files_holding_a_secret(tmp_path / "cache") == []


def test_a_withheld_secret_not_found_again_renders_again(tmp_path: Path) -> None:
    apps = _folder(tmp_path)
    (apps / "secret.yaml").write_text(SECRET_DOC)
    cache = StateCache(tmp_path / "cache")
    fresh = load_folder(apps, "shop", state_cache=cache)
    (entry,) = (tmp_path / "cache").glob("*.bin")
    # The locator names another document of the same file: nothing declares the Secret there.
    locator = b'"secret.yaml",1,"x"]'
    assert locator in entry.read_bytes()
    entry.write_bytes(entry.read_bytes().replace(locator, b'"secret.yaml",2,"x"]'))
    again = load_folder(apps, "shop", state_cache=cache)
    assert cache.hits == 1  # the entry was read, then not trusted: rendered and stored anew
    assert locator in entry.read_bytes()
    _same(again, fresh)
    _same(load_folder(apps, "shop", state_cache=cache), fresh)  # stored anew, then a hit
