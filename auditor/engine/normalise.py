"""Normalisation: one canonical form for a desired (Git) object and a live (cluster) object, so
that the comparison sees only differences a user would call drift.

Owns :func:`normalise` and the rules it applies, in one recursive pass that builds new dicts
(the input is never mutated and nothing of it is aliased except immutable scalars):

- ``status`` and the metadata the server owns (:data:`SERVER_OWNED_METADATA`) are dropped,
  and so are the bookkeeping annotations controllers write (:data:`SERVER_SET_ANNOTATIONS`).
  ``kubectl.kubernetes.io/last-applied-configuration`` is kept: it is evidence of a terminal
  ``kubectl apply`` (for a Secret its content is replaced by a keyed hash: it holds the values;
  so is any other annotation of a Secret that repeats one of its values).
- ``ownerReferences`` are dropped: they carry the owner's uid, which Git cannot declare, and
  they are written by controllers (and the garbage collector), never by the user's manifest.
  Orphan detection reads them from the raw live object, not from this form.
- Quantities are canonical wherever Kubernetes uses ``resource.Quantity`` (resource
  requests/limits, PVC storage, emptyDir ``sizeLimit``, pod ``overhead``, ResourceQuota
  ``hard``, LimitRange limits, PV capacity, HPA metric targets, a ``resourceFieldRef``'s
  ``divisor``, whose unset value the server prints as ``"0"`` and which means ``1``: both are
  absent here). ``ResourceList`` entries are
  rounded up to milli precision as ``SetDefaults_ResourceList`` does on the server.
- Secrets: ``stringData`` is merged into ``data`` (``stringData`` wins, as on the server) and
  every value becomes ``hmac-sha256:<32 hex>`` of the decoded bytes. No raw or base64 value is
  reachable from the result.
- Empty is absent: ``None`` values and empty mappings/lists go, except where presence changes
  meaning (:data:`PRESENCE_MATTERS`): a volume's source (``emptyDir: {}``), label selectors
  (``podSelector: {}`` selects every pod, an absent peer selector selects none), a
  PodDisruptionBudget ``selector``, and list items (``ingress: [{}]`` allows everything).
- An empty string in a struct field is absent too (``env: [{name: X, value: ""}]``, a
  subject's ``apiGroup: ""``: Go's ``omitempty`` drops them on the server), but not in maps
  whose keys the user chooses (:data:`STRING_MAPS`: a label ``tier: ""`` is a label) nor in
  ``storageClassName`` (``""`` asks for no storage class, absent for the default one).
- Zero values of plain ``omitempty`` fields whose zero means unset (:data:`FALSE_IS_ABSENT`,
  :data:`ZERO_IS_ABSENT`: ``readOnly: false``, ``hostNetwork: false``,
  ``initialDelaySeconds: 0``, ``minReadySeconds: 0``) are absent: the server drops them.
- Int-or-string values (``targetPort: "80"``, ``maxSurge: 1``) are left as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from auditor.engine.quantity import canonical_quantity

SECRET_HASH_PREFIX: Final = "hmac-sha256:"
_ALREADY_HASHED: Final = re.compile(r"hmac-sha256:[0-9a-f]{32}")


def is_secret_hash(value: object) -> bool:
    """Whether ``value`` is exactly a hash :func:`secret_hash` made (a redacted snapshot
    carries them); a raw value that merely starts like one is not."""
    return isinstance(value, str) and _ALREADY_HASHED.fullmatch(value) is not None
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"

# Written by the API server on every object; never declared in Git.
SERVER_OWNED_METADATA: Final[frozenset[str]] = frozenset({
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "selfLink", "managedFields", "ownerReferences",
})

# Annotations that only controllers write, as bookkeeping of their own progress.
SERVER_SET_ANNOTATIONS: Final[frozenset[str]] = frozenset({
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.daemonset.template.generation",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "control-plane.alpha.kubernetes.io/leader",
})

# Keys whose empty mapping is kept because `{}` and absent mean different things. Volume
# sources are handled by position (every member of a `volumes[]` item).
PRESENCE_MATTERS: Final[frozenset[str]] = frozenset({
    "podSelector", "namespaceSelector", "labelSelector", "emptyDir",
})

# Maps whose keys the user chooses: an entry with value "" is an entry, not an unset field.
# ("selector" is such a map on a Service; on workloads it is a LabelSelector, which has no
# string fields of its own, so treating it as a map changes nothing there.)
STRING_MAPS: Final[frozenset[str]] = frozenset({
    "labels", "annotations", "data", "binaryData", "matchLabels", "nodeSelector", "selector",
    "parameters", "volumeAttributes",
})

# Plain (non-pointer) Go fields tagged `omitempty` whose zero value means the same as unset:
# the server never returns `readOnly: false` or `minReadySeconds: 0`, which Helm charts
# write all the time. Dropped on both sides, so a pointer field of the same name that keeps
# an explicit false (a CSI volume's `readOnly`) compares alike too. Fields whose unset value
# is *not* false/0 (`automountServiceAccountToken`, `enableServiceLinks`,
# `allowPrivilegeEscalation`, `hostUsers`) are not here.
# Sources: staging/src/k8s.io/api/core/v1/types.go (Container stdin/stdinOnce/tty,
# VolumeMount and volume sources readOnly, PodSpec hostNetwork/hostPID/hostIPC, Probe
# initialDelaySeconds, ContainerPort hostPort, ServicePort nodePort, ServiceSpec
# healthCheckNodePort/publishNotReadyAddresses), apps/v1/types.go (minReadySeconds, paused).
FALSE_IS_ABSENT: Final[frozenset[str]] = frozenset({
    "readOnly", "stdin", "stdinOnce", "tty", "hostNetwork", "hostPID", "hostIPC", "paused",
    "publishNotReadyAddresses",
})
ZERO_IS_ABSENT: Final[frozenset[str]] = frozenset({
    "minReadySeconds", "initialDelaySeconds", "hostPort", "nodePort", "healthCheckNodePort",
})

# Pointer string fields where "" differs from unset: `storageClassName: ""` asks for no class,
# an absent one for the default class.
EMPTY_STRING_MATTERS: Final[frozenset[str]] = frozenset({"storageClassName"})

_HPA_TARGET_KEYS: Final = ("target", "targetAverageValue", "targetValue")
_LIMIT_RANGE_KEYS: Final = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


def secret_hash(value: str | bytes, key: bytes) -> str:
    """The keyed hash that stands for a Secret value: equal values give equal hashes.

    A ``str`` is hashed as its UTF-8 bytes, so ``stringData: {a: x}`` and ``data: {a: eA==}``
    hash alike once the base64 is decoded.
    """
    if not key:
        # An unkeyed hash of a short password is reversible by brute force.
        raise ValueError("secret_hash needs a non-empty key")
    data = value.encode("utf-8") if isinstance(value, str) else value
    return SECRET_HASH_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def _decode_base64(value: str) -> bytes | None:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


# --------------------------------------------------------------------------- generic pass


def _clean(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return _clean_map(value)
    if kind is list:
        return _clean_list(value)
    if isinstance(value, Mapping):
        return _clean_map(value)
    if isinstance(value, list):
        return _clean_list(value)
    return value


def _clean_list(items: list[Any]) -> list[Any]:
    # Items are kept even when they clean to {}: removing one changes the list's meaning.
    out = []
    for item in items:
        kind = type(item)
        if kind is dict:
            out.append(_clean_map(item))
        elif kind is str or kind is int:
            out.append(item)
        elif item is not None:
            out.append(_clean(item))
    return out


def _clean_map(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    special = _SPECIAL
    for key, value in obj.items():
        if value is None:
            continue
        handler = special.get(key)
        if handler is not None:
            value = handler(value)
            if value is None:
                continue
            out[key] = value
            continue
        # Exact type checks first: this loop runs for every field of every object.
        kind = type(value)
        if kind is dict:
            value = _clean_map(value)
            if not value:
                continue
        elif kind is list:
            value = _clean_list(value)
            if not value:
                continue
        elif kind is str:
            if not value and key not in EMPTY_STRING_MATTERS:
                # A struct field's "" is Go's zero value: `omitempty` drops it on the server.
                continue
        elif kind is bool:
            if value is False and key in FALSE_IS_ABSENT:
                continue
        elif kind is int:
            if value == 0 and key in ZERO_IS_ABSENT:
                continue
        elif isinstance(value, Mapping | list):
            value = _clean(value)
            if not value:
                continue
        out[key] = value
    return out


def _string_map(value: Any) -> Any:
    """A map with user-chosen keys (labels, ConfigMap data): its "" values are values."""
    if not isinstance(value, Mapping):
        return _nonempty(_clean(value))
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if sub is None:
            continue
        if isinstance(sub, dict | list | Mapping):
            # A LabelSelector's matchLabels is itself a user-keyed map: dispatch by key.
            handler = _SPECIAL.get(key)
            sub = handler(sub) if handler is not None else _clean(sub)
            if not sub:
                continue
        out[key] = sub
    return out or None


def _resource_list(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return _clean(value)
    return {name: canonical_quantity(q, round_up_to_milli=True) if not isinstance(q, dict | list)
            else _clean(q) for name, q in value.items() if q is not None}


def _resources(value: Any) -> Any:
    # Container/pod ResourceRequirements and PVC VolumeResourceRequirements; RBAC's
    # `resources` is a list of names and takes the generic path.
    if not isinstance(value, Mapping):
        return _nonempty(_clean(value))
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if sub is None:
            continue
        sub = _resource_list(sub) if key in ("requests", "limits") else _clean(sub)
        if sub or not isinstance(sub, dict | list):
            out[key] = sub
    return out or None


def _size_limit(value: Any) -> Any:
    return canonical_quantity(value)


def _divisor(value: Any) -> Any:
    # ResourceFieldSelector.divisor is a Quantity (the server prints it canonically); a
    # struct, not a pointer, so omitempty keeps it: unset shows as "0", which means 1.
    if value is None:
        return None
    out = canonical_quantity(value)
    return None if out in ("0", "1") else out


def _overhead(value: Any) -> Any:
    # A pod's `overhead` is a ResourceList; a RuntimeClass's wraps one in `podFixed`.
    if isinstance(value, Mapping) and isinstance(value.get("podFixed"), Mapping):
        rest = _clean_map({k: v for k, v in value.items() if k != "podFixed"})
        return {**rest, "podFixed": _resource_list(value["podFixed"])}
    return _nonempty(_resource_list(value))


def _keep_empty_mapping(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _clean_map(value)
    return _nonempty(_clean(value))


def _volumes(value: Any) -> Any:
    if not isinstance(value, list):
        return _nonempty(_clean(value))
    out = []
    for item in value:
        if item is None:
            continue
        if not isinstance(item, Mapping):
            out.append(_clean(item))
            continue
        vol: dict[str, Any] = {}
        for key, sub in item.items():
            if sub is None:
                continue
            if isinstance(sub, Mapping):
                # Every mapping member of a Volume is its one-of source: keep `{}`.
                vol[key] = _clean_map(sub)
            else:
                sub = _clean(sub)
                if sub or not isinstance(sub, list):
                    vol[key] = sub
        out.append(vol)
    return out or None


def _nonempty(value: Any) -> Any:
    if isinstance(value, dict | list) and not value:
        return None
    return value


_SPECIAL: Final[dict[str, Callable[[Any], Any]]] = {
    **{key: _string_map for key in STRING_MAPS},
    "resources": _resources,
    "sizeLimit": _size_limit,
    "divisor": _divisor,
    "overhead": _overhead,
    "volumes": _volumes,
    **{key: _keep_empty_mapping for key in PRESENCE_MATTERS},
}


# --------------------------------------------------------------------------- per kind


def secret_needles_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """Every form in which a Secret's values could be repeated elsewhere in the object."""
    needles: set[str] = set()
    data = obj.get("data")
    if isinstance(data, Mapping):
        for value in data.values():
            if not isinstance(value, str):
                continue
            needles.add(value)
            needles.add("".join(value.split()))
            raw = _decode_base64(value)
            if raw:
                needles.add(raw.decode("utf-8", "replace"))
    string_data = obj.get("stringData")
    if isinstance(string_data, Mapping):
        for value in string_data.values():
            if value is not None:
                needles.add(str(value))
                needles.add(base64.b64encode(str(value).encode("utf-8")).decode("ascii"))
    needles.discard("")
    return tuple(needles)


