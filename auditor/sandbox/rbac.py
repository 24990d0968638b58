"""RBAC authorization as kube-apiserver does it, and the 403 it answers a denial with.

The request side (who asks, for what) is :class:`Attributes`; the answer :class:`Decision`.
:class:`Authorizer` reads the RBAC objects the sandbox holds through a lookup function, so it
depends on nothing of the sandbox but the ``Status`` shape (:mod:`auditor.sandbox.status`) and
the default objects (:mod:`auditor.sandbox.rbac_defaults`).

Grounded in kubernetes/kubernetes:

* ``plugin/pkg/auth/authorizer/rbac/rbac.go`` — ``Authorize`` / ``RuleAllows``;
* ``pkg/registry/rbac/validation/rule.go`` — ``VisitRulesFor`` (ClusterRoleBindings first,
  then the RoleBindings of the request's namespace), ``appliesTo``, the binding describers
  that make the ``RBAC: allowed by ...`` reason, and role-lookup errors;
* ``pkg/apis/rbac/v1/evaluation_helpers.go`` — verb, group, resource, name and URL matching;
* ``pkg/controller/clusterroleaggregation`` — the rules of an aggregated ClusterRole;
* ``staging/src/k8s.io/apiserver/pkg/authorization/authorizerfactory/builtin.go`` — the
  ``system:masters`` privileged group, allowed before RBAC is asked, with no reason;
* ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`` and
  ``apimachinery/pkg/api/errors.NewForbidden`` — the 403 ``Status``.

:func:`bootstrap_objects` gives the default ClusterRoles and bindings a cluster starts with
(their data is :mod:`auditor.sandbox.rbac_defaults`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.sandbox.rbac_defaults import (
    RBAC_GROUP,
    default_cluster_role_bindings,
    default_cluster_roles,
)
from auditor.sandbox.status import ApiError

# objects(kind, namespace) -> the stored objects of that RBAC kind ("ClusterRole",
# "ClusterRoleBinding" with namespace None; "Role", "RoleBinding" in one namespace).
Lookup = Callable[[str, str | None], Iterable[Mapping[str, Any]]]
Rule = Mapping[str, Any]

# k8s.io/apiserver/pkg/authentication/user: the group kube-apiserver's privileged-group
# authorizer allows everything, ahead of RBAC (pkg/kubeapiserver/authorizer/config.go).
SYSTEM_MASTERS = "system:masters"
# k8s.io/apiserver/pkg/authentication/serviceaccount: "system:serviceaccount:NS:NAME".
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated user, as an authenticator hands it to the authorizer."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks, in the authorizer's terms (k8s.io/apiserver authorizer.Attributes).

    Resource requests carry ``verb`` (get, list, watch, create, update, patch, delete,
    deletecollection; impersonate for impersonation), ``namespace`` (empty at the cluster
    scope), ``api_group``, ``api_version``, ``resource``, ``subresource``, ``name``.
    Non-resource requests carry the lowercase HTTP method as ``verb`` and the URL ``path``.

    As the apiserver's RequestInfo builds them (``endpoints/request/requestinfo.go``): a
    Namespace object's own URL (``/api/v1/namespaces/foo``, ``.../foo/status``) has
    ``namespace="foo"``; a list or watch with ``fieldSelector=metadata.name=X`` has
    ``name="X"`` (:func:`name_from_field_selector`), which is what lets a rule with
    ``resourceNames`` allow it; a GET without a name is ``list`` (``watch`` with
    ``watch=true``) and a DELETE without one ``deletecollection``.
    """

    user: UserInfo
    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The authorizer's answer; ``reason`` says which binding allowed it, or why not.

    An allow by RBAC reads like the audit annotation ``authorization.k8s.io/reason``:
    ``RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"``. An allow for
    ``system:masters`` has no reason (the privileged-group authorizer gives none). A denial
    has no reason unless a binding's role could not be read (``RBAC: clusterrole...
    "x" not found``); kube-apiserver appends that reason to the 403's message.
    """

    allowed: bool
    reason: str = ""


# --- rule matching: pkg/apis/rbac/v1/evaluation_helpers.go ---------------------------------


def _strings(rule: Rule, key: str) -> list[str]:
    value = rule.get(key)
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def verb_matches(rule: Rule, verb: str) -> bool:
    """``VerbMatches``: ``*`` or the exact verb (case-sensitive: ``GET`` is not ``get``)."""
    return any(v in ("*", verb) for v in _strings(rule, "verbs"))


def api_group_matches(rule: Rule, group: str) -> bool:
    """``APIGroupMatches``: ``*`` or the exact group; ``""`` is the core group."""
    return any(g in ("*", group) for g in _strings(rule, "apiGroups"))


def resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    """``ResourceMatches`` over ``resource`` or ``resource/subresource``.

    ``*`` matches everything, subresources included; ``pods`` matches only ``pods`` (not
    ``pods/status``); ``*/scale`` matches the ``scale`` subresource of any resource. There is
    no ``resource/*`` wildcard: ``pods/*`` matches only a literal ``pods/*``.
    """
    for res in _strings(rule, "resources"):
        if res in ("*", combined):
            return True
        if subresource and len(res) == len(subresource) + 2 and res.startswith("*/") \
                and res.endswith(subresource):
            return True
    return False


