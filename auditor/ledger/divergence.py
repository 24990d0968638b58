"""Cross-cluster divergence read from two clusters' ledgers: which objects and fields differ
between them, whether Git declares the difference (an overlay) or a drift made it, and who
changed each side and when.

    result = compare(conn_staging, conn_prod, "staging", "prod")
    result.exit_code()          # 0: nothing beyond what Git declares per cluster; 1: divergence
    result.to_json(everything=False)
    result.to_text(everything=False)

Owns the reads (every object whose latest version is live, its latest stored content, the
open and accepted drifts with their items, each object's newest change) and the assembly of
:class:`Divergence`; the field-by-field comparison and the classification are the engine's
(:mod:`auditor.engine.divergence`). The two connections are only read, with plain SQL in the
ledger's dialect, so an SQLite file opened read-only (:mod:`.readonly`) and a cluster's ledger
in the PostgreSQL fleet store both serve. Nothing is joined across the two ledgers in SQL:
their IDs are their own; objects meet by their key.

No Secret value comes out: the ledger holds keyed hashes only, and the engine replaces even
those by a marker (hashes made with two clusters' different keys would differ anyway).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from auditor.engine.divergence import FieldClass, FieldDiff, classify, diff_objects, touching
from auditor.engine.records import ResourceKey
from auditor.errors import LedgerError

ObjectStatus = Literal["diverged", "declared", "only-in-a", "only-in-b", "no-content"]


@dataclass(frozen=True, slots=True)
class Side:
    """One cluster's side of a field: its value and who changed it last, and when."""

    value: Any
    present: bool
    manager: str = ""
    user: str = ""
    time: str = ""

    def as_dict(self) -> dict[str, Any]:
        # Normalised content holds no nulls: a null value is an absent field.
        return {"value": self.value, "manager": self.manager, "user": self.user,
                "time": self.time}


@dataclass(frozen=True, slots=True)
class FieldDivergence:
    """One differing field, its class and both clusters' sides."""

    path: str
    cls: FieldClass
    a: Side
    b: Side


@dataclass(frozen=True, slots=True)
class ObjectDivergence:
    """One object that differs between the clusters. ``cls`` is ``drift`` when any of its
    fields is (or, for an object in one cluster only, when an open drift there concerns it),
    else ``declared``."""

    key: ResourceKey
    status: ObjectStatus
    cls: FieldClass
    fields: tuple[FieldDivergence, ...] = ()
    # For an object in one cluster only: who last changed it on each side that knows it
    # (made it, or deleted it), and when; ``None`` for a cluster that never saw it.
    a: Side | None = None
    b: Side | None = None


