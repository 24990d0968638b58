"""Helpers for the authenticating-sandbox tests: kubectl per user, an audit webhook receiver,
reading audit logs and JWT claims."""

from __future__ import annotations

import base64
import http.client
import json
import os
import pathlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from auditor.sandbox import Sandbox
from auditor.sandbox.tls import ServingCerts
from tests.conftest import kubectl_binary


class Kubectl:
    """Real kubectl 1.35 with one kubeconfig (one user)."""

    def __init__(self, kubeconfig: pathlib.Path, home: pathlib.Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home),
                    "KUBECACHEDIR": str(home / f"cache-{kubeconfig.name}"),
                    "KUBE_EDITOR": "true"}

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(kubectl_binary()), *args], input=input,
                              env={**self.env, **(env or {})}, text=True, capture_output=True,
                              timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


def kubectl_for(sb: Sandbox, tmp: pathlib.Path, user: str | None = None,
                token: str | None = None, name: str | None = None) -> Kubectl:
    """kubectl with a kubeconfig for ``user`` (None: the administrator)."""
    # KUBECONFIG is a colon-separated list: no colon in the file name.
    label = (name or user or "admin").replace(":", "-")
    path = sb.write_kubeconfig(tmp / f"kubeconfig-{label}", user=user, token=token)
    return Kubectl(path, tmp)


def raw(sb: Sandbox, method: str, path: str, token: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request without a client library (HTTPS verified with the sandbox's CA)."""
    conn: http.client.HTTPConnection
    if sb.ca_pem is not None:
        context = ssl.create_default_context(cadata=sb.ca_pem.decode())
        conn = http.client.HTTPSConnection(sb.host, sb.port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=sent)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(data), dict(resp.getheaders())
    except json.JSONDecodeError:
        return resp.status, data.decode(), dict(resp.getheaders())


def read_events(path: pathlib.Path) -> list[dict[str, Any]]:
    """The events of an audit log file, one JSON object per line."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def completed(events: list[dict[str, Any]], verb: str | None = None,
              resource: str | None = None) -> list[dict[str, Any]]:
    """The ResponseComplete events, filtered by verb and objectRef.resource."""
    return [e for e in events if e["stage"] == "ResponseComplete"
            and (verb is None or e["verb"] == verb)
            and (resource is None or (e.get("objectRef") or {}).get("resource") == resource)]


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class _Receiver(BaseHTTPRequestHandler):
    server: ReceiverServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.posts.append((self.path, dict(self.headers.items()), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, certs: ServingCerts | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Receiver)
        self.certs = certs
        if certs is not None:
            self.socket = certs.server_context().wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.posts: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    @property
    def url(self) -> str:
        scheme = "https" if self.certs is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}/k8s-audit"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, _, body in self.posts]

    def events(self) -> list[dict[str, Any]]:
        return [item for body in self.bodies() for item in body["items"]]

    def write_kubeconfig(self, path: pathlib.Path) -> pathlib.Path:
        """The ``--audit-webhook-config-file`` naming this receiver (the kubeconfig format the
        Kubernetes auditing docs show for the webhook backend)."""
        authority = ""
        if self.certs is not None:
            data = base64.b64encode(self.certs.ca_pem).decode()
            authority = f"\n    certificate-authority-data: {data}"
        path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: audit-receiver
  cluster:
    server: {self.url}{authority}
users:
- name: kube-apiserver
  user:
    token: receiver-token
contexts:
- name: webhook
  context:
    cluster: audit-receiver
    user: kube-apiserver
current-context: webhook
""")
        return path


@contextmanager
def audit_receiver(certs: ServingCerts | None = None) -> Iterator[ReceiverServer]:
    """A real local HTTP (HTTPS with ``certs``) server collecting what the audit webhook
    POSTs."""
    server = ReceiverServer(certs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
