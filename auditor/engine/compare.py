"""The comparison: desired (Git) against live (cluster), one object key at a time.

Semantics (DESIGN.md, "Drift semantics"):

* a field declared in Git whose live value differs after normalisation is drift: ``changed``,
  or ``removed`` when the live object lacks it (a removal leaves no owner: ``unknown``);
* a field present live but not declared in Git is drift (``added``) only when a human-type
  manager owns it in ``managedFields`` and it is not a server default (a value the server
  allocates, such as a node port, counts once a human owns it); when the live object carries
  no ``managedFields`` at all, such fields are ``added`` with category ``unknown``, except
  the bookkeeping of controllers and GitOps tools, finalizers, and the fields of custom
  resources (their CRDs' defaults are unknown here);
* set-like lists (``finalizers``) drift item by item (``finalizers[="x"]``); an atomic list
  (RBAC ``rules``) drifts whole, also when a human added a field inside one of its items;
* lists are matched by merge key (:mod:`auditor.engine.schema`), never by index;
* each drift names the manager owning the live value (:mod:`auditor.engine.fieldsv1`) and its
  category (:mod:`auditor.engine.managers`); with an identity lookup (the run's API-server
  audit source, :attr:`CompareSettings.identities`) each managedFields entry is judged by the
  authenticated user behind it instead: a GitOps identity's write is ``gitops`` whatever
  manager it declared, a GitOps manager name written by anyone else is ``human`` and
  ``spoofed`` (its undeclared fields are then drift too), and the drift carries the user;
* Secret values never appear in results: drifts under ``data``/``stringData`` carry key
  names only.

The common case, an unchanged object no human has touched, costs two normalisations, a
scan of the manager names and one recursive subset-equality check (:func:`_subset`): no
ownership index, no walk, no deepdiff. Without an identity lookup nothing else is asked;
with one, each human- or GitOps-named entry costs one lookup (cached per object). Only
objects that differ, or that carry a human's ``managedFields`` entry (whose additions must
be looked for), take the slow path.
"""

from __future__ import annotations

import functools
import importlib
import pathlib
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from auditor.config import CompareConfig, IgnoreRule, ScopeConfig
from auditor.engine import schema
from auditor.engine.defaults import chosen_when_owned
from auditor.engine.fieldsv1 import Owner, OwnershipIndex, ownership
from auditor.engine.ignore import IgnoreSet, ObjectIgnores, load_policies
from auditor.engine.managers import Classifier, IdentityLookup
from auditor.engine.paths import Element, Index, Key, Path, Value, render, schema_path
from auditor.engine.records import (
    Category,
    DriftItem,
    ObjectResult,
    Problem,
    ResourceKey,
    SourceInfo,
)
from auditor.engine.scope import key_in_scope