@dataclass(frozen=True)
class Divergence:
    """Two clusters compared: every object that differs, sorted by key (group, kind,
    namespace, name). An object whose latest content retention pruned on either side is
    listed as ``no-content`` (shown with ``--all``, counted in the summary)."""

    clusters: tuple[str, str]
    objects: list[ObjectDivergence] = field(default_factory=list)
    compared: int = 0  # objects live in either cluster

    def shown(self, everything: bool) -> list[ObjectDivergence]:
        """The objects to show: drift only, or also what Git declares per cluster."""
        out = []
        for o in self.objects:
            if everything:
                out.append(o)
            elif o.cls == "drift":
                out.append(ObjectDivergence(o.key, o.status, o.cls,
                                            tuple(f for f in o.fields if f.cls == "drift"),
                                            o.a, o.b))
        return out

    def exit_code(self) -> int:
        """0 when the clusters differ only as Git declares them to, else 1."""
        return 1 if any(o.cls == "drift" for o in self.objects) else 0

    def summary(self) -> dict[str, int]:
        fields = [f for o in self.objects for f in o.fields]
        return {"compared": self.compared,
                "diverged": sum(o.cls == "drift" for o in self.objects),
                "declared": sum(o.cls == "declared" and o.status != "no-content"
                                for o in self.objects),
                "only_in_a": sum(o.status == "only-in-a" for o in self.objects),
                "only_in_b": sum(o.status == "only-in-b" for o in self.objects),
                "no_content": sum(o.status == "no-content" for o in self.objects),
                "drift_fields": sum(f.cls == "drift" for f in fields),
                "declared_fields": sum(f.cls == "declared" for f in fields)}

    def to_dict(self, everything: bool = False) -> dict[str, Any]:
        """The JSON document (keys in a fixed order)."""
        objects = []
        for o in self.shown(everything):
            entry: dict[str, Any] = {
                "kind": o.key.kind, "namespace": o.key.namespace, "name": o.key.name,
                "group": o.key.group, "status": o.status, "class": o.cls,
                "fields": [{"path": f.path, "class": f.cls, "a": f.a.as_dict(),
                            "b": f.b.as_dict()} for f in o.fields]}
            if o.a is not None or o.b is not None:
                entry["a"] = o.a.as_dict() if o.a else None
                entry["b"] = o.b.as_dict() if o.b else None
            objects.append(entry)
        return {"clusters": list(self.clusters), "objects": objects,
                "summary": self.summary()}

    def to_json(self, everything: bool = False) -> bytes:
        return orjson.dumps(self.to_dict(everything), option=orjson.OPT_INDENT_2) + b"\n"

    def to_text(self, everything: bool = False) -> str:
        """Grouped by object, objects by key, fields by path."""
        a, b = self.clusters
        width = max(len(a), len(b))
        lines: list[str] = []
        for o in self.shown(everything):
            k = o.key
            name = f"{k.kind}{'.' + k.group if k.group else ''} " \
                   f"{k.namespace + '/' if k.namespace else ''}{k.name}"
            if o.status in ("only-in-a", "only-in-b"):
                here, gone = ((a, o.a), (b, o.b)) if o.status == "only-in-a" \
                    else ((b, o.b), (a, o.a))
                lines.append(f"{name}: only in {here[0]} ({o.cls}){_who(here[1])}"
                             + (f"; gone from {gone[0]}{_who(gone[1])}" if gone[1] else ""))
                continue
            if o.status == "no-content":
                lines.append(f"{name}: content not kept in the ledger (pruned): not compared")
                continue
            lines.append(f"{name}: " + ("diverged (drift)" if o.status == "diverged"
                                        else "differs as Git declares per cluster"))
            for f in o.fields:
                lines.append(f"  {f.path} [{f.cls}]")
                for cluster, s in ((a, f.a), (b, f.b)):
                    lines.append(f"    {cluster.ljust(width)}  {_show(s)}{_who(s)}")
        n = self.summary()
        lines.append(
            f"{a} vs {b}: {n['compared']} objects compared, {n['diverged']} diverged "
            f"({n['drift_fields']} drifted fields), {n['declared']} differ as Git declares"
            f"{'' if everything else ' (shown with --all)'}, "
            f"{n['only_in_a']} only in {a}, {n['only_in_b']} only in {b}"
            + (f", {n['no_content']} not compared (content pruned)" if n["no_content"] else ""))
        return "\n".join(lines) + "\n"


def _show(side: Side) -> str:
    if not side.present:
        return "(absent)"
    return orjson.dumps(side.value, option=orjson.OPT_SORT_KEYS).decode()


def _who(side: Side | None) -> str:
    if side is None or not (side.manager or side.user or side.time):
        return ""
    who = side.user or side.manager
    extra = f" via {side.manager}" if side.user and side.manager else ""
    return (f"  by {who}{extra}" if who else "") + (f" at {side.time}" if side.time else "")


# ------------------------------------------------------------------------------- reads

@dataclass
class _Ledger:
    """What one ledger says about its live objects."""

    contents: dict[ResourceKey, tuple[str, dict[str, Any] | None]]  # api version, content
    oids: dict[ResourceKey, int]
    drifts: dict[int, list[dict[str, Any]]]  # object id → open drift items (path "" = whole)
    changes: dict[int, tuple[str, str, str]]  # object id → newest change (time, manager, user)


def _json(value: Any) -> Any:
    # JSON text from SQLite; a driver that decodes JSON columns itself hands the value over.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _read(conn: sqlite3.Connection) -> _Ledger:
    # Every object the ledger knows, deleted ones too: a drift may be about an object this
    # cluster no longer has (``missing``: someone deleted what Git declares).
    oids = {ResourceKey(grp or "", kind, ns or "", name): int(oid) for oid, grp, kind, ns, name
            in conn.execute("SELECT id, grp, kind, namespace, name FROM objects")}
    contents: dict[ResourceKey, tuple[str, dict[str, Any] | None]] = {}
    for grp, kind, ns, name, api_version, content in conn.execute(
            "SELECT o.grp, o.kind, o.namespace, o.name, v.api_version, c.content "
            "FROM latest l JOIN objects o ON o.id = l.object_id "
            "JOIN object_versions v ON v.id = l.version_id "
            "LEFT JOIN contents c ON c.version_id = l.version_id "
            "WHERE COALESCE(l.deleted, 0) = 0"):
        key = ResourceKey(grp or "", kind, ns or "", name)
        contents[key] = (api_version or "", _json(content) if content else None)
    drifts: dict[int, list[dict[str, Any]]] = {}
    for oid, items in conn.execute(
            "SELECT d.object_id, d.items FROM drifts d JOIN drift_state s ON s.drift_id = d.id "
            "WHERE s.state IN ('open', 'accepted') ORDER BY d.id"):
        parsed = _json(items) if items else []
        listed = [i for i in parsed if isinstance(i, dict)] if isinstance(parsed, list) else []
        # A drift without items (an orphan, a missing object) is about the whole object.
        drifts.setdefault(int(oid), []).extend(listed or [{"path": ""}])
    changes: dict[int, tuple[str, str, str]] = {}
    for oid, time, manager, user in conn.execute(
            "SELECT c.object_id, c.time, c.manager, c.user FROM changes c JOIN "
            "(SELECT object_id, max(id) AS id FROM changes GROUP BY object_id) m "
            "ON m.id = c.id"):
        changes[int(oid)] = (time or "", manager or "", user or "")
    return _Ledger(contents, oids, drifts, changes)


