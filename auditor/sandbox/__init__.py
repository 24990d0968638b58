"""The sandbox: a local Kubernetes API server for tests, the demo and the benchmark.

There is no kube-apiserver binary or cluster on the development machines, so this package
plays one over real HTTP for the ``kubernetes`` Python client and for kubectl 1.35:
discovery, CRUD with real status codes and ``Status`` bodies, ``limit``/``continue``,
label/field selectors, server-set metadata, strategic-merge / JSON-merge / JSON patches,
server-side apply with ``managedFields`` and conflicts, ``dryRun=All``, CRDs, ``scale`` and
``status`` subresources, watch, server defaulting and fault injection.

Field managers kubectl 1.35 records against it (same as on a real cluster; each checked
in ``tests/sandbox/test_sandbox_kubectl.py``): ``apply`` → ``kubectl-client-side-apply``
(Update); ``apply --server-side`` → ``kubectl`` (Apply; ``--field-manager`` overrides);
``create -f`` → ``kubectl-create``; ``replace`` → ``kubectl-replace``; ``edit`` →
``kubectl-edit``; ``patch`` → ``kubectl-patch``; ``label`` / ``annotate`` →
``kubectl-label`` / ``kubectl-annotate``; ``set image|env|resources`` → ``kubectl-set``;
``rollout restart`` → ``kubectl-rollout``; ``scale`` sends no field manager, so the server
records the User-Agent prefix ``kubectl`` with ``subresource: scale``. Switching an object
from client-side to server-side apply leaves ``kubectl`` and ``kubectl-last-applied`` (both
Apply; kubectl rewrites managedFields to drop the client-side entry). The Python client
without a field manager is recorded as ``OpenAPI-Generator``.

A fresh sandbox holds what a new cluster holds: namespaces ``default``, ``kube-node-lease``,
``kube-public``, ``kube-system`` (written by ``kube-apiserver``), in each a ``default``
ServiceAccount and the ``kube-root-ca.crt`` ConfigMap (``kube-controller-manager``), and the
``kubernetes`` Service (10.96.0.1) in ``default``. Like a real server it stores resource
quantities in canonical form (``0.5`` → ``500m``, ``1024Mi`` → ``1Gi``) and serves list items
of built-in kinds without ``apiVersion``/``kind`` (kubernetes/kubernetes#3030).

Where it is simpler than a real API server (know this before trusting a test):

* By default no authentication or authorization: any bearer token (or none) is accepted;
  403s only come from injected faults. ``Sandbox(auth=AuthConfig(...))`` turns on what
  kube-apiserver does instead (:mod:`auditor.sandbox.gate`): HTTPS with its own CA, static
  and ServiceAccount tokens (``kubectl create token``), anonymous requests, impersonation,
  RBAC with the bootstrap roles, and an ``audit.k8s.io/v1`` audit log to a file and a
  webhook. ``token_for(user)``, ``service_account_token(ns, name)`` and
  ``write_kubeconfig(path, user=...)`` hand out credentials; setup through the methods below
  (``load``, ``apply``, ``get``) is never authorized or audited. No admission webhooks, no
  controllers: creating a Deployment spawns no ReplicaSet or Pods and nothing writes
  ``status`` unless a test does.
* Validation is light: required name, namespace existence, workload selector/template
  agreement, required containers, immutable selectors / clusterIP / immutable ConfigMaps.
* One storage version per resource; autoscaling/v1 HPAs are converted from v2 for the CPU
  target only. ``events.k8s.io/v1`` and core ``v1`` Events are separate stores.
* Paginated lists read the *current* state after the continue key, not an etcd snapshot
  at the first page's resourceVersion; continue tokens only expire on demand
  (``faults.expire_continue()``) or below ``store.compacted_rv``. Watches replay the last
  20,000 changes (older resourceVersions, or those ``store.compact()`` discarded, get the
  410 a compacted etcd gives); with ``allowWatchBookmarks=true`` a BOOKMARK comes every
  ``bookmark_interval`` seconds (60 s, about kube-apiserver's; tests shorten it), none
  before a watch's timeout.
* Deletion: finalizers hold an object (``deletionTimestamp``, 202) until an update removes
  them; the PVC/PV protection and garbage-collector finalizers are released at once (no
  pods or dependents exist). No graceful deletion period, no garbage collection through
  ``ownerReferences``. A deleted Namespace is ``Terminating`` for
  ``store.namespace_deletion_delay`` seconds (1 s), then goes with its contents.
* Mutating admission is limited to what every cluster has: Pod service account,
  priority and not-ready/unreachable tolerations, PVC/PV protection finalizers — added
  after managedFields are recorded, so owned by nobody, as upstream.
* Field ownership follows structured-merge-diff for the built-in fields described in
  :mod:`auditor.sandbox.schema` (other built-in fields: structs and atomic lists) and for
  custom resources from their CRD's storage-version schema (``properties``,
  ``additionalProperties``, ``x-kubernetes-list-type``/``-list-map-keys``/``-map-type``).
  Custom resources are pruned to their schema, get its ``default`` values, and undeclared
  fields are refused under ``fieldValidation=Strict``; types, formats, enums, CEL rules and
  conversion webhooks are not checked. Strategic merge patch on custom resources is
  refused with 415, as upstream.
* For built-in kinds ``fieldValidation`` is accepted and ignored: unknown fields are
  kept, where a real server would drop them (or refuse them under Strict).
* Only JSON (and YAML request bodies); protobuf bodies get 415, so ``kubectl create
  <generator>`` (``create configmap|deployment|job|namespace|secret``), ``kubectl
  autoscale`` and ``helm install`` (its release Secret) fail here although they work on a
  real cluster. ``kubectl run``, ``expose`` and everything taking ``-f`` send JSON.
* ``/openapi/v3`` lists operations but no schemas (enough for kubectl's server-side
  field validation check); ``/openapi/v2`` is 404, so ``kubectl explain`` does not work.
  kubectl then computes strategic-merge patches from its compiled-in types, as it does
  for any kind missing from a server's OpenAPI.
* ``kubectl get`` Tables have the real columns (and ``-o wide`` ones) for common kinds
  only; others show Name and Age. No garbage collection of dependents (``ownerReferences``), no ``rollout
  status`` (no controller writes status). Discovery is served both aggregated
  (``apidiscovery.k8s.io/v2``, which kubectl 1.35 asks for) and legacy (the Python
  client's); aggregated ``v2beta1`` is not offered.
"""