Normaliser = Callable[..., dict[str, Any]]
# (group, kind, path, value, parent, root=live object) -> bool: auditor.engine.defaults.is_server_default
DefaultCheck = Callable[..., bool]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Bumped whenever the same pair of objects may compare differently (a default learnt, a path
# written another way): verdicts cached by an earlier revision are then not reused.
# 3: entries judged by authenticated identity (gitops-identities and an audit source).
REVISION = 3

# The keyed hash normalisation puts in place of a Secret value (auditor.engine.normalise).
_SECRET_HASH = re.compile(r"hmac-sha256:[0-9a-f]{32}")

# Objects Kubernetes creates in every namespace (or in ``default``): never orphans.
_BUILTIN_OBJECTS: frozenset[tuple[str, str, str]] = frozenset({
    ("", "ServiceAccount", "default"),
    ("", "ConfigMap", "kube-root-ca.crt"),
})
_BUILTIN_IN_DEFAULT: frozenset[tuple[str, str, str]] = frozenset({("", "Service", "kubernetes")})

# Metadata that controllers write on objects they manage. Only consulted when a live object
# has no managedFields (``kubectl get -o json`` omits them), where ownership is unknown and
# every undeclared field would otherwise be reported.
_CONTROLLER_METADATA: frozenset[str] = frozenset({
    "deployment.kubernetes.io/revision",
    "deprecated.daemonset.template.generation",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubernetes.io/metadata.name",
    "batch.kubernetes.io/job-tracking",
    "control-plane.alpha.kubernetes.io/leader",
    # Cloud and load-balancer controllers' status kept in annotations: GKE's ingress-gce and
    # NEG controllers, MetalLB (0.13+), Rancher.
    "ingress.kubernetes.io/backends",
    "ingress.kubernetes.io/forwarding-rule",
    "ingress.kubernetes.io/https-forwarding-rule",
    "ingress.kubernetes.io/target-proxy",
    "ingress.kubernetes.io/https-target-proxy",
    "ingress.kubernetes.io/url-map",
    "ingress.kubernetes.io/ssl-cert",
    "cloud.google.com/neg-status",
    "metallb.universe.tf/ip-allocated-from-pool",
    "field.cattle.io/publicEndpoints",
})

# Bookkeeping metadata that GitOps tools and Helm write on every object they apply, never in
# the rendered manifests: Flux's kustomize-/helm-controller ownership labels, Argo CD's
# annotation tracking, Helm's release annotations (which `helm template` does not render).
# Consulted when ownership is unknown (no managedFields), and for Helm's own annotations
# when the `helm` CLI owns them (Helm is a human's tool, its release marker is not).
_TOOL_METADATA_PREFIXES: tuple[str, ...] = (
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
    "meta.helm.sh/",
)
# (`argocd.argoproj.io/instance` is the tracking label Argo CD's docs suggest instead of
# the default `app.kubernetes.io/instance`, which charts declare themselves.)
_TOOL_METADATA: frozenset[str] = frozenset({"argocd.argoproj.io/tracking-id",
                                            "argocd.argoproj.io/instance"})
_HELM_METADATA_PREFIX = "meta.helm.sh/"
_HELM_MANAGERS: frozenset[str] = frozenset({"helm", "Helm"})


def _tool_metadata(name: str) -> bool:
    return name in _TOOL_METADATA or name.startswith(_TOOL_METADATA_PREFIXES)


# Fields that identify an object rather than describe it: the key already matched them.
_IDENTITY_FIELDS: frozenset[str] = frozenset({"apiVersion", "kind", "status"})
_IDENTITY_METADATA: frozenset[str] = frozenset({"name", "namespace", "generateName"})


def _identity(path: Path, name: str) -> bool:
    if not path:
        return name in _IDENTITY_FIELDS
    return path == ("metadata",) and name in _IDENTITY_METADATA


def _load_normaliser() -> Normaliser:
    module = importlib.import_module("auditor.engine.normalise")
    fn: Normaliser = module.normalise
    return fn


@functools.cache
def _real_normaliser() -> Normaliser:
    return _load_normaliser()


def _load_default_check() -> DefaultCheck:
    module = importlib.import_module("auditor.engine.defaults")
    fn: DefaultCheck = module.is_server_default
    return fn


@dataclass(frozen=True)
class CompareSettings:
    """Everything a comparison depends on, fixed for one run.

    ``normaliser`` and ``is_default`` default to :func:`auditor.engine.normalise.normalise` and
    :func:`auditor.engine.defaults.is_server_default`; tests may pass stand-ins.
    ``identities`` is the run's lookup of the authenticated user behind a managedFields
    entry (:data:`auditor.engine.managers.IdentityLookup`; ``None``: no audit source, names
    decide); ``gitops_identities`` are the users whose writes are GitOps.
    """

    gitops_managers: tuple[str, ...] = CompareConfig().gitops_managers
    gitops_identities: tuple[str, ...] = ()
    identities: IdentityLookup | None = field(default=None, compare=False, repr=False)
    ignore: IgnoreSet = field(default_factory=IgnoreSet, compare=False)
    secret_key: bytes = b""
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    cluster_scoped_orphans: bool = False
    normaliser: Normaliser | None = field(default=None, compare=False, repr=False)
    is_default: DefaultCheck | None = field(default=None, compare=False, repr=False)
    _classify: Classifier = field(init=False, compare=False, repr=False)
    # A live object normalised ahead, with its result (see :meth:`remember`).
    _remembered: list[tuple[Any, dict[str, Any]]] = field(
        init=False, compare=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_classify",
                           Classifier(self.gitops_managers, self.gitops_identities))

    @classmethod
    def from_config(cls, compare: CompareConfig, scope: ScopeConfig | None = None, *,
                    secret_key: bytes,
                    policies: Iterable[IgnoreRule] = (),
                    policies_dir: str | PathLike[str] | None = None,
                    cluster_scoped_orphans: bool = False,
                    identities: IdentityLookup | None = None) -> CompareSettings:
        """Settings from the configuration.

        Ignore rules are ``compare.ignore``, then ``policies``, then the ``DriftIgnore``
        files under ``policies_dir`` (:func:`auditor.engine.ignore.load_policies`).
        ``secret_key`` keys the hashes that stand in for Secret values
        (:func:`auditor.support.secretkey.for_ledger`); ``identities`` is the run's audit
        source as a lookup (see the class).
        """
        from_files = load_policies(pathlib.Path(policies_dir)) if policies_dir is not None else ()
        return cls(gitops_managers=compare.gitops_managers,
                   gitops_identities=compare.gitops_identities, identities=identities,
                   ignore=IgnoreSet((*compare.ignore, *policies, *from_files)),
                   secret_key=secret_key, scope=scope or ScopeConfig(),
                   cluster_scoped_orphans=cluster_scoped_orphans)

    def classify(self, manager: str) -> Category:
        return self._classify(manager)

    def attribute(self, manager: str, user: str) -> tuple[Category, bool]:
        """``(category, spoofed)`` of a write by ``user`` (see :class:`Classifier`)."""
        return self._classify.attribute(manager, user)

    def normalise(self, obj: dict[str, Any]) -> dict[str, Any]:
        remembered = self._remembered
        if remembered and remembered[0][0] is obj:
            return remembered.pop()[1]
        fn = self.normaliser
        if fn is None:
            fn = _load_normaliser()
            object.__setattr__(self, "normaliser", fn)
        return fn(obj, secret_key=self.secret_key)

    def raw_subset_decides(self) -> bool:
        """Whether a verbatim subset of the live object is in sync without normalising (see
        :func:`compare_object`): true of the real normaliser, not of a stand-in."""
        fn = self.normaliser
        return fn is None or fn is _real_normaliser()

    def remember(self, obj: dict[str, Any], normalised: dict[str, Any]) -> None:
        """``normalised`` is ``obj`` normalised, and ``obj`` is compared next, unchanged: the
        comparison takes it instead of normalising again. A run normalises each changed
        live object for the ledger just before comparing it; this spared a first run over
        10,000 objects a third of its 30,000 normalisations (bench run: 3.5 -> 2.66 s CPU).
        One object at a time: remembering another forgets the last."""
        self._remembered[:] = [(obj, normalised)]

    def default_check(self) -> DefaultCheck:
        fn = self.is_default
        if fn is None:
            fn = _load_default_check()
            object.__setattr__(self, "is_default", fn)
        return fn


# --------------------------------------------------------------------------- equality


def _same_scalar(a: Any, b: Any) -> bool:
    # ``True == 1`` in Python; in a manifest a boolean and a number are different values.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


_MISSING = object()


def _subset(desired: Any, live: Any) -> bool:
    """Whether everything ``desired`` declares is present and equal in ``live``.

    Lists are compared by position here: a reordered list fails this check and takes the
    slow path, which matches items by key. This is the in-sync path for every object, so
    it leans on C-level ``==`` for whole equal subtrees and recurses only where they differ.
    (``==`` equates ``True`` with ``1`` inside a subtree; schema validation keeps a field
    from holding a boolean on one side and a number on the other.)
    """
    kind = type(desired)
    if kind is dict:
        if type(live) is not dict:
            return False
        for k, v in desired.items():
            other = live.get(k, _MISSING)
            if v == other and type(v) is type(other):
                continue
            if other is _MISSING or not _subset(v, other):
                return False
        return True
    if kind is list:
        if type(live) is not list or len(desired) != len(live):
            return False
        for a, b in zip(desired, live, strict=True):
            if not (a == b and type(a) is type(b)) and not _subset(a, b):
                return False
        return True
    return _same_scalar(desired, live)


def _is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


# --------------------------------------------------------------------------- attribution


def _pick(owners: tuple[Owner, ...], category: Callable[[Owner], Category]) -> Owner | None:
    """The owner a drift is attributed to: the latest writer; on a tie, a human."""
    if not owners:
        return None
    return max(owners, key=lambda o: (o.time, category(o) == "human"))


class _Who:
    """Who is behind each managedFields entry of one object, by the run's identity lookup:
    ``(category, user, spoofed)``, asked once per entry. Built only when there is a lookup;
    without one, categories come from :meth:`CompareSettings.classify` on the name alone."""

    __slots__ = ("_cache", "_key", "_lookup", "_settings")

    def __init__(self, key: ResourceKey, lookup: IdentityLookup,
                 settings: CompareSettings) -> None:
        self._key = key
        self._lookup = lookup
        self._settings = settings
        self._cache: dict[tuple[str, str, str, str], tuple[Category, str, bool]] = {}

    def of(self, manager: str, operation: str, time: str,
           subresource: str) -> tuple[Category, str, bool]:
        ident = (manager, operation, time, subresource)
        found = self._cache.get(ident)
        if found is None:
            user = self._lookup(self._key, manager, operation, time, subresource) or ""
            category, spoofed = self._settings.attribute(manager, user)
            found = self._cache[ident] = (category, user, spoofed)
        return found

    def owner(self, owner: Owner) -> Category:
        return self.of(owner.manager, owner.operation, owner.time, owner.subresource)[0]

    def human_entry(self, entry: Any) -> bool:
        """Whether a managedFields entry (a mapping) is a human's write."""
        if not isinstance(entry, Mapping):
            return False
        manager = str(entry.get("manager") or "")
        if self._settings.classify(manager) not in ("human", "gitops"):
            # A controller's or an unidentified client's name: a user can only make it a
            # GitOps write, never a human's.
            return False
        return self.of(manager, str(entry.get("operation") or ""), str(entry.get("time") or ""),
                       str(entry.get("subresource") or ""))[0] == "human"


@dataclass(slots=True)
class _Walk:
    """One slow-path comparison of a normalised desired/live pair."""

    group: str
    version: str
    kind: str
    index: OwnershipIndex
    settings: CompareSettings
    root: Mapping[str, Any] = field(default_factory=dict)
    # Whether the built-in schemas (and so the defaults table) describe the kind. A custom
    # resource's undeclared fields are mostly its CRD's schema defaults (Gateway API routes,
    # Crossplane resources): without managedFields to tell a human's from them, they are
    # not reported.
    builtin: bool = True
    drifts: list[DriftItem] = field(default_factory=list)
    # Where human owners reach in the ownership index (auditor.engine.fieldsv1.OwnershipIndex.reach):
    # an undeclared field no human owns anything of is not drift, whatever it is.
    _human_reach: tuple[frozenset[Path], tuple[tuple[int, frozenset[Path]], ...]] | None = None
    # Set when nothing declared differs (only human additions can be drift): the walk then
    # enters only the subtrees a human reaches.
    additions_only: bool = False
    # Set inside an atomic value of a custom resource: its owner owns every field in it,
    # so ownership cannot tell a human's addition from the CRD's schema defaults there.
    _no_additions: bool = False
    # Entries judged by the authenticated user behind them (the run has an audit source).
    who: _Who | None = None

    def cat(self, owner: Owner) -> Category:
        """The category of an owner's write: by identity when known, else by its name."""
        who = self.who
        return self.settings.classify(owner.manager) if who is None else who.owner(owner)

    @property
    def secret(self) -> bool:
        return self.kind == "Secret" and self.group == ""

    # -- reporting

    def _value(self, path: Path, value: Any) -> Any:
        # Secret values leave the process as their keyed hash (what normalisation turned
        # them into) or not at all: anything else under data/stringData is dropped.
        if self.secret and (
                (path and path[0] in ("data", "stringData"))
                or (len(path) >= 3 and path[0] == "metadata" and path[2] == LAST_APPLIED)):
            return value if isinstance(value, str) and _SECRET_HASH.fullmatch(value) else None
        return value

    def _report(self, path: Path, op: Any, desired: Any, live: Any, owner: Owner | None,
                category: Category | None = None) -> None:
        user, spoofed = "", False
        if owner is None:
            manager, operation, time, cat = "", "", "", category or "unknown"
        else:
            manager, operation, time = owner.manager, owner.operation, owner.time
            if self.who is None:
                cat = category or self.settings.classify(owner.manager)
            else:
                by_id, user, spoofed = self.who.of(manager, operation, time, owner.subresource)
                cat = category or by_id
        self.drifts.append(DriftItem(
            path=render(path), op=op, desired=self._value(path, desired),
            live=self._value(path, live), manager=manager, operation=operation, time=time,
            category=cat, user=user, spoofed=spoofed))

    def changed(self, path: Path, desired: Any, live: Any) -> None:
        owner = _pick(self.index.owners_of_value(path), self.cat)
        self._report(path, "changed", desired, live, owner)

    def removed(self, path: Path, desired: Any) -> None:
        # A removal from a granular field leaves no owner; from inside an atomic value (a
        # Service's selector, an RBAC rule) it is the change of that value, made by whoever
        # owns it whole.
        self._report(path, "removed", desired, None, self._atomic_owner(path))

    def _atomic_owner(self, path: Path) -> Owner | None:
        """The owner of the nearest atomic ancestor of ``path`` that a manager owns whole."""
        if not self.index:
            return None
        for ancestor, owners in self.index.whole_above(path):
            atomic = schema.is_atomic(self.group, self.version, self.kind,
                                      schema_path(ancestor))
            if atomic is False:
                continue  # an empty granular map someone set: not the owner of its keys
            return _pick(owners, self.cat)
        return None

    def _human_within(self, path: Path) -> bool:
        """Whether a human owns something at or below ``path``, or an atomic ancestor."""
        reach = self._human_reach
        if reach is None:
            cat = self.cat
            reached_, whole_ = self.index.reach(lambda o: cat(o) == "human")
            by_len: dict[int, set[Path]] = {}
            for w in whole_:
                by_len.setdefault(len(w), set()).add(w)
            reach = self._human_reach = (reached_, tuple(
                (n, frozenset(ws)) for n, ws in sorted(by_len.items())))
        reached, whole = reach
        if path in reached:
            return True
        n = len(path)
        return any(path[:length] in paths for length, paths in whole if length < n)

    def _human_owner(self, owners: tuple[Owner, ...]) -> Owner | None:
        humans = tuple(o for o in owners if self.cat(o) == "human")
        return _pick(humans, self.cat)

    def _is_default(self, path: Path, value: Any, parent: Mapping[str, Any]) -> bool:
        return self.settings.default_check()(self.group, self.kind, schema_path(path), value, parent,
                                             root=self.root)

    def _unowned_noise(self, path: Path) -> bool:
        # Without managedFields, the last-applied annotation is no evidence of a terminal
        # apply: Argo CD's default (client-side) sync writes it as well.
        if path[:2] == ("metadata", "finalizers"):
            # Finalizers are controllers' (load balancers, volumes, operators' cleanup):
            # unowned, one is no sign of a human. (With managedFields a human's is found.)
            return True
        if not (len(path) == 3 and path[0] == "metadata" and path[1] in ("annotations", "labels")):
            return False
        name = path[2]
        return isinstance(name, str) and (
            name in _CONTROLLER_METADATA or _tool_metadata(name) or name == LAST_APPLIED)

    @staticmethod
    def _helm_bookkeeping(path: Path, owner: Owner) -> bool:
        return (len(path) == 3 and path[:2] == ("metadata", "annotations")
                and isinstance(path[2], str) and path[2].startswith(_HELM_METADATA_PREFIX)
                and owner.manager.split("/", 1)[0] in _HELM_MANAGERS)

    def added_item(self, path: Path, value: Any, holder: Mapping[str, Any]) -> None:
        """A list item present live only, reported whole (``holder`` holds the list)."""
        if self._no_additions:
            return
        if not self.index:
            if self.builtin and not self._is_default(path, value, holder):
                self._report(path, "added", None, value, None, "unknown")
            return
        if not self._human_within(path):
            return
        owner = self._human_owner(self.index.owners_within(path))
        if owner is not None:
            self._report(path, "added", None, value, owner, "human")

    def added(self, path: Path, value: Any, parent: Mapping[str, Any]) -> None:
        """A live value Git does not declare: drift only if a human owns it."""
        if self._no_additions:
            return
        if self.index:
            if not self._human_within(path):
                return
        elif not self.builtin:
            return
        if self._is_default(path, value, parent) and not (
                # A default as a whole (a Job's labels copied from its template) can still
                # hide a human's addition inside it: then each leaf must be a default itself.
                isinstance(value, dict) and self.index
                and self._human_owner(self.index.owners_within(path))) and not (
                # An allocated value a human set (a node port moved with kubectl edit).
                self.index and chosen_when_owned(self.group, self.kind, schema_path(path))
                and self._human_owner(self.index.owners_of_value(path))):
            return
        if isinstance(value, dict) and value:
            for k, v in value.items():
                self.added((*path, k), v, value)
            return
        if isinstance(value, list) and value:
            info = schema.list_info(self.group, self.version, self.kind, schema_path(path), value)
            if info.type == "map" and all(isinstance(i, dict) for i in value):
                for item in value:
                    self.added_item((*path, _item_element(item, info.keys)), item, parent)
                return
            if info.type == "set" and self.index:
                for item in value:
                    owner = self._human_owner(self.index.owners_of_value((*path, Value(item))))
                    if owner is not None:
                        self._report((*path, Value(item)), "added", None, item, owner, "human")
                return
        if not self.index:
            if not self._unowned_noise(path):
                self._report(path, "added", None, value, None, "unknown")
            return
        owner = self._human_owner(self.index.owners_of_value(path))
        if owner is not None and not self._helm_bookkeeping(path, owner):
            self._report(path, "added", None, value, owner, "human")

    # -- walking

    def node(self, desired: Any, live: Any, path: Path, holder: Mapping[str, Any]) -> None:
        """Compare two values at ``path``; ``holder`` is the live mapping holding them."""
        if isinstance(desired, dict) and isinstance(live, dict):
            for k, dv in desired.items():
                if _identity(path, k):
                    continue
                if k in live:
                    lv = live[k]
                    if dv == lv and type(dv) is type(lv):
                        continue  # equal subtrees: nothing differs, nothing was added
                    sub = (*path, k)
                    if self.additions_only and not self._human_within(sub):
                        continue
                    self.node(dv, lv, sub, live)
                else:
                    self.removed((*path, k), dv)
            for k, lv in live.items():
                if k not in desired and not _identity(path, k):
                    self.added((*path, k), lv, live)
        elif isinstance(desired, list) and isinstance(live, list):
            self.sequence(desired, live, path, holder)
        elif (isinstance(desired, dict | list) or isinstance(live, dict | list)
              or not _same_scalar(desired, live)):
            self.changed(path, desired, live)

    def sequence(self, desired: list[Any], live: list[Any], path: Path,
                 holder: Mapping[str, Any]) -> None:
        info = schema.list_info(self.group, self.version, self.kind, schema_path(path),
                                [*desired, *live])
        if info.type == "map" and all(isinstance(i, dict) for i in (*desired, *live)):
            live_items: dict[tuple[Any, ...], Any] = {}
            for item in live:
                live_items.setdefault(_hashable_key(schema.item_key(item, info.keys)), item)
            declared: set[tuple[Any, ...]] = set()
            for item in desired:
                ident = _hashable_key(schema.item_key(item, info.keys))
                declared.add(ident)
                element = _item_element(item, info.keys)
                match = live_items.get(ident)
                if match is None:
                    self.removed((*path, element), item)
                else:
                    self.node(item, match, (*path, element), holder)
            for ident, item in live_items.items():
                if ident not in declared:
                    self.added_item((*path, _item_element(item, info.keys)), item, holder)
            return
        if info.type == "set":
            # Items of a set are their own identity: a missing one is removed, an extra one
            # added (when a human owns it), each at its own path (`finalizers[="x"]`).
            live_set = {_freeze(v) for v in live}
            desired_set = {_freeze(v) for v in desired}
            for item in desired:
                if _freeze(item) not in live_set:
                    self.removed((*path, Value(item)), item)
            for item in live:
                if _freeze(item) not in desired_set:
                    self.added((*path, Value(item)), item, holder)
            return
        if not _subset(desired, live):
            self.atomic_items(desired, live, path, holder)
        elif desired != live and self._atomic_additions(desired, live, path, holder):
            # An atomic list is one value: a field added inside one of its items (a `host`
            # on an Ingress rule, `resourceNames` on an RBAC rule, a `from` narrowing a
            # NetworkPolicy rule) changes the list.
            self.atomic_items(desired, live, path, holder)

    def atomic_items(self, desired: list[Any], live: list[Any], path: Path,
                     holder: Mapping[str, Any]) -> None:
        """An atomic list that differs, said item by item: an item added (at its live
        position, ``rules[2]``), an item removed (at its position in Git), or, where one item
        took another's place, the leaves that differ inside it. The list is one value owned
        whole, so each is attributed to the list's owner. Reordered items alone (the same
        items in another order) are the list ``changed``: no item came or went."""
        if _same_items(desired, live):
            self.changed(path, desired, live)
            return
        owner = _pick(self.index.owners_of_value(path), self.cat)
        for i, j in _aligned(desired, live):
            if i is not None and j is not None:
                d, lv = desired[i], live[j]
                if isinstance(d, dict) and isinstance(lv, dict):
                    quiet = self._no_additions
                    self._no_additions = quiet or not schema.known_kind(
                        self.group, self.version, self.kind)
                    self.node(d, lv, (*path, Index(j)), holder)
                    self._no_additions = quiet
                elif not _subset(d, lv):
                    self.changed((*path, Index(j)), d, lv)
            elif j is not None:
                self._report((*path, Index(j)), "added", None, live[j], owner)
            elif i is not None:
                self._report((*path, Index(i)), "removed", desired[i], None, owner)

    def _atomic_additions(self, desired: Any, live: Any, path: Path,
                          holder: Mapping[str, Any]) -> bool:
        """Whether ``live`` holds, inside an atomic value equal to ``desired`` on everything
        ``desired`` declares, a field that is not a server default and whose writer (the
        list's owner: atomic values are owned whole) is a human."""
        if not self.index:
            # Unowned, a field inside an item may be a default the table does not know (a
            # CRD's schema default): only a human's is worth reporting.
            return False
        owner = _pick(self.index.owners_of_value(path), self.cat)
        if owner is None or self.cat(owner) != "human":
            return False
        return any(True for _ in self._extras(desired, live, path, holder))

    def _extras(self, desired: Any, live: Any, path: Path,
                parent: Mapping[str, Any]) -> Iterator[Path]:
        if isinstance(desired, dict) and isinstance(live, dict):
            for k, lv in live.items():
                if k not in desired:
                    if not self._is_default((*path, k), lv, live):
                        yield (*path, k)
                else:
                    yield from self._extras(desired[k], lv, (*path, k), live)
        elif isinstance(desired, list) and isinstance(live, list):
            for i, (dv, lv) in enumerate(zip(desired, live, strict=False)):
                yield from self._extras(dv, lv, (*path, Index(i)), parent)


def _freeze(value: Any) -> Any:
    return Value(value).value


def _same_items(desired: list[Any], live: list[Any]) -> bool:
    """Whether two lists hold the same items in another order."""
    left = sorted(repr(_freeze(v)) for v in desired)
    return left == sorted(repr(_freeze(v)) for v in live)


def _aligned(desired: list[Any], live: list[Any]) -> list[tuple[int | None, int | None]]:
    """The items of an atomic list paired by position order: the longest run of Git items
    each found (everything it declares present) in a live item, in order; between two such
    matches the unmatched items pair up one to one (one took the other's place), and what
    is left over was added (live only) or removed (Git only). A drifted list is short, and
    this runs only for one that differs."""
    n, m = len(desired), len(live)
    same = [[_subset(d, lv) for lv in live] for d in desired]
    # Longest common subsequence under "Git's item is contained in the live one".
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for a in range(n - 1, -1, -1):
        for b in range(m - 1, -1, -1):
            best[a][b] = (best[a + 1][b + 1] + 1 if same[a][b]
                          else max(best[a + 1][b], best[a][b + 1]))
    out: list[tuple[int | None, int | None]] = []
    gap_d: list[int] = []
    gap_l: list[int] = []

    def close_gap() -> None:
        for k in range(max(len(gap_d), len(gap_l))):
            out.append((gap_d[k] if k < len(gap_d) else None,
                        gap_l[k] if k < len(gap_l) else None))
        gap_d.clear()
        gap_l.clear()

    a = b = 0
    while a < n and b < m:
        if same[a][b] and best[a][b] == best[a + 1][b + 1] + 1:
            close_gap()
            out.append((a, b))
            a, b = a + 1, b + 1
        elif best[a + 1][b] >= best[a][b + 1]:
            gap_d.append(a)
            a += 1
        else:
            gap_l.append(b)
            b += 1
    gap_d.extend(range(a, n))
    gap_l.extend(range(b, m))
    close_gap()
    return out


def _hashable_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_freeze(v) for v in values)


