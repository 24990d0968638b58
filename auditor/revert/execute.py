"""Carrying out a revert on the cluster: server-side apply of the desired object as the
``drift-auditor`` field manager with ``force=true``, or a deletion, each read fresh first,
then tried with ``dryRun=All``, then made for real.

A forced apply alone is not enough: server-side apply removes only fields its manager
applied before, so a field a human added out of band stays. Before the real apply the
human managers' field ownership moves into the tool's own ``Apply`` entry
(:func:`ownership_transfer`, a JSON patch of ``metadata.managedFields`` behind a
resourceVersion ``test``), as client-go's ``csaupgrade.UpgradeManagedFieldsPatch`` does."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditor.config import RevertConfig
from auditor.engine.records import Category, ResourceKey
from auditor.errors import ClusterError, ClusterUnreachableError
from auditor.live.client import APIResource, Cluster, WriteError, WriteForbiddenError
from auditor.revert.plan import SERVER_METADATA, Action, Result, Verb, desired_declares, opted_out


def apply_body(desired: Mapping[str, Any], *, drop: Sequence[str] = ()) -> dict[str, Any]:
    """The object to apply: Git's manifest without server-set metadata and ``status``.

    A Secret's ``stringData`` becomes base64 ``data`` (``stringData`` is write-only: owning
    it would not own the ``data`` keys it turns into). Dotted ``drop`` paths are left out
    (declared fields a controller owns live).
    """
    body = copy.deepcopy(dict(desired))
    body.pop("status", None)
    meta = body.setdefault("metadata", {})
    for name in SERVER_METADATA:
        meta.pop(name, None)
    if body.get("kind") == "Secret" and str(body.get("apiVersion")) == "v1" \
            and isinstance(body.get("stringData"), Mapping):
        data = dict(body.get("data") or {})
        for k, v in body.pop("stringData").items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        body["data"] = data
    for dotted in drop:
        parts = dotted.split(".")
        node: Any = body
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return body


def _merge_fields(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge_fields(out.get(k) or {}, v or {})
    return out


def _split_replicas(fields: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(fields without spec.replicas, just spec.replicas or {})``."""
    spec = fields.get("f:spec")
    if not isinstance(spec, Mapping) or "f:replicas" not in spec:
        return dict(fields), {}
    rest = dict(fields)
    rest_spec = {k: v for k, v in spec.items() if k != "f:replicas"}
    if rest_spec and set(rest_spec) != {"."}:
        rest["f:spec"] = rest_spec
    else:
        rest.pop("f:spec")
    return rest, {"f:spec": {"f:replicas": spec["f:replicas"]}}


@dataclass(frozen=True)
class Transfer:
    """A JSON patch moving human managers' fields to the tool's Apply entry."""

    ops: tuple[dict[str, Any], ...]
    managers: tuple[str, ...]


def ownership_transfer(live: Mapping[str, Any], body: Mapping[str, Any], *,
                       classify: Callable[[str], Category], field_manager: str,
                       now: str) -> Transfer | None:
    """The managedFields rewrite that lets the next apply remove human additions.

    Takes every ``human`` manager's entry at the applied apiVersion (not subresource ones:
    ``kubectl scale`` is undone by the forced apply when Git declares replicas, and left
    alone when it does not), merges its fields into ``field_manager``'s ``Apply`` entry and
    drops it. ``spec.replicas`` stays with its owner unless Git declares it. ``None`` when
    no human owns anything.
    """
    meta = live.get("metadata") or {}
    entries = meta.get("managedFields") or []
    api_version = str(body.get("apiVersion") or "")
    keep_replicas = not desired_declares(body, "spec.replicas")
    taken: dict[str, Any] = {}
    managers: list[str] = []
    out: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name = str(entry.get("manager") or "")
        if (classify(name) != "human" or entry.get("subresource")
                or entry.get("apiVersion") != api_version
                or entry.get("fieldsType", "FieldsV1") != "FieldsV1"
                or not isinstance(entry.get("fieldsV1"), Mapping)):
            out.append(dict(entry))
            continue
        fields = dict(entry["fieldsV1"])
        kept: dict[str, Any] = {}
        if keep_replicas:
            fields, kept = _split_replicas(fields)
        if kept:
            out.append({**entry, "fieldsV1": kept})
        if fields:
            taken = _merge_fields(taken, fields)
            managers.append(name)
    if not taken:
        return None
    mine = next((e for e in out if e.get("manager") == field_manager
                 and e.get("operation") == "Apply" and not e.get("subresource")), None)
    if mine is not None and mine.get("apiVersion") == api_version:
        mine["fieldsV1"] = _merge_fields(mine.get("fieldsV1") or {}, taken)
    elif mine is not None:
        return None  # our entry is at another version: field sets do not compare; skip
    else:
        out.append({"manager": field_manager, "operation": "Apply", "apiVersion": api_version,
                    "time": now, "fieldsType": "FieldsV1", "fieldsV1": taken})
    ops = ({"op": "test", "path": "/metadata/resourceVersion",
            "value": str(meta.get("resourceVersion") or "")},
           {"op": "replace", "path": "/metadata/managedFields", "value": out})
    return Transfer(ops, tuple(sorted(set(managers))))


@dataclass(frozen=True)
class Outcome:
    """What happened to one action."""

    key: ResourceKey
    verb: Verb
    result: Result
    message: str
    resource_version_before: str = ""
    resource_version_after: str = ""
    managers: tuple[str, ...] = ()
    forbidden: bool = False  # a 403: the message names the missing RBAC verb and resource


