"""A ledger built by real runs (`run_once` against the sandbox, changed by real kubectl
between runs) and a `drift-auditor serve` server over it on a free loopback port."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.pipeline import run_once
from auditor.web import serve

# Values that would run script if a page inserted them unescaped. Kubernetes names cannot hold
# them, but ConfigMap data, annotations and therefore drift values can.
GIT_VALUE = "<script>alert('from-git')</script>"
LIVE_VALUE = "<img src=x onerror=alert('from-live')>"
ANNOTATION_VALUE = "\"><b id=pwned>bold</b>"
SECRET_LIVE = "hunter2-live-secret-never-shown"
SECRET_GIT = "s3cr3t-git-value-never-shown"
TOKEN = "test-token-3f9a"

APPS = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  annotations: {{note: ok}}
data:
  MODE: "{GIT_VALUE}"
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: shop}}
stringData: {{token: {SECRET_GIT}}}
"""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


Get = Callable[..., Response]


@dataclass
class UI:
    base: str
    cfg: config_mod.Config
    ledger: Path
    reports: Path
    get: Get


def http(base: str) -> Get:
    def get(path: str, *, token: str | None = None, method: str = "GET",
            headers: dict[str, str] | None = None) -> Response:
        req = urllib.request.Request(base + path, method=method, headers=dict(headers or {}))
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Response(resp.status, dict(resp.headers.items()),
                                resp.read().decode())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers.items()), exc.read().decode())
    return get


@pytest.fixture
def ledger_setup(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    """Two real runs: everything in sync, then human changes → open drifts."""
    apps = tmp_path / "git" / "apps"
    apps.mkdir(parents=True)
    sync_from_git(kubectl, apps, APPS)
    reports = tmp_path / "reports"
    reports.mkdir()
    cfg_file = config_file(tmp_path, kubeconfig, cluster="serve-test", extra=(
        f"reports: {{directory: {reports}}}\nserve: {{token-env: SERVE_TEST_TOKEN}}\n"))
    cfg = config_mod.load(cfg_file)
    run_once(cfg, desired_path=str(apps))
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
    patch = '{"data":{"MODE":"' + LIVE_VALUE.replace("'", "\\u0027") + '"}}'
    kubectl("-n", "shop", "patch", "configmap", "settings", "-p", patch)
    encoded = base64.b64encode(SECRET_LIVE.encode()).decode()
    kubectl("-n", "shop", "patch", "secret", "token", "-p", '{"data":{"token":"' + encoded + '"}}')
    kubectl("-n", "shop", "annotate", "--overwrite", "configmap", "settings",
            f"note={ANNOTATION_VALUE}")
    run_once(cfg, desired_path=str(apps))
    (reports / "drift-report-2026-11-01-2026-11-30.html").write_text(
        "<!doctype html><title>report</title><h1>SOC 2 drift report</h1>")
    (reports / "drift-report-2026-11-01-2026-11-30.csv").write_text("time,object\n")
    (tmp_path / "outside.html").write_text("<h1>outside the reports folder</h1>")
    (reports / "notes.txt").write_text("not a report")
    return {"cfg": cfg, "config_file": cfg_file, "ledger": tmp_path / "ledger.db",
            "reports": reports, "apps": apps}


@contextmanager
def serving(cfg: config_mod.Config, token: str | None, **kw: Any) -> Iterator[str]:
    """A UI server on a free loopback port for the duration of the block; yields its URL."""
    server = serve.make_server(cfg, port=0, token=token, **kw)
    serve.start(server)
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ui(ledger_setup: dict[str, Any]) -> Iterator[UI]:
    """The UI with a bearer token required."""
    with serving(ledger_setup["cfg"], TOKEN) as base:
        yield UI(base, ledger_setup["cfg"], ledger_setup["ledger"], ledger_setup["reports"],
                 http(base))


@pytest.fixture
def open_ui(ledger_setup: dict[str, Any]) -> Iterator[UI]:
    """The UI without a token (as a browser would load it)."""
    with serving(ledger_setup["cfg"], None) as base:
        yield UI(base, ledger_setup["cfg"], ledger_setup["ledger"], ledger_setup["reports"],
                 http(base))
