"""Planning a revert, a pure function: comparison results, the desired objects and the live
objects of the drifted and orphan keys in, an ordered list of actions with reasons out.

It keeps what the configured scope selects (kinds, namespaces, a label selector), drops
objects annotated ``drift-auditor.io/revert: "false"``, objects whose revert failed recently
(backoff from the ledger), missing objects unless ``recreate_missing``, orphans unless
``prune``, and drift that only controllers made. More actions than ``max_objects`` → nothing
is done at all: a mass revert is more likely a wrong Git revision than a bad night."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from auditor.config import RevertConfig
from auditor.engine.records import ObjectResult, ResourceKey
from auditor.engine.scope import kind_selected, name_selected
from auditor.errors import ConfigError

if TYPE_CHECKING:
    from auditor.ledger.reverts import LastAttempt


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

SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "managedFields",
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


def desired_declares(obj: Mapping[str, Any] | None, dotted: str) -> bool:
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
        if cfg.namespaces and not name_selected(key.namespace, cfg.namespaces):
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
            and not desired_declares(want, "spec.replicas") else ()
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
