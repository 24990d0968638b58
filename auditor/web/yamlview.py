"""Objects as YAML lines a person reads, and the line diff of two of them, for
``drift-auditor serve``'s diff views (:mod:`.serve`).

Each emitted line knows the place in the object it shows (a tuple of keys and list
positions), so that a drift's path (the engine's text form, :mod:`auditor.engine.paths`:
``spec.template.spec.containers[name=web].image``) can be found among the lines to
highlight and label, and so that fields the API server fills in by itself
(:func:`auditor.engine.defaults.is_server_default`) and ``status`` can be hidden.

Git's side of a drift: the ledger stores the live content of each version, and per drift the
desired and live value of each drifted path, not Git's whole manifest. :func:`git_side` builds
it from the live content with each drifted path's desired value put back (a changed value
set, a field only live has taken out, a field only Git has put in).

Secret objects: their values are shown only as the keyed hashes the ledger stores; anything
else under ``data``/``stringData`` (or the last-applied annotation) is replaced.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditor.engine.defaults import is_server_default
from auditor.engine.normalise import LAST_APPLIED, is_secret_hash

Place = tuple[str | int, ...]  # dict keys and list positions from the object's root
HIDDEN_SECRET = "(hidden: not a keyed hash)"
NOT_RECORDED = "(not recorded)"

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$./-][A-Za-z0-9_$./ -]*")
_PLAIN_STR = re.compile(r"[A-Za-z_/$.][A-Za-z0-9_./:@+$=, -]*")
_SPECIAL = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", ""}
_NUMBERISH = re.compile(r"[-+.]?[0-9]")


# --------------------------------------------------------------------------- paths

@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class ItemKey:
    pairs: tuple[tuple[str, str], ...]  # merge key → its text form in the path


@dataclass(frozen=True)
class ItemValue:
    value: Any


@dataclass(frozen=True)
class ItemIndex:
    index: int


Element = Field | ItemKey | ItemValue | ItemIndex


def _key_text(value: Any) -> str:
    """A merge-key value as :func:`auditor.engine.paths.render` writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value and re.fullmatch(r"[A-Za-z0-9_./:@+-]*", value):
        return value
    return orjson.dumps(value).decode() if isinstance(value, str) else str(value)


