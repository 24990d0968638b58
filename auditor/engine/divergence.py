"""Cross-cluster divergence: one object's stored content in two clusters, field by field.

Owns :func:`diff_objects` (the fields whose values differ between two normalised objects, as
the drift engine's paths: ``spec.template.spec.containers[name=app].image``), :func:`touches`
(whether a drift at one path concerns another: the same field, one inside the other) and
:func:`classify` (``declared`` — no open drift on either side touches the field, so Git says
it differently per cluster, an overlay — or ``drift``).

Pure functions over plain dicts: the ledger (:mod:`auditor.ledger.divergence`) reads both
clusters' contents and drifts and hands them here. Lists are matched as the drift engine
matches them (:mod:`.schema`: by merge key, as sets, or whole when atomic), never by
position, so one container added in one cluster does not make every later container differ.

Secret values never come out: a field under a Secret's ``data``/``stringData`` (or its
last-applied annotation) differs or not, and its values are replaced by
:data:`SECRET_VALUE` — not even the keyed hashes the ledger holds are passed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from auditor.engine import schema
from auditor.engine.normalise import SERVER_OWNED_METADATA
from auditor.engine.paths import Path, Value, render, schema_path

# Keyed items named and values frozen as the drift engine does, so that the paths here
# compare equal to the drifts' paths (omitted keys take their defaults).
from .compare import _IDENTITY_METADATA, _freeze, _item_element

FieldClass = Literal["declared", "drift"]

LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"

# What a present Secret value is shown as: that it differs is the news, never what it is.
SECRET_VALUE: Final = "<secret value>"

# Top-level fields that identify the object (the key already matched them) or that the
# server owns (status): never a divergence.
_IDENTITY_TOP: Final[frozenset[str]] = frozenset({"kind", "status"})


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field whose value differs: ``a``/``b`` are the values (``None`` with ``in_a``/
    ``in_b`` false where that cluster lacks the field)."""

    path: str
    a: Any
    b: Any
    in_a: bool
    in_b: bool


def _ignored(path: Path, name: str) -> bool:
    """Fields that always differ between clusters and mean nothing. Normalisation already
    drops most of them (:data:`~auditor.engine.normalise.SERVER_OWNED_METADATA`, ``status``);
    they are skipped here too so a content stored by an older normaliser compares the same."""
    if not path:
        return name in _IDENTITY_TOP
    if path == ("metadata",):
        return name in _IDENTITY_METADATA or name in SERVER_OWNED_METADATA \
            or name in ("managedFields", "selfLink", "ownerReferences")
    # The last-applied annotation repeats the object's own fields, which are compared one by
    # one already; it differs whenever they do and says nothing more.
    return path == ("metadata", "annotations") and name == LAST_APPLIED


def _secret_path(secret: bool, path: Path) -> bool:
    return secret and bool(path) and (
        path[0] in ("data", "stringData")
        or (len(path) >= 3 and path[0] == "metadata" and path[2] == LAST_APPLIED))


class _Walk:
    """One pair of objects: the differing fields, in walk order."""

    def __init__(self, group: str, version: str, kind: str) -> None:
        self.group, self.version, self.kind = group, version, kind
        self.secret = kind == "Secret" and group == ""
        self.out: list[tuple[Path, Any, Any, bool, bool]] = []

    def emit(self, path: Path, a: Any, b: Any, in_a: bool, in_b: bool) -> None:
        if _secret_path(self.secret, path):
            a = SECRET_VALUE if in_a else None
            b = SECRET_VALUE if in_b else None
        self.out.append((path, a, b, in_a, in_b))

    def node(self, a: Any, b: Any, path: Path) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(a.keys() | b.keys()):
                if _ignored(path, k):
                    continue
                sub = (*path, k)
                if k not in b:
                    self.emit(sub, a[k], None, True, False)
                elif k not in a:
                    self.emit(sub, None, b[k], False, True)
                elif not (a[k] == b[k] and type(a[k]) is type(b[k])):
                    self.node(a[k], b[k], sub)
        elif isinstance(a, list) and isinstance(b, list):
            self.sequence(a, b, path)
        elif a != b or type(a) is not type(b):
            self.emit(path, a, b, True, True)

    def sequence(self, a: list[Any], b: list[Any], path: Path) -> None:
        info = schema.list_info(self.group, self.version, self.kind, schema_path(path), [*a, *b])
        if info.type == "map" and all(isinstance(i, dict) for i in (*a, *b)):
            left = {tuple(_freeze(v) for v in schema.item_key(i, info.keys)): i for i in a}
            right = {tuple(_freeze(v) for v in schema.item_key(i, info.keys)): i for i in b}
            for ident in [*left, *(k for k in right if k not in left)]:
                item = left.get(ident, right.get(ident))
                assert item is not None
                sub = (*path, _item_element(item, info.keys))
                if ident not in right:
                    self.emit(sub, left[ident], None, True, False)
                elif ident not in left:
                    self.emit(sub, None, right[ident], False, True)
                else:
                    self.node(left[ident], right[ident], sub)
            return
        if info.type == "set":
            left_set, right_set = {_freeze(v) for v in a}, {_freeze(v) for v in b}
            for v in a:
                if _freeze(v) not in right_set:
                    self.emit((*path, Value(v)), v, None, True, False)
            for v in b:
                if _freeze(v) not in left_set:
                    self.emit((*path, Value(v)), None, v, False, True)
            return
        # An atomic list is one value (owned and replaced whole): it differs whole.
        self.emit(path, a, b, True, True)


def diff_objects(api_version: str, kind: str, a: Mapping[str, Any],
                 b: Mapping[str, Any]) -> list[FieldDiff]:
    """The fields of two normalised contents of one object that differ, sorted by path.

    ``api_version`` picks the schema whose list keys match list items (the side ``a``'s
    version; one kind's versions share their list keys in practice).
    """
    group, _, version = api_version.rpartition("/")
    walk = _Walk(group, version, kind)
    walk.node(dict(a), dict(b), ())
    diffs = [FieldDiff(render(p), x, y, ia, ib) for p, x, y, ia, ib in walk.out]
    return sorted(diffs, key=lambda d: d.path)


def _within(outer: str, inner: str) -> bool:
    """Whether path ``inner`` is ``outer`` or lies inside it (``outer`` empty: the object)."""
    if not outer or inner == outer:
        return True
    return inner.startswith(outer) and inner[len(outer)] in ".["


def touches(drift_path: str, path: str) -> bool:
    """Whether a drift at ``drift_path`` concerns the field at ``path``: the same field, a
    field inside it, or a field it lies inside. An empty ``drift_path`` (a drift of the
    whole object: an orphan, a missing object) touches every field."""
    return _within(drift_path, path) or _within(path, drift_path)


def touching(drift_paths: Iterable[str], path: str) -> Iterator[str]:
    """The drift paths that touch ``path``, the exact one first, then in the order given."""
    paths = list(drift_paths)
    if path in paths:
        yield path
    yield from (p for p in paths if p != path and touches(p, path))


def classify(path: str, drifts_a: Iterable[str], drifts_b: Iterable[str]) -> FieldClass:
    """``drift`` when an open drift of either cluster touches ``path``; else ``declared``
    (both clusters hold what Git declares for them: an overlay's difference)."""
    if any(touches(p, path) for p in drifts_a) or any(touches(p, path) for p in drifts_b):
        return "drift"
    return "declared"