def resource_name_matches(rule: Rule, name: str) -> bool:
    """``ResourceNameMatches``: no ``resourceNames`` allows any name; otherwise the request's
    name must be listed, so a request without one (list, watch, create, deletecollection)
    does not match."""
    names = _strings(rule, "resourceNames")
    return not names or name in names


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    """``NonResourceURLMatches``: ``*``, the exact path, or a ``prefix*`` glob."""
    for url in _strings(rule, "nonResourceURLs"):
        if url in ("*", path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: Rule) -> bool:
    """``RuleAllows``: whether one PolicyRule grants the request."""
    if attrs.resource_request:
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource \
            else attrs.resource
        return (verb_matches(rule, attrs.verb)
                and api_group_matches(rule, attrs.api_group)
                and resource_matches(rule, combined, attrs.subresource)
                and resource_name_matches(rule, attrs.name))
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


# --- label selectors and aggregation ----------------------------------------------------------


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """A metav1.LabelSelector (``matchLabels``, ``matchExpressions``) against labels.

    As ``metav1.LabelSelectorAsSelector``: no selector selects nothing, an empty one
    everything; the requirements are ANDed; operators In, NotIn, Exists, DoesNotExist
    (NotIn and DoesNotExist hold for a missing key). An unknown operator is an error there,
    which leaves the role unaggregated; here it selects nothing.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if key not in labels or labels[key] != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            return False
        if not ok:
            return False
    return True


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _rule_key(rule: Rule) -> tuple[tuple[str, ...], ...]:
    # equality.Semantic.DeepEqual, as the controller's ruleExists uses it: order matters,
    # a missing list equals an empty one.
    return tuple(tuple(_strings(rule, k)) for k in
                 ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"))


def _rules(obj: Mapping[str, Any]) -> list[Rule]:
    rules = obj.get("rules")
    return [r for r in rules if isinstance(r, Mapping)] if isinstance(rules, list) else []


def aggregated_rules(role: Mapping[str, Any],
                     cluster_roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rules the clusterrole-aggregation controller gives ``role``.

    ``syncClusterRole``: for each ``clusterRoleSelectors`` entry in order, the ClusterRoles
    it selects sorted by name (the role itself skipped), each of their rules appended unless
    an equal rule is already there. The selected roles contribute their *aggregated* rules,
    as the controller converges to (``edit`` carries ``view``'s rules into ``admin``); a
    cycle of aggregated roles contributes the stored rules of the role met again. A role
    without ``aggregationRule`` keeps its own rules.
    """
    by_name = {_name(r): r for r in cluster_roles}
    return [dict(r) for r in _effective_rules(role, by_name, ())]


def _effective_rules(role: Mapping[str, Any], by_name: Mapping[str, Mapping[str, Any]],
                     stack: tuple[str, ...]) -> list[Rule]:
    rule_spec = role.get("aggregationRule")
    name = _name(role)
    if not isinstance(rule_spec, Mapping) or name in stack:
        return _rules(role)
    out: list[Rule] = []
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for selector in rule_spec.get("clusterRoleSelectors") or []:
        for other_name in sorted(by_name):
            other = by_name[other_name]
            labels = (other.get("metadata") or {}).get("labels") or {}
            if other_name == name or not label_selector_matches(selector, labels):
                continue
            for rule in _effective_rules(other, by_name, (*stack, name)):
                key = _rule_key(rule)
                if key not in seen:
                    seen.add(key)
                    out.append(rule)
    return out


