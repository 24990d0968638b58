"""Impersonation: the ``Impersonate-*`` headers that make a request act as someone else.

A port of kube-apiserver's ``WithImpersonation`` filter
(staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go), which runs after
authentication and audit and before authorization. ``kubectl --as=bob --as-group=dev
--as-uid=42`` sends ``Impersonate-User``, one ``Impersonate-Group`` per group,
``Impersonate-Uid`` and ``Impersonate-Extra-<key>``. Each thing asked for is authorized for
the requesting user with verb ``impersonate``: ``users`` (or ``serviceaccounts`` in the
account's namespace, for ``system:serviceaccount:NS:NAME``), ``groups``, ``userextras/<key>``
and ``uids`` (both in ``authentication.k8s.io``). The first denial is a 403 naming the
impersonated object; otherwise the request continues as the new user: the given groups (or,
for a ServiceAccount without groups, ``system:serviceaccounts`` and
``system:serviceaccounts:NS``), plus ``system:authenticated`` (``system:unauthenticated`` for
``system:anonymous``) unless one was given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from auditor.sandbox.authn import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS
from auditor.sandbox.rbac import Attributes, Decision, UserInfo, forbidden_error
from auditor.sandbox.serviceaccounts import ALL_SERVICE_ACCOUNTS, split_username
from auditor.sandbox.status import ApiError

USER_HEADER = "impersonate-user"
GROUP_HEADER = "impersonate-group"
UID_HEADER = "impersonate-uid"
EXTRA_PREFIX = "impersonate-extra-"


@dataclass(frozen=True, slots=True)
class _Wanted:
    """One thing to impersonate, as the filter's ``v1.ObjectReference``."""

    kind: str  # ServiceAccount, User, Group, UserExtra, UID
    name: str
    namespace: str = ""
    api_version: str = ""
    field_path: str = ""  # the extra's key

    def go_value(self) -> str:
        # fmt's %v of v1.ObjectReference{Kind, Namespace, Name, UID, APIVersion,
        # ResourceVersion, FieldPath}: the field values between braces, space separated.
        return "{" + " ".join((self.kind, self.namespace, self.name, "", self.api_version, "",
                               self.field_path)) + "}"


def _wanted(headers: Iterable[tuple[str, str]]) -> list[_Wanted]:
    """``buildImpersonationRequests``: user (or service account), groups, extras, uid."""
    user = ""
    groups: list[str] = []
    extras: dict[str, list[str]] = {}
    uid = ""
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == USER_HEADER:
            user = user or value  # http.Header.Get: the first value
        elif name == GROUP_HEADER:
            groups.append(value)
        elif name == UID_HEADER:
            uid = uid or value
        elif name.startswith(EXTRA_PREFIX):
            # unescapeExtraKey: the lowercased key, %-decoded when it decodes.
            extras.setdefault(unquote(name[len(EXTRA_PREFIX):]), []).append(value)
    out: list[_Wanted] = []
    if user:
        account = split_username(user)
        out.append(_Wanted("ServiceAccount", account[1], account[0]) if account
                   else _Wanted("User", user))
    out.extend(_Wanted("Group", g) for g in groups)
    for key in sorted(extras):  # Go ranges over a map: any order
        out.extend(_Wanted("UserExtra", v, api_version="authentication.k8s.io/v1",
                           field_path=key) for v in extras[key])
    if uid:
        out.append(_Wanted("UID", uid, api_version="authentication.k8s.io/v1"))
    if (groups or extras or uid) and not user:
        listed = " ".join(w.go_value() for w in out)
        raise ApiError("InternalError", f"Internal error occurred: requested [{listed}] "
                       "without impersonating a user", code=500)
    return out


def impersonate(requestor: UserInfo, headers: Iterable[tuple[str, str]],
                authorize: Callable[[Attributes], Decision]) -> UserInfo | None:
    """The user the request acts as, or None without impersonation headers. Raises the 403
    (or 500) :class:`ApiError` kube-apiserver answers with."""
    wanted = _wanted(headers)
    if not wanted:
        return None
    groups_specified = any(w.kind == "Group" for w in wanted)
    username, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for w in wanted:
        group, _, version = w.api_version.rpartition("/")
        if w.kind == "ServiceAccount":
            resource, username = "serviceaccounts", f"system:serviceaccount:{w.namespace}:{w.name}"
            if not groups_specified:
                groups = [ALL_SERVICE_ACCOUNTS, f"system:serviceaccounts:{w.namespace}"]
        elif w.kind == "User":
            resource, username = "users", w.name
        elif w.kind == "Group":
            resource = "groups"
            groups.append(w.name)
        elif w.kind == "UserExtra":
            resource = "userextras"
            extra.setdefault(w.field_path, []).append(w.name)
        else:
            resource, uid = "uids", w.name
        attrs = Attributes(user=requestor, verb="impersonate", resource_request=True,
                           namespace=w.namespace, api_group=group, api_version=version,
                           resource=resource,
                           subresource=w.field_path if w.kind == "UserExtra" else "",
                           name=w.name)
        decision = authorize(attrs)
        if not decision.allowed:
            raise forbidden_error(attrs, decision.reason)
    if username != ANONYMOUS:
        if ALL_AUTHENTICATED not in groups and ALL_UNAUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
    elif ALL_UNAUTHENTICATED not in groups:
        groups.append(ALL_UNAUTHENTICATED)
    return UserInfo(username, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})