def _item_element(item: Mapping[str, Any], keys: tuple[str, ...]) -> Element:
    values = schema.item_key(item, keys)
    return Key((k, v) for k, v in zip(keys, values, strict=True) if v is not None)


# --------------------------------------------------------------------------- objects


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _has_human_entry(live: Mapping[str, Any], classify: Callable[[str], Category],
                     who: _Who | None = None) -> bool | None:
    """Whether any managedFields entry is a human's; ``None`` when there are no entries."""
    meta = live.get("metadata")
    entries = meta.get("managedFields") if isinstance(meta, Mapping) else None
    if not isinstance(entries, list) or not entries:
        return None
    if who is not None:
        return any(who.human_entry(e) for e in entries)
    return any(isinstance(e, Mapping) and classify(str(e.get("manager") or "")) == "human"
               for e in entries)


def _human_entries(live: Mapping[str, Any], classify: Callable[[str], Category],
                   who: _Who | None = None) -> list[Any]:
    entries = live["metadata"]["managedFields"]
    if who is not None:
        return [e for e in entries if who.human_entry(e)]
    return [e for e in entries
            if isinstance(e, Mapping) and classify(str(e.get("manager") or "")) == "human"]


def _finish(key: ResourceKey, api_version: str, drifts: Iterable[DriftItem],
            ignores: ObjectIgnores, source: SourceInfo | None) -> ObjectResult:
    kept = tuple(sorted((d for d in drifts if not (ignores and ignores.drops(d))),
                        key=lambda d: (d.path, d.op)))
    return ObjectResult(key=key, api_version=api_version,
                        status="drifted" if kept else "in-sync", drifts=kept, source=source)


