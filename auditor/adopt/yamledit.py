"""Editing one document of a YAML file without moving anything else in it: values put and
deleted by path, in the style of what is around them. The only module importing ruamel.yaml.

ruamel re-renders a few constructs differently from how they were written, so the file is
dumped twice, unedited and edited, and only the difference between the two dumps is merged
into the original text (:func:`merge3`). The result must read back (YAML 1.1, as Kubernetes
reads it) as the original documents with the edit applied."""

from __future__ import annotations

import copy
import difflib
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from auditor.adopt.model import CannotEdit
from auditor.adopt.steps import Idx, Sel, Step, Val, find_item, get, parse_path
from auditor.engine.records import DriftItem


def _new_container(step: Step, new_map: Callable[[], dict[str, Any]]) -> Any:
    """The empty map or list the next ``step`` needs, of the same family as ``new_map``."""
    if isinstance(step, str):
        return new_map()
    return CommentedSeq() if new_map is CommentedMap else []


def put(root: Any, steps: Sequence[Step], value: Any, *, create: bool,
        new_map: Callable[[], dict[str, Any]] = dict) -> None:
    """Set the value at ``steps``; with ``create``, make missing maps, lists and keyed list
    items on the way (a keyed item gets its merge keys, as a strategic-merge patch needs)."""
    if not steps:
        raise CannotEdit("cannot replace a whole object")
    node = root
    for n, step in enumerate(steps):
        last = n == len(steps) - 1
        if isinstance(node, dict):
            if not isinstance(step, str | Val):
                raise CannotEdit("a list selector applied to a map")
            name = step if isinstance(step, str) else str(step.value)
            if last:
                node[name] = _assign(node[name], value) if name in node else _styled(None, value)
                return
            if name not in node or node[name] is None:
                if not create:
                    raise CannotEdit(f"no field {name!r} here")
                node[name] = _new_container(steps[n + 1], new_map)
            node = node[name]
        elif isinstance(node, list):
            sel = Val(step) if isinstance(step, str) else step
            index = find_item(node, sel)
            if index is None:
                if not create or isinstance(sel, Idx):
                    raise CannotEdit("no such list item here")
                if last:
                    node.append(value)
                    return
                if not isinstance(sel, Sel):
                    raise CannotEdit("cannot create a set item with content below it")
                item = new_map()
                for k, v in sel.pairs:
                    item[k] = v
                node.append(item)
                index = len(node) - 1
            if last:
                node[index] = _assign(node[index], value)
                return
            node = node[index]
        else:
            raise CannotEdit("a scalar where a map or a list was expected")


def delete(root: Any, steps: Sequence[Step]) -> None:
    """Remove the field or list item at ``steps``; a map or list left empty by that goes
    too (empty and absent are the same to the comparison, and ``env: []`` is noise)."""
    found, parent = get(root, steps[:-1])
    step = steps[-1]
    if not found:
        raise CannotEdit("the field to remove is not here")
    if isinstance(parent, dict):
        name = step if isinstance(step, str) else str(step.value) if isinstance(step, Val) \
            else None
        if name is None or name not in parent:
            raise CannotEdit("the field to remove is not here")
        del parent[name]
    elif isinstance(parent, list):
        index = find_item(parent, Val(step) if isinstance(step, str) else step)
        if index is None:
            raise CannotEdit("the list item to remove is not here")
        del parent[index]
    else:
        raise CannotEdit("the field to remove is not here")
    if not parent and len(steps) > 1 and isinstance(steps[-2], str):
        delete(root, steps[:-1])


def _plain(node: Any) -> Any:
    """A ruamel node as plain data, for equality."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return str(node) if isinstance(node, str) else node


def _copy_style(template: Any, node: Any) -> None:
    """Give a new node the flow/block style its sibling uses, field by field."""
    if isinstance(template, CommentedMap | CommentedSeq) and \
            isinstance(node, CommentedMap | CommentedSeq) and template.fa.flow_style():
        node.fa.set_flow_style()
    if isinstance(template, dict) and isinstance(node, dict):
        for k, v in node.items():
            if k in template:
                _copy_style(template[k], v)


def _assign(old: Any, new: Any) -> Any:
    """``new`` in place of ``old``, reusing ``old``'s nodes wherever they are equal, so an
    atomic list or a map replaced as a whole keeps the text of what did not change."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [k for k in old if k not in new]:
            del old[k]
        for k, v in new.items():
            if k in old and _plain(old[k]) == _plain(v) and type(_plain(old[k])) is type(
                    _plain(v)):
                continue
            old[k] = _assign(old[k], v) if k in old else v
        return old
    if isinstance(old, list) and isinstance(new, list):
        unused = list(old)
        items = []
        for v in new:
            match = next((o for o in unused if _plain(o) == _plain(v)), None)
            if match is not None:
                unused.remove(match)
                items.append(match)
            else:
                sibling = next((o for o in old if isinstance(o, dict)), None)
                if sibling is not None:
                    _copy_style(sibling, v)
                items.append(v)
        old[:] = items
        return old
    return _styled(old, new)


