"""Optional auto-revert: put Git's state back, safely and on the record (issue 9).

Off by default (``revert.mode: off``). In ``dry-run`` each revert is planned and checked by a
server dry-run, recorded and reported, and nothing changes; in ``enforce`` it is carried out.

Planning (:func:`plan`) is pure: comparison results, the desired objects and the live objects
of the drifted/orphan keys in, an ordered list of actions with reasons out. It keeps what
the configured scope selects (kinds, namespaces, a label selector), drops objects annotated
``drift-auditor.io/revert: "false"``, objects whose revert failed recently (backoff from the
ledger), missing objects unless ``recreate_missing``, orphans unless ``prune``, and drift
that only controllers made. More actions than ``max_objects`` → nothing is done at all, and
the run says so: a mass revert is more likely a wrong Git revision than a bad night.

Execution (:class:`Executor`) reverts by server-side apply of the desired object with the
``drift-auditor`` field manager and ``force=true``, in dependency order (Namespaces, CRDs,
ServiceAccounts and RBAC, ConfigMaps and Secrets, storage, Services, workloads, the rest,
custom resources; deletions last, in reverse). Each object is read fresh first (an opt-out
added since the listing is honoured), then applied with ``dryRun=All``, then for real.

Why a forced apply is not enough: server-side apply removes only fields its manager applied
before. A field a human added out of band (``kubectl set env``, ``kubectl label``,
``kubectl edit``: ``Update`` managers) is owned by that human, so an apply that omits it
leaves it in place. Before the real apply the executor therefore moves the human managers'
field ownership into the tool's own ``Apply`` entry (a JSON patch of
``metadata.managedFields``, guarded by a resourceVersion ``test``); the apply then prunes
what the tool now owns and Git does not declare, and restores what Git declares. This is
client-go's own move when kubectl upgrades client-side-apply ownership to server-side apply
(``k8s.io/client-go/util/csaupgrade.UpgradeManagedFieldsPatch``: replace
``/metadata/managedFields`` behind a resourceVersion test) and Flux's for kubectl edits
(fluxcd/kustomize-controller#562). Fields of controllers
(the HPA's replicas, a webhook's sidecar) and of ``scale``/``status`` subresource writes are
never taken, and ``spec.replicas`` stays with its owner when Git does not declare it.

Every attempt is a chained ledger row (:mod:`auditor.ledger.reverts`) and a successful one
closes the object's drift as ``reverted``. Secret values go to the API server only: the
ledger, logs and problems get paths, key names and keyed hashes.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from auditor.config import RevertConfig
from auditor.engine.records import Category, ObjectResult, Problem, ResourceKey
from auditor.engine.scope import kind_selected
from auditor.errors import ClusterError, ClusterUnreachableError, ConfigError
from auditor.live.client import APIResource, Cluster, WriteError, WriteForbiddenError

if TYPE_CHECKING:
    from auditor.engine.compare import CompareSettings
    from auditor.ledger import Run
    from auditor.ledger.reverts import LastAttempt

log = logging.getLogger(__name__)

Verb = Literal["apply", "delete"]
Result = Literal["reverted", "dry-run", "failed", "skipped"]

# Dependency order of kinds: what others refer to goes first.
_RANK: dict[tuple[str, str], int] = {
    ("", "Namespace"): 0,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): 1,
    ("", "ServiceAccount"): 2,
    ("rbac.authorization.k8s.io", "ClusterRole"): 3,
    ("rbac.authorization.k8s.io", "Role"): 3,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): 4,
    ("rbac.authorization.k8s.io", "RoleBinding"): 4,
    ("", "ConfigMap"): 5,
    ("", "Secret"): 5,
    ("storage.k8s.io", "StorageClass"): 6,
    ("", "PersistentVolume"): 6,
    ("", "PersistentVolumeClaim"): 6,
    ("", "Service"): 7,
    ("apps", "Deployment"): 8,
    ("apps", "StatefulSet"): 8,
    ("apps", "DaemonSet"): 8,
    ("apps", "ReplicaSet"): 8,
    ("batch", "Job"): 8,
    ("batch", "CronJob"): 8,
    ("", "ReplicationController"): 8,
    ("", "Pod"): 8,
}
_BUILTIN_GROUPS = frozenset({"", "apps", "batch", "autoscaling", "policy"})
_OTHER_BUILTIN, _CUSTOM = 9, 10

_SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "managedFields",
                    "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
_MAX_BACKOFF = timedelta(days=1)


def rank(key: ResourceKey) -> int:
    """Where ``key`` goes in the apply order (lower first; deletions run in reverse)."""
    found = _RANK.get((key.group, key.kind))
    if found is not None:
        return found
    if key.group in _BUILTIN_GROUPS or key.group.endswith(".k8s.io"):
        return _OTHER_BUILTIN
    return _CUSTOM


# --------------------------------------------------------------------- label selectors


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: Literal["=", "!=", "in", "notin", "exists", "!exists"]
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        return not has or value not in self.values  # "!=" and "notin", as Kubernetes


_SET_EXPR = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def parse_selector(text: str) -> tuple[_Requirement, ...]:
    """A Kubernetes label selector: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``,
    ``a in (x,y)``, ``a notin (x)``, comma-separated (commas inside parentheses included)."""
    parts: list[str] = []
    depth, current = 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    out: list[_Requirement] = []
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        m = _SET_EXPR.match(raw)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            out.append(_Requirement(m.group(1), m.group(2), values))  # type: ignore[arg-type]
        elif "!=" in raw:
            k, v = raw.split("!=", 1)
            out.append(_Requirement(k.strip(), "!=", frozenset({v.strip()})))
        elif "=" in raw:
            k, v = raw.replace("==", "=", 1).split("=", 1)
            out.append(_Requirement(k.strip(), "=", frozenset({v.strip()})))
        elif raw.startswith("!"):
            out.append(_Requirement(raw[1:].strip(), "!exists"))
        elif re.fullmatch(r"[A-Za-z0-9._/-]+", raw):
            out.append(_Requirement(raw, "exists"))
        else:
            raise ConfigError(f"revert.label_selector: cannot parse {raw!r}")
    return tuple(out)


def _labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    meta = (obj or {}).get("metadata") or {}
    labels = meta.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _annotation(obj: Mapping[str, Any] | None, name: str) -> str | None:
    meta = (obj or {}).get("metadata") or {}
    annotations = meta.get("annotations") or {}
    value = annotations.get(name) if isinstance(annotations, Mapping) else None
    return None if value is None else str(value)


def opted_out(obj: Mapping[str, Any] | None, annotation: str) -> bool:
    """Whether the object says ``<annotation>: "false"`` (also ``no``/``off``/``0``)."""
    value = _annotation(obj, annotation)
    return value is not None and value.strip().lower() in ("false", "no", "off", "0")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Action:
    """One object to revert: ``apply`` (drifted or missing) or ``delete`` (orphan)."""

    key: ResourceKey
    verb: Verb
    reason: str
    result: ObjectResult
    desired: dict[str, Any] | None = field(default=None, repr=False)
    live: dict[str, Any] | None = field(default=None, repr=False)
    # Declared paths a controller owns live: left out of the applied object.
    controller_paths: tuple[str, ...] = ()
    # Drifted paths deliberately left as they are (the above, and replicas Git omits): the
    # check after the apply does not count them.
    kept_paths: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[int, int, ResourceKey]:
        r = rank(self.key)
        return (0, r, self.key) if self.verb == "apply" else (1, -r, self.key)


@dataclass(frozen=True)
class Skip:
    """An object with drift that this run will not revert, and why."""

    key: ResourceKey
    why: Literal["scope", "opt-out", "backoff", "controller", "replicas", "missing", "orphan"]
    reason: str


@dataclass(frozen=True)
class Plan:
    """Ordered actions; ``capped`` means there were more than the cap and none will run."""

    actions: tuple[Action, ...] = ()
    skipped: tuple[Skip, ...] = ()
    capped: bool = False
    cap: int = 0


def _desired_declares(obj: Mapping[str, Any] | None, dotted: str) -> bool:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _backoff_until(last: LastAttempt, base_minutes: float) -> datetime | None:
    if last.result != "failed" or last.failures < 1:
        return None
    try:
        at = datetime.fromisoformat(last.at.replace("Z", "+00:00"))
    except ValueError:
        return None
    wait = timedelta(minutes=base_minutes) * (2 ** min(last.failures - 1, 10))
    return at + min(wait, _MAX_BACKOFF)


def plan(cfg: RevertConfig, results: Iterable[ObjectResult], desired: Mapping[ResourceKey, dict[str, Any]],
         live: Mapping[ResourceKey, dict[str, Any]], *,
         last: Mapping[ResourceKey, LastAttempt] | None = None,
         desired_hash: Callable[[dict[str, Any]], str] | None = None,
         now: datetime | None = None) -> Plan:
    """Decide what to revert, in which order, and what not and why. Pure: no I/O.

    ``live`` needs the live objects of drifted and orphan keys (labels, annotations);
    ``last`` is :func:`auditor.ledger.reverts.last_attempts`; ``desired_hash`` lets a failed
    revert be retried at once when Git's object changed since the failure.
    """
    selector = parse_selector(cfg.label_selector) if cfg.label_selector else ()
    moment = now or datetime.now(UTC)
    actions: list[Action] = []
    skipped: list[Skip] = []
    for result in results:
        key = result.key
        if result.status not in ("drifted", "missing", "orphan"):
            continue
        want = desired.get(key)
        have = live.get(key)
        if cfg.kinds and not kind_selected(key.group, key.kind, cfg.kinds):
            skipped.append(Skip(key, "scope", "kind not in revert.kinds"))
            continue
        if cfg.namespaces and key.namespace not in cfg.namespaces:
            skipped.append(Skip(key, "scope", "namespace not in revert.namespaces"))
            continue
        # Git's labels decide for objects Git declares (a human cannot relabel an object out
        # of the revert); an orphan only has its live labels.
        labels = _labels(want if want is not None else have)
        if selector and not all(r.matches(labels) for r in selector):
            skipped.append(Skip(key, "scope", "labels do not match revert.label_selector"))
            continue
        if opted_out(have, cfg.opt_out_annotation) or opted_out(want, cfg.opt_out_annotation):
            skipped.append(Skip(key, "opt-out",
                                f'annotated {cfg.opt_out_annotation}: "false"'))
            continue
        if result.status == "missing" and not cfg.recreate_missing:
            skipped.append(Skip(key, "missing", "missing live; revert.recreate_missing is off"))
            continue
        if result.status == "orphan" and not cfg.prune:
            skipped.append(Skip(key, "orphan", "not in Git; revert.prune is off"))
            continue
        if result.status in ("drifted", "missing") and want is None:
            continue  # nothing to apply (cannot happen for results of compare_all)
        previous = (last or {}).get(key)
        if previous is not None:
            until = _backoff_until(previous, cfg.failure_backoff_minutes)
            same_git = desired_hash is None or want is None \
                or desired_hash(want) == previous.desired_hash
            if until is not None and moment < until and same_git:
                skipped.append(Skip(key, "backoff", f"revert failed {previous.failures} time(s) "
                                    f"in a row; next attempt after "
                                    f"{until.strftime('%Y-%m-%dT%H:%M:%SZ')}"))
                continue
        controller_paths = tuple(sorted({d.path for d in result.drifts
                                         if d.category == "controller"}))
        # Replicas Git does not declare belong to whoever scales (an HPA, a person): resetting
        # them to the default of 1 is an outage, not a revert.
        replicas = ("spec.replicas",) if any(
            d.path == "spec.replicas" and d.op == "added" for d in result.drifts) \
            and not _desired_declares(want, "spec.replicas") else ()
        if result.status == "drifted":
            drifted_paths = {d.path for d in result.drifts}
            if replicas and drifted_paths <= {*replicas, *controller_paths}:
                skipped.append(Skip(key, "replicas", "only spec.replicas, which Git does not "
                                    "declare: left to its owner"))
                continue
            if controller_paths and len(controller_paths) == len(drifted_paths):
                managers = sorted({d.manager for d in result.drifts})
                skipped.append(Skip(key, "controller", "only controllers changed it ("
                                    + ", ".join(managers) + "); their fields are not reverted"))
                continue
            if any("[" in p for p in controller_paths):
                skipped.append(Skip(key, "controller", "a controller owns list items Git "
                                    "declares (" + ", ".join(controller_paths) + ")"))
                continue
            paths = sorted({d.path for d in result.drifts})
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            actions.append(Action(key, "apply", f"drifted: {shown}", result, want, have,
                                  controller_paths, (*controller_paths, *replicas)))
        elif result.status == "missing":
            actions.append(Action(key, "apply", "missing live: re-create from Git", result, want,
                                  None))
        else:
            actions.append(Action(key, "delete", "orphan: not in Git, revert.prune is on", result,
                                  None, have))
    actions.sort(key=lambda a: a.order)
    capped = len(actions) > cfg.max_objects
    return Plan(tuple(actions), tuple(skipped), capped, cfg.max_objects)


# --------------------------------------------------------------------- apply bodies


def apply_body(desired: Mapping[str, Any], *, drop: Sequence[str] = ()) -> dict[str, Any]:
    """The object to apply: Git's manifest without server-set metadata and ``status``.

    A Secret's ``stringData`` becomes base64 ``data`` (``stringData`` is write-only: owning
    it would not own the ``data`` keys it turns into). Dotted ``drop`` paths are left out
    (declared fields a controller owns live).
    """
    body = copy.deepcopy(dict(desired))
    body.pop("status", None)
    meta = body.setdefault("metadata", {})
    for name in _SERVER_METADATA:
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


# --------------------------------------------------------------- ownership transfer


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
    keep_replicas = not _desired_declares(body, "spec.replicas")
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


# -------------------------------------------------------------------------- execution


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


@dataclass
class RevertReport:
    """One run's revert: the plan, each outcome, and the problems to report."""

    mode: str
    plan: Plan = field(default_factory=Plan)
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        by = {r: sum(1 for o in self.outcomes if o.result == r)
              for r in ("reverted", "dry-run", "failed", "skipped")}
        return {"reverts_planned": len(self.plan.actions), "reverted": by["reverted"],
                "revert_dry_run": by["dry-run"], "revert_failed": by["failed"],
                "revert_skipped": len(self.plan.skipped) + by["skipped"],
                "revert_capped": int(self.plan.capped)}


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