def compare_object(key: ResourceKey, desired: dict[str, Any] | None, live: dict[str, Any] | None,
                   *, settings: CompareSettings, source: SourceInfo | None = None) -> ObjectResult:
    """Compare one object. ``desired`` is the manifest from Git (``None``: not in Git, an
    orphan), ``live`` the object as the API server returns it (``None``: missing)."""
    if desired is None and live is None:
        raise ValueError(f"{key}: neither a desired nor a live object")
    api_version = str(((live if live is not None else desired) or {}).get("apiVersion") or "")
    rule = settings.ignore.object_rule(key)
    if rule is not None:
        return ObjectResult(key=key, api_version=api_version, status="ignored", source=source,
                            reason=rule.reason or "ignored by rule")
    if live is None:
        return ObjectResult(key=key, api_version=api_version, status="missing", source=source)
    if desired is None:
        return ObjectResult(key=key, api_version=api_version, status="orphan", source=source)

    lookup = settings.identities
    who = None if lookup is None else _Who(key, lookup, settings)
    humans = _has_human_entry(live, settings.classify, who)
    if (humans is False and settings.raw_subset_decides() and not _is_secret(live)
            and _subset(desired, live)):
        # What Git declares is already present verbatim and only machines wrote the object:
        # in sync without normalising either side. Normalisation rewrites a value by its key
        # and value alone, drops the same server-owned keys on both sides and keeps list
        # items in place, so a verbatim subset stays one once normalised; not for a Secret,
        # whose annotations are hashed when they repeat one of its own (differing) values.
        # tests/test_compare_fastpath.py checks it on every pair the tests hold. This halved
        # the comparison of bench diff's 10,000 pairs (one run).
        return ObjectResult(key=key, api_version=api_version, status="in-sync", source=source)
    want = settings.normalise(desired)
    have = settings.normalise(live)
    if humans is False and _subset(want, have):
        # Nothing declared differs and no human wrote anything: additions by controllers,
        # defaulting and GitOps tools are not drift, so there is nothing to look for.
        return ObjectResult(key=key, api_version=api_version, status="in-sync", source=source)

    group, version = _split_api_version(api_version)
    additions_only = bool(humans) and _subset(want, have)
    if additions_only:
        # Only human owners can make drift here: index their entries alone (a rollout
        # restart's one-field entry, not the GitOps tool's whole-object one).
        index = OwnershipIndex(_human_entries(live, settings.classify, who))
    elif humans is not None:
        index = ownership(live)
    else:
        index = OwnershipIndex(None)
    walk = _Walk(group, version, key.kind, index, settings, have,
                 humans is not None or schema.known_kind(group, version, key.kind))
    walk.additions_only = additions_only
    walk.who = who
    walk.node(want, have, (), have)
    return _finish(key, api_version, walk.drifts, settings.ignore.for_object(key), source)


