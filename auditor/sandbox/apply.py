"""Server-side apply and ``metadata.managedFields``, after the API server's field manager.

Every write records ownership the way kube-apiserver's fieldmanager does:

* ``Update`` (POST, PUT, non-apply PATCH, subresource writes): the writer takes the paths the
  write added or modified, other managers lose them, everybody loses removed paths. A write
  that changes nothing leaves the entries (and their ``time``) alone. On create the "before"
  object is the Go zero value of the type, so struct fields that always exist (``spec``,
  ``spec.template``) are not members of the set while maps that appear (``labels``) are,
  which is why real entries show ``"f:labels": {".": {}, ...}`` but never ``"f:spec": {".":…``.
* ``Apply`` (``application/apply-patch+yaml``): the applier owns exactly the applied paths;
  paths it applied before and no longer applies are removed unless someone else owns them;
  changing a value another manager owns is a 409 conflict unless ``force=true``.

Entries are identified by (manager, operation, subresource) plus apiVersion for ``Update``,
and sorted like the server sorts them: ``Apply`` before ``Update``, then by time and name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from auditor.sandbox import fieldset
from auditor.sandbox.fieldset import MISSING, FieldSet, Path
from auditor.sandbox.schema import Field, child, element
from auditor.sandbox.status import ApiError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SERVER_META = ("name", "namespace", "creationTimestamp", "selfLink", "uid", "generation",
                "managedFields", "resourceVersion", "deletionTimestamp",
                "deletionGracePeriodSeconds")


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``managedFields`` entry, with its field set decoded."""

    manager: str
    operation: str
    api_version: str
    time: str
    subresource: str
    fields: frozenset[Path]

    def ident(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation,
                "" if self.operation == "Apply" else self.api_version, self.subresource)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fieldset.encode(set(self.fields)),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def render(entries: list[Entry]) -> list[dict[str, Any]]:
    """``metadata.managedFields`` for ``entries``, in the server's order."""
    ordered = sorted(entries, key=lambda e: (e.operation, e.time, e.manager, e.api_version,
                                             e.subresource))
    return [e.to_json() for e in ordered]


def parse(managed: list[dict[str, Any]]) -> list[Entry]:
    """Entries from ``metadata.managedFields`` JSON (for objects loaded with history)."""
    out: list[Entry] = []
    for raw in managed:
        out.append(Entry(
            manager=str(raw.get("manager", "")),
            operation=str(raw.get("operation", "Update")),
            api_version=str(raw.get("apiVersion", "")),
            time=str(raw.get("time", "")),
            subresource=str(raw.get("subresource", "")),
            fields=frozenset(fieldset.decode(raw.get("fieldsV1") or {})),
        ))
    return out