def _rv(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Executor:
    """Carries out a plan against the cluster (``dry_run``: server dry-runs only)."""

    def __init__(self, cluster: Cluster, resources: Iterable[APIResource], cfg: RevertConfig, *,
                 classify: Callable[[str], Category], now: datetime | None = None,
                 remaining: Callable[[ResourceKey, dict[str, Any], dict[str, Any]],
                                     Sequence[str]] | None = None) -> None:
        self.cluster = cluster
        self.cfg = cfg
        self.classify = classify
        # ``remaining(key, desired, live)``: the drifted paths the comparison still reports
        # on the applied object; a revert only counts when there are none.
        self.remaining = remaining
        # Namespaces this plan re-creates: in dry-run mode they do not exist yet, so a server
        # dry-run of an object inside one cannot pass (404) although the real run would.
        self.new_namespaces: set[str] = set()
        self.now = now or datetime.now(UTC)
        self._resources = {(r.group, r.kind): r for r in resources}

    def resource(self, key: ResourceKey) -> APIResource:
        found = self._resources.get((key.group, key.kind))
        if found is None:
            raise ClusterError(f"{key}: the cluster serves no kind {key.group_kind}")
        return found

    def run(self, action: Action, *, dry_run: bool) -> Outcome:
        """One action; API errors become a ``failed`` outcome (unreachable API: raised)."""
        try:
            if action.verb == "apply":
                return self._apply(action, dry_run=dry_run)
            return self._delete(action, dry_run=dry_run)
        except ClusterUnreachableError:
            raise
        except WriteForbiddenError as exc:
            return Outcome(action.key, action.verb, "failed", str(exc), _rv(action.live),
                           forbidden=True)
        except ClusterError as exc:
            return Outcome(action.key, action.verb, "failed", str(exc),
                           _rv(action.live))

    def _apply(self, action: Action, *, dry_run: bool) -> Outcome:
        assert action.desired is not None
        key, res = action.key, self.resource(action.key)
        fresh = self.cluster.get_object(res, key.namespace, key.name)
        if opted_out(fresh, self.cfg.opt_out_annotation):
            return Outcome(key, "apply", "skipped", "opted out since the listing", _rv(fresh))
        body = apply_body(action.desired, drop=action.controller_paths)
        manager = self.cfg.field_manager
        # The server dry-run validates the object, admission and our RBAC before anything
        # is written; in dry-run mode it is all that happens.
        try:
            self.cluster.apply(res, body, field_manager=manager, force=True, dry_run=True)
        except WriteError as exc:
            if not (dry_run and exc.status == 404 and key.namespace in self.new_namespaces):
                raise
            return Outcome(key, "apply", "dry-run", f"would re-create once namespace "
                           f"{key.namespace} is (the server cannot dry-run into a namespace "
                           f"that does not exist yet)")
        if key.group == "" and key.kind == "Namespace" and fresh is None:
            self.new_namespaces.add(key.name)
        transfer = (ownership_transfer(fresh, body, classify=self.classify,
                                       field_manager=manager, now=_stamp(self.now))
                    if fresh is not None else None)
        managers = transfer.managers if transfer else ()
        taking = f"; fields of {', '.join(managers)} taken over and pruned" if managers else ""
        if dry_run:
            verb = "re-create" if fresh is None else "apply"
            return Outcome(key, "apply", "dry-run", f"would {verb} (server dry-run passed)"
                           f"{taking}", _rv(fresh), managers=managers)
        if transfer is not None:
            self.cluster.json_patch(res, key.namespace, key.name, list(transfer.ops),
                                    field_manager=manager)
        out = self.cluster.apply(res, body, field_manager=manager, force=True)
        left = tuple(p for p in self.remaining(key, action.desired, out)
                     if p not in action.kept_paths) if self.remaining else ()
        if left:
            # Applied, but the comparison still sees drift (a field someone else owns, a
            # mutating webhook): say so rather than claim a revert; backoff stops a loop.
            return Outcome(key, "apply", "failed", "applied, but drift remains at "
                           + ", ".join(left[:5]) + (" …" if len(left) > 5 else ""),
                           _rv(fresh), _rv(out), managers)
        verb = "re-created" if fresh is None else "applied Git's object"
        return Outcome(key, "apply", "reverted", f"{verb}{taking}", _rv(fresh), _rv(out),
                       managers)

    def _delete(self, action: Action, *, dry_run: bool) -> Outcome:
        key, res = action.key, self.resource(action.key)
        fresh = self.cluster.get_object(res, key.namespace, key.name)
        if fresh is None:
            return Outcome(key, "delete", "reverted", "already gone")
        if opted_out(fresh, self.cfg.opt_out_annotation):
            return Outcome(key, "delete", "skipped", "opted out since the listing", _rv(fresh))
        uid = str((fresh.get("metadata") or {}).get("uid") or "")
        rv = _rv(fresh)
        # Preconditions: a concurrent change between read and delete makes the API refuse.
        self.cluster.delete(res, key.namespace, key.name, uid=uid, resource_version=rv,
                            dry_run=True)
        if dry_run:
            return Outcome(key, "delete", "dry-run", "would delete (server dry-run passed)", rv)
        self.cluster.delete(res, key.namespace, key.name, uid=uid, resource_version=rv)
        return Outcome(key, "delete", "reverted", "deleted", rv)