def _side(ledger: _Ledger, key: ResourceKey, path: str, value: Any, present: bool) -> Side:
    """The value with who changed it: the touching drift item's owner when it names one,
    else the object's newest change."""
    oid = ledger.oids.get(key)
    items = ledger.drifts.get(oid, []) if oid is not None else []
    by_path = {str(i.get("path") or ""): i for i in reversed(items)}
    for p in touching(by_path, path):
        item = by_path[p]
        if item.get("manager") or item.get("time"):
            return Side(value, present, str(item.get("manager") or ""),
                        str(item.get("user") or ""), str(item.get("time") or ""))
    time, manager, user = ledger.changes.get(oid, ("", "", "")) if oid is not None \
        else ("", "", "")
    return Side(value, present, manager, user, time)


def _paths(ledger: _Ledger, key: ResourceKey) -> list[str]:
    oid = ledger.oids.get(key)
    return [str(i.get("path") or "") for i in ledger.drifts.get(oid, [])] \
        if oid is not None else []


def _fields(a: _Ledger, b: _Ledger, key: ResourceKey,
            diffs: list[FieldDiff]) -> tuple[FieldDivergence, ...]:
    paths_a, paths_b = _paths(a, key), _paths(b, key)
    out = []
    for d in diffs:
        cls = classify(d.path, paths_a, paths_b)
        if cls == "declared":
            # Git set both values; the object's newest change may be of another field, so
            # naming its actor here would blame someone for an overlay.
            out.append(FieldDivergence(d.path, cls, Side(d.a, d.in_a), Side(d.b, d.in_b)))
        else:
            out.append(FieldDivergence(d.path, cls, _side(a, key, d.path, d.a, d.in_a),
                                       _side(b, key, d.path, d.b, d.in_b)))
    return tuple(out)


def _compare(a: _Ledger, b: _Ledger) -> tuple[list[ObjectDivergence], int]:
    out: list[ObjectDivergence] = []
    keys = sorted(a.contents.keys() | b.contents.keys())
    for key in keys:
        in_a, in_b = a.contents.get(key), b.contents.get(key)
        if in_a is None or in_b is None:
            status: ObjectStatus = "only-in-a" if in_b is None else "only-in-b"
            # Drift when either cluster has an open drift on it: an orphan made by hand
            # where it is, or a ``missing`` drift where someone deleted it.
            cls: FieldClass = "drift" if _paths(a, key) or _paths(b, key) else "declared"
            sides = [_side(x, key, "", None, there) if key in x.oids else None
                     for x, there in ((a, in_a is not None), (b, in_b is not None))]
            out.append(ObjectDivergence(key, status, cls, (), sides[0], sides[1]))
            continue
        (api_a, content_a), (_api_b, content_b) = in_a, in_b
        if content_a is None or content_b is None:
            out.append(ObjectDivergence(key, "no-content", "declared"))
            continue
        diffs = diff_objects(api_a, key.kind, content_a, content_b)
        if not diffs:
            continue
        fields = _fields(a, b, key, diffs)
        drifted = any(f.cls == "drift" for f in fields)
        out.append(ObjectDivergence(key, "diverged" if drifted else "declared",
                                    "drift" if drifted else "declared", fields))
    return out, len(keys)


def compare(conn_a: sqlite3.Connection, conn_b: sqlite3.Connection, name_a: str,
            name_b: str) -> Divergence:
    """Compare the live objects two clusters' ledgers hold (each connection is only read)."""
    ledgers = []
    for name, conn in ((name_a, conn_a), (name_b, conn_b)):
        try:
            ledgers.append(_read(conn))
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{name}: cannot read the ledger: {exc}") from None
    objects, compared = _compare(ledgers[0], ledgers[1])
    return Divergence((name_a, name_b), objects, compared)
