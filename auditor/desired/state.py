"""The desired state: every object Git declares, keyed, namespaced and attributed.

This module assembles what :mod:`auditor.desired.gitrepo` checks out and :mod:`auditor.desired.render`
renders into :class:`DesiredState`: namespaces defaulted per source (cluster-scoped kinds,
known from :mod:`auditor.engine.kinds`, lose theirs), each object tied to its file and the last
commit that touched it, duplicates and bad files turned into :class:`~auditor.engine.records.Problem`
entries so the rest of the run goes on. A source that cannot be fetched, or a renderer that
is not installed, raises instead: auditing against half of Git would report false orphans.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from auditor import __version__
from auditor.config import Config, HelmSource, KustomizeSource, Source
from auditor.desired import render
from auditor.desired.parsecache import PARSER_VERSION, ParseCache, holds_secret
from auditor.desired.statecache import Locator, StateCache, inputs_digest
from auditor.engine import kinds
from auditor.engine.records import Problem, ResourceKey, SourceInfo, new_key
from auditor.errors import ConfigError, GitError, ManifestError
from auditor.support import packed, yamlsafe

if TYPE_CHECKING:
    # GitPython costs ~50 ms to import; a folder outside any work tree never needs it.
    from auditor.desired.gitrepo import CommitInfo, Repository

DEFAULT_CACHE_DIR = Path("~/.cache/drift-auditor/repos")

_T = TypeVar("_T")

# (file, related files) of a rendered object → the newest commit among them.
_Attribution = dict[tuple[str, tuple[str, ...]], "CommitInfo"]


class DesiredObject(NamedTuple):
    """One object as Git declares it (rendered, namespace defaulted) and where it came from.

    The object is kept packed (:mod:`auditor.support.packed`): a run holds every desired object for
    its whole length, and bytes are a tenth of the dicts. ``obj`` decodes a fresh copy, its
    namespace set from the key (defaulted for namespaced kinds, removed for cluster-scoped
    ones). ``digest`` changes whenever the declared object does (namespace defaulting is in
    the key). Secrets included: the compare step hashes their values and nothing in this
    module prints them. A named tuple, cheap to make, as a run makes one per object.
    """

    key: ResourceKey
    raw: bytes
    source: SourceInfo
    api_version: str
    # packed.digest(raw): what the verdict cache goes by, kept so a steady run that takes
    # the state from the state cache hashes no object again.
    digest: str

    @property
    def obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = packed.unpack(self.raw)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            if self.key.namespace:
                meta["namespace"] = self.key.namespace
            else:
                meta.pop("namespace", None)
        return obj


class _View(Mapping[ResourceKey, _T]):
    """One field of each desired object, by key, read as asked (nothing copied)."""

    __slots__ = ("_objects", "_pick")

    def __init__(self, objects: Mapping[ResourceKey, DesiredObject],
                 pick: Callable[[DesiredObject], _T]) -> None:
        self._objects = objects
        self._pick = pick

    def __getitem__(self, key: ResourceKey) -> _T:
        return self._pick(self._objects[key])

    def get(self, key: ResourceKey, default: Any = None) -> Any:
        # Asked once per live object, most of them not desired: no KeyError raised.
        found = self._objects.get(key)
        return self._pick(found) if found is not None else default

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[ResourceKey]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)


class Manifests(_View[dict[str, Any]]):
    """Desired objects by key, decoded one at a time as they are read: what the comparison
    takes as "desired" without the whole state ever being dicts at once."""

    __slots__ = ()

    def __init__(self, objects: Mapping[ResourceKey, DesiredObject]) -> None:
        super().__init__(objects, _decoded)

    def entry(self, key: ResourceKey) -> DesiredObject | None:
        """The packed object itself (its digest and apiVersion without decoding), if any."""
        return self._objects.get(key)

    @property
    def packed(self) -> Mapping[ResourceKey, DesiredObject]:
        """The packed objects by key: :meth:`entry` for loops that ask once per live object."""
        return self._objects

    @property
    def sources(self) -> Mapping[ResourceKey, SourceInfo]:
        """Where each object came from, by key."""
        return _View(self._objects, _source)


def _decoded(obj: DesiredObject) -> dict[str, Any]:
    return obj.obj


def _source(obj: DesiredObject) -> SourceInfo:
    return obj.source


@dataclass(frozen=True)
class DesiredState:
    """All desired objects of a run, sorted by key, with the problems met and the commits audited.

    ``commits`` maps each source name to the sha audited; ``changes`` maps it to the commits
    since the previously audited sha (newest first) when one was given — the population of
    changes authorized through Git.
    """

    objects: dict[ResourceKey, DesiredObject] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    commits: dict[str, str] = field(default_factory=dict)
    repos: dict[str, str] = field(default_factory=dict)
    changes: dict[str, tuple[CommitInfo, ...]] = field(default_factory=dict)
    # Files (or kustomizations, charts) that could not be read or rendered: what they
    # declare is not known this run.
    unread: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(p.kind == "error" for p in self.problems)

    @property
    def complete(self) -> bool:
        """Whether every object Git declares is known: no file failed to read or render."""
        return not self.unread


def source_name(source: Source) -> str:
    from auditor.desired import gitrepo

    return source.name or gitrepo.redact_url(source.url)


def _may_be_in_work_tree(folder: Path) -> bool:
    """Whether Git could find a work tree around ``folder``: some ancestor holds ``.git``
    (a folder, or a file for worktrees and submodules), or the environment points Git
    elsewhere. False lets a plain folder skip importing GitPython altogether."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return True
    return any((p / ".git").exists() for p in (folder, *folder.parents))