from __future__ import annotations

import base64
import copy
import gc
import pathlib
import signal
import threading
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import Any

import yaml

from auditor.sandbox.audit import AuditConfig
from auditor.sandbox.catalog import Catalog, Resource
from auditor.sandbox.faults import Faults
from auditor.sandbox.gate import AuthConfig, Gate
from auditor.sandbox.rbac import bootstrap_objects
from auditor.sandbox.server import SandboxHTTPServer
from auditor.sandbox.serviceaccounts import DEFAULT_EXPIRATION, split_username
from auditor.sandbox.status import ApiError, not_found
from auditor.sandbox.store import Store

__all__ = ["ApiError", "AuditConfig", "AuthConfig", "Sandbox", "serve"]

_RBAC_API = "rbac.authorization.k8s.io/v1"

_SEED_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


class Sandbox:
    """A running (or ready to run) sandbox API server with its own object store.

    ``auth``: authenticate, authorize and audit every HTTP request as kube-apiserver does
    (:class:`AuthConfig`); None (the default) accepts anything as an administrator.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 auth: AuthConfig | None = None) -> None:
        self.host = host
        self.port = port
        self.catalog = Catalog()
        self.store = Store(self.catalog)
        self.faults = Faults()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._seed()
        self.gate: Gate | None = None
        if auth is not None:
            self.gate = Gate(auth, host=host, get=self._stored, rbac_objects=self._rbac_objects)
            if auth.rbac:
                # The RBAC post-start hook creates the default roles and bindings.
                self.load(bootstrap_objects(), field_manager="kube-apiserver")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Serve in a background thread; returns self."""
        if self._server is not None:
            return self
        tls = None
        if self.gate is not None:
            self.gate.start()
            if self.gate.certs is not None:
                tls = self.gate.certs.server_context()
        self._server = SandboxHTTPServer((self.host, self.port), self, tls)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the URL refuses connections afterwards. Stored objects are kept."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        if self.gate is not None:
            self.gate.stop()  # flushes the audit webhook, closes the audit log

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def bookmark_interval(self) -> float:
        """Seconds between the BOOKMARK events of watches that allow them (a watch opened
        after a change uses the new interval)."""
        return self.store.bookmark_interval

    @bookmark_interval.setter
    def bookmark_interval(self, seconds: float) -> None:
        self.store.bookmark_interval = float(seconds)

    @property
    def url(self) -> str:
        scheme = "https" if self.ca_pem is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes | None:
        """The PEM of the CA that signed the serving certificate (None without TLS)."""
        certs = self.gate.certs if self.gate is not None else None
        return certs.ca_pem if certs is not None else None

    def write_kubeconfig(self, path: str | pathlib.Path, user: str | None = None,
                         token: str | None = None) -> pathlib.Path:
        """A kubeconfig whose cluster, user and context are all named ``sandbox``.

        On an authenticating sandbox it carries the CA (``certificate-authority-data``) and
        the credentials of ``user``: None is the built-in administrator; a static user gets
        its token; ``system:serviceaccount:NS:NAME`` a fresh ServiceAccount token;
        ``system:anonymous`` none at all. ``token`` puts that token in instead.
        """
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        credentials: dict[str, Any] = {"token": "sandbox-token"}
        if token is not None:
            credentials = {"token": token}
        elif self.gate is not None:
            credentials = self._credentials(user)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": "sandbox", "user": credentials}],
            "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox",
                                                         "user": "sandbox",
                                                         "namespace": "default"}}],
            "current-context": "sandbox",
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- credentials (authenticating sandboxes) --------------------------------------------

    def token_for(self, user: str) -> str:
        """The static token of ``user`` (from ``AuthConfig.users`` or its token file)."""
        return self._gate().token_for(user)

    @property
    def admin_token(self) -> str:
        """The token of the built-in administrator (``kubernetes-admin``, ``system:masters``)."""
        return self._gate().admin_token

    def service_account_token(self, namespace: str, name: str,
                              expiration_seconds: int = DEFAULT_EXPIRATION,
                              audiences: tuple[str, ...] = ()) -> str:
        """A token for an existing ServiceAccount, as a TokenRequest would issue it."""
        gate = self._gate()
        sa = self.get("v1", "ServiceAccount", namespace, name)
        if sa is None:
            raise not_found("", "serviceaccounts", name)
        token, _ = gate.service_accounts.issue(sa, expiration_seconds=expiration_seconds,
                                               audiences=audiences)
        return token

    def flush_audit(self) -> None:
        """Send the audit events the webhook batch holds now (and wait for the POST)."""
        if self.gate is not None:
            self.gate.flush_audit()

    def _gate(self) -> Gate:
        if self.gate is None:
            raise RuntimeError("this sandbox does not authenticate: start it with "
                               "Sandbox(auth=AuthConfig(...))")
        return self.gate

    def _credentials(self, user: str | None) -> dict[str, Any]:
        gate = self._gate()
        if user is None:
            return {"token": gate.admin_token}
        if user == "system:anonymous":
            return {}
        account = split_username(user)
        if account is not None:
            return {"token": self.service_account_token(*account)}
        return {"token": gate.token_for(user)}

    def _stored(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        # The gate reads ServiceAccounts and bound objects; stored objects are replaced,
        # never changed in place, so the stored dict is handed out as is (only read).
        res = self.catalog.by_kind("v1", kind)
        if res is None:
            return None
        rec = self.store.get(res, namespace, name)
        return rec.obj if rec is not None else None

    def _rbac_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        res = self.resource_for(_RBAC_API, kind)
        with self.store.lock:
            records = self.store.table(res).records
            if namespace is None:
                return [rec.obj for rec in records.values()]
            return [rec.obj for (ns, _), rec in records.items() if ns == namespace]

    # -- direct access (test setup, no HTTP) -----------------------------------------------

    def resource_for(self, api_version: str, kind: str) -> Resource:
        res = self.catalog.by_kind(api_version, kind)
        if res is None:
            raise ApiError("NotFound", f"no resource for {api_version} {kind}")
        return res

    def load(self, objects: Iterable[dict[str, Any]],
             field_manager: str = "sandbox-loader") -> int:
        """Create objects without HTTP; missing namespaces are created first.

        Objects keep a given ``status`` (a test can pose as a controller) and, when they
        carry ``metadata.managedFields``, that history instead of a fresh ``Update`` entry.
        Returns the number of objects created.
        """
        count = 0
        ns_res = self.resource_for("v1", "Namespace")
        # The cyclic GC would rescan every stored dict on each collection, doubling the
        # cost of a big load; JSON trees hold no cycles, so pausing it loses nothing.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            count = self._load(objects, ns_res, field_manager)
        finally:
            if was_enabled:
                gc.enable()
        return count

    def _load(self, objects: Iterable[dict[str, Any]], ns_res: Resource,
              field_manager: str) -> int:
        flat: list[dict[str, Any]] = []
        for obj in objects:
            # a `kubectl get -o json` List (or a typed FooList) contributes its items
            if str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list):
                flat.extend(obj["items"])
            else:
                flat.append(obj)
        # definitions first, so custom resources and namespaced objects find them
        first = ("CustomResourceDefinition", "Namespace")
        flat.sort(key=lambda o: 0 if o.get("kind") in first else 1)
        count = 0
        for obj in flat:
            res = self.resource_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
            ns = str((obj.get("metadata") or {}).get("namespace") or "default") \
                if res.namespaced else ""
            if res.namespaced and self.store.get(ns_res, "", ns) is None:
                self.store.create(ns_res, "", {"metadata": {"name": ns}},
                                  manager=field_manager)
            self.store.create(res, ns, obj, manager=field_manager, keep_status=True)
            count += 1
        return count

    def apply(self, obj: dict[str, Any], field_manager: str, force: bool = False) -> dict[str, Any]:
        """Server-side apply without HTTP; returns the resulting object.

        Like :meth:`load`, a missing namespace is created first (as ``field_manager``).
        Raises :class:`ApiError` (e.g. an ``ApplyConflict``, code 409) as the API would.
        """
        res = self.resource_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default") if res.namespaced else ""
        ns_res = self.resource_for("v1", "Namespace")
        if res.namespaced and self.store.get(ns_res, "", ns) is None:
            self.store.create(ns_res, "", {"metadata": {"name": ns}}, manager=field_manager)
        result, _ = self.store.server_side_apply(res, ns, str(meta.get("name", "")),
                                                 copy.deepcopy(obj), manager=field_manager,
                                                 force=force)
        return copy.deepcopy(result)

    def get(self, api_version: str, kind: str, namespace: str | None,
            name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        res = self.resource_for(api_version, kind)
        rec = self.store.get(res, namespace or "", name)
        return copy.deepcopy(rec.obj) if rec is not None else None

    # -- the cluster every kubeadm-style cluster starts with -------------------------------

    def _seed(self) -> None:
        ns_res = self.resource_for("v1", "Namespace")
        for name in _SEED_NAMESPACES:
            self.store.create(ns_res, "", {"metadata": {"name": name}}, manager="kube-apiserver")
        svc = self.resource_for("v1", "Service")
        self.store.alloc.used_ips.add("10.96.0.1")
        self.store.create(svc, "default", {
            "metadata": {"name": "kubernetes",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": 6443}],
                     "sessionAffinity": "None", "type": "ClusterIP"},
        }, manager="kube-apiserver")


def serve(host: str, port: int, seed: Iterable[dict[str, Any]] = ()) -> None:
    """Run a sandbox in the foreground until SIGINT or SIGTERM."""
    sb = Sandbox(host=host, port=port)
    sb.load(seed)
    sb.start()
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"sandbox API server listening on {sb.url}", flush=True)
    try:
        done.wait()
    finally:
        sb.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