def aggregate_cluster_roles(cluster_roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``cluster_roles`` with each aggregated role's ``rules`` filled in, as a
    cluster shows them once the clusterrole-aggregation controller has run."""
    roles = list(cluster_roles)
    by_name = {_name(r): r for r in roles}
    out = []
    for role in roles:
        filled = copy.deepcopy(dict(role))
        if isinstance(role.get("aggregationRule"), Mapping):
            filled["rules"] = [copy.deepcopy(dict(r))
                               for r in _effective_rules(role, by_name, ())]
        out.append(filled)
    return out


def bootstrap_objects(*, aggregated: bool = True) -> list[dict[str, Any]]:
    """The default RBAC objects to seed a store with when RBAC is on: the ClusterRoles
    (``cluster-admin``, ``admin``, ``edit``, ``view``, the ``system:aggregate-to-*`` roles,
    ``system:basic-user``, ``system:discovery``, ``system:public-info-viewer``), then their
    ClusterRoleBindings (see :mod:`auditor.sandbox.rbac_defaults`).

    With ``aggregated`` (the default) ``admin``, ``edit`` and ``view`` carry the rules the
    clusterrole-aggregation controller fills in, as ``kubectl get clusterrole view -o yaml``
    shows them on a running cluster; without, ``rules: null`` as the apiserver creates
    them. The authorizer computes aggregated rules itself either way. Fresh objects on each
    call, without server-set metadata (uid, resourceVersion, creationTimestamp).
    """
    roles = default_cluster_roles()
    return [*(aggregate_cluster_roles(roles) if aggregated else roles),
            *default_cluster_role_bindings()]


# --- the authorizer: pkg/registry/rbac/validation/rule.go + rbac.go --------------------------


def _applies_to(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    """``appliesToUser``; ``namespace`` is the RoleBinding's (``""`` for ClusterRoleBindings),
    the default namespace of a ServiceAccount subject that names none."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = str(subject.get("namespace") or "") or namespace
        if not sa_namespace:
            return False
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{sa_namespace}:{name}"
    return False


def _describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    """``describeSubject``: a ServiceAccount is ``"name/namespace"`` (name first)."""
    kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or "") or binding_namespace
        return f"{kind} {go_quote(name + '/' + namespace)}"
    return f"{kind} {go_quote(name)}"


def _describe_binding(binding: Mapping[str, Any], subject: Mapping[str, Any],
                      namespace: str) -> str:
    """``clusterRoleBindingDescriber`` / ``roleBindingDescriber`` (``"name/namespace"``)."""
    ref = binding.get("roleRef") or {}
    ref_text = f"{ref.get('kind', '')} {go_quote(str(ref.get('name') or ''))}"
    if namespace:
        return (f"RoleBinding {go_quote(_name(binding) + '/' + namespace)} of {ref_text} "
                f"to {_describe_subject(subject, namespace)}")
    return (f"ClusterRoleBinding {go_quote(_name(binding))} of {ref_text} "
            f"to {_describe_subject(subject, '')}")


class _RoleError(Exception):
    """A binding's role could not be resolved; RBAC records it and goes on."""


class Authorizer:
    """RBAC over the roles and bindings ``objects`` returns."""

    def __init__(self, objects: Lookup) -> None:
        self._objects = objects

    def authorize(self, attrs: Attributes) -> Decision:
        """Allow if ``system:masters`` or any bound rule allows; otherwise deny (no opinion).

        Bindings are visited as ``VisitRulesFor`` does: every ClusterRoleBinding, then, for a
        namespaced request, the RoleBindings of that namespace; the first rule that allows
        names its binding in the reason.
        """
        if SYSTEM_MASTERS in attrs.user.groups:
            return Decision(True)
        errors: list[str] = []
        for source, rule in self._visit(attrs.user, attrs.namespace, errors):
            if rule_allows(attrs, rule):
                return Decision(True, f"RBAC: allowed by {source}")
        return Decision(False, f"RBAC: {_aggregate(errors)}" if errors else "")

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
        """Every rule that applies to ``user`` in ``namespace`` (``RulesFor``), in visit order."""
        return [dict(rule) for _, rule in self._visit(user, namespace, [])]

    def _visit(self, user: UserInfo, namespace: str,
               errors: list[str]) -> Iterator[tuple[str, Rule]]:
        cluster_roles: dict[str, Mapping[str, Any]] | None = None

        def role_rules(ref: Mapping[str, Any], binding_namespace: str) -> list[Rule]:
            nonlocal cluster_roles
            kind, name = ref.get("kind"), str(ref.get("name") or "")
            if kind == "Role":
                # The registry's RoleGetter for namespace "" (a ClusterRoleBinding cannot
                # name a Role; validation refuses it) finds nothing.
                for role in self._objects("Role", binding_namespace) if binding_namespace else ():
                    if _name(role) == name:
                        return _rules(role)
                raise _RoleError(f"role.{RBAC_GROUP} {go_quote(name)} not found")
            if kind == "ClusterRole":
                if cluster_roles is None:
                    cluster_roles = {_name(r): r for r in self._objects("ClusterRole", None)}
                cluster_role = cluster_roles.get(name)
                if cluster_role is None:
                    raise _RoleError(f"clusterrole.{RBAC_GROUP} {go_quote(name)} not found")
                return _effective_rules(cluster_role, cluster_roles, ())
            raise _RoleError(f"unsupported role reference kind: {go_quote(str(kind or ''))}")

        scopes: list[tuple[str, str]] = [("ClusterRoleBinding", "")]
        if namespace:
            scopes.append(("RoleBinding", namespace))
        for kind, scope in scopes:
            for binding in self._objects(kind, scope or None):
                subject = next((s for s in binding.get("subjects") or []
                                if isinstance(s, Mapping) and _applies_to(user, s, scope)), None)
                if subject is None:
                    continue
                try:
                    rules = role_rules(binding.get("roleRef") or {}, scope)
                except _RoleError as err:
                    errors.append(str(err))
                    continue
                source = _describe_binding(binding, subject, scope)
                for rule in rules:
                    yield source, rule


