"""Hostile YAML for the fault suite and the loader's tests: alias bombs (plain and through
merge keys), an alias inside its own anchor, deep nesting, huge documents and scalars; and
a memory ceiling for the child process that loads them, so that a regression fails a test
instead of taking the machine down."""

from __future__ import annotations

import resource
from collections.abc import Callable

HEADER = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\n"


def alias_bomb(levels: int = 9, width: int = 9, indent: str = "") -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: ``width **
    levels`` strings once expanded (9 × 9: 387 million), in a few hundred bytes."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"{indent}l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]"
              for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def alias_bomb_flow(levels: int = 9, width: int = 9) -> str:
    """The same bomb as one flow sequence: ``[&l0 [...], &l1 [*l0, ...], ...]``, for a place
    where a value is quoted whole in an error message."""
    items = ["&l0 [" + ", ".join(['"lol"'] * width) + "]"]
    items += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]" for n in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def merge_bomb(levels: int = 9, width: int = 9, indent: str = "") -> str:
    """The same growth through merge keys (``<<``): each mapping merges the one before
    ``width`` times."""
    lines = [f"{indent}m0: &m0 {{a: 1, b: 2, c: 3}}"]
    lines += [f"{indent}m{n}: &m{n} {{<<: [" + ", ".join([f"*m{n - 1}"] * width) + "]}"
              for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def bomb_manifest(name: str = "lol", namespace: str = "shop", levels: int = 9,
                  merge: bool = False) -> str:
    """A ConfigMap whose ``x`` field is an alias bomb."""
    body = (merge_bomb if merge else alias_bomb)(levels, indent="  ")
    return HEADER.format(name=name, namespace=namespace) + "x:\n" + body


def recursive_manifest(name: str = "loop", namespace: str = "shop") -> str:
    """An alias inside the anchor it names: a structure that contains itself."""
    return HEADER.format(name=name, namespace=namespace) + "x: &loop [1, *loop]\n"


def deep_manifest(depth: int, name: str = "deep", namespace: str = "shop") -> str:
    """A field nested ``depth`` flow sequences deep."""
    return HEADER.format(name=name, namespace=namespace) + "x: " + "[" * depth + "1" + \
        "]" * depth + "\n"


def big_scalar_manifest(size: int, name: str = "big", namespace: str = "shop") -> str:
    """A ConfigMap holding one ``size``-byte string."""
    return HEADER.format(name=name, namespace=namespace) + "data:\n  blob: " + "x" * size + "\n"


def configmap_text(name: str, namespace: str = "shop", value: str = "v") -> str:
    return HEADER.format(name=name, namespace=namespace) + f"data: {{key: {value}}}\n"


def memory_ceiling(mib: int) -> Callable[[], None]:
    """A ``preexec_fn`` capping the child's address space at ``mib`` MiB: past it an
    allocation fails (MemoryError) instead of the kernel killing processes."""
    limit = mib * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply
