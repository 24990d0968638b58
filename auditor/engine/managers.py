"""Classify a ``managedFields`` manager name: who is behind a write?

Categories (the ``category`` of a drift in the JSON contract):

* ``human`` – a person at a terminal or a browser: kubectl's own managers (``kubectl-edit``,
  ``kubectl-patch``, ``kubectl-set``, ``kubectl-label``, ``kubectl-client-side-apply``, …),
  plain ``kubectl`` (a terminal server-side apply, and ``kubectl scale``, which sends no
  field manager so the API server records its User-Agent prefix), dashboards and desktop
  clients (``Mozilla``, Lens's ``node-fetch``, ``k9s``) and scripts using a generated client
  without a field manager (``OpenAPI-Generator``).
  The Helm CLI (manager ``helm``, its binary name since Helm 3.6; ``helm/helm#9870``) is
  ``human`` too: ``helm upgrade`` from a terminal is a change that did not come through the
  GitOps tool, exactly like ``kubectl apply``. Helm run *by* a GitOps tool has another
  manager: Flux's ``helm-controller`` (a configured GitOps manager), and Argo CD renders
  charts itself and applies as ``argocd-controller``. A team whose delivery pipeline runs
  ``helm upgrade`` from CI lists ``helm`` in ``gitops_managers`` (that check comes first).
  Helm's own release annotations (``meta.helm.sh/*``) are never drift (auditor.engine.compare).
* ``gitops`` – the configured GitOps managers: the authorized path from Git.
* ``unknown`` – a client that cannot be identified: the User-Agent defaults of HTTP
  libraries (``Go-http-client``, ``python-requests``, …), the literal ``unknown``, and
  ``before-first-apply``, the entry the API server makes up for the fields an object already
  had when it was first server-side applied without managedFields (its writer is lost).
* ``controller`` – everything else: ``kube-controller-manager`` (which also writes the HPA's
  scale changes, with subresource ``scale``), ``kube-scheduler``, operators, webhooks.

When the API server derives a manager from a User-Agent it keeps the part before the first
``/`` (``kubectl/v1.35.0 (linux/amd64) …`` → ``kubectl``), so names here are matched whole,
or by prefix where a tool family uses one (``kubectl-*``).

A manager name is whatever the client sends (``kubectl apply --server-side
--field-manager=argocd-controller`` is accepted from anyone allowed to patch the object; the
API server takes ``fieldManager`` as given and falls back to the User-Agent's prefix only when
it is empty: ``managerOrUserAgent`` in
staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go). When an API-server audit
source names the authenticated user behind a write, :meth:`Classifier.attribute` decides by
identity instead: a write by one of the configured GitOps identities is ``gitops`` whatever
manager it declared; a write under a GitOps manager's name by anyone else is ``human`` and
*spoofed*. Without a user (no audit source, or no event for the write) the name decides.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

from auditor.engine.records import Category, ResourceKey

# ``lookup(key, manager, operation, time, subresource)``: the authenticated user of the write
# that a managedFields entry (its manager, operation, time and subresource) of the object
# ``key`` records, or None when the audit source has no such write. The pipeline builds it
# from the audit source it read at the start of the run; the comparison only calls it.
IdentityLookup = Callable[[ResourceKey, str, str, str, str], str | None]

# Exact manager names recorded for interactive clients.
HUMAN_MANAGERS: frozenset[str] = frozenset({
    "kubectl",
    "Mozilla",
    "node-fetch",
    "OpenAPI-Generator",
    "k9s",
    "kubectl.exe",
    "Lens",
    "OpenLens",
    "Freelens",
    "headlamp",
    "kubernetes-dashboard",
    "helm",
    "Helm",
})

# Prefixes of interactive tool families (kubectl's own managers are ``kubectl-<verb>``).
HUMAN_PREFIXES: tuple[str, ...] = ("kubectl-",)

# User-Agent defaults of HTTP libraries: the client did not say who it is.
UNKNOWN_MANAGERS: frozenset[str] = frozenset({
    "Go-http-client",
    "unknown",
    "",
    "python-requests",
    "python-urllib3",
    "Python-urllib",
    "curl",
    "Wget",
    "okhttp",
    "Apache-HttpClient",
    "axios",
    "undici",
    "Java",
    "Ruby",
    "aiohttp",
    "httpx",
    "Swagger-Codegen",
    "before-first-apply",
})

# Controllers that ship with Kubernetes, named here only to document them; any name not
# matched above is a controller anyway.
KNOWN_CONTROLLERS: frozenset[str] = frozenset({
    "kube-controller-manager",
    "kube-scheduler",
    "kube-apiserver",
    "kubelet",
    "horizontal-pod-autoscaler",
    "cluster-autoscaler",
    "vpa-updater",
})


def _user_agent_prefix(manager: str) -> str:
    # A manager recorded from a User-Agent may still carry a version when a client set the
    # field manager to its full User-Agent.
    return manager.split("/", 1)[0].strip()


def classify(manager: str, gitops_managers: Iterable[str] = ()) -> Category:
    """The category of a manager name; ``gitops_managers`` may contain ``*`` globs."""
    for pattern in gitops_managers:
        if manager == pattern or fnmatch.fnmatchcase(manager, pattern):
            return "gitops"
    name = _user_agent_prefix(manager)
    if name in HUMAN_MANAGERS or name.startswith(HUMAN_PREFIXES):
        return "human"
    if name in UNKNOWN_MANAGERS:
        return "unknown"
    return "controller"


def is_gitops_identity(user: str, gitops_identities: Iterable[str]) -> bool:
    """Whether ``user`` (an authenticated user name) is one of ``gitops_identities``, which
    may contain ``*`` globs (``system:serviceaccount:flux-system:*``)."""
    return any(user == pattern or fnmatch.fnmatchcase(user, pattern)
               for pattern in gitops_identities)


class Classifier:
    """:func:`classify` with the GitOps managers and identities bound, answers cached."""

    __slots__ = ("_by_user", "_cache", "_gitops", "_identities")

    def __init__(self, gitops_managers: Iterable[str] = (),
                 gitops_identities: Iterable[str] = ()) -> None:
        self._gitops = tuple(gitops_managers)
        self._identities = tuple(gitops_identities)
        self._cache: dict[str, Category] = {}
        self._by_user: dict[tuple[str, str], tuple[Category, bool]] = {}

    def __call__(self, manager: str) -> Category:
        found = self._cache.get(manager)
        if found is None:
            found = classify(manager, self._gitops)
            self._cache[manager] = found
        return found

    def attribute(self, manager: str, user: str) -> tuple[Category, bool]:
        """``(category, spoofed)`` of a write under ``manager`` by the authenticated ``user``
        (``""``: unknown, the name decides). Identities decide only when some are configured:
        without them nobody could be told from a GitOps controller, and every GitOps write
        would read as spoofed."""
        if not user or not self._identities:
            return self(manager), False
        found = self._by_user.get((manager, user))
        if found is not None:
            return found
        by_name = self(manager)
        decided: tuple[Category, bool]
        if is_gitops_identity(user, self._identities):
            decided = ("gitops", False)
        elif by_name == "gitops":
            decided = ("human", True)
        else:
            decided = (by_name, False)
        self._by_user[(manager, user)] = decided
        return decided
