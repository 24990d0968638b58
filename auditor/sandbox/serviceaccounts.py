"""ServiceAccount tokens: the TokenRequest API and the JWTs it issues, signed and checked.

``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`` (what ``kubectl create token NAME
-n NS`` sends, as protobuf) returns a bound token like kube-apiserver's
(pkg/registry/core/serviceaccount/storage/token.go, pkg/serviceaccount/claims.go): a JWS
signed with the sandbox's service-account key, claims ``iss``, ``sub``
(``system:serviceaccount:NS:NAME``), ``aud``, ``exp``, ``iat``, ``nbf``, ``jti`` and the private
``kubernetes.io`` claim (namespace, serviceaccount name/uid, and the bound Pod, Secret or Node).
The key is ECDSA P-256 (``ES256``), which kube-apiserver accepts as a
``--service-account-signing-key-file``; clusters more often use RSA (``RS256``).

A token authenticates (pkg/serviceaccount/jwt.go, claims.go ``Validate``) while its signature,
issuer, times and audience hold and while the ServiceAccount (same uid) and any bound object
still exist, as ``system:serviceaccount:NS:NAME`` with uid the ServiceAccount's, groups
``system:serviceaccounts`` and ``system:serviceaccounts:NS``
(k8s.io/apiserver/pkg/authentication/serviceaccount), and the extra
``authentication.kubernetes.io/credential-id: JTI=<jti>`` (plus pod/node name and uid when
bound to a Pod). The TokenRequest itself records ``authentication.kubernetes.io/
issued-credential-id`` in its audit event. Not served: legacy Secret-based tokens, the OIDC
discovery documents, ``--service-account-max-token-expiration``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from auditor.sandbox import protowire
from auditor.sandbox.rbac import UserInfo
from auditor.sandbox.status import ApiError, invalid, not_found

# kubeadm's --service-account-issuer; --api-audiences defaults to it.
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
USER_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS = "system:serviceaccounts"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
ISSUED_CREDENTIAL_ID = "authentication.kubernetes.io/issued-credential-id"
_POD_NAME, _POD_UID = "authentication.kubernetes.io/pod-name", "authentication.kubernetes.io/pod-uid"
_NODE_NAME, _NODE_UID = ("authentication.kubernetes.io/node-name",
                         "authentication.kubernetes.io/node-uid")
# SetDefaults_TokenRequestSpec; ValidateTokenRequest's bounds.
DEFAULT_EXPIRATION = 3600
_MIN_EXPIRATION, _MAX_EXPIRATION = 600, 1 << 32
# go-jose's jwt.DefaultLeeway, applied to exp and nbf.
_LEEWAY = 60

# get(kind, namespace, name) -> the stored object, or None ("" namespace for Nodes).
Getter = Callable[[str, str, str], dict[str, Any] | None]


class InvalidToken(Exception):
    """A token that is ours but does not (or no longer) authenticate; the reason is for logs
    only: the client sees 401 ``Unauthorized``."""


def service_account_user(namespace: str, name: str, uid: str = "",
                         extra: dict[str, tuple[str, ...]] | None = None) -> UserInfo:
    """The user a ServiceAccount authenticates as (``ServiceAccountInfo.UserInfo``)."""
    return UserInfo(f"{USER_PREFIX}{namespace}:{name}", uid,
                    (ALL_SERVICE_ACCOUNTS, f"system:serviceaccounts:{namespace}"), extra or {})


def split_username(username: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of ``system:serviceaccount:NS:NAME`` (``SplitUsername``), else None."""
    if not username.startswith(USER_PREFIX):
        return None
    parts = username[len(USER_PREFIX):].split(":")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Bound:
    """The object a token is bound to, as its claim names it."""

    kind: str  # Pod, Secret, Node
    name: str
    uid: str


