"""What a request asks for, in the authorizer's and the audit policy's terms.

A port of kube-apiserver's request-info resolver
(staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go, ``NewRequestInfo``, with
``APIPrefixes`` {``api``, ``apis``} and ``GrouplessAPIPrefixes`` {``api``}). It reads the URL
only, never the sandbox's catalog: ``/api/v1/namespaces/NS/pods/NAME/status`` is a resource
request (verb from the method: POST create, GET/HEAD get, PUT update, PATCH patch, DELETE
delete; a GET without a name is list, or watch with ``watch=true`` or a ``/watch/`` path; a
DELETE without a name is deletecollection; a list or watch whose field selector pins
``metadata.name`` names that object); anything else (``/version``, ``/api``, ``/apis/apps``,
``/openapi/v2``, ``/healthz``) is a non-resource request whose verb is the lowercase HTTP method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditor.sandbox.rbac import Attributes, UserInfo, name_from_field_selector

_API_PREFIXES = frozenset({"api", "apis"})
_GROUPLESS_PREFIXES = frozenset({"api"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
# namespaceSubresources: /namespaces/NS/status is the namespace's status, not a resource.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """``request.RequestInfo``: the parsed URL of one request."""

    resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    def attributes(self, user: UserInfo) -> Attributes:
        """The authorizer's view of this request made by ``user``."""
        if not self.resource_request:
            return Attributes(user=user, verb=self.verb, resource_request=False, path=self.path)
        return Attributes(user=user, verb=self.verb, resource_request=True,
                          namespace=self.namespace, api_group=self.api_group,
                          api_version=self.api_version, resource=self.resource,
                          subresource=self.subresource, name=self.name, path=self.path)


def request_info(method: str, path: str,
                 query: Mapping[str, Sequence[str]]) -> RequestInfo:
    """``NewRequestInfo`` for a method, a URL path and its query (all values of each key)."""
    verb = method.lower()
    non_resource = RequestInfo(False, path, verb)
    parts = path.strip("/").split("/") if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        # one part (the prefix) is already consumed: "do we have four parts?"
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            # "unable to determine kind and namespace from url" (kube-apiserver answers 500;
            # the sandbox routes it to a 404): a resource request with what is known.
            return RequestInfo(True, path, verb, prefix, group, version)
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        # /namespaces/NS/RESOURCE...: the resource is relative to the namespace, unless
        # the next step is a namespace subresource (/namespaces/NS/status).
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0] if parts else ""
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES \
        else ""
    if not name and verb == "get":
        # "Any query value that is not 0 or false is considered true"
        watch = query.get("watch")
        verb = "watch" if watch and watch[0].lower() not in ("false", "0") else "list"
        selectors = query.get("fieldSelector")
        if selectors:
            name = name_from_field_selector(selectors[0])
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(True, path, verb, prefix, group, version, namespace, resource,
                       subresource, name)
