"""The records this package hands out: a source derived from a controller's object, an
object that could not be turned into one (and why), and a source's sync lag."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.config import Source


@dataclass(frozen=True)
class Derived:
    """One Git source as a controller declares it.

    ``source`` is what the audit renders: its revision is the commit the controller last
    applied (``applied``) when known, so drift is what changed after the controller's
    apply, and Git commits not yet applied are sync lag instead. ``ref`` is the revision the
    controller follows (a branch, tag or ``HEAD``). ``owner`` names the controller's object
    (``Application argocd/shop``), ``via`` what generated it (``ApplicationSet argocd/all``).
    ``namespace`` is the destination namespace (empty: the manifests' own)."""

    controller: str
    owner: str
    source: Source
    ref: str
    applied: str = ""
    namespace: str = ""
    via: str = ""

    @property
    def name(self) -> str:
        return self.source.name


@dataclass(frozen=True)
class Skipped:
    """A controller object not audited this run, and why (an unsupported source type)."""

    controller: str
    owner: str
    reason: str


@dataclass(frozen=True)
class Derivation:
    """Everything derived from the controllers this run."""

    derived: tuple[Derived, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def namespaces(self) -> frozenset[str]:
        """Destination namespaces: Git manages them even before anything is rendered."""
        return frozenset(d.namespace for d in self.derived if d.namespace)


@dataclass(frozen=True)
class SyncLag:
    """Git ahead of what a controller applied: ``behind`` commits on ``ref`` since the
    first of them (``since``, ISO 8601), from ``applied`` to ``head``. ``behind`` is -1 when
    the applied commit is not in the ref's history (a force-push, another branch)."""

    source: str
    owner: str
    ref: str
    applied: str
    head: str
    behind: int
    since: str = ""
