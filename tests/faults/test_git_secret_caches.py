"""Secret values from Git and the caches beside the ledger, through the real command: steady
runs take the desired state from the state cache, no file under ``.drift-auditor-cache/``
ever holds a Secret value (in clear, in base64, or inside the ``last-applied`` annotation),
and a revert after such a run still puts Git's values back, not a stand-in for them."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitfixtures import RepoBuilder
from gitopsfixtures import config_file, sync_from_git

pytestmark = pytest.mark.kubectl

DATA_VALUE = "git-data-value-never-cached"
STRING_VALUE = "git-stringdata-value-never-cached"
HUMAN_VALUE = "typed-by-a-human"
_B64 = base64.b64encode(DATA_VALUE.encode()).decode()
_APPLIED = orjson.dumps({"apiVersion": "v1", "kind": "Secret", "data": {"password": _B64},
                         "stringData": {"token": STRING_VALUE},
                         "metadata": {"name": "creds", "namespace": "shop"}}).decode()
SHOP = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: shop}}
data: {{MODE: prod}}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: shop
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{_APPLIED}'
data: {{password: {_B64}}}
stringData: {{token: {STRING_VALUE}}}
"""


def _forms() -> list[bytes]:
    out = []
    for value in (DATA_VALUE, STRING_VALUE):
        raw = value.encode()
        out += [raw, base64.b64encode(raw), base64.b64encode(raw).rstrip(b"=")]
    return out


def _files_with_a_value(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                  and any(form in p.read_bytes() for form in _forms()))


def test_steady_runs_keep_secret_values_out_of_the_caches_and_revert_applies_gits(
        tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    sync_from_git(kubectl, tmp_path / "applied", SHOP)
    origin = RepoBuilder(tmp_path / "origin")
    (origin.path / "apps").mkdir()
    (origin.path / "apps" / "shop.yaml").write_text(SHOP)
    origin.commit("Shop")
    config = config_file(tmp_path, kubeconfig, extra=(
        f"sources: [{{url: {origin.path}, name: apps, paths: [apps], namespace: shop}}]\n"
        "revert: {mode: enforce, namespaces: [shop]}\n"))
    caches = tmp_path / ".drift-auditor-cache"

    def run() -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "auditor.cli", "-q", "--config", str(config), "run",
             "--output", "json"], capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")})
        assert proc.returncode in (0, 1), proc.stderr
        doc: dict[str, Any] = orjson.loads(proc.stdout)
        return {f"{r['kind']}/{r['name']}": r["status"] for r in doc["resources"]
                if r.get("namespace") == "shop"}

    assert run() == {"ConfigMap/settings": "in-sync", "Secret/creds": "in-sync"}
    (state,) = (caches / "state").glob("*.bin")
    stored = state.stat().st_mtime_ns
    assert run()["Secret/creds"] == "in-sync"

    kubectl("-n", "shop", "patch", "secret/creds", "--type=merge", "-p",
            orjson.dumps({"data": {"password": base64.b64encode(HUMAN_VALUE.encode()).decode()}
                          }).decode())
    assert run()["Secret/creds"] == "drifted"  # seen, and reverted in the same run
    assert state.stat().st_mtime_ns == stored, "the steady runs took the state from the cache"
    live = orjson.loads(kubectl("-n", "shop", "get", "secret/creds", "-o", "json").stdout)
    assert base64.b64decode(live["data"]["password"]).decode() == DATA_VALUE
    assert base64.b64decode(live["data"]["token"]).decode() == STRING_VALUE
    assert run()["Secret/creds"] == "in-sync"

    assert list(caches.rglob("*.bin")), "the caches were written"
    assert _files_with_a_value(caches) == []
