"""Ledger rows of the tool's own configuration: every version of it that was in force.

An automated control is only as good as its configuration: what it audits (the scope), what
it does not call drift (``compare.ignore`` and the ``DriftIgnore`` documents of the policies
folder), which policies it evaluates. An auditor asks for every change to it, who made it and
who approved it, so each run (scheduled or watch) compares its effective configuration with
the last version recorded for its run mode and, when it differs, records a new version at the
run's start: one ``config_versions`` row (schema step 7), chained whole, content and all (a
handful of rows in a ledger's life; never pruned), so ``verify`` covers every byte of it.

A :class:`Snapshot` (:func:`snapshot`) is one process's effective configuration:

- ``settings``: what ``drift-auditor config`` prints (``dataclasses.asdict`` of the frozen
  configuration), with nothing secret in it. Secrets are never settings (only the *names* of
  environment variables and the *paths* of files holding them are), except where a value can
  carry one: a password (or a token used as user name) in a URL, URL query parameters
  named like secrets, a token given as a Git user name, and ``helm.set`` values of keys named
  like secrets. Those are replaced by :data:`REDACTED`.
- ``ignore_rules``: every ignore rule in force, in the order the comparison applies them,
  each with its ``source`` (``config`` or the DriftIgnore file's path) and document number.
- ``scope``; ``policy_pack``: the policies folder, the SHA-256 of each ``*.yaml``/``*.yml``
  file in it and the pack's digest (SHA-256 over the files' names and contents' hashes).
- ``origin``: where it came from: the config file (its path and SHA-256), the names of the
  ``DRIFT_AUDITOR_*`` environment variables set (never their values), the tool version and,
  per file (the config file and every policy file), where it stands in Git — the last
  commit touching it, its author, date and trailers, and whether the file on disk differs
  from it. Git is read by the caller (:mod:`auditor.desired.gitrepo` sits beside this
  package), and only when a version is recorded.

Its :attr:`Snapshot.digest` (SHA-256 over settings, ignore rules, scope and the pack digest,
not the origin: committing the same configuration is no change) is also the runs'
``config_hash``, so a run names the version it ran under. Versions are compared per run mode:
a watch Deployment and the CronJob may well differ (``--audit-log`` is a setting), and
compared with each other they would record a "change" at every turn.

:func:`document` and :func:`diff` give the readable form (YAML, stable key order: the
configuration's own field order) that ``history --type config`` and the report show.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from auditor.config import Config, IgnoreRule
from auditor.engine.ignore import KIND as DRIFT_IGNORE
from auditor.engine.ignore import rule_from_document
from auditor.errors import PolicyError
from auditor.support import yamlsafe

from . import chain, schema
from .schema import CHAINED

if TYPE_CHECKING:
    from .store import Run

TABLE = "config_versions"
_COLUMNS = CHAINED[TABLE]
REDACTED = "<redacted>"
CONFIG_SOURCE = "config"
# What a value is called when it may hold a secret (a query parameter, a Helm value's key).
_SECRET_NAME = re.compile(r"pass|secret|token|credential|api[-_]?key|private[-_]?key|auth|"
                          r"signature|sig$", re.IGNORECASE)
# A user name in a URL that is a token in fact (GitHub, GitLab personal access tokens …).
_TOKEN_USER = re.compile(r"^(gh[pousr]_|github_pat_|glpat-|glptt-|x-access-token$)|^.{33,}$")
# The environment variables that are no settings (see auditor.config._env_overrides).
_NOT_SETTINGS = ("DRIFT_AUDITOR_TOOLS", "DRIFT_AUDITOR_SCREENSHOTS")


@dataclass(frozen=True)
class Origin:
    """Where the configuration came from, as the command line knows it: the config file it
    read (``""``: none, defaults and environment only) and the names of the environment
    variables that set or located settings."""

    config_file: str = ""
    environment: tuple[str, ...] = ()

    @classmethod
    def of(cls, config_file: str | Path | None, env_names: Iterable[str]) -> Origin:
        """From the command line: the file (resolved, when it exists) and the names of the
        ``DRIFT_AUDITOR_*`` variables among ``env_names`` (names only: values may be
        secrets, and the settings they made are recorded anyway)."""
        file = Path(config_file).expanduser() if config_file else None
        path = str(file.resolve()) if file is not None and file.is_file() else ""
        names = sorted(n for n in env_names
                       if n.startswith("DRIFT_AUDITOR_") and n not in _NOT_SETTINGS)
        return cls(path, tuple(names))


@dataclass(frozen=True)
class FileState:
    """One file the configuration was read from: the config file or a policy file."""

    path: str
    role: str  # config | policies
    sha256: str
    # Where it stands in Git (:func:`auditor.desired.gitrepo.file_provenance`); None: in no
    # Git work tree, or not looked up (a snapshot not recorded).
    git: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "role": self.role, "sha256": self.sha256, "git": self.git}


@dataclass(frozen=True)
class Snapshot:
    """One process's effective configuration (see the module docstring)."""

    settings: dict[str, Any]
    ignore_rules: list[dict[str, Any]]
    scope: dict[str, Any]
    policy_pack: dict[str, Any]
    config_file: str = ""
    environment: tuple[str, ...] = ()
    tool_version: str = ""
    files: tuple[FileState, ...] = ()

    @property
    def digest(self) -> str:
        return digest_of(self.settings, self.ignore_rules, self.scope, self.policy_pack)

    def origin(self) -> dict[str, Any]:
        return {"config_file": self.config_file, "environment": list(self.environment),
                "tool_version": self.tool_version, "files": [f.to_dict() for f in self.files]}

    def attributed(self, provenance: Mapping[str, dict[str, Any] | None]) -> Snapshot:
        """This snapshot with each file's place in Git (``provenance`` by path)."""
        return dataclasses.replace(self, files=tuple(
            dataclasses.replace(f, git=provenance.get(f.path)) for f in self.files))


