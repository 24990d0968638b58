"""A fast path for loading manifest YAML: rapidyaml's C++ parser, PyYAML's values.

PyYAML builds every node in Python even on libyaml's parser: over half of a ``diff`` of
10,000 objects went to it. rapidyaml (``ryml``) parses a document to a tree and writes it
out as JSON in C++; orjson builds the Python objects from that, and a walk in Python checks
them. ~3.5× faster than PyYAML on typical manifests (auditor/desired/render.py).

The catch is that ryml reads YAML 1.2 and :data:`~auditor.support.yamlsafe.MANIFEST` reads
YAML 1.1, as sigs.k8s.io/yaml (go-yaml v2) does: ``yes``/``on``/``0x1F``/``0123``/``1_000``/
``~``/``.inf`` are booleans, numbers and nulls there, strings (or other numbers) here. So
:func:`load` hands back a value only when nothing in the document can read differently,
and raises :class:`Fallback` otherwise, for the caller to load the document with PyYAML.
It never decides a document is invalid: any error of ryml or orjson is a fallback too, and
PyYAML names the problem and its line.

What falls back (each check errs on the side of falling back; see :func:`load`):

- anything ryml builds differently or not at all: anchors and aliases, tags, merge keys,
  directives, complex keys, ``...``, tabs, backslash escapes other than ``\\n \\t \\" \\\\``,
  characters PyYAML refuses or reads as line breaks (NEL, LS, PS), a BOM, plain scalars
  starting with a reserved ``@`` or a backquote, nesting past ryml's emitter (64 levels),
  a ``*`` at a node's start followed by anything but a space or a quote, and ``*"``/``*'``
  in ryml's output (an alias with a quote in its name to PyYAML, a string to ryml);
- in the JSON ryml writes: any string (key or value) that a YAML 1.1 plain scalar would
  resolve to a non-string, unless ryml writes that plain scalar unquoted (``true``,
  ``false``, ``null``, decimal integers and ``digits.digits``: then the JSON string was
  quoted in the YAML too); any key a plain scalar would not keep a string (``1``, ``true``,
  ``""``); any number with a fraction or exponent (which source text it came from is
  unknown) and any integer past 64 bits (orjson reads those as floats);
- a document whose top level is not a mapping (empty documents, scalars, sequences).

Without the ``rapidyaml`` package :data:`AVAILABLE` is false and :func:`load` always falls
back. This is the one module that imports ``ryml``. ryml writes its own message to stderr
when it refuses a document (invalid YAML, nesting past 64): PyYAML then names the problem.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson

from auditor.support import yamlsafe

try:
    import ryml
except ImportError:  # pragma: no cover - the dependency is declared; PyYAML does all then
    ryml = None

AVAILABLE = ryml is not None


class Fallback(Exception):
    """The document needs PyYAML: the fast path would not build exactly what it builds."""


# Source text ryml reads differently from libyaml, or that decides more than JSON carries.
# Matched anywhere (inside quotes too): a false match only costs a PyYAML load. Each branch
# starts with its character, then looks behind: "at the start of a node" is "after a space,
# a flow indicator or nothing" (``(?<![^…].)``), so ``a*b`` or ``user@host`` pass.
_NODE_START = r"(?<![^\s\[\]{},].)"
_SOURCE_RISK = re.compile(
    rf"[&!@`]{_NODE_START}"  # an anchor, a tag, a reserved indicator
    # An alias (a bare ``*`` ryml reads as "*"). One followed by a quote is left to the check
    # on ryml's output (_QUOTED_ALIAS): cron's ``"0 3 * * *"`` must not cost a PyYAML load.
    rf"|\*{_NODE_START}(?=[^\s\[\]{{}},\"'])"
    # A bare ``*`` as a whole node (an alias without a name: an error to PyYAML, the string
    # "*" to ryml), told from the stars of a quoted ``"0 3 * * *"`` by what comes before it.
    r"|(?:^|[:\-?\[{,])[ \t]*\*(?=[\s\[\]{},]|$)"
    rf"|\?{_NODE_START}(?=\s|$)"  # a complex key
    r"|%(?<![^\n].)|<<"  # a directive, a merge key
    r"|\\[^nt\"\\]"  # escapes beyond the common ones (and escaped line breaks)
    # Tabs, NEL/LS/PS (line breaks in YAML 1.1), a BOM, what PyYAML refuses as unprintable.
    "|[^\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]",
    re.MULTILINE)
# The characters every branch of _SOURCE_RISK starts with: one scan for them is ~6× cheaper
# than the full expression, which then runs only on the documents that hold one.
_RISK_CHARS = re.compile(
    "[&!@`*?%<\\\\]"
    "|[^\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
# ``*"x`` and ``*'x`` are aliases to PyYAML (an error without their anchor) and strings to
# ryml, which writes them into its JSON as these: seen there, PyYAML decides.
_QUOTED_ALIAS = ('*\\"', "*'")


def _nonstr_patterns() -> str:
    """The manifest loader's implicit resolvers (bool, int, float, null, merge…) as one
    regular expression: a plain scalar matching it is not a string in YAML 1.1."""
    seen: dict[str, None] = {}
    table: dict[Any, Any] = yamlsafe.MANIFEST.yaml_implicit_resolvers  # type: ignore[attr-defined]
    for resolvers in table.values():
        for tag, rx in resolvers:
            if tag != "tag:yaml.org,2002:str":
                seen.setdefault(f"(?x:{rx.pattern.strip()[1:-1]})")
    return "|".join(seen)


# A string that a plain scalar of the same text would not leave a string in YAML 1.1, or that
# ryml may have rewritten (it writes a plain ``inf`` as ``.inf``).
_NONSTR = re.compile(_nonstr_patterns() + r"|(?i:[-+]?\.?(?:inf|infinity|nan))")
# Plain scalars ryml writes unquoted in JSON (tests/test_yaml_loaders.py checks it): a JSON
# string of this form was quoted in the YAML, a string in both.
_UNQUOTED = re.compile(r"true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
# Strings that are YAML's node properties alone: read plain, they are errors or nulls, and
# _SOURCE_RISK sends every plain one to PyYAML; so in ryml's JSON they were quoted (RBAC's
# ``verbs: ["*"]``), strings on both paths.
_PROPERTIES = frozenset({"*", "!", "&"})
_MAY_START = frozenset("-+.0123456789yYnNtTfFoO~<!&*iI")  # first characters of _NONSTR
_NUMERIC = frozenset("-+.0123456789")
_SAFE_KEYS: set[str] = set()  # keys seen to be safe, up to _MAX_SAFE_KEYS of them
_MAX_SAFE_KEYS = 10_000


def _exact(doc: dict[str, Any]) -> bool:
    """Whether PyYAML builds ``doc`` (orjson's reading of ryml's JSON) the same: no key a
    plain scalar would not keep a string, no string value of a form ryml writes quoted
    that YAML 1.1 reads as another type, no float (which text it came from is unknown:
    ``1e3`` and ``-.5`` are strings in YAML 1.1), no integer orjson read as a float."""
    stack: list[Any] = [doc]
    pop, push = stack.pop, stack.append
    known, may, numeric, nonstr = _SAFE_KEYS, _MAY_START, _NUMERIC, _NONSTR.fullmatch
    while stack:
        node = pop()
        if type(node) is dict:
            for key in node:
                if key not in known:
                    if not key or (key[0] in may and nonstr(key)):
                        return False
                    if len(known) < _MAX_SAFE_KEYS:
                        known.add(key)
            values = node.values()
        else:
            values = node
        for value in values:
            kind = type(value)
            if kind is str:
                if (value and value[0] in may and (len(value) < 10 or value[0] in numeric)
                        and nonstr(value) and not _UNQUOTED.fullmatch(value)
                        and value not in _PROPERTIES):
                    return False
            elif kind is dict or kind is list:
                push(value)
            elif kind is float:
                return False
    return True


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """rapidyaml's C++ writes a refused document's parse error to the process's stderr
    (PyYAML then reports the same error properly, naming file, document and line): that
    stray output is sent to /dev/null for the duration. Only in a process without other
    threads, whose own stderr lines would be lost with it."""
    if ryml is None or threading.active_count() > 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load(text: str, *, max_document_bytes: int = yamlsafe.MAX_DOCUMENT_BYTES,
         max_depth: int = yamlsafe.MAX_DEPTH) -> dict[str, Any]:
    """The one YAML document in ``text`` (a mapping) exactly as
    ``yamlsafe.load(text, yamlsafe.MANIFEST)`` builds it, or :class:`Fallback` when the fast
    path cannot vouch for that (see the module's docstring), is not installed, or the
    document nears a bound of :mod:`~auditor.support.yamlsafe` (PyYAML then names it)."""
    if ryml is None or len(text) * 4 > max_document_bytes:
        raise Fallback
    if ((_RISK_CHARS.search(text) and _SOURCE_RISK.search(text))
            or "\n..." in text or text.startswith("...")):
        raise Fallback  # see _SOURCE_RISK; ``...`` ends a document: another may follow
    try:
        tree = ryml.parse_in_arena(text.encode("utf-8"))
        node = tree.root_id()
        if tree.is_stream(node):
            if tree.num_children(node) != 1:
                raise Fallback
            node = tree.first_child(node)
        if not tree.is_map(node):
            raise Fallback
        out = ryml.emit_json(tree, node)  # ExceptionVisit past its depth (64 levels)
        doc = orjson.loads(out)
    except (ryml.ExceptionBasic, UnicodeEncodeError, orjson.JSONDecodeError) as exc:
        raise Fallback from exc
    if type(doc) is not dict or not _exact(doc) or (
            "*" in out and any(alias in out for alias in _QUOTED_ALIAS)):
        raise Fallback
    # ryml's emitter refuses past 64 levels: a tighter bound than MAX_DEPTH needs a look.
    if max_depth < 64 and out.count("{") + out.count("[") > max_depth:
        try:
            yamlsafe.check_depth(doc, max_depth)
        except yamlsafe.LimitError as exc:
            raise Fallback from exc
    return doc