def strip(obj: dict[str, Any] | None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """``obj`` without the parts the field manager never tracks (shallow copies only).

    ``drop=("status",)`` is the view of a main-resource write for kinds whose status is a
    subresource (the status is a reset field there).
    """
    if obj is None:
        return {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind") and k not in drop}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _SERVER_META}
    return out


def update(entries: list[Entry], before: dict[str, Any], after: dict[str, Any], f: Field, *,
           manager: str, api_version: str, now: str, subresource: str = "") -> list[Entry]:
    """Entries after an ``Update`` by ``manager`` turned ``before`` into ``after``.

    Both objects must already be :func:`strip`-ped views.
    """
    added, modified, removed = fieldset.compare(before, after, f)
    changed = added | modified
    ident = (manager, "Update", api_version, subresource)
    mine: Entry | None = None
    out: list[Entry] = []
    for e in entries:
        if e.ident() == ident:
            mine = e
            continue
        fields = e.fields - changed - removed
        if fields:
            out.append(e if fields == e.fields else replace(e, fields=frozenset(fields)))
    if changed:
        base = set(mine.fields) - removed if mine else set()
        out.append(Entry(manager, "Update", api_version, now, subresource,
                         frozenset(base | changed)))
    elif mine is not None:
        fields = mine.fields - removed
        if fields:
            out.append(replace(mine, fields=frozenset(fields)))
    return out


class ApplyConflict(ApiError):
    """409 from server-side apply: fields owned by other managers would change."""

    def __init__(self, conflicts: list[tuple[Entry, Path]]) -> None:
        causes = [{"type": "FieldManagerConflict",
                   "message": f"conflict with {_print_manager(e)}",
                   "field": fieldset.path_string(p)} for e, p in conflicts]
        if len(conflicts) == 1:
            e, p = conflicts[0]
            message = (f"Apply failed with 1 conflict: conflict with {_print_manager(e)}: "
                       f"{fieldset.path_string(p)}")
        else:
            by_manager: dict[str, list[str]] = {}
            for e, p in conflicts:
                by_manager.setdefault(_print_manager(e), []).append(fieldset.path_string(p))
            lines: list[str] = []
            for name in sorted(by_manager):
                lines.append(f"conflicts with {name}:")
                lines.extend(f"- {p}" for p in by_manager[name])
            message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
        super().__init__("Conflict", message, details={"causes": causes})


def _print_manager(e: Entry) -> str:
    text = f'"{e.manager}"'
    if e.subresource:
        text += f' with subresource "{e.subresource}"'
    if e.operation == "Update":
        text += f" using {e.api_version}"
    return text


def apply(entries: list[Entry], live: dict[str, Any] | None, config: dict[str, Any], f: Field, *,
          manager: str, api_version: str, now: str, force: bool,
          drop: tuple[str, ...] = (), subresource: str = "") -> tuple[dict[str, Any], list[Entry]]:
    """Server-side apply of ``config`` onto ``live`` (None when creating).

    Returns the merged object (server metadata of ``live`` kept) and the new entries.
    Raises :class:`ApplyConflict` when another manager owns a value the config changes.
    """
    cfg = strip(config, drop=drop)
    new_set = fieldset.to_field_set(cfg, f)
    if config.get("metadata"):
        # name/namespace are stripped as paths upstream, so metadata never becomes a member
        new_set.discard(("f:metadata",))
    merged: dict[str, Any] = fieldset.merge(live if live is not None else MISSING, cfg, f)
    ident = (manager, "Apply", "", subresource)
    mine = next((e for e in entries if e.ident() == ident), None)
    others = [e for e in entries if e.ident() != ident]
    if mine is not None:
        managed: FieldSet = set(new_set)
        for e in others:
            managed |= e.fields
        _prune(merged, set(mine.fields), managed, f)
    added, modified, removed = fieldset.compare(strip(live, drop=drop) if live else {},
                                                strip(merged, drop=drop), f)
    changed = added | modified
    conflicts: list[tuple[Entry, Path]] = []
    for e in others:
        for path in sorted(e.fields & changed):
            conflicts.append((e, path))
    if conflicts and not force:
        allowed = _allowed_by_last_applied(live, f) if manager == "kubectl" else set()
        if any(p not in allowed for _, p in conflicts):
            raise ApplyConflict([(e, p) for e, p in conflicts if p not in allowed])
        force = True  # upgrading client-side apply to server-side apply: no conflicts
    out: list[Entry] = []
    for e in others:
        fields = e.fields - removed - (changed if force else set())
        if fields:
            out.append(e if fields == e.fields else replace(e, fields=frozenset(fields)))
    unchanged = mine is not None and mine.fields == new_set and not changed and not removed
    when = mine.time if unchanged and mine is not None else now
    if new_set:
        out.append(Entry(manager, "Apply", api_version, when, subresource, frozenset(new_set)))
    return merged, out


def _allowed_by_last_applied(live: dict[str, Any] | None, f: Field) -> FieldSet:
    """Conflicts the server forgives when ``kubectl`` takes over from client-side apply.

    Like the API server's lastAppliedManager: fields in the
    ``kubectl.kubernetes.io/last-applied-configuration`` annotation whose live value is
    still the last-applied one may change owner to ``kubectl`` without ``--force-conflicts``.
    """
    annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(LAST_APPLIED)
    if not raw:
        return set()
    try:
        last = json.loads(raw)
    except ValueError:
        return set()
    if not isinstance(last, dict):
        return set()
    last_s = strip(last)
    applied = fieldset.to_field_set(last_s, f)
    _, modified, _ = fieldset.compare(last_s, strip(live), f)
    return {p for p in applied if p not in modified}


def _prune(merged: dict[str, Any], last: FieldSet, managed: FieldSet, f: Field) -> None:
    """Remove what the applier applied last time and nobody manages now, in place.

    structured-merge-diff's ``prune`` + ``addBackOwnedItems`` + ``addBackDanglingItems``,
    with its ``EnsureNamedFieldsAreMembers``: a struct field counts as owned by whoever
    owns something beneath it. Candidates are everything at or under a previously applied
    path; what goes is each previously applied path at or under an unowned candidate,
    with its whole subtree — so a list item leaves as a whole even when someone else
    still owns a field inside it, but never its key fields first.
    """
    if not last:
        return
    last_named = _named_closure(last, f)
    managed_named = _named_closure(managed, f)
    present = fieldset.all_paths(merged, f)
    unowned = {p for p in present if _at_or_under(p, last_named)} - managed_named
    removal = sorted((p for p in last_named if p in present and _at_or_under(p, unowned)),
                     key=len)
    done: FieldSet = set()
    for path in removal:
        if _at_or_under(path, done):
            continue  # its parent is already gone
        fieldset.remove_path(merged, path, f)
        done.add(path)


def _named_closure(paths: FieldSet, f: Field) -> FieldSet:
    """``paths`` plus every declared struct field on the way to one of them."""
    out = set(paths)
    for path in paths:
        node = f
        for i, pe in enumerate(path[:-1]):
            if pe.startswith("f:"):
                node, declared = child(node, pe[2:])
                if declared:
                    out.add(path[:i + 1])
            else:
                node = element(node)
    return out


def _at_or_under(path: Path, roots: FieldSet) -> bool:
    return any(path[:i] in roots for i in range(1, len(path) + 1))