def _json_end(text: str, start: int) -> int:
    """The index after the JSON string starting at ``text[start] == '"'``."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    raise ValueError("unterminated string")


def parse_path(text: str) -> list[Element]:
    """The elements of a drift path in the engine's text form; ``ValueError`` when it is
    not one."""
    out: list[Element] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ".":
            i += 1
            continue
        if c != "[":
            m = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*").match(text, i)
            if not m:
                raise ValueError(f"bad path {text!r}")
            out.append(Field(m.group()))
            i = m.end()
            continue
        i += 1
        if text.startswith('"', i):  # ["a.b/c"]
            end = _json_end(text, i)
            out.append(Field(orjson.loads(text[i:end])))
            i = end + 1
        elif text.startswith("=", i):  # [="x"] / [=80]
            i += 1
            end = _json_end(text, i) if text.startswith('"', i) else text.index("]", i)
            out.append(ItemValue(orjson.loads(text[i:end])))
            i = end + 1
        elif re.match(r"[0-9]+]", text[i:]):
            end = text.index("]", i)
            out.append(ItemIndex(int(text[i:end])))
            i = end + 1
        else:  # [k=v,k2=v2]
            pairs: list[tuple[str, str]] = []
            while True:
                eq = text.index("=", i)
                key = text[i:eq]
                j = eq + 1
                if text.startswith('"', j):
                    end = _json_end(text, j)
                else:
                    end = j
                    while end < len(text) and text[end] not in ",]":
                        end += 1
                pairs.append((key, text[j:end]))
                i = end + 1
                if text[end] == "]":
                    break
            out.append(ItemKey(tuple(pairs)))
    return out


def _matches(item: Any, key: ItemKey) -> bool:
    if not isinstance(item, Mapping):
        return False
    for name, raw in key.pairs:
        if name not in item:
            return False
        # A quoted form of a plain value still names the same item.
        if _key_text(item[name]) != raw and not (raw.startswith('"') and
                                                 orjson.loads(raw) == item[name]):
            return False
    return True


def _step(node: Any, element: Element) -> tuple[str | int, Any] | None:
    if isinstance(element, Field):
        if isinstance(node, Mapping) and element.name in node:
            return element.name, node[element.name]
        return None
    if not isinstance(node, list):
        return None
    if isinstance(element, ItemIndex):
        return (element.index, node[element.index]) if element.index < len(node) else None
    for n, item in enumerate(node):
        if (isinstance(element, ItemKey) and _matches(item, element)) or \
                (isinstance(element, ItemValue) and item == element.value):
            return n, item
    return None


def locate(tree: Any, elements: Sequence[Element]) -> Place | None:
    """The place of ``elements`` in ``tree`` (``None``: not there)."""
    place: list[str | int] = []
    node = tree
    for element in elements:
        found = _step(node, element)
        if found is None:
            return None
        place.append(found[0])
        node = found[1]
    return tuple(place)


def _get(tree: Any, place: Place) -> Any:
    node = tree
    for part in place:
        node = node[part]
    return node


# --------------------------------------------------------------------------- Git's side

_GONE = object()  # a field only live has: taken out of Git's side after every edit


def _prune(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _prune(v) for k, v in node.items() if v is not _GONE}
    if isinstance(node, list):
        return [_prune(v) for v in node if v is not _GONE]
    return node


def git_side(live: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
             ) -> tuple[dict[str, Any], list[str]]:
    """Git's side of a drift: ``live`` with each drift item's desired value put back.
    Returns the object and the paths that could not be placed (each named on the page)."""
    tree: dict[str, Any] = copy.deepcopy(dict(live))
    unplaced: list[str] = []
    for item in items:
        path = str(item.get("path") or "")
        op = item.get("op") or "changed"
        desired = item.get("desired")
        try:
            elements = parse_path(path)
        except (ValueError, IndexError):
            unplaced.append(path)
            continue
        if not elements:
            unplaced.append(path)
            continue
        place = locate(tree, elements)
        if op in ("changed", "added") and place is not None:
            parent = _get(tree, place[:-1])
            if op == "changed":
                parent[place[-1]] = NOT_RECORDED if desired is None else copy.deepcopy(desired)
            else:
                parent[place[-1]] = _GONE
            continue
        if op == "removed" and place is None and _put(tree, elements, desired):
            continue
        if op == "removed" and place is not None:
            continue  # already there (an earlier item put it back whole)
        unplaced.append(path)
    return _prune(tree), unplaced


def _put(tree: dict[str, Any], elements: Sequence[Element], desired: Any) -> bool:
    """Insert Git's value at a path live lacks, making missing mappings on the way."""
    node: Any = tree
    for element in elements[:-1]:
        found = _step(node, element)
        if found is not None:
            node = found[1]
        elif isinstance(element, Field) and isinstance(node, dict):
            node[element.name] = {}
            node = node[element.name]
        else:
            return False
    last = elements[-1]
    value = NOT_RECORDED if desired is None else copy.deepcopy(desired)
    if isinstance(last, Field) and isinstance(node, dict):
        node[last.name] = value
    elif isinstance(last, ItemIndex) and isinstance(node, list):
        node.insert(min(last.index, len(node)), value)
    elif isinstance(last, ItemKey | ItemValue) and isinstance(node, list):
        node.append(value if not isinstance(last, ItemValue) or desired is not None
                    else last.value)
    elif isinstance(node, dict) and not node and isinstance(last, ItemKey | ItemValue):
        return False
    else:
        return False
    return True


def redact_secret(obj: Any) -> Any:
    """A Secret's content with every value that is not a keyed hash replaced."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for name in ("data", "stringData"):
        values = obj.get(name)
        if isinstance(values, dict):
            out[name] = {k: v if is_secret_hash(v) or v in (NOT_RECORDED, None)
                         else HIDDEN_SECRET for k, v in values.items()}
        elif values is not None:
            out[name] = HIDDEN_SECRET
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) and \
            LAST_APPLIED in meta["annotations"]:
        value = meta["annotations"][LAST_APPLIED]
        out["metadata"] = {**meta, "annotations": {
            **meta["annotations"],
            LAST_APPLIED: value if is_secret_hash(value) else HIDDEN_SECRET}}
    return out


def redact_value(path: str, value: Any) -> Any:
    """A Secret drift item's value: the stored keyed hash, else nothing of it."""
    if value is None or is_secret_hash(value):
        return value
    return HIDDEN_SECRET


