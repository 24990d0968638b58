"""Adopting drift into Git: write the live values of drifted paths back into the files they
came from, changing only those values.

The input is a fresh comparison (:class:`~auditor.engine.records.ObjectResult` items carry the live
values) and a work tree of the audited commit. For each drifted path this module decides
which file and which YAML document to edit, edits it, and proves the edit did what it should
by rendering the source again: the rendered objects after the edit must equal the rendered
objects before it with exactly the adopted values changed, every other object and field
untouched. An edit that does not pass is undone and the next candidate file is tried; when
none passes, the path is refused with a message naming the file to edit by hand. That check
is what makes kustomize overlays and Helm charts safe: a value set by an ``images:`` or
``replicas:`` transformer, a JSON 6902 patch, a base shared by another overlay or a template
expression simply fails it, instead of the tool guessing.

Edits go through ruamel.yaml's round-trip loader and dumper. ruamel re-renders a few
constructs differently from how they were written (``[{a: 1}]`` becomes ``[a: 1]``, document
markers, some comment placements), so the file is dumped twice, once unedited and once edited,
and only the difference between those two dumps is merged into the original text (a three-way
line merge). The result is re-parsed with PyYAML (YAML 1.1, as Kubernetes reads it) and must
equal the original documents with the edit applied.

Where the value goes: a plain manifest's own document; for a kustomization, the strategic-
merge patches that target the object (outermost overlay first), then the resource file it
came from (kustomize's origin annotation) unless another kustomization in the repository
also builds from that file; for a Helm chart, a values-file leaf equal to the desired value
(or to the part of it the live value changes, an image tag), ``-f`` files before the chart's
``values.yaml``. All paths of an object are first tried together and proved by one render;
on any doubt, path by path. Server defaults inside an added item (a container's
``terminationMessagePath``, a port's ``protocol: TCP``) are dropped before writing.

Never adopted: Secrets (their values must not be written anywhere), drifts whose category is
``controller`` or ``gitops`` (controller-owned fields; server defaults are not drift at all),
missing and orphan objects, JSON manifests and objects inside ``List`` documents.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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

from auditor.config import Source
from auditor.desired import render
from auditor.engine import defaults, kinds, paths
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey
from auditor.errors import ManifestError

ADOPTABLE_CATEGORIES: tuple[str, ...] = ("human", "unknown")

_PLAIN_FIELD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_INT = re.compile(r"-?[0-9]+")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """How the audited source renders, with paths relative to the repository root."""

    paths: tuple[str, ...] = (".",)
    mode: render.RenderMode = "auto"
    namespace: str = "default"
    release: str = ""
    values: tuple[str, ...] = ()
    set_values: tuple[str, ...] = ()
    # (group, kind) → namespaced, as the audit learnt it (discovery, CRDs): a cluster-scoped
    # custom kind must not get the default namespace.
    scopes: Mapping[tuple[str, str], bool] = field(default_factory=dict)

    @classmethod
    def of_source(cls, source: Source) -> RenderSpec:
        return cls(tuple(source.paths), source.render, source.namespace,
                   source.helm.release or source.name, tuple(source.helm.values),
                   tuple(source.helm.set))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A path (or a whole object when ``path`` is empty) that is not adopted, and why."""

    key: ResourceKey | None
    path: str
    reason: str
    file: str = ""

    def __str__(self) -> str:
        what = f"{self.key}" if self.key else "adopt"
        if self.path:
            what += f" {self.path}"
        return f"{what}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Adopted:
    """A drifted path written into ``file``."""

    key: ResourceKey
    item: DriftItem
    file: str


@dataclass
class Outcome:
    """What an adoption did: files edited (old and new text), paths adopted, paths refused."""

    adopted: list[Adopted] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)

    def diff(self) -> str:
        """A unified diff of every edited file, as ``git diff`` would show it."""
        out: list[str] = []
        for rel, (old, new) in sorted(self.files.items()):
            out.extend(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                            f"a/{rel}", f"b/{rel}"))
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)


class CannotEdit(Exception):
    """An edit that cannot be made safely; the message says why (never a value)."""


