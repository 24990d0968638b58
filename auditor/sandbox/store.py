"""The object store: what etcd plus the generic registry do for a real API server.

Assigns uid / resourceVersion / generation / creationTimestamp, keeps ``managedFields``,
runs defaulting and light validation, serves paginated and filtered lists, and keeps an
event log for watches. Each object is serialised once per write (with and without
apiVersion/kind), so a LIST only splices bytes.

Watches behave as kube-apiserver's: events after the requested resourceVersion, a 410
``Expired`` ERROR event for one older than the retained history (:meth:`Store.compact`
discards history as etcd compaction does), ``timeoutSeconds`` ending the stream cleanly,
and with ``allowWatchBookmarks=true`` a BOOKMARK carrying the stream's position every
``bookmark_interval`` seconds (kube-apiserver: about a minute).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml

from auditor.sandbox import apply as ssa
from auditor.sandbox import crd
from auditor.sandbox import patch as patches
from auditor.sandbox.catalog import Catalog, Resource
from auditor.sandbox.defaults import (
    Allocator,
    admit_create,
    apply_defaults,
    canonicalize_quantities,
    read_defaults,
)
from auditor.sandbox.schema import Field, register_crd, root
from auditor.sandbox.selectors import field_matcher, label_matcher
from auditor.sandbox.status import ApiError, already_exists, invalid, not_found

Obj = dict[str, Any]

# Kinds whose metadata.generation the server maintains (bumped on spec changes).
_GENERATION_KINDS = frozenset({
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Ingress",
    "NetworkPolicy", "PodDisruptionBudget", "CustomResourceDefinition", "IngressClass",
    "Pod", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "HorizontalPodAutoscaler", "ReplicationController",
})
# Deleting these returns the object; others answer a Status with details, like the registry.
_RETURN_DELETED = frozenset({"Pod", "Namespace", "Service", "CustomResourceDefinition"})
_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
# Finalizers whose controllers (pvc-protection, pv-protection, the garbage collector) would
# release an object at once in a cluster without pods or dependents.
_SELF_CLEARING = frozenset({"kubernetes.io/pvc-protection", "kubernetes.io/pv-protection",
                            "foregroundDeletion", "orphan"})
_POD_TEMPLATE = {"metadata": {}, "spec": {"containers": None}}
# The Go zero value of each type as the field manager sees it on create (see apply.py).
_ZERO: dict[str, Obj] = {
    "Deployment": {"metadata": {}, "spec": {"selector": None, "template": _POD_TEMPLATE,
                                            "strategy": {}}, "status": {}},
    "StatefulSet": {"metadata": {}, "spec": {"selector": None, "template": _POD_TEMPLATE,
                                             "updateStrategy": {}}, "status": {}},
    "DaemonSet": {"metadata": {}, "spec": {"selector": None, "template": _POD_TEMPLATE,
                                           "updateStrategy": {}}, "status": {}},
    "ReplicaSet": {"metadata": {}, "spec": {"selector": None, "template": _POD_TEMPLATE},
                   "status": {}},
    "Job": {"metadata": {}, "spec": {"template": _POD_TEMPLATE}, "status": {}},
    "CronJob": {"metadata": {}, "spec": {"schedule": "", "jobTemplate": {
        "metadata": {}, "spec": {"template": _POD_TEMPLATE}}}, "status": {}},
    "Pod": {"metadata": {}, "spec": {"containers": None}, "status": {}},
    "Service": {"metadata": {}, "spec": {}, "status": {"loadBalancer": {}}},
    "Namespace": {"metadata": {}, "spec": {}, "status": {}},
    "PersistentVolumeClaim": {"metadata": {}, "spec": {"resources": {}}, "status": {}},
    "ConfigMap": {"metadata": {}},
    "Secret": {"metadata": {}},
}
_KUBE_ROOT_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy\n"
    "dmVyLWNhQDE3MDAwMDAwMDAwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAw\n"
    "-----END CERTIFICATE-----\n")
_ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")
_EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list.")


def _clone(obj: Any) -> Any:
    """A deep copy of JSON data (several times faster than ``copy.deepcopy``)."""
    return orjson.loads(orjson.dumps(obj))


def now() -> str:
    """RFC 3339 UTC with second precision, as metav1.Time serialises."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Record:
    """A stored object with its pre-serialised forms and decoded ownership."""

    obj: Obj
    full: bytes  # with apiVersion/kind: GET, watch
    item: bytes  # as a list item: built-in kinds drop apiVersion/kind
    entries: list[ssa.Entry]


@dataclass
class _Table:
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    _sorted: list[tuple[str, str]] = field(default_factory=list)
    _dirty: bool = False

    def keys(self) -> list[tuple[str, str]]:
        if self._dirty:
            self._sorted = sorted(self.records)
            self._dirty = False
        return self._sorted

    def put(self, key: tuple[str, str], rec: Record) -> None:
        if key not in self.records:
            self._dirty = True
        self.records[key] = rec

    def remove(self, key: tuple[str, str]) -> Record | None:
        rec = self.records.pop(key, None)
        if rec is not None:
            self._dirty = True
        return rec


@dataclass(slots=True)
class Event:
    rv: int
    key: tuple[str, str]
    type: str
    namespace: str
    rec: Record
    prev: Obj | None = None  # the object before a MODIFIED, for selector transitions