# --------------------------------------------------------------------------- assembly


@dataclass
class _Builder:
    """Accumulates objects and problems over one or more sources, first definition wins."""

    scopes: dict[tuple[str, str], bool] = field(default_factory=dict)
    objects: dict[ResourceKey, DesiredObject] = field(default_factory=dict)
    # Where each key was first defined: (source, file, document).
    origin: dict[ResourceKey, tuple[str, str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unread: set[str] = field(default_factory=set)
    # Where each Secret is found again ([render root, file, document, namespace as
    # written]): the state cache keeps Secrets out and a hit reads them afresh.
    locators: dict[ResourceKey, Locator] = field(default_factory=dict)

    def add_errors(self, errors: Iterable[ManifestError], source: str, prefix: str) -> None:
        for err in errors:
            file = _join(prefix, err.file) if err.file else source
            self.unread.add(file)
            extra: list[tuple[str, Any]] = [("source", source)]
            if err.document:
                extra.append(("document", err.document))
            if err.line:
                extra.append(("line", err.line))
            message = str(err)
            if prefix and err.file and message.startswith(err.file):
                message = file + message[len(err.file):]
            self.problems.append(Problem(file, message, "error", tuple(extra)))

    def add_rendered(self, rendered: Sequence[render.RenderedObject], *, source: str,
                     namespace: str, prefix: str, repo_url: str,
                     attribution: _Attribution, root: Path | None = None) -> None:
        scopes = self.scopes
        objects, origin = self.objects, self.origin
        # Decided once per distinct value: thousands of objects share a handful of kinds
        # and twenty-odd objects share each file.
        kind_of: dict[tuple[str, str], tuple[str, bool]] = {}
        infos: dict[tuple[str, tuple[str, ...]], SourceInfo] = {}
        for item in rendered:
            found = kind_of.get((item.api_version, item.kind))
            if found is None:
                group = kinds.group_of(item.api_version)
                found = kind_of[(item.api_version, item.kind)] = (
                    group, kinds.is_namespaced(group, item.kind, scopes))
            group, namespaced = found
            # The namespace goes into the key only; DesiredObject.obj puts it in the object.
            key = new_key(ResourceKey, (group, item.kind,
                                         (item.namespace or namespace) if namespaced else "",
                                         item.name))
            info = infos.get((item.file, item.related))
            if info is None:  # one record per file, shared by the objects it holds
                file = _join(prefix, item.file)
                commit = attribution.get((item.file, item.related))
                info = infos[(item.file, item.related)] = (
                    commit.source_info(file, repo_url) if commit is not None
                    else SourceInfo(file=file, repo=repo_url))
            seen = origin.get(key)
            if seen is not None:
                self._twice(key, seen, (source, info.file, item.document))
                continue
            objects[key] = DesiredObject(key, item.raw, info, item.api_version,
                                         packed.digest(item.raw))
            origin[key] = (source, info.file, item.document)
            if root is not None and holds_secret(key):
                self.locators[key] = [str(root), item.file, item.document, item.namespace]

    def _twice(self, key: ResourceKey, first: tuple[str, str, int],
               second: tuple[str, str, int]) -> None:
        def where(place: tuple[str, str, int]) -> str:
            _source, file, document = place
            return f"{file} (document {document})" if document else file

        first_where, second_where = where(first), where(second)
        if first[0] != second[0]:
            first_where = f"{first_where} of source {first[0]}"
            second_where = f"{second_where} of source {second[0]}"
        self.problems.append(Problem(
            second[1], f"{key} is defined twice: in {first_where} and in {second_where}; "
            f"keeping the first", "error",
            (("source", second[0]), ("first", first_where), ("second", second_where))))

    def state(self, commits: dict[str, str], repos: dict[str, str],
              changes: dict[str, tuple[CommitInfo, ...]]) -> DesiredState:
        problems = sorted(self.problems, key=_problem_order)
        ordered = sorted(self.objects.items(), key=_first)
        return DesiredState(dict(ordered), tuple(problems), commits, repos, changes,
                            tuple(sorted(self.unread)))


def _problem_order(problem: Problem) -> tuple[str, str]:
    return (problem.where, problem.message)


def _first(pair: tuple[ResourceKey, DesiredObject]) -> ResourceKey:
    return pair[0]


def _scopes(rendered: Iterable[render.RenderedObject],
            discovered: Mapping[tuple[str, str], bool] | None) -> dict[tuple[str, str], bool]:
    """Kind scopes from the CRDs of every source (a CRD and its objects may live apart),
    overridden by discovery."""
    scopes = kinds.scopes_from_crds(r.obj for r in rendered
                                    if r.kind == "CustomResourceDefinition")
    scopes.update(discovered or {})
    return scopes


def _join(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if prefix and path != "." else (prefix or path)


def _attribute(rendered: Sequence[render.RenderedObject], prefix: str,
               repo: Repository | None) -> _Attribution:
    """Last commit per distinct (file, related files): one history walk for all of them."""
    if repo is None:
        return {}
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for item in rendered:
        group = (item.file, item.related)
        if group not in groups:
            groups[group] = [_join(prefix, p) for p in (item.file, *item.related)]
    keyed = {str(i): paths for i, paths in enumerate(groups.values())}
    found = repo.last_commits(keyed)
    return {group: found[str(i)] for i, group in enumerate(groups) if str(i) in found}


def _render_paths(root: Path, paths: Sequence[str], *, mode: render.RenderMode, namespace: str,
                  helm: HelmSource, release: str, tools_dir: str | os.PathLike[str] | None,
                  cache: ParseCache | None = None, recurse: bool = True,
                  kustomize: KustomizeSource | None = None) -> render.RenderResult:
    objects: list[render.RenderedObject] = []
    errors: list[ManifestError] = []
    for rel in paths:
        result = render.render_path(root, rel, mode=mode, namespace=namespace,
                                    release=helm.release or release, values=helm.values,
                                    set_values=helm.set, tools_dir=tools_dir, cache=cache,
                                    recurse=recurse, values_yaml=helm.values_yaml,
                                    kustomize=kustomize)
        objects.extend(result.objects)
        errors.extend(result.errors)
    return render.RenderResult(tuple(objects), tuple(errors))


# --------------------------------------------------------------------------- entry points


def load_desired(sources: Iterable[Source], *, cache_dir: Path | str | None = None,
                 tools_dir: str | os.PathLike[str] | None = None,
                 secrets_env: Mapping[str, str] | None = None,
                 discovered: Mapping[tuple[str, str], bool] | None = None,
                 previous: Mapping[str, str] | None = None,
                 parse_cache: ParseCache | None = None,
                 state_cache: StateCache | None = None) -> DesiredState:
    """Fetch, render and attribute every configured source.

    ``cache_dir`` holds the clones (default ``~/.cache/drift-auditor/repos``); ``tools_dir``
    is searched for kustomize/kubectl/helm before ``PATH``; ``secrets_env`` is where
    ``credentials.password-env`` is read; ``discovered`` maps ``(group, kind)`` to
    ``namespaced`` from the cluster; ``previous`` maps source names to the sha audited last
    time, to list the commits in between. ``parse_cache`` spares parsing files seen before;
    ``state_cache`` hands back last run's state when every source is at the same commit.
    Bad files become problems; an unreachable source or a missing renderer raises.
    """
    from auditor.desired import gitrepo

    cache = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR.expanduser()
    sources = list(sources)

    def fetch(source: Source) -> Repository:
        return gitrepo.sync(source.url, source.revision, cache_dir=cache,
                            credentials=source.credentials, depth=source.depth,
                            secrets_env=secrets_env)

    def rendered(source: Source, repo: Repository) -> tuple[render.RenderResult, _Attribution]:
        result = _render_paths(repo.path, source.paths, mode=source.render,
                               namespace=source.namespace, helm=source.helm,
                               release=source.name, tools_dir=tools_dir, cache=parse_cache,
                               recurse=source.recurse, kustomize=source.kustomize)
        return result, _attribute(result.objects, "", repo)

    synced: list[tuple[str, Source, Repository]] = []
    done: list[tuple[str, Source, render.RenderResult, _Attribution]] = []
    for source in sources:
        repo = fetch(source)
        synced.append((source_name(source), source, repo))
        if state_cache is None:
            # Render now: another source of the same URL checks out its revision in this folder.
            done.append((synced[-1][0], source, *rendered(source, repo)))
    commits = {name: repo.commit for name, _s, repo in synced}
    repos = {name: repo.url for name, _s, repo in synced}
    roots = {name: repo.path for name, _s, repo in synced}
    changes: dict[str, tuple[CommitInfo, ...]] = {}
    warnings: list[Problem] = []
    for name, _source, repo in synced:
        old = (previous or {}).get(name)
        if old and old != repo.commit:
            try:
                changes[name] = repo.commits_between(old)
            except GitError as exc:
                warnings.append(Problem(name, f"cannot list the commits since the last audit: "
                                        f"{exc}", "warning", (("source", name),)))
    slot, inputs = "", None
    if state_cache is not None:
        # Sources share a clone when they share a URL: the last one synced holds the
        # checkout. Then each is checked out again as it renders, and nothing is cached.
        if len({repo.path for _n, _s, repo in synced}) == len(synced):
            slot = "git\0" + "\0".join(f"{name}\0{repo.url}\0{list(source.paths)}"
                                        for name, source, repo in synced)
            inputs = _inputs(discovered, "git", [
                [name, repo.url, repo.commit, list(source.paths), source.render,
                 source.namespace, source.name, list(source.helm.values),
                 list(source.helm.set), source.helm.release, source.helm.values_yaml,
                 source.recurse, repr(source.kustomize)] for name, source, repo in synced])
            hit = _reread(state_cache.lookup(slot, inputs, DesiredObject))
            if hit is not None:
                return DesiredState(hit, tuple(sorted(warnings, key=_problem_order)), commits,
                                    repos, changes)
        for name, source, repo in synced:
            done.append((name, source, *rendered(source, repo if inputs is not None
                                                  else fetch(source))))
    builder = _Builder()
    builder.scopes = _scopes((o for _n, _s, r, _a in done for o in r.objects), discovered)
    for name, source, result, attribution in done:
        builder.add_errors(result.errors, name, "")
        builder.add_rendered(result.objects, source=name, namespace=source.namespace,
                             prefix="", repo_url=repos[name], attribution=attribution,
                             root=roots[name])
    clean = not builder.problems
    builder.problems.extend(warnings)
    state = builder.state(commits, repos, changes)
    if state_cache is not None and inputs is not None and clean and all(
            _plain_only(repo.path, source.paths, source.render) and not source.kustomize
            and not source.kustomize.generate for _n, source, repo in synced):
        state_cache.store(slot, inputs, state.objects, builder.locators)
    return state


def _plain_plan(root: Path, rel: str, mode: render.RenderMode) -> render.Plan | None:
    """How ``root/rel`` renders, if as plain manifests only: kustomize and Helm can read
    remote bases and chart repositories that no commit pins, so their output is never
    cached. ``None`` otherwise, or when it cannot be planned."""
    try:
        todo = render.plan(root, rel, mode)
    except ManifestError:
        return None
    return None if todo.kustomizations or todo.charts else todo


def _plain_only(root: Path, paths: Sequence[str], mode: render.RenderMode) -> bool:
    return all(_plain_plan(root, rel, mode) is not None for rel in paths)


def _reread(hit: tuple[dict[ResourceKey, DesiredObject], dict[ResourceKey, Locator]] | None,
            ) -> dict[ResourceKey, DesiredObject] | None:
    """A state from the state cache made whole: the Secrets it keeps out, read again from
    the documents that declare them (the cache's inputs pin their content: a commit, or
    every file's digest). ``None`` when one is not found as it was: render again."""
    if hit is None:
        return None
    objects, withheld = hit
    if not withheld:
        return objects
    try:
        wanted: dict[tuple[str, str], set[int]] = {}
        for root, file, document, _namespace in withheld.values():
            wanted.setdefault((str(root), str(file)), set()).add(int(document))
        found: dict[tuple[str, str, int, str, str, str, str], render.RenderedObject] = {}
        for (root, file), documents in wanted.items():
            result = render.load_file(Path(root), file, documents=documents)
            if result.errors:
                return None
            for item in result.objects:
                found[(root, file, item.document, kinds.group_of(item.api_version), item.kind,
                       item.name, item.namespace)] = item
        for key, (root, file, document, namespace) in withheld.items():
            again = found.get((str(root), str(file), int(document), key.group, key.kind,
                               key.name, str(namespace)))
            if again is None:
                return None
            entry = objects[key]
            objects[key] = DesiredObject(key, again.raw, entry.source, entry.api_version,
                                         packed.digest(again.raw))
    except (ValueError, TypeError):  # a locator of another shape
        return None
    return objects


def load_folder(path: Path | str, namespace: str = "default", *,
                mode: render.RenderMode = "auto", helm: HelmSource | None = None,
                tools_dir: str | os.PathLike[str] | None = None,
                discovered: Mapping[tuple[str, str], bool] | None = None,
                parse_cache: ParseCache | None = None,
                state_cache: StateCache | None = None) -> DesiredState:
    """Desired state from a folder (or one file) on disk, no clone involved.

    When the folder is inside a Git work tree, objects are attributed from that tree's
    ``HEAD`` history and file names are relative to its root; otherwise to the folder.
    ``state_cache`` hands back last run's state when no file (by content) changed.
    """
    target = Path(path).expanduser().resolve()
    if not target.exists():
        raise ManifestError(f"{path}: no such file or folder", file=str(path))
    root, rel = (target.parent, target.name) if target.is_file() else (target, ".")
    repo: Repository | None = None
    if _may_be_in_work_tree(root):
        from auditor.desired.gitrepo import Repository

        repo = Repository.containing(root)
    prefix = repo.relative(root) if repo is not None else ""
    name = str(path)
    helm = helm or HelmSource()
    commits = {name: repo.commit} if repo is not None else {}
    repos = {name: str(repo.path)} if repo is not None else {}
    # The path as given, links unresolved: git-sync swaps a `current` link to each new
    # revision's folder, and one slot per revision would fill the disk.
    slot = f"folder\0{Path(path).expanduser().absolute()}"
    inputs = (_folder_inputs(root, rel, mode=mode, namespace=namespace, helm=helm,
                             commit=repo.commit if repo is not None else "",
                             discovered=discovered)
              if state_cache is not None else None)
    if state_cache is not None and inputs is not None:
        hit = _reread(state_cache.lookup(slot, inputs, DesiredObject))
        if hit is not None:
            return DesiredState(hit, (), commits, repos, {})
    rendered = _render_paths(root, [rel], mode=mode, namespace=namespace, helm=helm,
                             release=root.name, tools_dir=tools_dir, cache=parse_cache)
    builder = _Builder(_scopes(rendered.objects, discovered))
    builder.add_errors(rendered.errors, name, prefix)
    builder.add_rendered(rendered.objects, source=name, namespace=namespace, prefix=prefix,
                         repo_url=str(repo.path) if repo else "",
                         attribution=_attribute(rendered.objects, prefix, repo), root=root)
    state = builder.state(commits, repos, {})
    if state_cache is not None and inputs is not None and not state.problems:
        state_cache.store(slot, inputs, state.objects, builder.locators)
    return state


def _folder_inputs(root: Path, rel: str, *, mode: render.RenderMode, namespace: str,
                   helm: HelmSource, commit: str,
                   discovered: Mapping[tuple[str, str], bool] | None) -> str | None:
    """What a folder's desired state is made of, by content: a folder has no commit to
    name its files, so each one planned is read and hashed (attribution, in a work tree,
    goes by ``commit``). ``None`` when the state cannot be cached: kustomize or Helm in
    the plan, a symbolic link (kept to the check :func:`render.load_file` makes), a file
    that cannot be read."""
    todo = _plain_plan(root, rel, mode)
    if todo is None:
        return None
    files: list[str] = []
    for file in todo.files:
        target = root / file
        try:
            if target.is_symlink():
                return None
            # Bounded as the render reads it: a file past the limit is a problem, not cached.
            files += [file, hashlib.sha256(yamlsafe.read_limited(target)).hexdigest()]
        except (OSError, yamlsafe.LimitError):
            return None
    return _inputs(discovered, "folder", str(root), rel, mode, namespace, list(helm.values),
                   list(helm.set), helm.release, commit, files)


def _inputs(discovered: Mapping[tuple[str, str], bool] | None, *parts: Any) -> str:
    """The digest of a state's inputs: ``parts`` and, as keys are namespaced by them, the
    kind scopes discovery reported."""
    scopes = sorted([group, kind, namespaced]
                    for (group, kind), namespaced in (discovered or {}).items())
    return inputs_digest(__version__, PARSER_VERSION.decode(errors="replace"), scopes, *parts)


def load_desired_state(cfg: Config, *, desired_path: str | None = None,
                       revision: str | None = None, namespace: str | None = None,
                       discovered: dict[tuple[str, str], bool] | None = None,
                       tools_dir: str | None = None,
                       previous: Mapping[str, str] | None = None,
                       parse_cache: ParseCache | None = None,
                       state_cache: StateCache | None = None) -> DesiredState:
    """Desired state from ``--desired`` (a folder, or a Git URL/path with ``--revision``)
    or, without it, from the configured sources."""
    if desired_path:
        path = Path(desired_path).expanduser()
        if revision is None and path.exists() and not desired_path.endswith(".git"):
            return load_folder(path, namespace or "default", discovered=discovered,
                               tools_dir=tools_dir, parse_cache=parse_cache,
                               state_cache=state_cache)
        source = Source(url=desired_path, revision=revision or "HEAD",
                        namespace=namespace or "default")
        return load_desired([source], discovered=discovered, tools_dir=tools_dir,
                            previous=previous, parse_cache=parse_cache,
                            state_cache=state_cache)
    if not cfg.sources:
        raise ConfigError("sources: no Git source configured (set `sources` in the config file, "
                          "DRIFT_AUDITOR_SOURCE_URL, or pass --desired PATH)")
    return load_desired(cfg.sources, discovered=discovered, tools_dir=tools_dir,
                        previous=previous, parse_cache=parse_cache, state_cache=state_cache)