# --------------------------------------------------------------------------- selection


def select(result: ObjectResult, patterns: Sequence[str] = (),
           categories: Sequence[str] = ADOPTABLE_CATEGORIES
           ) -> tuple[list[DriftItem], list[Refusal]]:
    """The drift items of ``result`` to adopt, and refusals for the object or for items left out.

    ``patterns`` are path globs (:func:`auditor.engine.paths.glob_regex`); none means every path.
    """
    key = result.key
    if key.group == "" and key.kind == "Secret":
        return [], [Refusal(key, "", "Secrets are never adopted: their values must not be "
                                     "written to Git (or anywhere); rotate or change the "
                                     "Secret through your secret manager and its manifest")]
    if result.status != "drifted":
        why = {"missing": "it is missing from the cluster; there is no live value to adopt "
                          "(to adopt the deletion, remove its manifest by hand)",
               "orphan": "it is not in Git; adopting a whole object is not supported, add its "
                         "manifest by hand",
               "in-sync": "it is in sync", "ignored": "an ignore rule covers it"}
        return [], [Refusal(key, "", why.get(result.status, f"status {result.status}"))]
    regexes = [paths.glob_regex(p) for p in patterns]
    chosen: list[DriftItem] = []
    refused: list[Refusal] = []
    for item in result.drifts:
        if regexes and not any(rx.match(item.path) for rx in regexes):
            continue
        if item.category not in categories:
            refused.append(Refusal(key, item.path, f"owned by {item.manager or 'a controller'} "
                                   f"({item.category}): controller-owned values are not "
                                   "written to Git"))
            continue
        chosen.append(item)
    if regexes and not chosen and not refused:
        refused.append(Refusal(key, "", f"no drifted path matches {', '.join(patterns)}"))
    return chosen, refused


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True, slots=True)
class Sel:
    """A list item by merge keys, ``[name=web]`` / ``[containerPort=80,protocol=TCP]``."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Val:
    """An item of a set-like list, by value."""

    value: Any


@dataclass(frozen=True, slots=True)
class Idx:
    """A list item by position (or a number-valued set item)."""

    index: int


Step = str | Sel | Val | Idx


def _token(text: str) -> Any:
    text = text.strip()
    if text.startswith('"'):
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    return text


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf))
    return out


def parse_path(text: str) -> tuple[Step, ...]:
    """The steps of a drift path in the contract's text form (inverse of
    :func:`auditor.engine.paths.render`). A quoted bracket is a map key or a set item; which one
    depends on the node it is applied to."""
    steps: list[Step] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            i += 1
            continue
        if ch == "[":
            if text.startswith('["', i):
                value, end = json.JSONDecoder().raw_decode(text, i + 1)
                if not text.startswith("]", end):
                    raise CannotEdit(f"path {text!r}: expected ']' at {end}")
                steps.append(str(value))
                i = end + 1
                continue
            j, quoted = i + 1, False
            while j < len(text) and (quoted or text[j] != "]"):
                if text[j] == '"' and text[j - 1] != "\\":
                    quoted = not quoted
                j += 1
            inner = text[i + 1:j]
            parts = _split_outside_quotes(inner, ",")
            if inner.startswith("="):
                # A set item, `finalizers[="example.com/x"]`, as server-side apply writes it.
                steps.append(Val(_token(inner[1:])))
            elif all("=" in p for p in parts):
                pairs = []
                for part in parts:
                    k, _, v = part.partition("=")
                    pairs.append((k.strip(), _token(v)))
                steps.append(Sel(tuple(pairs)))
            elif _INT.fullmatch(inner):
                steps.append(Idx(int(inner)))
            else:
                steps.append(Val(_token(inner)))
            i = j + 1
            continue
        match = _PLAIN_FIELD.match(text, i)
        if match is None:
            raise CannotEdit(f"path {text!r}: unexpected {ch!r} at {i}")
        steps.append(match.group())
        i = match.end()
    return tuple(steps)


def _same(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    # Paths print merge-key values without type (``[containerPort=80]``).
    def text(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    return not isinstance(a, dict | list) and not isinstance(b, dict | list) and text(a) == text(b)


def _find_item(items: list[Any], step: Sel | Val | Idx) -> int | None:
    if isinstance(step, Idx):
        for n, item in enumerate(items):  # a number-valued set item first
            if not isinstance(item, dict | list) and _same(item, step.index):
                return n
        return step.index if 0 <= step.index < len(items) else None
    for n, item in enumerate(items):
        if isinstance(step, Sel):
            if isinstance(item, dict) and all(k in item and _same(item[k], v)
                                              for k, v in step.pairs):
                return n
        elif _same(item, step.value) or (isinstance(step.value, str) and not isinstance(
                item, dict | list) and json.dumps(item, sort_keys=True) == step.value):
            return n
    return None


def get(root: Any, steps: Sequence[Step]) -> tuple[bool, Any]:
    """``(found, value)`` at ``steps`` below ``root``."""
    node = root
    for step in steps:
        if isinstance(node, dict):
            if not isinstance(step, str) and not isinstance(step, Val):
                return False, None
            name = step if isinstance(step, str) else str(step.value)
            if name not in node:
                return False, None
            node = node[name]
        elif isinstance(node, list):
            index = _find_item(node, Val(step) if isinstance(step, str) else step)
            if index is None:
                return False, None
            node = node[index]
        else:
            return False, None
    return True, node


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
            index = _find_item(node, sel)
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
        index = _find_item(parent, Val(step) if isinstance(step, str) else step)
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


def _schema_steps(steps: Sequence[Step]) -> tuple[str, ...]:
    return tuple(s if isinstance(s, str) else "[]" for s in steps)


def strip_defaults(key: ResourceKey, path: str, value: Any) -> Any:
    """``value`` (the live content of an added or changed path) without the fields the API
    server filled in by itself (a container's ``terminationMessagePath``, a port's
    ``protocol: TCP``): those are never written to Git."""
    if not isinstance(value, dict | list):
        return value
    base = _schema_steps(parse_path(path))

    def walk(node: Any, where: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            out = {}
            for name, child in node.items():
                here = (*where, str(name))
                if not isinstance(child, dict | list) and defaults.is_server_default(
                        key.group, key.kind, here, child, node):
                    continue
                out[name] = walk(child, here)
            return out
        if isinstance(node, list):
            return [walk(child, (*where, "[]")) for child in node]
        return node

    return walk(value, base)


# --------------------------------------------------------------------------- text edits


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


def _load_11(text: str) -> list[Any]:
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
        reference = _load_11(text)
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
            if _load_11(candidate) == reference:
                return candidate
        except yaml.YAMLError:
            continue
    raise CannotEdit("the edited file does not read back as intended")


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class _Unit:
    """One render unit: a plain file, a kustomization folder or a chart folder."""

    kind: str  # 'plain' | 'kustomize' | 'helm'
    rel: str


def _key(obj: Mapping[str, Any], spec: RenderSpec) -> ResourceKey:
    """The key the audit gave this rendered object (namespace defaulted per source)."""
    key = ResourceKey.of(dict(obj))
    namespaced = kinds.is_namespaced(key.group, key.kind, spec.scopes)
    if not key.namespace and namespaced:
        key = ResourceKey(key.group, key.kind, spec.namespace, key.name)
    elif key.namespace and not namespaced:
        key = ResourceKey(key.group, key.kind, "", key.name)
    return key


@dataclass
class _Rendered:
    objects: dict[ResourceKey, dict[str, Any]]
    where: dict[ResourceKey, tuple[_Unit, render.RenderedObject]]
    # Per unit: a broken file elsewhere in the source does not stop an adoption, but an edit
    # must not break anything (the errors after it must be the errors before it).
    errors: dict[_Unit, tuple[str, ...]] = field(default_factory=dict)

    def same_as(self, expected: Mapping[ResourceKey, str], before: _Rendered) -> bool:
        return self.errors == before.errors and _canon(self.objects) == expected


def _render(root: Path, spec: RenderSpec, tools_dir: str | os.PathLike[str] | None,
            only_plain: Iterable[str] | None = None,
            previous: _Rendered | None = None) -> _Rendered:
    """Render the source unit by unit (so each object knows how it was made).

    With ``previous`` and ``only_plain``, plain files other than those are taken from
    ``previous`` (a plain file only ever renders its own objects); kustomizations and charts
    always render again, as an edit anywhere may reach them.
    """
    objects: dict[ResourceKey, dict[str, Any]] = {}
    where: dict[ResourceKey, tuple[_Unit, render.RenderedObject]] = {}
    errors: dict[_Unit, tuple[str, ...]] = {}
    skip = {os.path.normpath(v) for v in spec.values}
    redo = set(only_plain) if only_plain is not None else None

    def add(unit: _Unit, result: render.RenderResult) -> None:
        if result.errors:
            errors[unit] = tuple(str(e) for e in result.errors)
        for ro in result.objects:
            key = _key(ro.obj, spec)
            objects[key] = ro.obj
            where[key] = (unit, ro)

    for rel in spec.paths:
        try:
            plan = render.plan(root, rel, spec.mode)
        except ManifestError as exc:
            raise CannotEdit(str(exc)) from None
        for file in plan.files:
            if os.path.normpath(file) in skip:
                continue
            unit = _Unit("plain", file)
            if previous is not None and redo is not None and file not in redo:
                for key, (u, ro) in previous.where.items():
                    if u == unit:
                        objects[key], where[key] = previous.objects[key], (u, ro)
                if unit in previous.errors:
                    errors[unit] = previous.errors[unit]
                continue
            add(unit, render.load_file(root, file))
        for folder in plan.kustomizations:
            add(_Unit("kustomize", folder), render.render_kustomize(root, folder, tools_dir))
        for chart in plan.charts:
            add(_Unit("helm", chart), render.render_helm(
                root, chart, release=spec.release or Path(chart).resolve().name,
                namespace=spec.namespace, values=spec.values, set_values=spec.set_values,
                tools_dir=tools_dir))
    return _Rendered(objects, where, errors)


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A file and a document in it that may hold the value, and how to recognise it."""

    file: str
    match: DocMatch
    why: str
    items: tuple[DriftItem, ...] = ()  # what to write there, when not the drift item itself