def _styled(old: Any, new: Any) -> Any:
    """``new`` in the quoting style of the scalar it replaces; strings YAML 1.1 would read as
    something else (``on``, ``yes``, ``1e3``) quoted, since Kubernetes reads YAML 1.1."""
    if isinstance(new, str):
        if isinstance(old, DoubleQuotedScalarString):
            return DoubleQuotedScalarString(new)
        if isinstance(old, SingleQuotedScalarString):
            return SingleQuotedScalarString(new)
        if "\n" in new.rstrip("\n") and not new.startswith((" ", "\t")) \
                and not any(line != line.rstrip() for line in new.split("\n")):
            # Multi-line text (a config file in a ConfigMap) as a literal block, as people
            # write it, rather than one quoted line of \n escapes.
            return LiteralScalarString(new)
        if _yaml11_not_str(new):
            return DoubleQuotedScalarString(new)
    return new


def _yaml11_not_str(text: str) -> bool:
    try:
        return not isinstance(yaml.safe_load(text), str) if text.strip() else True
    except yaml.YAMLError:
        return True


def _to_ruamel(value: Any) -> Any:
    """Plain values as ruamel nodes (block style), strings quoted where YAML 1.1 needs it."""
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_ruamel(v)
        return out
    if isinstance(value, list):
        return CommentedSeq(_to_ruamel(v) for v in value)
    return _styled(None, value)


def edit_object(obj: Any, item: DriftItem, *, ruamel: bool) -> None:
    """Apply one drift item's live value to ``obj`` (a manifest or a patch document)."""
    steps = parse_path(item.path)
    if item.op == "removed":
        delete(obj, steps)
        return
    live = item.live
    if isinstance(live, dict) and steps and isinstance(steps[-1], Sel):
        # A new list item reads best with its merge keys first (``- name: DEBUG``).
        first = [k for k, _ in steps[-1].pairs if k in live]
        live = {**{k: live[k] for k in first}, **{k: v for k, v in live.items() if k not in first}}
    value = _to_ruamel(live) if ruamel else copy.deepcopy(live)
    if item.op == "changed":
        found, _ = get(obj, steps)
        if not found:
            raise CannotEdit("the field is not written in this document")
    put(obj, steps, value, create=item.op == "added",
        new_map=CommentedMap if ruamel else dict)


def guess_indent(text: str) -> tuple[int, int, int]:
    """``(mapping indent, sequence indent, dash offset)`` as the file writes its first nested
    block map and block sequence; kubectl's style (2, 2, 0) when it has none."""
    mapping = sequence = offset = None
    parent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "---", "%")):
            continue
        col = len(line) - len(line.lstrip(" "))
        if parent is not None and col > parent:
            if stripped.startswith("- ") and sequence is None:
                offset = col - parent
                rest = stripped[2:]
                sequence = offset + 2 + (len(rest) - len(rest.lstrip(" ")))
            elif not stripped.startswith("-") and mapping is None:
                mapping = col - parent
        body = stripped[2:].lstrip() if stripped.startswith("- ") else stripped
        at = col + (len(stripped) - len(body)) if stripped.startswith("- ") else col
        parent = at if body.endswith(":") and "#" not in body else None
        if mapping is not None and sequence is not None:
            break
    return mapping or 2, sequence or 2, offset if offset is not None else 0


def _yaml_rt(text: str) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16  # never re-wrap long lines
    y.brace_single_entry_mapping_in_flow_sequence = True  # keep `[{a: 1}]` as written
    mapping, sequence, offset = guess_indent(text)
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _dump(y: YAML, docs: list[Any]) -> str:
    buf = io.StringIO()
    y.dump_all(docs, buf)
    return buf.getvalue()