# --------------------------------------------------------------------------- YAML lines

@dataclass
class Line:
    text: str
    place: Place
    hidden: str = ""  # "", "default" (filled in by the server) or "status"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if (_PLAIN_STR.fullmatch(text) and text.lower() not in _SPECIAL and not text.endswith(" ")
            and not _NUMBERISH.match(text) and ": " not in text and " #" not in text):
        return text
    return orjson.dumps(text).decode()


def _key(name: Any) -> str:
    text = str(name)
    if _PLAIN_KEY.fullmatch(text) and text.lower() not in _SPECIAL and \
            not text.endswith(" ") and not _NUMBERISH.fullmatch(text):
        return text
    return orjson.dumps(text).decode()


@dataclass
class _Emitter:
    group: str
    kind: str
    root: Mapping[str, Any]
    keep: Sequence[Place]  # drifted places: never hidden as defaults
    lines: list[Line] = field(default_factory=list)

    def _hidden(self, place: Place, value: Any, parent: Mapping[str, Any]) -> str:
        if place[:1] == ("status",):
            return "status"
        if any(k[:len(place)] == place or place[:len(k)] == k for k in self.keep):
            return ""
        schema_path = tuple(p if isinstance(p, str) else "[]" for p in place)
        try:
            default = is_server_default(self.group, self.kind, schema_path, value, parent,
                                        self.root)
        except Exception:  # a shape the table does not expect: show it
            default = False
        return "default" if default else ""

    def add(self, text: str, place: Place, hidden: str) -> None:
        self.lines.append(Line(text, place, hidden))

    def value(self, value: Any, place: Place, indent: int, lead: str, hidden: str) -> None:
        """``lead`` is ``"key:"`` or ``"-"``: a scalar goes on its line, a block below it."""
        pad = " " * indent
        if isinstance(value, dict) and value:
            if lead == "-":
                self.mapping(value, place, indent + 2, hidden, first=pad + "- ")
            else:
                self.add(pad + lead, place, hidden)
                self.mapping(value, place, indent + 2, hidden)
        elif isinstance(value, list) and value:
            if lead == "-":
                self.add(pad + "-", place, hidden)
                self.sequence(value, place, indent + 2, hidden)
            else:
                self.add(pad + lead, place, hidden)
                self.sequence(value, place, indent, hidden)
        elif isinstance(value, dict | list):
            self.add(f"{pad}{lead} {'{}' if isinstance(value, dict) else '[]'}", place, hidden)
        elif isinstance(value, str) and "\n" in value:
            chomp = "|" if value.endswith("\n") else "|-"
            self.add(f"{pad}{lead} {chomp}", place, hidden)
            body = value[:-1] if value.endswith("\n") else value
            for row in body.split("\n"):
                self.add(f"{pad}  {row}" if row else "", place, hidden)
        else:
            self.add(f"{pad}{lead} {_scalar(value)}", place, hidden)

    def mapping(self, obj: Mapping[str, Any], place: Place, indent: int, hidden: str,
                first: str = "") -> None:
        for n, (key, value) in enumerate(obj.items()):
            here = (*place, key)
            hide = hidden or self._hidden(here, value, obj)
            if n == 0 and first:
                start = len(self.lines)
                self.value(value, here, indent, f"{_key(key)}:", hide)
                # The item's dash goes on its first key's line, shown whenever the item is.
                self.lines[start].text = first + self.lines[start].text[indent:]
                self.lines[start].hidden = hidden
            else:
                self.value(value, here, indent, f"{_key(key)}:", hide)

    def sequence(self, items: Sequence[Any], place: Place, indent: int, hidden: str) -> None:
        holder = _get(self.root, place[:-1]) if len(place) > 0 else self.root
        for n, item in enumerate(items):
            here = (*place, n)
            parent = holder if isinstance(holder, Mapping) else {}
            hide = hidden or self._hidden(here, item, parent)
            self.value(item, here, indent, "-", hide)