class Store:
    """All objects of one sandbox, guarded by one lock."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1
        self.tables: dict[tuple[str, str], _Table] = {}
        self.events: deque[Event] = deque(maxlen=20000)
        self.alloc = Allocator()
        self.compacted_rv = 0
        self._discarded_rv = 0  # the newest event compaction discarded
        # Seconds between the BOOKMARK events of a watch that allows them.
        self.bookmark_interval = 60.0
        self.namespace_deletion_delay = 1.0
        self.crd_schemas: dict[tuple[str, str], Obj] = {}

    # -- reading ---------------------------------------------------------------------------

    def table(self, res: Resource) -> _Table:
        t = self.tables.get(res.key)
        if t is None:
            t = self.tables[res.key] = _Table()
        return t

    def get(self, res: Resource, ns: str, name: str) -> Record | None:
        with self.lock:
            return self.table(res).records.get((ns if res.namespaced else "", name))

    def require(self, res: Resource, ns: str, name: str) -> Record:
        rec = self.get(res, ns, name)
        if rec is None:
            raise not_found(res.group, res.plural, name)
        return rec

    def list_bytes(self, res: Resource, ns: str | None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0,
                   continue_token: str | None = None, expired: bool = False) -> bytes:
        """A whole ``<Kind>List`` response body."""
        labels = label_matcher(label_selector)
        fields = field_matcher(field_selector, res.kind)
        start = ""
        if continue_token:
            start, token_rv = _decode_continue(continue_token)
            if expired or token_rv < self.compacted_rv:
                raise ApiError("Expired", _EXPIRED_MESSAGE, code=410,
                               details=None)
        convert = res.version != res.storage_version
        with self.lock:
            t = self.table(res)
            keys = t.keys()
            lo, hi = 0, len(keys)
            if ns is not None and res.namespaced:
                lo = bisect.bisect_left(keys, (ns, ""))
                hi = bisect.bisect_left(keys, (ns + "\x00", ""))
            if start:
                s_ns, _, s_name = start.partition("/")
                lo = max(lo, bisect.bisect_right(keys, (s_ns, s_name)))
            out: list[bytes] = []
            last: tuple[str, str] | None = None
            more = False
            records = t.records
            i = lo
            while i < hi:
                rec = records[keys[i]]
                i += 1
                if labels is not None and not labels(rec.obj["metadata"].get("labels") or {}):
                    continue
                if fields is not None and not fields(rec.obj):
                    continue
                if limit and len(out) >= limit:
                    more = True
                    break
                out.append(_item_bytes(rec, res) if convert else rec.item)
                last = keys[i - 1]
            rv = self.rv
            remaining = hi - i + 1 if more else 0
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if more and last is not None:
            meta["continue"] = _encode_continue(f"{last[0]}/{last[1]}\x00", rv)
            if labels is None and fields is None:
                meta["remainingItemCount"] = remaining
        head = orjson.dumps({"kind": f"{res.kind}List", "apiVersion": res.group_version,
                             "metadata": meta})
        return head[:-1] + b',"items":[' + b",".join(out) + b"]}"

    # -- writing ---------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _finish(self, res: Resource, obj: Obj, entries: list[ssa.Entry], *, rv: int | None,
                old: Record | None) -> Record:
        read_defaults(res.group, res.kind, obj)
        meta = obj["metadata"]
        if rv is not None:
            meta["resourceVersion"] = str(rv)
        elif old is None:
            meta.pop("resourceVersion", None)
        if entries:
            meta["managedFields"] = ssa.render(entries)
        else:
            meta.pop("managedFields", None)
        full = orjson.dumps(obj)
        if res.builtin:
            item = orjson.dumps({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        else:
            item = full
        return Record(obj, full, item, entries)

    def _store(self, res: Resource, rec: Record, kind: str, prev: Obj | None = None) -> None:
        meta = rec.obj["metadata"]
        key = (meta.get("namespace", "") if res.namespaced else "", meta["name"])
        if kind == "DELETED":
            self.table(res).remove(key)
        else:
            self.table(res).put(key, rec)
        self.events.append(Event(self.rv, res.key, kind, key[0], rec, prev))
        self.changed.notify_all()

    def _prepare_new(self, res: Resource, ns: str, body: Obj) -> Obj:
        obj = _clone(body)
        obj["apiVersion"] = f"{res.group}/{res.storage_version}" if res.group \
            else res.storage_version
        obj["kind"] = res.kind
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if res.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        return obj

    def _check_namespace(self, res: Resource, ns: str) -> None:
        if res.namespaced:
            ns_res = self.catalog.find("", "v1", "namespaces")
            assert ns_res is not None
            found = self.get(ns_res, "", ns)
            if found is None:
                raise not_found("", "namespaces", ns)
            if "deletionTimestamp" in found.obj["metadata"]:
                raise ApiError("Forbidden", f'{res.plural} is forbidden: unable to create new '
                               f"content in namespace {ns} because it is being terminated",
                               details={"kind": res.plural, "causes": [{
                                   "reason": "NamespaceTerminating",
                                   "message": f"namespace {ns} is being terminated",
                                   "field": "metadata.namespace"}]})

    def _validate_update(self, res: Resource, obj: Obj, old: Obj) -> None:
        """Fields the API server refuses to change after creation."""
        causes: list[tuple[str, str]] = []
        spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        if res.kind in _WORKLOADS | {"Job"} and spec.get("selector") != old_spec.get("selector"):
            causes.append(("spec.selector", f"Invalid value: {spec.get('selector')!r}: field "
                           "is immutable"))
        if res.kind == "Service" and old_spec.get("clusterIP") and \
                spec.get("clusterIP") != old_spec.get("clusterIP") and \
                old_spec.get("type") != "ExternalName" and spec.get("type") != "ExternalName":
            causes.append(("spec.clusterIPs[0]", f"Invalid value: []string{{{spec.get('clusterIP')!r}}}:"
                           " may not change once set"))
        if res.kind in ("ConfigMap", "Secret") and old.get("immutable"):
            for key in ("data", "binaryData", "stringData"):
                if obj.get(key) != old.get(key):
                    causes.append((key, "Forbidden: field is immutable when `immutable` is set"))
        if causes:
            raise invalid(res.group, res.kind, old["metadata"]["name"], causes)

    def _validate(self, res: Resource, obj: Obj) -> None:
        name = obj["metadata"].get("name")
        if not name:
            raise invalid(res.group, res.kind, "", [(
                "metadata.name", "Required value: name or generateName is required")])
        if res.kind in _WORKLOADS:
            spec = obj.get("spec") or {}
            causes: list[tuple[str, str]] = []
            selector = spec.get("selector")
            tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector:
                causes.append(("spec.selector", "Required value"))
            else:
                match = selector.get("matchLabels") or {}
                if any(tmpl_labels.get(k) != v for k, v in match.items()):
                    causes.append(("spec.template.metadata.labels",
                                   f"Invalid value: {tmpl_labels!r}: `selector` does not match "
                                   "template `labels`"))
            if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
                causes.append(("spec.template.spec.containers", "Required value"))
            if causes:
                raise invalid(res.group, res.kind, name, causes)

    def _set_generation(self, res: Resource, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        if res.kind not in _GENERATION_KINDS and res.builtin:
            meta.pop("generation", None)
            return
        if old is None:
            meta["generation"] = 1
            return
        gen = int(old["metadata"].get("generation", 1))
        if res.builtin:
            changed = obj.get("spec") != old.get("spec")
            if res.kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                changed = obj.get("webhooks") != old.get("webhooks")
        else:
            changed = {k: v for k, v in obj.items() if k not in ("metadata", "status")} != \
                {k: v for k, v in old.items() if k not in ("metadata", "status")}
        meta["generation"] = gen + 1 if changed else gen

    def _zero(self, res: Resource) -> Obj:
        return _clone(_ZERO.get(res.kind, {"metadata": {}}))

    def create(self, res: Resource, ns: str, body: Obj, *, manager: str, dry_run: bool = False,
               keep_status: bool = False, operation: str = "Update", force: bool = False,
               system: bool = False, field_validation: str | None = None) -> Obj:
        """POST: a new object, defaulted, with an ``Update`` managedFields entry."""
        with self.lock:
            self._check_namespace(res, ns)
            obj = self._prepare_new(res, ns, body)
            self._check_custom(res, obj, field_validation)
            meta = obj["metadata"]
            name = meta.get("name", "")
            key = (ns if res.namespaced else "", name)
            if name and key in self.table(res).records:
                raise already_exists(res.group, res.plural, name)
            incoming_managed = meta.pop("managedFields", None)
            for server_field in ("uid", "resourceVersion", "generation", "creationTimestamp",
                                 "selfLink", "deletionTimestamp"):
                if not (keep_status and server_field in ("uid", "creationTimestamp")):
                    meta.pop(server_field, None)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now())
            if "status" in res.subresources and not keep_status:
                obj.pop("status", None)
            apply_defaults(res.group, res.kind, obj, self.alloc, creating=True)
            if "status" in res.subresources:
                obj.setdefault("status", {})  # a Go struct field: serialised even when empty
            self._validate(res, obj)
            self._set_generation(res, obj, None)
            f = _root(res)
            drop = ("status",) if "status" in res.subresources and not keep_status else ()
            if keep_status and isinstance(incoming_managed, list):
                entries = ssa.parse(incoming_managed)
            elif system and not manager:
                entries = []
            else:
                entries = ssa.update([], ssa.strip(self._zero(res), drop=drop),
                                     ssa.strip(obj, drop=drop), f, manager=manager,
                                     api_version=res.group_version, now=now())
            # mutating admission runs after the field manager: what it adds has no owner
            admit_create(res.group, res.kind, obj)
            rec = self._finish(res, obj, entries, rv=None if dry_run else self._next_rv(),
                               old=None)
            if dry_run:
                return obj
            self._store(res, rec, "ADDED")
            self._after_create(res, obj)
            return obj

    def _after_create(self, res: Resource, obj: Obj) -> None:
        if (res.group, res.kind) == ("", "Namespace"):
            self._populate_namespace(obj["metadata"]["name"])
        elif (res.group, res.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            self._register_crd(obj)

    def _register_crd(self, definition: Obj) -> None:
        self.catalog.register_crd(definition)
        spec = definition.get("spec") or {}
        storage = next((v for v in spec.get("versions") or [] if v.get("storage")), None)
        schema = ((storage or {}).get("schema") or {}).get("openAPIV3Schema")
        group, kind = str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))
        register_crd(group, kind, schema)
        if isinstance(schema, dict):
            self.crd_schemas[(group, kind)] = schema
        else:
            self.crd_schemas.pop((group, kind), None)

    def _check_custom(self, res: Resource, obj: Obj, field_validation: str | None) -> None:
        """Custom resources: refuse (Strict) or prune undeclared fields, fill defaults."""
        if not res.builtin:
            crd.check(res.kind, res.version, obj,
                      self.crd_schemas.get((res.group, res.kind)), field_validation)

    def _populate_namespace(self, ns: str) -> None:
        sa = self.catalog.find("", "v1", "serviceaccounts")
        cm = self.catalog.find("", "v1", "configmaps")
        assert sa is not None and cm is not None
        if self.get(sa, ns, "default") is None:
            self.create(sa, ns, {"metadata": {"name": "default"}},
                        manager="kube-controller-manager")
        if self.get(cm, ns, "kube-root-ca.crt") is None:
            self.create(cm, ns, {"metadata": {
                "name": "kube-root-ca.crt",
                "annotations": {"kubernetes.io/description": _ROOT_CA_DESCRIPTION}},
                "data": {"ca.crt": _KUBE_ROOT_CA}}, manager="kube-controller-manager")

    def _write(self, res: Resource, old: Record, new: Obj, *, manager: str, dry_run: bool,
               subresource: str = "", entries: list[ssa.Entry] | None = None,
               field_validation: str | None = None) -> Obj:
        """Commit a modification of ``old`` (defaults, generation, ownership, events)."""
        old_obj = old.obj
        if subresource == "":
            self._check_custom(res, new, field_validation)
        meta = new.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
            if k in old_obj["metadata"]:
                meta[k] = old_obj["metadata"][k]
        sent = meta.pop("managedFields", None)
        base_entries = old.entries
        if subresource == "" and sent is not None:
            # As the API server's decodeLiveOrNew: [] or [{}] resets ownership, a decodable
            # non-empty list replaces it (clients may edit managedFields), else keep live.
            if sent == [] or sent == [{}]:
                base_entries = []
            elif isinstance(sent, list):
                try:
                    base_entries = ssa.parse(sent) or old.entries
                except (AttributeError, TypeError, ValueError):
                    base_entries = old.entries
        if subresource == "status":
            # The status strategies reset spec (and, for apps workloads, labels) but let
            # annotations through: the Deployment controller sets its revision annotation
            # with a status update.
            kept = _clone(old_obj)
            kept["status"] = new.get("status", {})
            for key in ("annotations",) if res.kind in _WORKLOADS else ("annotations", "labels"):
                if key in meta:
                    kept["metadata"][key] = meta[key]
                else:
                    kept["metadata"].pop(key, None)
            new = kept
            meta = new["metadata"]
        elif "status" in res.subresources and subresource == "":
            if "status" in old_obj:
                new["status"] = _clone(old_obj["status"])
            else:
                new.pop("status", None)
        apply_defaults(res.group, res.kind, new, self.alloc, creating=False, old=old_obj)
        self._validate(res, new)
        self._validate_update(res, new, old_obj)
        terminating = "deletionTimestamp" in old_obj["metadata"]
        if terminating:
            added = set(meta.get("finalizers") or []) - set(
                old_obj["metadata"].get("finalizers") or [])
            if added:
                raise invalid(res.group, res.kind, old_obj["metadata"]["name"], [(
                    "metadata.finalizers", "Forbidden: no new finalizers can be added if the "
                    "object is being deleted, found new finalizers "
                    + repr(sorted(added)).replace("'", '"'))])
        self._set_generation(res, new, old_obj)
        if entries is None:
            f = _root(res)
            if subresource == "status":
                before, after = ssa.strip(old_obj), ssa.strip(new)
            elif subresource == "scale":
                before = {"spec": {"replicas": (old_obj.get("spec") or {}).get("replicas")}}
                after = {"spec": {"replicas": (new.get("spec") or {}).get("replicas")}}
            else:
                drop = ("status",) if "status" in res.subresources else ()
                before, after = ssa.strip(old_obj, drop=drop), ssa.strip(new, drop=drop)
            entries = ssa.update(base_entries, before, after, f, manager=manager,
                                 api_version=res.group_version, now=now(),
                                 subresource=subresource)
        unchanged = _same_content(old_obj, new) and set(entries) == set(old.entries)
        if unchanged:
            return _clone(old_obj)
        rv = None if dry_run else self._next_rv()
        meta["resourceVersion"] = old_obj["metadata"].get("resourceVersion", "")
        rec = self._finish(res, new, entries, rv=rv, old=old)
        if dry_run:
            return new
        self._store(res, rec, "MODIFIED", prev=old_obj)
        if terminating and not meta.get("finalizers"):
            # the last finalizer is gone: the pending deletion completes
            self._next_rv()
            gone = _clone(new)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._store(res, Record(gone, orjson.dumps(gone), rec.item, rec.entries), "DELETED")
            return new
        if (res.group, res.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            self._register_crd(new)
        return new

    def update(self, res: Resource, ns: str, name: str, body: Obj, *, manager: str,
               dry_run: bool = False, subresource: str = "",
               field_validation: str | None = None) -> Obj:
        """PUT, with the optimistic-concurrency check on ``metadata.resourceVersion``."""
        with self.lock:
            old = self.require(res, ns, name)
            body_meta = body.get("metadata") or {}
            if body_meta.get("name") not in (None, name):
                raise ApiError("BadRequest", f"the name of the object ({body_meta.get('name')}) "
                               f"does not match the name on the URL ({name})")
            sent_rv = body_meta.get("resourceVersion")
            if sent_rv and sent_rv != old.obj["metadata"].get("resourceVersion"):
                raise _modified_conflict(res, name)
            new = _clone(body)
            new["apiVersion"], new["kind"] = old.obj["apiVersion"], old.obj["kind"]
            return self._write(res, old, new, manager=manager, dry_run=dry_run,
                               subresource=subresource, field_validation=field_validation)

    def patch(self, res: Resource, ns: str, name: str, content_type: str, raw: bytes, *,
              manager: str | None, dry_run: bool = False, force: bool = False,
              subresource: str = "", user_agent_manager: str = "",
              field_validation: str | None = None) -> tuple[Obj, bool]:
        """PATCH in any of the four formats; returns the object and whether it was created."""
        if content_type == "application/apply-patch+yaml":
            if not manager:
                raise ApiError("BadRequest",
                               "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                               "Required value: is required for apply patch")
            try:
                config = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError as exc:
                raise ApiError("BadRequest", f"error decoding YAML: {exc}") from exc
            if not isinstance(config, dict):
                raise ApiError("BadRequest", "apply patch must be an object")
            return self.server_side_apply(res, ns, name, config, manager=manager, force=force,
                                          dry_run=dry_run, subresource=subresource,
                                          field_validation=field_validation)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError("BadRequest", f"error decoding patch: {exc}") from exc
        who = manager or user_agent_manager
        with self.lock:
            old = self.require(res, ns, name)
            if subresource == "scale":
                current = scale_of(res, old.obj)
                patched = _apply_patch(content_type, current, body, Field(type="Scale"), res)
                return self._set_scale(res, old, patched, manager=who, dry_run=dry_run), False
            base = _clone(old.obj)
            new = _apply_patch(content_type, base, body, _root(res), res)
            if not isinstance(new, dict):
                raise ApiError("BadRequest", "patch result is not an object")
            sent_rv = (new.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != old.obj["metadata"].get("resourceVersion"):
                raise _modified_conflict(res, name)
            new["apiVersion"], new["kind"] = old.obj["apiVersion"], old.obj["kind"]
            return self._write(res, old, new, manager=who, dry_run=dry_run,
                               subresource=subresource,
                               field_validation=field_validation), False

    def server_side_apply(self, res: Resource, ns: str, name: str, config: Obj, *, manager: str,
                          force: bool = False, dry_run: bool = False,
                          subresource: str = "",
                          field_validation: str | None = None) -> tuple[Obj, bool]:
        """``application/apply-patch+yaml``: merge, prune, conflict-check, maybe create."""
        meta = config.get("metadata") or {}
        if meta.get("managedFields") is not None:
            raise ApiError("BadRequest", "metadata.managedFields must be nil")
        if meta.get("name") not in (None, name):
            raise ApiError("BadRequest", f"the name of the object ({meta.get('name')}) does "
                           f"not match the name on the URL ({name})")
        if not config.get("apiVersion") or not config.get("kind"):
            raise ApiError("BadRequest", "apiVersion and kind must be set in an apply patch")
        if subresource:
            return self._apply_subresource(res, ns, name, config, manager=manager, force=force,
                                           dry_run=dry_run, subresource=subresource), False
        if config.get("kind") != res.kind:
            raise ApiError("BadRequest", f"the kind {config.get('kind')!r} does not match "
                           f"the resource {res.plural!r}")
        f = _root(res)
        drop = ("status",) if "status" in res.subresources else ()
        config = _clone(config)
        if res.builtin:
            canonicalize_quantities(res.group, res.kind, config)
        else:
            schema = self.crd_schemas.get((res.group, res.kind))
            if field_validation == "Strict":
                crd.check(res.kind, res.version, config, schema, field_validation)
            crd.prune(config, schema)  # undeclared fields are dropped, not owned
        with self.lock:
            old = self.get(res, ns, name)
            if old is None:
                self._check_namespace(res, ns)
                merged, entries = ssa.apply([], None, config, f, manager=manager,
                                            api_version=res.group_version, now=now(),
                                            force=force, drop=drop)
                merged.setdefault("metadata", {})["name"] = name
                obj = self._prepare_new(res, ns, merged)
                self._check_custom(res, obj, None)
                obj["metadata"]["uid"] = str(uuid.uuid4())
                obj["metadata"]["creationTimestamp"] = now()
                apply_defaults(res.group, res.kind, obj, self.alloc, creating=True)
                admit_create(res.group, res.kind, obj)
                if "status" in res.subresources:
                    obj.setdefault("status", {})
                self._validate(res, obj)
                self._set_generation(res, obj, None)
                rec = self._finish(res, obj, entries, rv=None if dry_run else self._next_rv(),
                                   old=None)
                if not dry_run:
                    self._store(res, rec, "ADDED")
                    self._after_create(res, obj)
                return obj, True
            live = _clone(old.obj)
            live["metadata"].pop("managedFields", None)
            merged, entries = ssa.apply(old.entries, live, config, f, manager=manager,
                                        api_version=res.group_version, now=now(), force=force,
                                        drop=drop)
            merged["apiVersion"], merged["kind"] = old.obj["apiVersion"], old.obj["kind"]
            return self._write(res, old, merged, manager=manager, dry_run=dry_run,
                               entries=entries), False

    def _apply_subresource(self, res: Resource, ns: str, name: str, config: Obj, *,
                           manager: str, force: bool, dry_run: bool, subresource: str) -> Obj:
        """Server-side apply to ``/status`` or ``/scale``: only that part of the object."""
        f = _root(res)
        with self.lock:
            old = self.require(res, ns, name)
            live = _clone(old.obj)
            live["metadata"].pop("managedFields", None)
            meta = {"name": name, **{k: v for k, v in (config.get("metadata") or {}).items()
                                     if k in ("labels", "annotations")}}
            if subresource == "scale":
                if config.get("kind") != "Scale":
                    raise ApiError("BadRequest", "the scale subresource takes a Scale object")
                replicas = (config.get("spec") or {}).get("replicas")
                spec_path = res.scale_paths[0].strip(".").split(".")
                body: Obj = {"replicas": replicas}
                for part in reversed(spec_path[1:-1]):
                    body = {part: body}
                cfg: Obj = {"metadata": {"name": name}, spec_path[0]: body}
                keep = {spec_path[0]}
            else:
                cfg = {"metadata": meta, "status": config.get("status") or {}}
                keep = {"status"}
            cfg.update(apiVersion=res.group_version, kind=res.kind)
            drop = tuple(k for k in {**live, **cfg} if k not in keep | {"metadata"})
            merged, entries = ssa.apply(old.entries, live, cfg, f, manager=manager,
                                        api_version=res.group_version, now=now(), force=force,
                                        drop=drop, subresource=subresource)
            merged["apiVersion"], merged["kind"] = old.obj["apiVersion"], old.obj["kind"]
            result = self._write(res, old, merged, manager=manager, dry_run=dry_run,
                                 subresource=subresource, entries=entries)
            return scale_of(res, result) if subresource == "scale" else result

    def _set_scale(self, res: Resource, old: Record, scale: Obj, *, manager: str,
                   dry_run: bool) -> Obj:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid("autoscaling", "Scale", old.obj["metadata"]["name"], [
                ("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or "
                 "equal to 0")])
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old.obj["metadata"].get("resourceVersion"):
            raise _modified_conflict(res, old.obj["metadata"]["name"])
        new = _clone(old.obj)
        new.setdefault("spec", {})["replicas"] = replicas
        result = self._write(res, old, new, manager=manager, dry_run=dry_run,
                             subresource="scale")
        return scale_of(res, result)

    def update_scale(self, res: Resource, ns: str, name: str, body: Obj, *, manager: str,
                     dry_run: bool = False) -> Obj:
        with self.lock:
            old = self.require(res, ns, name)
            return self._set_scale(res, old, body, manager=manager, dry_run=dry_run)

    def delete(self, res: Resource, ns: str, name: str, *, dry_run: bool = False,
               precondition_rv: str | None = None,
               precondition_uid: str | None = None) -> tuple[Obj, bool]:
        """DELETE: the removed object or a success ``Status``, and whether it is gone.

        An object with finalizers only gets a ``deletionTimestamp`` (the API answers 202);
        it goes when an update removes the last finalizer. Finalizers that built-in
        controllers remove by themselves (PVC/PV protection, GC policies) are removed here
        at once, as those controllers would, there being no pods or dependents.
        """
        with self.lock:
            old = self.require(res, ns, name)
            meta = old.obj["metadata"]
            if precondition_uid and precondition_uid != meta.get("uid"):
                raise ApiError("Conflict", f"Precondition failed: UID in precondition: "
                               f"{precondition_uid}, UID in object meta: {meta.get('uid')}")
            if precondition_rv and precondition_rv != meta.get("resourceVersion"):
                raise _modified_conflict(res, name)
            if (res.group, res.kind) == ("", "Namespace"):
                return self._terminate_namespace(res, old, dry_run), True
            waiting = [f for f in meta.get("finalizers") or [] if f not in _SELF_CLEARING]
            if waiting:
                pending = _clone(old.obj)
                pending["metadata"].setdefault("deletionTimestamp", now())
                pending["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                pending["metadata"]["finalizers"] = waiting
                if not dry_run and pending["metadata"] != meta:
                    rec = self._finish(res, pending, old.entries, rv=self._next_rv(), old=old)
                    self._store(res, rec, "MODIFIED", prev=old.obj)
                return pending, False
            if not dry_run:
                self._next_rv()
                gone = _clone(old.obj)
                gone["metadata"]["resourceVersion"] = str(self.rv)
                rec = Record(gone, orjson.dumps(gone), old.item, old.entries)
                self._store(res, rec, "DELETED")
                if (res.group, res.kind) == ("apiextensions.k8s.io",
                                             "CustomResourceDefinition"):
                    self._purge_crd(old.obj)
            if res.kind in _RETURN_DELETED:
                return _clone(old.obj), True
            details: dict[str, Any] = {"name": name, "kind": res.plural, "uid": meta.get("uid")}
            if res.group:
                details = {"name": name, "group": res.group, "kind": res.plural,
                           "uid": meta.get("uid")}
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": details}, True

    def _terminate_namespace(self, res: Resource, old: Record, dry_run: bool) -> Obj:
        """Namespace deletion: ``Terminating`` first, contents and namespace gone later.

        The namespace controller's work is simulated by a timer after
        ``namespace_deletion_delay`` seconds (0 = at once), so ``kubectl delete -f`` of a
        file whose first document is the Namespace can still delete the rest, as it can
        on a real cluster.
        """
        name = old.obj["metadata"]["name"]
        terminating = _clone(old.obj)
        terminating["metadata"].setdefault("deletionTimestamp", now())
        terminating["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        terminating.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return terminating
        if "deletionTimestamp" not in old.obj["metadata"]:
            rec = self._finish(res, terminating, old.entries, rv=self._next_rv(), old=old)
            self._store(res, rec, "MODIFIED")
            if self.namespace_deletion_delay <= 0:
                self._finalize_namespace(res, name)
            else:
                timer = threading.Timer(self.namespace_deletion_delay,
                                        self._finalize_namespace, args=(res, name))
                timer.daemon = True
                timer.start()
        return terminating

    def _finalize_namespace(self, res: Resource, name: str) -> None:
        with self.lock:
            self._purge_namespace(name)
            rec = self.table(res).records.get(("", name))
            if rec is None:
                return
            self._next_rv()
            gone = _clone(rec.obj)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._store(res, Record(gone, orjson.dumps(gone), rec.item, rec.entries), "DELETED")

    def _purge_namespace(self, ns: str) -> None:
        for res_key, table in list(self.tables.items()):
            doomed = [k for k in table.records if k[0] == ns]
            if not doomed:
                continue
            res = next((r for r in self.catalog.resources if r.key == res_key), None)
            if res is None or not res.namespaced:
                continue
            for key in doomed:
                self._next_rv()
                rec = table.records[key]
                gone = _clone(rec.obj)
                gone["metadata"]["resourceVersion"] = str(self.rv)
                self._store(res, Record(gone, orjson.dumps(gone), rec.item, rec.entries),
                            "DELETED")

    def _purge_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        key = (str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))
        table = self.tables.pop(key, None)
        if table is not None:
            self._next_rv()
        self.catalog.unregister_crd(crd["metadata"]["name"])

    # -- watching --------------------------------------------------------------------------

    def compact(self, rv: int | None = None) -> int:
        """Discard the event history up to ``rv`` (default: now), as etcd compaction does.

        A watch from an older resourceVersion then gets 410 ``Expired``, an open watch still
        behind it an ERROR event carrying that 410, and list continue tokens issued before it
        expire. Returns the compacted resourceVersion.
        """
        with self.lock:
            rv = self.rv if rv is None else min(int(rv), self.rv)
            self.compacted_rv = max(self.compacted_rv, rv)
            while self.events and self.events[0].rv <= self.compacted_rv:
                self._discarded_rv = self.events.popleft().rv
            self.changed.notify_all()
            return self.compacted_rv

    def watch(self, res: Resource, ns: str | None, since: str | None, *,
              label_selector: str | None, field_selector: str | None, timeout: float,
              stop: threading.Event, send_initial_events: bool = False,
              bookmarks: bool = False) -> Iterator[bytes]:
        """Newline-delimited watch events after ``since`` (all current objects if unset/0).

        ``send_initial_events`` is the streaming-list mode client-go's WatchListClient uses:
        current objects as ADDED, then a BOOKMARK annotated ``k8s.io/initial-events-end``.
        ``bookmarks`` (``allowWatchBookmarks``) adds a BOOKMARK every ``bookmark_interval``
        seconds. While no event is due the stream yields an empty line now and then (at most
        every 0.25 s), which is no event: it lets the server notice a stop or a fault.
        """
        labels = label_matcher(label_selector)
        fields = field_matcher(field_selector, res.kind)

        def wanted(ev_ns: str, obj: Obj) -> bool:
            if ns is not None and res.namespaced and ev_ns != ns:
                return False
            if labels is not None and not labels(obj["metadata"].get("labels") or {}):
                return False
            return fields is None or fields(obj)

        with self.lock:
            if since in (None, "", "0") or send_initial_events:
                initial = [rec for key, rec in sorted(self.table(res).records.items())
                           if wanted(key[0], rec.obj)]
                cursor = self.rv
            else:
                try:
                    cursor = int(str(since))
                except ValueError as exc:
                    raise ApiError("BadRequest", f"invalid resourceVersion {since!r}") from exc
                oldest = self.events[0].rv if self.events else self.rv
                if (cursor < oldest - 1 and cursor < self.rv) or cursor < self.compacted_rv:
                    raise _too_old(cursor, max(oldest - 1, self.compacted_rv))
                initial = []
        bookmark = None
        if send_initial_events:
            bookmark = orjson.dumps({"type": "BOOKMARK", "object": {
                "kind": res.kind, "apiVersion": res.group_version,
                "metadata": {"resourceVersion": str(cursor),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}}) + b"\n"
        interval = self.bookmark_interval if bookmarks else 0.0
        return self._stream(res, initial, bookmark, cursor, wanted, timeout, stop, interval)

    def _stream(self, res: Resource, initial: list[Record], bookmark: bytes | None, cursor: int,
                wanted: Callable[[str, Obj], bool], timeout: float,
                stop: threading.Event, bookmark_interval: float = 0.0) -> Iterator[bytes]:
        for rec in initial:
            yield _event_line("ADDED", rec, res)
        if bookmark is not None:
            yield bookmark
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + bookmark_interval if bookmark_interval > 0 else None
        while not stop.is_set():
            batch: list[Event] = []
            with self.lock:
                now_ = time.monotonic()
                remaining = deadline - now_
                if remaining <= 0:
                    return
                # History this stream had yet to send is gone: the watch cannot go on.
                gone = _too_old(cursor, self.compacted_rv) if cursor < self._discarded_rv \
                    else None
                if gone is None and (not self.events or self.events[-1].rv <= cursor):
                    wait = min(remaining, 0.25)
                    if next_bookmark is not None:
                        wait = max(0.0, min(wait, next_bookmark - now_))
                    self.changed.wait(wait)
                for ev in self.events if gone is None else ():
                    if ev.rv > cursor and ev.key == res.key:
                        batch.append(ev)
                if self.events:
                    cursor = max(cursor, self.events[-1].rv)
            if gone is not None:
                yield orjson.dumps({"type": "ERROR", "object": gone.status()}) + b"\n"
                return
            if not batch:
                yield b""  # no event: the server may check for a stop or a fault
            for ev in batch:
                now_in = wanted(ev.namespace, ev.rec.obj)
                if ev.type == "MODIFIED" and ev.prev is not None:
                    # As the watch cache filters: entering the selection is ADDED, leaving
                    # it is DELETED, staying out of it is nothing.
                    was_in = wanted(ev.namespace, ev.prev)
                    if now_in or was_in:
                        kind = "MODIFIED" if now_in and was_in else (
                            "ADDED" if now_in else "DELETED")
                        yield _event_line(kind, ev.rec, res)
                elif now_in:
                    yield _event_line(ev.type, ev.rec, res)
            if next_bookmark is not None and time.monotonic() >= next_bookmark:
                # Every event up to ``cursor`` this watch wants has been sent.
                next_bookmark = time.monotonic() + bookmark_interval
                yield orjson.dumps({"type": "BOOKMARK", "object": {
                    "kind": res.kind, "apiVersion": res.group_version,
                    "metadata": {"resourceVersion": str(cursor)}}}) + b"\n"


def _too_old(rv: int, oldest: int) -> ApiError:
    """The 410 kube-apiserver answers a watch from a compacted resourceVersion with."""
    return ApiError("Expired", f"too old resource version: {rv} ({oldest})", code=410)


def _root(res: Resource) -> Field:
    return root(res.kind) if res.builtin else root(res.kind, res.group)


def _event_line(kind: str, rec: Record, res: Resource) -> bytes:
    obj = rec.full if res.version == res.storage_version else orjson.dumps(
        convert_out(rec.obj, res))
    return b'{"type":"' + kind.encode() + b'","object":' + obj + b"}\n"


def _item_bytes(rec: Record, res: Resource) -> bytes:
    obj = convert_out(rec.obj, res)
    if res.builtin:
        obj = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return orjson.dumps(obj)


def convert_out(obj: Obj, res: Resource) -> Obj:
    """``obj`` as the version ``res`` serves (only autoscaling/v1 HPA differs in shape)."""
    if res.version == res.storage_version:
        return obj
    out = _clone(obj)
    out["apiVersion"] = res.group_version
    if res.kind == "HorizontalPodAutoscaler" and res.version == "v1":
        spec = out.get("spec") or {}
        metrics = spec.pop("metrics", None) or []
        spec.pop("behavior", None)
        for m in metrics:
            target = ((m.get("resource") or {}).get("target") or {})
            if (m.get("resource") or {}).get("name") == "cpu" and "averageUtilization" in target:
                spec["targetCPUUtilizationPercentage"] = target["averageUtilization"]
        status = out.get("status") or {}
        status.pop("conditions", None)
        status.pop("currentMetrics", None)
    return out


def convert_in(obj: Obj, res: Resource) -> Obj:
    """A request body at ``res``'s version, converted to the storage version."""
    if res.version == res.storage_version:
        return obj
    out = _clone(obj)
    out["apiVersion"] = f"{res.group}/{res.storage_version}"
    if res.kind == "HorizontalPodAutoscaler" and res.version == "v1":
        spec = out.get("spec") or {}
        cpu = spec.pop("targetCPUUtilizationPercentage", None)
        if cpu is not None:
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]
    return out