class ServiceAccountTokens:
    """Issues and checks the tokens of one sandbox (one signing key, one issuer)."""

    def __init__(self, get: Getter, issuer: str = DEFAULT_ISSUER,
                 audiences: tuple[str, ...] = ()) -> None:
        self._get = get
        self.issuer = issuer
        self.audiences = audiences or (issuer,)
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        # keyIDFromPublicKey: base64url of the SHA-256 of the DER public key.
        self.key_id = _b64(hashlib.sha256(der).digest())

    # -- issuing ---------------------------------------------------------------------------

    def issue(self, sa: dict[str, Any], *, expiration_seconds: int = DEFAULT_EXPIRATION,
              audiences: tuple[str, ...] = (), bound: Bound | None = None,
              node: Bound | None = None, now: float | None = None) -> tuple[str, str]:
        """A signed token for the ServiceAccount object ``sa``, and its ``jti``."""
        meta = sa.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        issued = int(now if now is not None else time.time())
        jti = str(uuid.uuid4())
        private: dict[str, Any] = {"namespace": namespace}
        if node is not None:
            private["node"] = {"name": node.name, **({"uid": node.uid} if node.uid else {})}
        if bound is not None and bound.kind == "Pod":
            private["pod"] = {"name": bound.name, "uid": bound.uid}
        elif bound is not None and bound.kind == "Secret":
            private["secret"] = {"name": bound.name, "uid": bound.uid}
        elif bound is not None and bound.kind == "Node":
            private["node"] = {"name": bound.name, "uid": bound.uid}
        private["serviceaccount"] = {"name": name, "uid": str(meta.get("uid") or "")}
        claims = {
            "aud": list(audiences or self.audiences),
            "exp": issued + expiration_seconds,
            "iat": issued,
            "iss": self.issuer,
            "jti": jti,
            "kubernetes.io": private,
            "nbf": issued,
            "sub": f"{USER_PREFIX}{namespace}:{name}",
        }
        header = {"alg": "ES256", "kid": self.key_id}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
        der_sig = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der_sig)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64(signature)}", jti

    # -- authenticating --------------------------------------------------------------------

    def authenticate(self, token: str, now: float | None = None) -> UserInfo | None:
        """The user of a token this sandbox issued; None when the token is not a JWT from this
        issuer (another authenticator may know it); :class:`InvalidToken` when it is ours but
        does not authenticate."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = orjson.loads(_unb64(parts[0]))
            claims = orjson.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        if claims.get("iss") != self.issuer:
            return None
        if header.get("alg") != "ES256" or len(signature) != 64:
            raise InvalidToken("unexpected signing algorithm")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        try:
            self._key.public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(),
                                          ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise InvalidToken("invalid signature") from None
        moment = now if now is not None else time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int) or moment > exp + _LEEWAY:
            raise InvalidToken("service account token has expired")
        if isinstance(nbf, int) and moment < nbf - _LEEWAY:
            raise InvalidToken("service account token is not valid yet")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if not set(audiences) & set(self.audiences):
            raise InvalidToken(f"token audiences {audiences} is invalid for the target "
                               f"audiences {list(self.audiences)}")
        private = claims.get("kubernetes.io") or {}
        namespace = str(private.get("namespace") or "")
        sa_ref = private.get("serviceaccount") or {}
        name, uid = str(sa_ref.get("name") or ""), str(sa_ref.get("uid") or "")
        if not namespace or not name:
            return None
        sa = self._get("ServiceAccount", namespace, name)
        if sa is None or _deleted(sa):
            raise InvalidToken(f"service account {namespace}/{name} has been deleted")
        if str(sa["metadata"].get("uid") or "") != uid:
            raise InvalidToken("service account UID does not match claim")
        extra: dict[str, tuple[str, ...]] = {}
        # A bound object must still exist with the same uid; the node named beside a pod is
        # information only (its claims are copied, not checked).
        checked = [("Secret", "secret"), ("Pod", "pod")]
        if "pod" not in private:
            checked.append(("Node", "node"))
        for kind, key in checked:
            ref = private.get(key)
            if not isinstance(ref, dict):
                continue
            obj = self._get(kind, "" if kind == "Node" else namespace, str(ref.get("name") or ""))
            if obj is None or _deleted(obj) or \
                    str(obj["metadata"].get("uid") or "") != str(ref.get("uid") or ""):
                raise InvalidToken("service account token has been invalidated")
        pod = private.get("pod")
        if isinstance(pod, dict):
            extra[_POD_NAME], extra[_POD_UID] = (str(pod.get("name")),), (str(pod.get("uid")),)
        jti = claims.get("jti")
        if isinstance(jti, str) and jti:
            extra[CREDENTIAL_ID] = (f"JTI={jti}",)
        node = private.get("node")
        if isinstance(node, dict) and node.get("name"):
            extra[_NODE_NAME] = (str(node["name"]),)
            if node.get("uid"):
                extra[_NODE_UID] = (str(node["uid"]),)
        return service_account_user(namespace, name, uid, extra)

    # -- the TokenRequest API --------------------------------------------------------------

    def token_request(self, request: dict[str, Any], namespace: str,
                      name: str) -> tuple[dict[str, Any], str]:
        """Answer a TokenRequest for ServiceAccount ``namespace/name`` as ``TokenREST.Create``
        does; returns the TokenRequest with ``status.token`` and the token's ``jti``."""
        meta = dict(request.get("metadata") or {})
        if meta.get("name") and meta["name"] != name:
            raise invalid("authentication.k8s.io", "TokenRequest", name, [(
                "metadata.name", f'Invalid value: "{meta["name"]}": must match the service '
                "account name if specified")])
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise invalid("authentication.k8s.io", "TokenRequest", name, [(
                "metadata.namespace", f'Invalid value: "{meta["namespace"]}": must match the '
                "service account namespace if specified")])
        sa = self._get("ServiceAccount", namespace, name)
        if sa is None:
            raise not_found("", "serviceaccounts", name)
        spec = dict(request.get("spec") or {})
        audiences = tuple(spec.get("audiences") or ()) or self.audiences
        expiration = spec.get("expirationSeconds")
        expiration = DEFAULT_EXPIRATION if expiration is None else int(expiration)
        meta.setdefault("name", name)
        meta.setdefault("namespace", namespace)
        meta.setdefault("uid", sa["metadata"].get("uid"))
        issued = time.time()
        meta["creationTimestamp"] = _rfc3339(issued)
        if expiration < _MIN_EXPIRATION:
            raise invalid("authentication.k8s.io", "TokenRequest", "", [(
                "spec.expirationSeconds", f"Invalid value: {expiration}: may not specify a "
                "duration less than 10 minutes")])
        if expiration > _MAX_EXPIRATION:
            raise invalid("authentication.k8s.io", "TokenRequest", "", [(
                "spec.expirationSeconds", f"Invalid value: {expiration}: may not specify a "
                "duration larger than 2^32 seconds")])
        bound, node = self._bound(spec.get("boundObjectRef"), namespace, name)
        token, jti = self.issue(sa, expiration_seconds=expiration, audiences=audiences,
                                bound=bound, node=node, now=issued)
        out_spec: dict[str, Any] = {"audiences": list(audiences),
                                    "expirationSeconds": expiration,
                                    "boundObjectRef": spec.get("boundObjectRef")}
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": meta,
            "spec": out_spec,
            "status": {"token": token,
                       "expirationTimestamp": _rfc3339(int(issued) + expiration)},
        }, jti

    def _bound(self, ref: Any, namespace: str,
               name: str) -> tuple[Bound | None, Bound | None]:
        if not isinstance(ref, dict) or not ref:
            return None, None
        kind, api_version = str(ref.get("kind") or ""), str(ref.get("apiVersion") or "")
        ref_name = str(ref.get("name") or "")
        group, _, version = api_version.rpartition("/")
        if group or kind not in ("Pod", "Secret", "Node"):
            # schema.GroupVersionKind.String()
            raise ApiError("BadRequest", "cannot bind token to object of type "
                           f"{group}/{version}, Kind={kind}")
        obj = self._get(kind, "" if kind == "Node" else namespace, ref_name)
        if obj is None:
            raise not_found("", kind.lower() + "s", ref_name)
        uid = str(obj["metadata"].get("uid") or "")
        if ref.get("uid") and ref["uid"] != uid:
            raise ApiError("Conflict", f'Operation cannot be fulfilled on {kind} "{ref_name}": '
                           f"the UID in the bound object reference ({ref['uid']}) does not "
                           "match the UID in record. The object might have been deleted and "
                           "then recreated", code=409)
        node: Bound | None = None
        if kind == "Pod":
            pod_spec = obj.get("spec") or {}
            if pod_spec.get("serviceAccountName", "default") != name:
                raise ApiError("BadRequest", f'cannot bind token for serviceaccount "{name}" '
                               "to pod running with different serviceaccount name.")
            node_name = str(pod_spec.get("nodeName") or "")
            if node_name:
                node_obj = self._get("Node", "", node_name)
                node = Bound("Node", node_name,
                             str((node_obj or {}).get("metadata", {}).get("uid") or ""))
        return Bound(kind, ref_name, uid), node


