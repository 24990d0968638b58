"""The records of an adoption: how the audited source renders, what was adopted into which
file, what was refused and why."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from auditor.config import Source
from auditor.desired import render
from auditor.engine.records import DriftItem, ResourceKey


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
