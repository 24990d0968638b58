"""The records live listing hands on: :class:`APIResource` (a kind as discovery describes
it), :class:`Page` (one page of one kind's list) and :class:`ListStats`, and the scope
decision for a discovered kind.

Apart from :mod:`auditor.live.client` so that what reads a snapshot file (``diff --live``)
does not import the HTTP stack: urllib3 and the client's threads cost ~60 ms of a start-up
(bench diff). :mod:`auditor.live.client` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from auditor.config import ScopeConfig
from auditor.engine.records import Problem
from auditor.engine.scope import kind_in_scope


@dataclass(frozen=True, slots=True)
class APIResource:
    """One listable kind as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of one kind's list: items already carry ``apiVersion`` and ``kind``."""

    resource: APIResource
    items: list[dict[str, Any]]
    raw_bytes: int
    last: bool
    # True on the first page after an expired continue token restarted the list. Its items
    # never repeat what earlier pages carried: a restarted list hands on only the objects
    # the interrupted one had not (see :meth:`Cluster.list_pages`).
    restarted: bool = False
    # The list's resourceVersion (``metadata.resourceVersion``): a watch from it misses
    # nothing the list did not show.
    resource_version: str = ""


@dataclass
class ListStats:
    """What a snapshot did, for the progress display, the ledger and the benchmark."""

    kinds: int = 0
    objects: int = 0
    pages: int = 0
    bytes: int = 0
    retries: int = 0
    restarts: int = 0
    problems: list[Problem] = field(default_factory=list)
    skipped_kinds: list[str] = field(default_factory=list)


def in_scope(resource: APIResource, scope: ScopeConfig) -> bool:
    """Whether a discovered kind is audited under the scope configuration."""
    return kind_in_scope(resource.group, resource.kind, scope)