def merge3(original: str, base: str, edited: str) -> str:
    """``original`` with the changes between ``base`` and ``edited`` (ruamel's unedited and
    edited dumps). Where ruamel's re-rendering of a line meets an edit, the edit wins."""
    orig_l = original.splitlines(True)
    base_l = base.splitlines(True)
    edit_l = edited.splitlines(True)
    hunks: list[tuple[int, int, str, int, int]] = []
    for side, target in (("a", orig_l), ("b", edit_l)):
        matcher = difflib.SequenceMatcher(None, base_l, target, autojunk=False)
        hunks += [(i1, i2, side, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
                  if tag != "equal"]
    hunks.sort(key=lambda h: (h[0], h[1]))
    regions: list[list[Any]] = []  # [start, end, hunks]
    for h in hunks:
        if regions:
            s, e = regions[-1][0], regions[-1][1]
            overlap = (h[0] < e and s < h[1]) or (h[0] == h[1] == s == e) \
                or (h[0] == h[1] and s < h[0] < e) or (s == e and h[0] < s < h[1])
            if overlap:
                regions[-1][1] = max(e, h[1])
                regions[-1][2].append(h)
                continue
        regions.append([h[0], h[1], [h]])
    out: list[str] = []
    pos = 0
    for start, end, members in regions:
        out += base_l[pos:start]
        sides = {m[2] for m in members}
        side = "b" if "b" in sides else "a"
        target = edit_l if side == "b" else orig_l
        cursor = start
        for i1, i2, s, j1, j2 in members:
            if s != side:
                continue
            out += base_l[cursor:i1]
            out += target[j1:j2]
            cursor = i2
        out += base_l[cursor:end]
        pos = end
    out += base_l[pos:]
    return "".join(out)


_COMMENT = re.compile(r"(\s+)(#.*)$")


def _keep_comment_spacing(original: str, new: str) -> str:
    """Trailing comments of edited lines keep their original spacing (ruamel re-spaces the
    comment of a flow collection it re-renders)."""
    old_l, new_l = original.splitlines(True), new.splitlines(True)
    matcher = difflib.SequenceMatcher(None, old_l, new_l, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "replace" or i2 - i1 != j2 - j1:
            continue
        for o, n in zip(range(i1, i2), range(j1, j2), strict=True):
            was, now = _COMMENT.search(old_l[o].rstrip("\n")), _COMMENT.search(new_l[n].rstrip("\n"))
            if was and now and was.group(2) == now.group(2) and was.group(1) != now.group(1):
                end = "\n" if new_l[n].endswith("\n") else ""
                new_l[n] = new_l[n].rstrip("\n")[:now.start()] + was.group(1) + was.group(2) + end
    return "".join(new_l)


def load_yaml11(text: str) -> list[Any]:
    return list(yaml.safe_load_all(text))


DocMatch = Callable[[Any], bool]


def edit_text(text: str, match: DocMatch, items: Sequence[DriftItem]) -> str:
    """``text`` (a YAML file) with ``items`` applied to the one document ``match`` picks.

    A byte-order mark and CRLF line ends (files from Windows editors) are kept as found."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    crlf = "\r\n" in text
    body = text[len(bom):].replace("\r\n", "\n") if crlf else text[len(bom):]
    edited = _edit_lf(body, match, items)
    return bom + (edited.replace("\n", "\r\n") if crlf else edited)


def _edit_lf(text: str, match: DocMatch, items: Sequence[DriftItem]) -> str:
    y = _yaml_rt(text)
    try:
        docs = list(y.load_all(text))
        reference = load_yaml11(text)
    except (RuamelError, yaml.YAMLError) as exc:
        raise CannotEdit(f"cannot parse the file as YAML ({type(exc).__name__})") from None
    if len(docs) != len(reference):
        raise CannotEdit("the file's documents are ambiguous")
    chosen = [n for n, doc in enumerate(reference) if match(doc)]
    if len(chosen) != 1:
        raise CannotEdit("no single document in the file is this object" if not chosen
                         else "several documents in the file match this object")
    n = chosen[0]
    base = _dump(y, docs)
    for item in items:
        edit_object(docs[n], item, ruamel=True)
        edit_object(reference[n], item, ruamel=False)
    edited = _dump(y, docs)
    for candidate in (_keep_comment_spacing(text, merge3(text, base, edited)), edited):
        try:
            if load_yaml11(candidate) == reference:
                return candidate
        except yaml.YAMLError:
            continue
    raise CannotEdit("the edited file does not read back as intended")
