"""Reading untrusted YAML and files, bounded: the one module that imports PyYAML.

Git, config, policy and snapshot files are input the auditor does not control. PyYAML builds
what a file describes, and a file can describe far more than it holds: nine nested aliases
nine deep ("billion laughs", 449 bytes) stand for 387 million nodes. PyYAML shares an
aliased node rather than copying it, so the load itself is cheap (merge keys do copy);
whatever walks the result afterwards (packing to JSON, ``repr`` in an error message) expands
it, and one such file grew a run past 3 GiB. So every load here checks, between composing a
document's node graph and building Python objects from it:

- how many nodes aliases add once expanded (:data:`MAX_ALIAS_NODES` for a whole file,
  so many small documents cannot add up), and that no alias refers to a node containing it;
- how deep the document nests (:data:`MAX_DEPTH`: the JSON packing and the comparison
  recurse, and a deeper object ended a run with ``RecursionError``);
- how large one document is (:data:`MAX_DOCUMENT_BYTES`: composing costs up to ~175 bytes
  of memory per byte of YAML);

and :func:`read_limited` reads no file past a limit. A bound crossed raises
:class:`LimitError`, a ``YAMLError`` (so every YAML handler already names the file) that is
also an :class:`~auditor.errors.AuditorError`, saying which limit.

The loaders keep PyYAML's YAML 1.1, as sigs.k8s.io/yaml reads manifests: :data:`MANIFEST`
(libyaml's C parser for speed, timestamps and ``=`` read as the strings Kubernetes sees),
:data:`FAST` (the C parser, PyYAML's safe types) and :data:`PLAIN` (what ``yaml.safe_load``
uses). :func:`excerpt` quotes a loaded value in an error message, at most a short line of it.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Hashable, Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from auditor.errors import AuditorError

MiB = 1024 * 1024

# A file read whole: a manifest, a kustomization, a policy or DriftIgnore file.
MAX_FILE_BYTES = 64 * MiB
# The Kubernetes API server takes at most 3 MiB in one request: no larger object applies.
MAX_DOCUMENT_BYTES = 3 * MiB
# What aliases may add to one file, expanded. Manifests rarely use aliases at all; libraries
# that do share a few labels or a schema fragment, thousands of nodes, not a hundred thousand.
MAX_ALIAS_NODES = 100_000
# Levels of nesting in one document. Real manifests nest a few dozen at most (CRD schemas
# are the deepest); orjson packs up to 255 and the comparison recurses per level: 990 ended
# a run with RecursionError, 124 compares.
MAX_DEPTH = 128

YAMLError = yaml.YAMLError
_CAP = 1 << 60  # expanded sizes stop growing here: machine-sized integers, still past any limit
_STR = "tag:yaml.org,2002:str"


class LimitError(yaml.YAMLError, AuditorError):
    """Input past one of this module's bounds. ``problem`` says which, ``problem_mark``
    (when known) is where: attributes as PyYAML's own errors have them."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark
        self.context: str | None = None
        self.context_mark: Any = None

    def __str__(self) -> str:
        return self.problem


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n:,} bytes"