# --------------------------------------------------------------------------- streams


# One decision for the listing, the comparison and revert (auditor.engine.scope).
in_scope = key_in_scope


def managed_namespaces_of(desired: Iterable[ResourceKey]) -> frozenset[str]:
    """The namespaces Git manages: those its objects live in, and the Namespaces it declares."""
    out: set[str] = set()
    for key in desired:
        if key.namespace:
            out.add(key.namespace)
        elif key.group == "" and key.kind == "Namespace":
            out.add(key.name)
    return frozenset(out)


# Secrets that tools keep as their own storage, never workload configuration: Helm's release
# records (`sh.helm.release.v1.<name>.v<n>`; the release's objects are reported themselves).
_TOOL_SECRET_TYPES: frozenset[str] = frozenset({"helm.sh/release.v1"})


def _controller_made(entries: Any, settings: CompareSettings) -> bool:
    """Whether managedFields show only controllers ever wrote the object: an operator's
    artefact without ownerReferences (cert-manager's certificate Secrets, Istio's
    `istio-ca-root-cert` ConfigMap in every namespace), not something a person left behind.
    """
    if not isinstance(entries, list) or not entries:
        return False
    return all(isinstance(e, Mapping)
               and settings.classify(str(e.get("manager") or "")) == "controller"
               for e in entries)