def _metadata(meta: Mapping[str, Any], *, secret_key: bytes | None,
              secret_needles: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    named = bool(meta.get("name"))
    for key, value in meta.items():
        if value is None or key in SERVER_OWNED_METADATA:
            continue
        if key == "generateName" and named:
            continue
        if key == "annotations" and isinstance(value, Mapping):
            annotations: dict[str, Any] = {}
            for name, text in value.items():
                if name in SERVER_SET_ANNOTATIONS or text is None:
                    continue
                # A Secret's last-applied annotation repeats its values; so may other tools'
                # annotations (kapp's original manifest, ...): hash any that carry one.
                if secret_key is not None and is_secret_hash(text):
                    pass
                elif secret_key is not None and (name == LAST_APPLIED or any(
                        needle in str(text) for needle in secret_needles)):
                    text = secret_hash(str(text), secret_key)
                annotations[name] = text
            if annotations:
                out[key] = annotations
            continue
        if key == "labels":
            value = _string_map(value)
            if value is not None:
                out[key] = value
            continue
        value = _clean(value)
        if (isinstance(value, dict | list) and not value) or value == "":
            continue
        out[key] = value
    return out


def _secret_data(obj: Mapping[str, Any], secret_key: bytes) -> dict[str, str]:
    hashed: dict[str, str] = {}
    data = obj.get("data")
    if isinstance(data, Mapping):
        for name, value in data.items():
            if value is None or value == "":
                # Null, empty and absent are one value: no bytes (a chart's empty optional
                # password comes back null from some clusters and "" from others).
                continue
            if is_secret_hash(value):
                # A redacted snapshot (`drift-auditor snapshot`) carries the hash already.
                hashed[name] = value
                continue
            raw = _decode_base64(value) if isinstance(value, str) else None
            # Undecodable data is hashed as written: still equal-for-equal, never revealed.
            hashed[name] = secret_hash(raw if raw is not None else str(value), secret_key)
    string_data = obj.get("stringData")
    if isinstance(string_data, Mapping):
        for name, value in string_data.items():
            if value is not None and value != "":
                hashed[name] = secret_hash(str(value), secret_key)
    return hashed


def _quantity_map(value: Any, *, round_up_to_milli: bool) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: canonical_quantity(v, round_up_to_milli=round_up_to_milli)
            for k, v in value.items()}