def scale_of(res: Resource, obj: Obj) -> Obj:
    """The autoscaling/v1 ``Scale`` view of a scalable object."""
    meta = obj["metadata"]
    spec_path, status_path, selector_path = res.scale_paths
    selector = ""
    if res.builtin:
        match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    elif selector_path:
        selector = str(_dig(obj, selector_path) or "")
    status: Obj = {"replicas": _dig(obj, status_path) or 0}
    if selector:
        status["selector"] = selector
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": _dig(obj, spec_path) or 0}, "status": status}


def _dig(obj: Obj, dotted: str) -> Any:
    node: Any = obj
    for part in dotted.strip(".").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _apply_patch(content_type: str, base: Obj, body: Any, f: Field, res: Resource) -> Any:
    if content_type == "application/json-patch+json":
        return patches.json_patch(base, body)
    if content_type == "application/merge-patch+json":
        return patches.json_merge_patch(base, body)
    if content_type == "application/strategic-merge-patch+json":
        if not res.builtin:
            raise ApiError("UnsupportedMediaType", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml")
        return patches.strategic_merge_patch(base, body, f)
    raise ApiError("UnsupportedMediaType", f"the body of the request was in an unknown format - "
                   f"accepted media types include: application/json-patch+json, "
                   f"application/merge-patch+json, application/apply-patch+yaml, "
                   f"application/strategic-merge-patch+json (got {content_type})")


def _same_content(a: Obj, b: Obj) -> bool:
    def bare(o: Obj) -> Obj:
        meta = {k: v for k, v in (o.get("metadata") or {}).items()
                if k not in ("managedFields", "resourceVersion")}
        return {**o, "metadata": meta}

    return bare(a) == bare(b)


def _modified_conflict(res: Resource, name: str) -> ApiError:
    qualified = f"{res.plural}.{res.group}" if res.group else res.plural
    return ApiError("Conflict", f'Operation cannot be fulfilled on {qualified} "{name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again", details={"name": name, "group": res.group,
                                              "kind": res.plural})


def _encode_continue(start: str, rv: int) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        start = data["start"]
        rv = int(data["rv"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise ApiError("BadRequest", "continue key is not valid: illegal base64 data at input "
                       "byte 0") from exc
    if data.get("v") != "meta.k8s.io/v1" or not isinstance(start, str):
        raise ApiError("BadRequest", "continue key is not valid: incorrect encoded start "
                       "resourceVersion (version meta.k8s.io/v1)")
    return start.rstrip("\x00"), rv