@dataclass(frozen=True)
class Version:
    """One recorded configuration version, as read back."""

    id: int
    seq: int
    run_id: int
    at: str
    mode: str
    digest: str
    previous_id: int | None
    config_file: str
    settings: dict[str, Any]
    ignore_rules: list[dict[str, Any]]
    scope: dict[str, Any]
    policy_pack: dict[str, Any]
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.origin.get("files") or [])

    @property
    def tool_version(self) -> str:
        return str(self.origin.get("tool_version") or "")

    @property
    def environment(self) -> list[str]:
        return list(self.origin.get("environment") or [])


def digest_of(settings: Mapping[str, Any], ignore_rules: Iterable[Mapping[str, Any]],
              scope: Mapping[str, Any], policy_pack: Mapping[str, Any]) -> str:
    """What identifies a configuration: settings, ignore rules, scope and the policy pack's
    digest, as canonical JSON (sorted keys)."""
    return hashlib.sha256(chain.canonical({
        "settings": settings, "ignore_rules": list(ignore_rules), "scope": scope,
        "policy_pack": policy_pack.get("digest", "")})).hexdigest()


# --------------------------------------------------------------------------- snapshot


def _scrub_url(url: str) -> str:
    """``url`` with its password (or a token used as user name) and secret-named query
    parameters replaced by :data:`REDACTED`."""
    try:
        parts = urlsplit(url)
        password, user, host, port = parts.password, parts.username, parts.hostname, parts.port
    except ValueError:
        return url  # not a URL after all (a bad port): nothing to take apart
    netloc = parts.netloc
    if password is not None or (user and _TOKEN_USER.search(user)):
        where = (host or "") + (f":{port}" if port else "")
        if password is not None and user and not _TOKEN_USER.search(user):
            netloc = f"{user}:{REDACTED}@{where}"
        else:
            netloc = f"{REDACTED}@{where}"
    query = "&".join(
        f"{name}={REDACTED}" if sep and _SECRET_NAME.search(name) else f"{name}{sep}{value}"
        for name, sep, value in (p.partition("=") for p in parts.query.split("&"))
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scrubbed(value: Any, path: tuple[str, ...] = ()) -> Any:
    """``dataclasses.asdict`` output made plain (lists, not tuples) and without secrets."""
    if isinstance(value, dict):
        return {k: _scrubbed(v, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, path) for v in value]
    if isinstance(value, str):
        if path[-1:] == ("username",) and _TOKEN_USER.search(value):
            return REDACTED  # a token given as the user name (GitHub's x-access-token style)
        if path[-2:] == ("helm", "set"):  # --set key=value: the value of a secret-named key
            key, sep, _ = value.partition("=")
            return f"{key}={REDACTED}" if sep and _SECRET_NAME.search(key) else value
        if "://" in value:
            return _scrub_url(value)
    return value


def settings_of(cfg: Config) -> dict[str, Any]:
    """The effective settings as ``drift-auditor config`` prints them, nothing secret in them
    (see the module docstring), in the configuration's own field order."""
    scrubbed: dict[str, Any] = _scrubbed(dataclasses.asdict(cfg))
    return scrubbed


def _rule(rule: IgnoreRule, source: str, document: int | None) -> dict[str, Any]:
    return {"source": source, "document": document, **_scrubbed(dataclasses.asdict(rule))}


def _policy_files(directory: Path) -> list[Path]:
    # The files both policy readers read (auditor.engine.ignore, auditor.policies.loader).
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def _drift_ignores(file: Path, shown: str, data: bytes) -> list[dict[str, Any]]:
    """The DriftIgnore documents of one policy file, as :func:`load_policies` reads them."""
    try:
        docs = list(yamlsafe.load_all(data.decode("utf-8"), yamlsafe.PLAIN))
    except (yamlsafe.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{file}: cannot read it as YAML: {getattr(exc, 'problem', exc)}") \
            from None
    out = []
    for index, doc in enumerate(docs):
        if isinstance(doc, Mapping) and doc.get("kind") == DRIFT_IGNORE:
            rule = rule_from_document(doc, f"{file} (document {index + 1})")
            out.append(_rule(rule, shown, index + 1))
    return out


def snapshot(cfg: Config, origin: Origin | None = None, *, tool_version: str = "",
             policies_dir: str | Path | None = None) -> Snapshot:
    """The effective configuration of a process running under ``cfg``: its settings, every
    ignore rule (``compare.ignore``, then each DriftIgnore document of the policies folder,
    as the comparison reads them), the scope and the policy pack. ``policies_dir``: the
    folder the comparison reads instead of ``policies.directory`` (``None``: that one, when
    it is a folder). Reads the files; asks Git nothing."""
    origin = origin or Origin()
    folder = str(policies_dir) if policies_dir is not None else cfg.policies.directory
    root = Path(folder)
    rules = [_rule(r, CONFIG_SOURCE, None) for r in cfg.compare.ignore]
    files: list[FileState] = []
    if origin.config_file:
        try:
            data = yamlsafe.read_limited(origin.config_file)
            files.append(FileState(origin.config_file, "config", hashlib.sha256(data).hexdigest()))
        except OSError:
            pass  # gone since the configuration was loaded: its settings are recorded anyway
    pack: dict[str, str] = {}
    if root.is_dir():
        for file in _policy_files(root):
            data = yamlsafe.read_limited(file)
            name = file.relative_to(root).as_posix()
            shown = str(root / name)
            pack[name] = hashlib.sha256(data).hexdigest()
            files.append(FileState(shown, "policies", pack[name]))
            rules.extend(_drift_ignores(file, shown, data))
    pack_digest = hashlib.sha256(b"".join(
        f"{name}\0{sha}\n".encode() for name, sha in sorted(pack.items()))).hexdigest()
    settings = settings_of(cfg)
    return Snapshot(settings=settings, ignore_rules=rules, scope=settings["scope"],
                    policy_pack={"directory": folder, "digest": pack_digest, "files": pack},
                    config_file=origin.config_file, environment=origin.environment,
                    tool_version=tool_version, files=tuple(files))


# ---------------------------------------------------------------------------- record


def _json(value: Any) -> str:
    # Not sorted: the configuration's own field order reads best, and is stable.
    return orjson.dumps(value).decode()


def record(run: Run, snap: Snapshot, previous: Version | None = None) -> int:
    """Append ``snap`` as a version of ``run``'s mode (row + chain event), committed now, so
    the version stands even if the run fails later; its id."""
    run._check_open()
    batch = run._batch
    row_id = batch.chained(TABLE, {
        "run_id": run.id, "at": run.started_at, "mode": run.mode, "digest": snap.digest,
        "previous_id": previous.id if previous is not None else None,
        "config_file": snap.config_file, "settings": _json(snap.settings),
        "ignore_rules": _json(snap.ignore_rules), "scope": _json(snap.scope),
        "policy_pack": _json(snap.policy_pack), "origin": _json(snap.origin())},
        run.started_at, run.id)
    run.ledger._write(batch)
    return row_id


def record_if_changed(run: Run, snap: Snapshot,
                      attribute: Callable[[str], dict[str, Any] | None] | None = None
                      ) -> int | None:
    """Record ``snap`` when it differs from the last version of ``run``'s mode; its id, or
    None when nothing changed. ``attribute(path)`` says where a file stands in Git; it is
    asked only when a version is recorded, for each file of ``snap`` and each file of the
    previous version that is gone (its deletion may be a commit too)."""
    previous = latest(run.ledger.conn, run.mode)
    if previous is not None and previous.digest == snap.digest:
        return None
    current = [f.path for f in snap.files]
    # Files of the previous version that are gone now (one already gone then is not again).
    gone = [(str(f["path"]), str(f.get("role") or "")) for f in (previous.files if previous
            else ()) if f.get("path") and f.get("sha256") and f["path"] not in current]
    found: dict[str, dict[str, Any] | None] = {}
    if attribute is not None:
        found = {p: attribute(p) for p in [*current, *(path for path, _ in gone)]}
        snap = snap.attributed(found)
    # A removed file stays in the record, without a hash: what removed it is evidence.
    snap = dataclasses.replace(snap, files=(
        *snap.files, *(FileState(path, role, "", found.get(path)) for path, role in gone)))
    return record(run, snap, previous)


# ----------------------------------------------------------------------------- read


_SELECT = f"SELECT seq, {', '.join(_COLUMNS)} FROM {TABLE}"


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default  # verify says the row was altered; a reader shows what it can


def _version(row: tuple[Any, ...]) -> Version:
    seq, vid, run_id, at, mode, digest, previous_id, config_file, settings, rules, scope, \
        pack, origin = row
    return Version(int(vid), int(seq or 0), int(run_id), str(at), str(mode), str(digest),
                   int(previous_id) if previous_id is not None else None,
                   str(config_file or ""), _loads(settings, {}), _loads(rules, []),
                   _loads(scope, {}), _loads(pack, {}), _loads(origin, {}))


def recorded(conn: sqlite3.Connection) -> bool:
    """Whether this ledger has the table (schema step 7; readers never migrate)."""
    return TABLE in schema.tables(conn)


def latest(conn: sqlite3.Connection, mode: str) -> Version | None:
    """The last version recorded for run mode ``mode``."""
    row = conn.execute(f"{_SELECT} WHERE mode = ? ORDER BY id DESC LIMIT 1", (mode,)).fetchone()
    return _version(row) if row is not None else None


def versions(conn: sqlite3.Connection, *, since: str | None = None, until: str | None = None,
             mode: str | None = None) -> list[Version]:
    """Versions recorded in ``[since, until)`` (ledger timestamps), oldest first; an empty
    list on a ledger before schema step 7."""
    if not recorded(conn):
        return []
    where, params = [], []
    for clause, value in (("at >= ?", since), ("at < ?", until), ("mode = ?", mode)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id"
    return [_version(r) for r in conn.execute(sql, params)]


def document(version: Version | Snapshot) -> str:
    """The configuration as YAML, for people and diffs: the settings (``compare.ignore``
    among them), the DriftIgnore rules with their files, the policy pack's files."""
    return yamlsafe.dump({
        "settings": version.settings,
        "drift-ignore": [r for r in version.ignore_rules if r.get("source") != CONFIG_SOURCE],
        "policy-pack": version.policy_pack})


def diff(old: Version | None, new: Version) -> str:
    """A unified diff of :func:`document` from ``old`` (``None``: empty) to ``new``."""
    before = document(old).splitlines(keepends=True) if old is not None else []
    after = document(new).splitlines(keepends=True)
    name = (f"version {old.id} ({old.digest[:12]})" if old is not None else "(nothing recorded)")
    return "".join(difflib.unified_diff(before, after, fromfile=name,
                                        tofile=f"version {new.id} ({new.digest[:12]})"))