def _items(value: Any) -> list[Any]:
    # A malformed manifest (`limits: true`) is compared as written, not rejected here.
    return value if isinstance(value, list) else []


def _fix_resource_quota(spec: dict[str, Any]) -> None:
    if "hard" in spec:
        spec["hard"] = _quantity_map(spec["hard"], round_up_to_milli=True)


def _fix_limit_range(spec: dict[str, Any]) -> None:
    for item in _items(spec.get("limits")):
        if isinstance(item, dict):
            for key in _LIMIT_RANGE_KEYS:
                if key in item:
                    item[key] = _quantity_map(item[key], round_up_to_milli=True)


def _fix_persistent_volume(spec: dict[str, Any]) -> None:
    if "capacity" in spec:
        spec["capacity"] = _quantity_map(spec["capacity"], round_up_to_milli=True)


def _fix_hpa(spec: dict[str, Any]) -> None:
    for metric in _items(spec.get("metrics")):
        if not isinstance(metric, dict):
            continue
        for source in metric.values():
            if not isinstance(source, dict):
                continue
            for key in _HPA_TARGET_KEYS:
                target = source.get(key)
                if isinstance(target, dict):
                    for field in ("value", "averageValue"):
                        if field in target:
                            target[field] = canonical_quantity(target[field])
                elif target is not None and key != "target":
                    source[key] = canonical_quantity(target)  # v2beta1 targetAverageValue