# ------------------------------------------------------------------ pipeline hook


class LiveKeeper:
    """Wraps the pipeline's live stream and keeps the objects :func:`after_compare` needs.

    An object waits in ``pending`` while the stream below compares it (only objects that
    may get a result: desired keys, and orphan candidates — in a namespace Git manages,
    without owner references); the pipeline notes each result before it asks for the next
    object, so when the stream moves on the object is dropped unless its result kept it.
    Drifted and orphan ones are kept: memory follows the drift count. With ``want=None``
    (revert off) it passes the stream through and keeps nothing.
    """

    def __init__(self, stream: Iterable[dict[str, Any]],
                 want: Mapping[ResourceKey, Any] | None = None) -> None:
        self._stream = stream
        self._want = want
        self._namespaces = frozenset(
            k.namespace or k.name for k in (want or {})
            if k.namespace or (k.group == "" and k.kind == "Namespace"))
        self.pending: dict[ResourceKey, dict[str, Any]] = {}
        self.kept: dict[ResourceKey, dict[str, Any]] = {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._want is None:
            yield from self._stream
            return
        for obj in self._stream:
            key = ResourceKey.of(obj)
            if key in self._want or (key.namespace in self._namespaces
                                     and not (obj.get("metadata") or {}).get("ownerReferences")):
                self.pending[key] = obj
                yield obj
                self.pending.pop(key, None)  # its result, if any, was noted by now
            else:
                yield obj

    @property
    def active(self) -> bool:
        """Whether it keeps anything (revert is on): otherwise results need not be noted."""
        return self._want is not None

    def note(self, result: ObjectResult) -> None:
        obj = self.pending.pop(result.key, None)
        if obj is not None and result.status in ("drifted", "orphan"):
            self.kept[result.key] = obj


def after_compare(cfg: RevertConfig, cluster: Cluster, run: Run,
                  desired: Mapping[ResourceKey, dict[str, Any]],
                  results: Sequence[ObjectResult], live: Mapping[ResourceKey, dict[str, Any]],
                  resources: Iterable[APIResource], *, settings: CompareSettings,
                  now: datetime | None = None) -> RevertReport:
    """The pipeline's hook: after every result is recorded, before ``run.finish``.

    ``live`` holds the live objects of drifted and orphan keys; ``settings`` are the run's
    comparison settings (manager categories, normalisation with keyed Secret hashes, and
    the comparison that checks each applied object). Returns the report; its problems go
    into the run's problems, its counts into the run's counts.
    """
    from auditor.engine.compare import compare_object
    from auditor.ledger import content_hash as ledger_hash
    from auditor.ledger import lifecycle
    from auditor.ledger import reverts as ledger_reverts

    def content_hash(obj: dict[str, Any]) -> str:
        return ledger_hash(settings.normalise(obj))

    def remaining(key: ResourceKey, want: dict[str, Any], have: dict[str, Any]) -> list[str]:
        result = compare_object(key, want, have, settings=settings)
        return sorted({d.path for d in result.drifts}) if result.status == "drifted" else []

    report = RevertReport(cfg.mode)
    if cfg.mode == "off":
        return report
    moment = now or datetime.now(UTC)
    last = ledger_reverts.last_attempts(run.ledger.conn)
    report.plan = plan(cfg, results, desired, live, last=last, desired_hash=content_hash,
                       now=moment)
    dry_run = cfg.mode == "dry-run"
    if report.plan.capped:
        keys = [a.key for a in report.plan.actions]
        message = (f"{len(keys)} objects to revert exceed revert.max_objects "
                   f"({cfg.max_objects}): nothing was reverted; check the Git revision, then "
                   f"raise the cap or revert by hand")
        log.warning("revert: %s", message)
        ledger_reverts.record_capped(run, mode=cfg.mode, planned=keys, cap=cfg.max_objects)
        report.problems.append(Problem("revert", message, "revert-capped",
                                       (("planned", len(keys)), ("cap", cfg.max_objects))))
        return report
    executor = Executor(cluster, resources, cfg, classify=settings.classify, now=moment,
                        remaining=remaining)
    for action in report.plan.actions:
        outcome = executor.run(action, dry_run=dry_run)
        report.outcomes.append(outcome)
        log.info("revert %s %s: %s: %s", action.verb, action.key, outcome.result,
                 outcome.message)
        if outcome.result == "skipped":
            continue
        desired_hash = content_hash(action.desired) if action.desired is not None else ""
        live_hash = content_hash(action.live) if action.live is not None else ""
        previous = last.get(action.key)
        if outcome.result == "dry-run" and previous is not None \
                and previous.result == "dry-run" and previous.desired_hash == desired_hash \
                and previous.live_hash == live_hash:
            continue  # the same would-be revert as last run: recorded once, not every run
        ledger_reverts.record(
            run, action.key, action=action.verb, mode=cfg.mode, result=outcome.result,
            reason=action.reason, items=lifecycle.items_of(action.result),
            desired_hash=desired_hash, live_hash=live_hash,
            resource_version_before=outcome.resource_version_before,
            resource_version_after=outcome.resource_version_after,
            managers=outcome.managers,
            error=outcome.message if outcome.result == "failed" else "")
        if outcome.result == "reverted":
            run.reverted(action.key)
        elif outcome.result == "failed":
            report.problems.append(Problem(
                str(action.key), f"revert failed: {outcome.message} (next attempt after "
                f"{cfg.failure_backoff_minutes:g} minutes at the earliest)", "revert-failed",
                (("forbidden", outcome.forbidden),)))
    return report


__all__ = ["Action", "Executor", "LiveKeeper", "Outcome", "Plan", "RevertReport", "Skip", "after_compare", "apply_body", "opted_out", "ownership_transfer", "parse_selector",
           "plan", "rank"]