def read_limited(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path``, or :class:`LimitError` when it holds more than ``limit``.

    Never reads more than ``limit + 1`` bytes, whatever ``path`` is (a file growing while it
    is read, a pipe, a link to a device), nor allocates for more than it reads: a buffer of
    the limit's size would be 2 GiB for a snapshot. ``OSError`` as ``open`` raises it.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise LimitError(f"larger than {_size(limit)}, the limit for one file")
        # The size a regular file reports and a byte more (to see it did not grow), then
        # chunk by chunk for what reports none.
        parts = [fh.read(size + 1)]
        total = len(parts[0])
        while total <= limit:
            part = fh.read(min(MiB, limit + 1 - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
    if total > limit:
        raise LimitError(f"larger than {_size(limit)}, the limit for one file")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_text(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> str:
    """:func:`read_limited` decoded as UTF-8 (``UnicodeDecodeError`` when it is not)."""
    return read_limited(path, limit).decode("utf-8")


# --------------------------------------------------------------------------- the bounds


class Budget:
    """What aliases may still add to the documents of one file, expanded."""

    __slots__ = ("limit", "remaining")

    def __init__(self, nodes: int = MAX_ALIAS_NODES) -> None:
        self.limit = self.remaining = nodes


def _children(node: Node) -> list[Node]:
    value = node.value
    if isinstance(node, MappingNode):
        return [part for pair in value for part in pair]
    return value if isinstance(node, SequenceNode) else []


def _check_tree(root: Node, max_depth: int) -> None:
    """The depth of a document without aliases (a tree), level by level: no recursion,
    and each node visited once."""
    level = [root]
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise LimitError(f"nested more than {max_depth} levels deep, the limit for a "
                             "YAML document", level[0].start_mark)
        below: list[Node] = []
        for node in level:
            value = node.value
            if type(value) is list:  # a collection; a scalar's value is a string
                if value and type(value[0]) is tuple:
                    for pair in value:
                        below.extend(pair)
                else:
                    below.extend(value)
        level = below


def _check_graph(root: Node, max_depth: int, budget: Budget) -> None:
    """Depth and expanded size of a document whose aliases share nodes: each distinct node
    visited once, sizes added up as a walk of the expanded tree would count them (capped, so
    nine levels of nine stay small numbers), and an alias inside its own anchor refused."""
    done: dict[int, tuple[int, int, Node]] = {}  # id(node) → (expanded size, depth, node)
    open_: set[int] = set()  # entered and not yet left: the current path
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            size, depth = 1, 1
            for child in _children(node):
                child_size, child_depth, _node = done[id(child)]
                size += child_size
                depth = max(depth, child_depth + 1)
            if depth > max_depth:
                raise LimitError(f"nested more than {max_depth} levels deep, the limit for a "
                                 "YAML document", node.start_mark)
            done[key] = (min(size, _CAP), depth, node)
            open_.discard(key)
            continue
        if key in done:
            continue
        if key in open_:
            raise LimitError("an alias refers to a node that contains it", node.start_mark)
        open_.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in done)
    added = done[id(root)][0] - len(done)
    if added <= budget.remaining:
        budget.remaining -= added
    else:  # a document refused costs the file nothing: the next ones may still load
        # Pointed at the smallest node that expands past the limit on its own, if one does:
        # where the expansion is.
        over = [(size, node) for size, _depth, node in done.values() if size > budget.limit]
        mark = min(over, key=_first)[1].start_mark if over else root.start_mark
        raise LimitError(f"aliases expand to more than {budget.limit:,} added nodes, the limit "
                         "for one file", mark)


def _first(pair: tuple[int, Node]) -> int:
    return pair[0]


class _Bounded(SafeConstructor):
    """Checks each document's node graph before constructing it (see the module's docstring),
    and builds plain string scalars in place.

    The checks cost ~5 % of a load of typical manifests; taking a ``!!str`` scalar's value
    straight from its node, where PyYAML goes through ``construct_object``'s generic dispatch
    for the same result, gives back ~25 % (``construct_yaml_str`` is ``node.value``).
    """

    _aliases = True  # whether the text may hold an alias: set per load
    _max_document = MAX_DOCUMENT_BYTES
    _max_depth = MAX_DEPTH
    _budget: Budget

    def construct_document(self, node: Node) -> Any:
        start, end = node.start_mark, node.end_mark
        if start is not None and end is not None and end.index - start.index > self._max_document:
            raise LimitError(f"a document larger than {_size(self._max_document)}, the limit "
                             "for one document", start)
        if self._aliases:
            _check_graph(node, self._max_depth, self._budget)
        else:
            _check_tree(node, self._max_depth)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping node, but found {node.id}",
                                   node.start_mark)
        self.flatten_mapping(node)  # merge keys, as SafeConstructor does first
        mapping: dict[Hashable, Any] = {}
        construct = self.construct_object
        for key_node, value_node in node.value:
            if key_node.tag == _STR and type(key_node) is ScalarNode:
                key = key_node.value
            else:
                key = construct(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    raise ConstructorError("while constructing a mapping", node.start_mark,
                                           "found unhashable key", key_node.start_mark)
            if value_node.tag == _STR and type(value_node) is ScalarNode:
                mapping[key] = value_node.value
            else:
                mapping[key] = construct(value_node, deep=deep)
        return mapping

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> list[Any]:
        if not isinstance(node, SequenceNode):
            raise ConstructorError(None, None, f"expected a sequence node, but found {node.id}",
                                   node.start_mark)
        construct = self.construct_object
        return [child.value if child.tag == _STR and type(child) is ScalarNode
                else construct(child, deep=deep) for child in node.value]


_CSafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Plain(_Bounded, yaml.SafeLoader):
    """``yaml.safe_load``'s loader (the pure-Python parser), bounded."""


class _Fast(_Bounded, _CSafeLoader):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader on libyaml's C parser, bounded."""


class _Manifest(_Bounded, _CSafeLoader):  # type: ignore[valid-type,misc]
    """Safe loader that reads timestamps as strings, as Kubernetes' YAML decoder does.

    PyYAML turns ``2024-01-01`` into a ``date`` and ``=`` into an unconstructable value tag;
    sigs.k8s.io/yaml keeps both as strings, and the compare step must see what the API sees.
    """


_Manifest.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")]
    for first, resolvers in _CSafeLoader.yaml_implicit_resolvers.items()
}

# The string fast path is exact only while ``!!str`` is built by SafeConstructor's own
# constructor.
for _cls in (_Plain, _Fast, _Manifest):
    assert _cls.yaml_constructors[_STR] is SafeConstructor.construct_yaml_str

Loader = type[_Bounded]
PLAIN: Loader = _Plain
FAST: Loader = _Fast
MANIFEST: Loader = _Manifest


def _may_alias(text: str | bytes) -> bool:
    # An alias is written ``*name``: without a star the document is a tree, and its cheaper
    # check applies.
    return ("*" in text) if isinstance(text, str) else (b"*" in text)


def _loader(cls: Loader, text: str | bytes, budget: Budget | None,
            max_document_bytes: int, max_depth: int) -> _Bounded:
    loader = cls(text)  # type: ignore[call-arg]
    loader._aliases = _may_alias(text)
    loader._budget = budget if budget is not None else Budget()
    loader._max_document = max_document_bytes
    loader._max_depth = max_depth
    return loader


def load(text: str | bytes, loader: Loader = FAST, *, budget: Budget | None = None,
         max_document_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The one YAML document in ``text`` (``None`` when empty), as ``yaml.load`` builds it,
    within the bounds; ``budget`` is shared by the documents of one file loaded one by one.
    Raises ``YAMLError`` (:class:`LimitError` for a bound)."""
    if len(text) > max_document_bytes or (
            isinstance(text, str) and len(text) * 4 > max_document_bytes
            and len(text.encode("utf-8", "surrogatepass")) > max_document_bytes):
        raise LimitError(f"a document larger than {_size(max_document_bytes)}, the limit for "
                         "one document")
    instance = _loader(loader, text, budget, max_document_bytes, max_depth)
    try:
        return instance.get_single_data()
    except RecursionError:  # the pure-Python composer recurses per level
        raise LimitError(f"nested more than {max_depth} levels deep, the limit for a YAML "
                         "document") from None
    finally:
        instance.dispose()  # type: ignore[attr-defined]


def load_all(text: str | bytes, loader: Loader = FAST, *,
             max_document_bytes: int = MAX_DOCUMENT_BYTES,
             max_depth: int = MAX_DEPTH) -> Iterator[Any]:
    """Each YAML document in ``text``, as ``yaml.load_all`` builds them, within the bounds
    (one alias budget for all of them). Raises ``YAMLError`` (:class:`LimitError` for a
    bound) when the document that breaks one is reached."""
    instance = _loader(loader, text, None, max_document_bytes, max_depth)
    try:
        while instance.check_data():
            yield instance.get_data()
    except RecursionError:
        raise LimitError(f"nested more than {max_depth} levels deep, the limit for a YAML "
                         "document") from None
    finally:
        instance.dispose()  # type: ignore[attr-defined]


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """:class:`LimitError` when ``value`` (decoded JSON) nests deeper than ``max_depth``:
    the bound YAML documents get, for JSON manifests."""
    level = [value]
    depth = 0
    while level:  # counted as for YAML: each collection a level, the values in it the next
        depth += 1
        if depth > max_depth:
            raise LimitError(f"nested more than {max_depth} levels deep, the limit for a "
                             "document")
        below: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                below.extend(item.values())
            elif isinstance(item, list):
                below.extend(item)
        level = below


def dump(data: Any) -> str:
    """``data`` as block YAML, keys in their order (``yaml.safe_dump``)."""
    return yaml.safe_dump(data, sort_keys=False)


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 2
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 4
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40


def excerpt(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to at most ``width`` characters, never expanding what it does not
    show: a loaded value can stand for gigabytes (shared aliases) or be one."""
    text = _SHORT.repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