def _names_match(doc: Any, key: ResourceKey, group: str | None = None) -> bool:
    if not isinstance(doc, dict) or doc.get("kind") != key.kind:
        return False
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return False
    if group is not None and kinds.group_of(str(doc.get("apiVersion") or "")) != group:
        return False
    # Kustomize may add a prefix or suffix to the name a base or patch declares.
    return name == key.name or name in key.name


def _doc_matcher(key: ResourceKey, spec: RenderSpec, exact: bool) -> DocMatch:
    def match(doc: Any) -> bool:
        if not _names_match(doc, key, key.group):
            return False
        if not exact:
            return True
        return isinstance(doc, dict) and _key(doc, spec) == key
    return match


def _kustomization_data(folder: Path) -> dict[str, Any]:
    kfile = render.kustomization_file(folder)
    if kfile is None:
        return {}
    try:
        data = yaml.safe_load(kfile.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _patch_files(root: Path, folder: Path, seen: set[Path] | None = None
                 ) -> Iterator[tuple[str, bool]]:
    """``(file, is strategic merge)`` for the patches of a kustomization and of the
    kustomizations it includes, the outermost (applied last, so winning) first."""
    seen = seen if seen is not None else set()
    if folder in seen:
        return
    seen.add(folder)
    data = _kustomization_data(folder)
    entries: list[tuple[str, bool]] = []
    for entry in data.get("patchesStrategicMerge") or ():
        if isinstance(entry, str):
            entries.append((entry, True))
    for entry in data.get("patches") or ():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entries.append((entry["path"], True))
    for entry in data.get("patchesJson6902") or ():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entries.append((entry["path"], False))
    for rel, smp in entries:
        target = (folder / rel).resolve()
        if target.is_file() and target.is_relative_to(root):
            # A `patches:` file holding a JSON 6902 op list is no strategic-merge patch.
            is_smp = smp and not target.read_text(encoding="utf-8").lstrip().startswith("-")
            yield target.relative_to(root).as_posix(), is_smp
    for entry in [*(data.get("resources") or ()), *(data.get("bases") or ()),
                  *(data.get("components") or ())]:
        if isinstance(entry, str) and "://" not in entry:
            sub = (folder / entry).resolve()
            if sub.is_dir() and sub.is_relative_to(root):
                yield from _patch_files(root, sub, seen)


def _file_docs(root: Path, rel: str) -> list[Any]:
    try:
        return _load_11((root / rel).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []


def _candidates(root: Path, spec: RenderSpec, key: ResourceKey, unit: _Unit,
                origin: render.RenderedObject, item: DriftItem
                ) -> tuple[list[_Candidate], list[str]]:
    """Where the value of ``item`` may be written, in order, and files worth naming in a
    refusal (JSON 6902 patches, kustomization files, values files)."""
    steps = parse_path(item.path)
    hand: list[str] = []
    if unit.kind == "plain":
        return [_Candidate(unit.rel, _doc_matcher(key, spec, exact=True), "manifest")], hand
    if unit.kind == "helm":
        return _helm_candidates(root, spec, unit, item), hand
    folder = (root / unit.rel).resolve()
    kfile = render.kustomization_file(folder)
    if kfile is not None:
        hand.append(kfile.relative_to(root.resolve()).as_posix())
    loose = _doc_matcher(key, spec, exact=False)
    out: list[_Candidate] = []
    patches: list[str] = []
    for rel, smp in _patch_files(root.resolve(), folder):
        if not smp:
            hand.append(rel)
            continue
        docs = [d for d in _file_docs(root, rel) if loose(d)]
        if not docs:
            continue
        patches.append(rel)
        if item.op != "added" and not any(get(d, steps)[0] for d in docs):
            continue
        out.append(_Candidate(rel, loose, "patch"))
    if item.op == "added" and patches and not out:
        out.append(_Candidate(patches[0], loose, "patch"))
    if origin.file != unit.rel and not origin.file.endswith(render.KUSTOMIZATION_FILES):
        docs = [d for d in _file_docs(root, origin.file) if loose(d)]
        if docs and (item.op == "added" or any(get(d, steps)[0] for d in docs)):
            users = _other_users(root.resolve(), folder, (root / origin.file).resolve().parent)
            if users:
                # The render of this source cannot see the other overlays: changing a shared
                # base would change them unreviewed.
                hand.append(f"{origin.file} (shared with {', '.join(users)})")
            else:
                out.append(_Candidate(origin.file, loose, "resource"))
    return out, hand


def _reachable(root: Path, folder: Path, seen: set[Path] | None = None) -> set[Path]:
    """Folders a kustomization builds from: itself and its local resources, recursively."""
    seen = seen if seen is not None else set()
    if folder in seen:
        return seen
    seen.add(folder)
    data = _kustomization_data(folder)
    for entry in [*(data.get("resources") or ()), *(data.get("bases") or ()),
                  *(data.get("components") or ())]:
        if isinstance(entry, str) and "://" not in entry:
            target = (folder / entry).resolve()
            if target.is_dir() and target.is_relative_to(root):
                _reachable(root, target, seen)
            elif target.is_file():
                seen.add(target.parent)
    return seen


def _other_users(root: Path, unit: Path, base: Path) -> list[str]:
    """Kustomizations elsewhere in the repository that also build from ``base``."""
    mine = _reachable(root, unit)
    users = []
    for folder, dirnames, _files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(folder)
        if here in mine or render.kustomization_file(here) is None:
            continue
        if base in _reachable(root, here):
            users.append(here.relative_to(root).as_posix())
    return users


def _helm_files(root: Path, spec: RenderSpec, unit: _Unit) -> list[str]:
    """Values files, the ones given with ``-f`` (which win) first."""
    files = []
    for value in spec.values:  # relative to the repository, else to the chart (as helm runs)
        if (root / value).is_file():
            files.append(os.path.normpath(value))
        elif (root / unit.rel / value).is_file():
            files.append(os.path.normpath(f"{unit.rel}/{value}"))
    if (root / unit.rel / "values.yaml").is_file():
        files.append(f"{unit.rel}/values.yaml" if unit.rel != "." else "values.yaml")
    return files


def _leaves(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                yield from _leaves(v, (*prefix, k))
    elif not isinstance(node, list) and node is not None:
        yield prefix, node


def _helm_candidates(root: Path, spec: RenderSpec, unit: _Unit,
                     item: DriftItem) -> list[_Candidate]:
    """Values leaves that may hold a changed scalar: equal to the desired value, or a part of
    a desired string (an image tag) whose surroundings the live value keeps. Each is only a
    guess until the render proves it; additions and removals are never mapped."""
    if item.op != "changed" or isinstance(item.desired, dict | list) \
            or isinstance(item.live, dict | list) or item.desired is None:
        return []
    out: list[_Candidate] = []
    for rel in _helm_files(root, spec, unit):
        docs = _file_docs(root, rel)
        if len(docs) != 1 or not isinstance(docs[0], dict):
            continue
        for where, leaf in _leaves(docs[0]):
            new: Any = None
            if _same(leaf, item.desired) and type(leaf) is type(item.desired):
                new = item.live
            elif isinstance(leaf, str) and isinstance(item.desired, str) \
                    and isinstance(item.live, str) and leaf and item.desired.count(leaf) == 1:
                before, _, after = item.desired.partition(leaf)
                live = item.live
                if live.startswith(before) and live.endswith(after) \
                        and len(live) > len(before) + len(after):
                    new = live[len(before):len(live) - len(after)]
            if new is None:
                continue
            edit = DriftItem(paths.render(where), "changed", leaf, new)
            out.append(_Candidate(rel, lambda d: isinstance(d, dict), "values", (edit,)))
    return out


# --------------------------------------------------------------------------- adopt


def _read(path: Path) -> str:
    # newline="": CRLF files must reach edit_text as they are, not translated to LF.
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _expected(objects: Mapping[ResourceKey, dict[str, Any]], key: ResourceKey,
              items: Sequence[DriftItem]) -> dict[ResourceKey, dict[str, Any]]:
    out = dict(objects)
    obj = copy.deepcopy(out[key])
    for item in items:
        edit_object(obj, item, ruamel=False)
    out[key] = obj
    return out


def _canon(objects: Mapping[ResourceKey, dict[str, Any]]) -> dict[ResourceKey, str]:
    # JSON text: ``2 == 2.0`` and ``True == 1`` must not make a wrong edit pass.
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in objects.items()}


def adopt_into(root: Path, spec: RenderSpec,
               selected: Sequence[tuple[ResourceKey, Sequence[DriftItem]]], *,
               tools_dir: str | os.PathLike[str] | None = None) -> Outcome:
    """Write the live values of ``selected`` drift items into the work tree at ``root``.

    Each path is edited in the first candidate file where a fresh render proves the edit
    right; otherwise it is refused and the files are left as they were. The work tree is
    modified in place: give it a throw-away worktree.
    """
    outcome = Outcome()
    originals: dict[str, str] = {}
    try:
        current = _render(root, spec, tools_dir)
    except CannotEdit as exc:
        outcome.refusals.append(Refusal(None, "", f"cannot render the source: {exc}"))
        return outcome
    for key, items in selected:
        if key not in current.where:
            outcome.refusals.extend(Refusal(key, i.path, "not found in the rendered source at "
                                            "this commit") for i in items)
            continue
        stripped = [dataclasses.replace(d, live=strip_defaults(key, d.path, d.live))
                    for d in items]
        batch = _try_all_at_once(root, spec, tools_dir, current, key, stripped)
        if batch is not None:
            current, placed, saved = batch
            outcome.adopted.extend(placed)
            for rel, old_text in saved.items():
                originals.setdefault(rel, old_text)
            continue
        for item in stripped:
            unit, origin = current.where[key]
            expected = _canon(_expected(current.objects, key, [item]))
            candidates, hand = _candidates(root, spec, key, unit, origin, item)
            tried: list[str] = []
            done = False
            for cand in candidates:
                path = root / cand.file
                old = _read(path)
                if cand.file.endswith(".json"):
                    tried.append(f"{cand.file} (JSON is not edited)")
                    continue
                try:
                    new = edit_text(old, cand.match, cand.items or [item])
                except CannotEdit as exc:
                    tried.append(f"{cand.file} ({exc})")
                    continue
                _write(path, new)
                try:
                    after = _render(root, spec, tools_dir, only_plain=[cand.file],
                                    previous=current)
                    ok = after.same_as(expected, current)
                except CannotEdit:
                    ok = False
                if not ok:
                    _write(path, old)
                    tried.append(f"{cand.file} (the render did not come out as the live "
                                 "object, or changed something else)")
                    continue
                originals.setdefault(cand.file, old)
                current = after
                outcome.adopted.append(Adopted(key, item, cand.file))
                done = True
                break
            if not done:
                outcome.refusals.append(_refusal(root, spec, key, unit, origin, item, tried,
                                                 hand))
    for rel, old in originals.items():
        new = _read(root / rel)
        if new != old:
            outcome.files[rel] = (old, new)
    return outcome


def _try_all_at_once(root: Path, spec: RenderSpec, tools_dir: str | os.PathLike[str] | None,
                     current: _Rendered, key: ResourceKey, items: Sequence[DriftItem]
                     ) -> tuple[_Rendered, list[Adopted], dict[str, str]] | None:
    """Every item of one object in its first candidate file, proved by one render.

    The common case costs one render per object instead of one per path (each render runs
    every kustomization and chart of the source). On any doubt the files are put back and
    None returned: the caller then goes path by path, trying further candidates.
    """
    unit, origin = current.where[key]
    saved: dict[str, str] = {}
    placed: list[Adopted] = []

    def restore() -> None:
        for rel, text in saved.items():
            _write(root / rel, text)

    for item in items:
        candidates, _hand = _candidates(root, spec, key, unit, origin, item)
        for cand in candidates:
            if cand.file.endswith(".json"):
                continue
            path = root / cand.file
            text = _read(path)
            try:
                new = edit_text(text, cand.match, cand.items or [item])
            except CannotEdit:
                continue
            saved.setdefault(cand.file, text)
            _write(path, new)
            placed.append(Adopted(key, item, cand.file))
            break
        else:
            restore()
            return None
    try:
        after = _render(root, spec, tools_dir, only_plain=list(saved), previous=current)
        ok = after.same_as(_canon(_expected(current.objects, key, items)), current)
    except CannotEdit:
        ok = False
    if not ok:
        restore()
        return None
    return after, placed, saved


def _refusal(root: Path, spec: RenderSpec, key: ResourceKey, unit: _Unit,
             origin: render.RenderedObject, item: DriftItem, tried: list[str],
             hand: list[str]) -> Refusal:
    if unit.kind == "helm":
        files = _helm_files(root, spec, unit)
        target = files[0] if files else f"{unit.rel}/values.yaml"
        detail = f" (tried: {'; '.join(tried)})" if tried else ""
        return Refusal(key, item.path, f"rendered by Helm from {origin.file}; no single value "
                       f"in the values files provably sets it — edit {target} by hand{detail}",
                       target)
    if unit.kind == "kustomize":
        name = hand[0] if hand else unit.rel
        detail = f" (tried: {'; '.join(tried)})" if tried else ""
        extra = f"; also involved: {', '.join(hand[1:])}" if hand[1:] else ""
        return Refusal(key, item.path, f"cannot tell safely which file of the kustomization "
                       f"{unit.rel} sets this value (a transformer, a JSON patch or a base "
                       f"shared with another overlay){extra} — edit {name} or its patches by "
                       f"hand{detail}", name)
    detail = "; ".join(tried) or "no document of this object found"
    return Refusal(key, item.path, f"cannot edit {unit.rel} safely ({detail}) — edit it by "
                   "hand", unit.rel)