def lines_of(obj: Mapping[str, Any], group: str, kind: str,
             keep: Sequence[Place] = ()) -> list[Line]:
    """``obj`` as YAML lines, each with its place and whether it is hidden by default."""
    emitter = _Emitter(group, kind, obj, keep)
    emitter.mapping(obj, (), 0, "")
    return emitter.lines


def as_yaml(lines: Sequence[Line]) -> str:
    return "\n".join(line.text for line in lines) + "\n"


# --------------------------------------------------------------------------- the diff

@dataclass
class Side:
    no: int | None = None
    text: str = ""
    changed: bool = False
    hidden: str = ""


@dataclass
class Row:
    left: Side
    right: Side
    labels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.left.changed or self.right.changed

    @property
    def hidden(self) -> str:
        """Why the row is hidden by default: an unchanged line both sides hide."""
        if self.changed or not (self.left.hidden and self.right.hidden):
            return ""
        return self.left.hidden


@dataclass
class Unified:
    sign: str  # " ", "-", "+"
    no_left: int | None
    no_right: int | None
    text: str
    hidden: str
    labels: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Diff:
    rows: list[Row]
    unified: list[Unified]
    changed: int  # changed rows
    hidden: int  # rows hidden by default


def _labels_for(place: Place, marks: Sequence[tuple[Place, dict[str, Any]]]
                ) -> list[dict[str, Any]]:
    return [label for at, label in marks if place[:len(at)] == at]


def diff(left: Sequence[Line], right: Sequence[Line],
         left_marks: Sequence[tuple[Place, dict[str, Any]]] = (),
         right_marks: Sequence[tuple[Place, dict[str, Any]]] = ()) -> Diff:
    """The line diff of two objects' lines, side by side and unified; a changed line is
    labelled with the marks (a drift item's manager and time) whose place holds it."""
    matcher = difflib.SequenceMatcher(None, [x.text for x in left], [x.text for x in right],
                                      autojunk=False)
    rows: list[Row] = []
    unified: list[Unified] = []

    def labels(lx: Line | None, rx: Line | None) -> list[dict[str, Any]]:
        found = _labels_for(rx.place, right_marks) if rx is not None else []
        if not found and lx is not None:
            found = _labels_for(lx.place, left_marks)
        seen: list[dict[str, Any]] = []
        for label in found:
            if label not in seen:
                seen.append(label)
        return seen

    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                hidden = left[i].hidden if left[i].hidden and right[j].hidden else ""
                rows.append(Row(Side(i + 1, left[i].text, False, left[i].hidden),
                                Side(j + 1, right[j].text, False, right[j].hidden)))
                unified.append(Unified(" ", i + 1, j + 1, right[j].text, hidden))
            continue
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            i, j = i1 + k, j1 + k
            lx = left[i] if i < i2 else None
            rx = right[j] if j < j2 else None
            row = Row(Side(i + 1, lx.text, True) if lx else Side(),
                      Side(j + 1, rx.text, True) if rx else Side(), labels(lx, rx))
            rows.append(row)
        for i in range(i1, i2):
            unified.append(Unified("-", i + 1, None, left[i].text, "",
                                   labels(left[i], None) if j1 == j2 else []))
        for j in range(j1, j2):
            unified.append(Unified("+", None, j + 1, right[j].text, "",
                                   labels(None, right[j])))
    return Diff(rows, unified, sum(1 for r in rows if r.changed),
                sum(1 for r in rows if r.hidden))


def places(tree: Any, items: Sequence[Mapping[str, Any]]
           ) -> Iterator[tuple[Place, Mapping[str, Any]]]:
    """Each drift item's place in ``tree`` (items not found there are left out)."""
    for item in items:
        try:
            place = locate(tree, parse_path(str(item.get("path") or "")))
        except (ValueError, IndexError):
            continue
        if place is not None:
            yield place, item