def is_orphan_candidate(key: ResourceKey, live: Mapping[str, Any], *, settings: CompareSettings,
                        managed_namespaces: Collection[str]) -> bool:
    """Whether a live object absent from Git counts as an orphan (DESIGN.md, "Orphans").

    Beyond the objects Kubernetes creates in every namespace, objects that only controllers
    ever wrote (by their managedFields) and tools' storage Secrets are not orphans: nobody
    left them behind by hand, and nothing in Git could own them.
    """
    if key.namespace:
        if key.namespace not in managed_namespaces:
            return False
    elif not settings.cluster_scoped_orphans:
        return False
    if not in_scope(key, settings.scope):
        return False
    meta = live.get("metadata")
    if isinstance(meta, Mapping) and meta.get("ownerReferences"):
        return False
    if key.group == "" and key.kind == "Secret" and live.get("type") in _TOOL_SECRET_TYPES:
        return False
    if isinstance(meta, Mapping) and _controller_made(meta.get("managedFields"), settings):
        return False
    ident = (key.group, key.kind, key.name)
    return ident not in _BUILTIN_OBJECTS and not (
        key.namespace == "default" and ident in _BUILTIN_IN_DEFAULT)


def compare_all(desired: Mapping[ResourceKey, dict[str, Any]], live: Iterable[dict[str, Any]], *,
                settings: CompareSettings,
                sources: Mapping[ResourceKey, SourceInfo] | None = None,
                managed_namespaces: Collection[str] | None = None,
                problems: list[Problem] | None = None,
                orphans: bool = True,
                on_undecided: Callable[[ResourceKey], None] | None = None,
                seen: set[ResourceKey] | None = None,
                missing: bool = True) -> Iterator[ObjectResult]:
    """Compare a stream of live objects with the desired objects.

    Live objects are consumed one at a time (they arrive page by page from the cluster) and
    a result is yielded for each desired or orphan object as soon as it is seen; then
    ``missing`` results follow for desired objects never seen, in key order. Live objects
    that are neither desired nor orphans yield nothing. Memory grows with the desired set,
    not with the cluster. Results come in stream order: sort by ``key`` for output.

    ``managed_namespaces`` defaults to :func:`managed_namespaces_of` the desired keys.
    With a ``problems`` list, an object that cannot be compared (a malformed manifest or
    live object) is recorded there and skipped instead of ending the run.

    With ``orphans=False`` (Git is not known in full: a file could not be read) a live
    object that would be an orphan may be declared by what could not be read: it yields no
    result and goes to ``on_undecided`` instead.

    ``seen`` (filled in) holds the desired keys met live; with ``missing=False`` no
    ``missing`` results follow, for a caller comparing the live objects in parts.
    """
    sources = sources or {}
    namespaces = (frozenset(managed_namespaces) if managed_namespaces is not None
                  else managed_namespaces_of(desired))
    def one(key: ResourceKey, want: dict[str, Any] | None,
            have: dict[str, Any] | None) -> ObjectResult | None:
        try:
            return compare_object(key, want, have, settings=settings, source=sources.get(key))
        except Exception as exc:
            if problems is None:
                raise
            problems.append(Problem(where=str(key), message=f"cannot compare: {exc}"))
            return None

    seen = set() if seen is None else seen
    for obj in live:
        key = ResourceKey.of(obj)
        want = desired.get(key)
        if want is not None:
            if key in seen:
                continue  # listed twice (e.g. under two API versions): compared once
            seen.add(key)
            result = one(key, want, obj)
        elif is_orphan_candidate(key, obj, settings=settings, managed_namespaces=namespaces):
            if not orphans:
                if on_undecided is not None:
                    on_undecided(key)
                continue
            result = one(key, None, obj)
        else:
            continue
        if result is not None:
            yield result
    if not missing:
        return
    for key in sorted(desired):
        if key not in seen:
            result = one(key, desired[key], None)
            if result is not None:
                yield result