def _fix_statefulset(spec: dict[str, Any]) -> None:
    # Each claim template carries a status the API server writes (`phase: Pending`).
    for claim in _items(spec.get("volumeClaimTemplates")):
        if isinstance(claim, dict):
            claim.pop("status", None)


def _fix_pdb(spec: dict[str, Any], original: Mapping[str, Any]) -> None:
    # policy/v1: an empty selector selects every pod in the namespace, an absent one none.
    if original.get("selector") == {} and "selector" not in spec:
        spec["selector"] = {}


_SPEC_FIXES: Final[dict[tuple[str, str], Callable[[dict[str, Any]], None]]] = {
    ("", "ResourceQuota"): _fix_resource_quota,
    ("", "LimitRange"): _fix_limit_range,
    ("", "PersistentVolume"): _fix_persistent_volume,
    ("autoscaling", "HorizontalPodAutoscaler"): _fix_hpa,
    ("apps", "StatefulSet"): _fix_statefulset,
}


def normalise(obj: Mapping[str, Any], *, secret_key: bytes) -> dict[str, Any]:
    """A new canonical dict for a desired or live object (see the module docstring)."""
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    is_secret = kind == "Secret" and api_version == "v1"
    rest: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "status" or (is_secret and key in ("data", "stringData")):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            meta = (_metadata(value, secret_key=secret_key, secret_needles=secret_needles_of(obj))
                    if is_secret else _metadata(value, secret_key=None))
        else:
            rest[key] = value
    out = _clean_map(rest)
    if meta:
        out["metadata"] = meta
    if is_secret:
        data = _secret_data(obj, secret_key)
        if data:
            out["data"] = data
    spec = out.get("spec")
    if isinstance(spec, dict):
        group = str(api_version or "").rpartition("/")[0]  # "" for the core "v1"
        fix = _SPEC_FIXES.get((group, str(kind)))
        if fix is not None:
            fix(spec)
        elif kind == "PodDisruptionBudget" and group == "policy":
            original = obj.get("spec")
            if isinstance(original, Mapping):
                _fix_pdb(spec, original)
    return out