def _aggregate(errors: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message alone, several deduplicated in
    ``[a, b]``."""
    if len(errors) == 1:
        return errors[0]
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --- the 403: responsewriters/errors.go, apimachinery/pkg/api/errors ------------------------

# responsewriters' sanitizer: "Avoid emitting errors that look like valid HTML."
_SANITIZE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``) for the strings these messages quote."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def denial_message(attrs: Attributes) -> str:
    """``forbiddenMessage``: ``User "alice" cannot list resource "secrets" in API group ""
    at the cluster scope`` (or ``in the namespace "shop"``; ``cannot get path "/version"``
    for a non-resource request). The object's name is not in it."""
    user = go_quote(attrs.user.name)
    if not attrs.resource_request:
        return f"User {user} cannot {attrs.verb} path {go_quote(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    text = (f"User {user} cannot {attrs.verb} resource {go_quote(resource)} "
            f"in API group {go_quote(attrs.api_group)}")
    if attrs.namespace:
        return f"{text} in the namespace {go_quote(attrs.namespace)}"
    return f"{text} at the cluster scope"


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The 403 ``Status.message`` kube-apiserver writes (what kubectl prints after
    ``Error from server (Forbidden): ``).

    ``NewForbidden(GroupResource{group, resource}, name, err)`` prefixes the denial with the
    resource, qualified by its group, and the name when the request has one:
    ``secrets is forbidden: User ...``, ``deployments.apps "web" is forbidden: User ...``;
    a non-resource request has neither: ``forbidden: User "x" cannot get path "/version"``.
    ``reason`` (the denying :class:`Decision`'s) follows after ``": "`` when not empty.
    """
    text = denial_message(attrs).translate(_SANITIZE)
    if reason:
        text = f"{text}: {reason}"
    if not attrs.api_group and not attrs.resource:
        return f"forbidden: {text}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if not attrs.name:
        return f"{qualified} is forbidden: {text}"
    return f"{qualified} {go_quote(attrs.name)} is forbidden: {text}"


def forbidden_error(attrs: Attributes, reason: str = "") -> ApiError:
    """The 403 as an :class:`ApiError`: reason ``Forbidden``, details ``{name?, group?,
    kind: resource}`` (StatusDetails omits empty fields, so a non-resource denial has
    ``details: {}``)."""
    details: dict[str, Any] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.resource:
        details["kind"] = attrs.resource
    return ApiError("Forbidden", forbidden_message(attrs, reason), code=403, details=details)


def forbidden_status(attrs: Attributes, reason: str = "") -> dict[str, Any]:
    """The ``Status`` body of the 403 (``kind: Status``, ``status: Failure``, code 403)."""
    return forbidden_error(attrs, reason).status()


# --- request attributes: endpoints/request/requestinfo.go ------------------------------------


def name_from_field_selector(selector: str | None) -> str:
    """The ``name`` RequestInfo gives a list or watch: the value of a ``metadata.name=X``
    (or ``==``) term of its field selector (``fields.RequiresExactMatch``), when it is a
    valid path segment (not ``.``/``..``, no ``/`` or ``%``); otherwise ``""``."""
    if not selector:
        return ""
    for term in _split_unescaped(selector, ","):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            continue
        value = value.removeprefix("=")
        if _unescape(key.strip()) == "metadata.name":
            name = _unescape(value.strip())
            if name in (".", "..") or "/" in name or "%" in name:
                return ""
            return name
    return ""


def _split_unescaped(text: str, sep: str) -> list[str]:
    # fields.ParseSelector: "\" escapes ",", "=", "!" and "\" inside a selector.
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    out, escaped = [], False
    for ch in text:
        if escaped or ch != "\\":
            out.append(ch)
            escaped = False
        else:
            escaped = True
    return "".join(out)