def decode_token_request(body: bytes, content_type: str) -> dict[str, Any]:
    """A TokenRequest body as JSON data, from JSON, YAML or kubectl's protobuf."""
    if content_type == protowire.CONTENT_TYPE:
        try:
            return _token_request_from_protobuf(body)
        except protowire.ProtobufError as exc:
            raise ApiError("BadRequest", f"error decoding request body: {exc}") from exc
    try:
        obj = yaml.safe_load(body) if content_type == "application/yaml" else orjson.loads(
            body or b"{}")
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ApiError("BadRequest", f"error decoding request body: {exc}") from exc
    if not isinstance(obj, dict):
        raise ApiError("BadRequest", "the request body must be an object")
    return obj


def _token_request_from_protobuf(body: bytes) -> dict[str, Any]:
    # authentication/v1 generated.proto: TokenRequest{metadata=1, spec=2, status=3},
    # TokenRequestSpec{audiences=1, boundObjectRef=3, expirationSeconds=4},
    # BoundObjectReference{kind=1, apiVersion=2, name=3, uid=4}; ObjectMeta{name=1,
    # namespace=3, uid=5}.
    api_version, kind, raw = protowire.unwrap(body)
    out: dict[str, Any] = {"kind": kind or "TokenRequest",
                           "apiVersion": api_version or "authentication.k8s.io/v1",
                           "metadata": {}, "spec": {}}
    for number, value in protowire.fields(raw):
        if number == 1 and isinstance(value, bytes):
            for sub, text in protowire.fields(value):
                key = {1: "name", 3: "namespace", 5: "uid"}.get(sub)
                if key and isinstance(text, bytes) and text:
                    out["metadata"][key] = text.decode()
        elif number == 2 and isinstance(value, bytes):
            spec: dict[str, Any] = out["spec"]
            for sub, item in protowire.fields(value):
                if sub == 1 and isinstance(item, bytes):
                    spec.setdefault("audiences", []).append(item.decode())
                elif sub == 4 and isinstance(item, int):
                    spec["expirationSeconds"] = protowire.to_int64(item)
                elif sub == 3 and isinstance(item, bytes):
                    ref: dict[str, str] = {}
                    for ref_field, text in protowire.fields(item):
                        key = {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"}.get(ref_field)
                        if key and isinstance(text, bytes) and text:
                            ref[key] = text.decode()
                    spec["boundObjectRef"] = ref
    return out


def _deleted(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
