"""Shared fixtures: a fresh sandbox API server per test, its kubeconfig, and real kubectl."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from auditor.sandbox import AuthConfig, Sandbox

KubectlRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def kubectl_binary() -> pathlib.Path:
    """kubectl 1.35 from ``DRIFT_AUDITOR_TOOLS`` or the tools cache (never /usr/bin, a 1.20)."""
    candidates = []
    if os.environ.get("DRIFT_AUDITOR_TOOLS"):
        candidates.append(pathlib.Path(os.environ["DRIFT_AUDITOR_TOOLS"]) / "kubectl")
    candidates.append(pathlib.Path.home() / ".cache" / "drift-auditor" / "bin" / "kubectl")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail("kubectl 1.35 not found in $DRIFT_AUDITOR_TOOLS or ~/.cache/drift-auditor/bin: "
                "run `make tools`", pytrace=False)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def auth_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start authenticating sandboxes: ``auth_sandbox(tls=True, users={"alice": ["dev"]},
    rbac=True, audit=AuditConfig(...))`` takes :class:`auditor.sandbox.AuthConfig`'s
    fields; each sandbox is stopped at the end of the test."""
    started: list[Sandbox] = []

    def start(**config: Any) -> Sandbox:
        sb = Sandbox(auth=AuthConfig(**config)).start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()


@pytest.fixture
def kubeconfig(sandbox: Sandbox, tmp_path: pathlib.Path) -> pathlib.Path:
    return sandbox.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubectl(kubeconfig: pathlib.Path, tmp_path: pathlib.Path) -> KubectlRunner:
    binary = kubectl_binary()
    # KUBE_EDITOR=true: a stray `kubectl edit` must not open vim and hang the run
    base_env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path),
                "KUBECACHEDIR": str(tmp_path / "kube-cache"), "KUBE_EDITOR": "true"}

    def run(*args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(binary), *args], input=input, env={**base_env, **(env or {})},
                              text=True, capture_output=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def dead_kubeconfig(tmp_path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig whose server refuses connections (a port nothing listens on)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "dead-kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    return path
