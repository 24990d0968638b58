"""The small immutable records that cross module boundaries.

Library objects (client models, deepdiff results, GitPython commits) never leave the
module that owns the library; these records do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Status = Literal["in-sync", "drifted", "missing", "orphan", "ignored"]
Op = Literal["changed", "added", "removed"]
Category = Literal["human", "controller", "gitops", "unknown"]

# ``new_key(ResourceKey, (group, kind, namespace, name))``: a key from a ready tuple, without
# the keyword handling of a named tuple's ``__new__`` (half the cost, in hot loops).
new_key = tuple.__new__


class ResourceKey(NamedTuple):
    """Identity of an object: ``(group, kind, namespace, name)``; namespace is '' when cluster-scoped.

    A named tuple, not a dataclass: a run hashes and compares keys a dozen times per live
    object (page lookups, caches, the ledger's index), and a tuple does both in C.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ResourceKey:
        """The key of a manifest or live object (``apiVersion``/``kind``/``metadata``)."""
        api_version = str(obj.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        meta = obj.get("metadata") or {}
        return new_key(cls, (group, str(obj.get("kind") or ""),
                              str(meta.get("namespace") or ""), str(meta.get("name") or "")))

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.group_kind} {where}{self.name}"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a desired object came from in Git, and the last commit that touched it."""

    file: str
    repo: str = ""
    commit: str = ""
    author: str = ""
    author_email: str = ""
    committer: str = ""
    date: str = ""
    committed_date: str = ""
    subject: str = ""
    pr: int | None = None
    trailers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One drifted field of one object, with who owns the live value.

    ``user`` is the authenticated user behind the owner's write, when an API-server audit
    source named it; ``spoofed`` marks a write under a GitOps manager's name by a user who
    is not a GitOps controller (its category is then ``human``).
    """

    path: str
    op: Op
    desired: Any = None
    live: Any = None
    manager: str = ""
    operation: str = ""
    time: str = ""
    category: Category = "unknown"
    user: str = ""
    spoofed: bool = False


class ObjectResult(NamedTuple):
    """The comparison result for one object key.

    A named tuple, as :class:`ResourceKey`: a run makes one per desired object, and a
    frozen dataclass spends more on setting its six fields than a steady run spends on
    the object otherwise.
    """

    key: ResourceKey
    api_version: str
    status: Status
    drifts: tuple[DriftItem, ...] = ()
    source: SourceInfo | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """A non-fatal error met during a run: a bad file, a skipped kind. The run goes on."""

    where: str
    message: str
    kind: str = "error"
    extra: tuple[tuple[str, Any], ...] = field(default=())
