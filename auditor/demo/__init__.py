"""The demo's assets: a small shop's manifests (3 namespaces, ~30 objects) and where to find
the kubectl 1.35 binary that `make tools` caches."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

SHOP = Path(__file__).parent / "shop"


def kubectl_path(env: Mapping[str, str] | None = None) -> str:
    """kubectl 1.35 from the tools cache; the system kubectl is a different build."""
    env = os.environ if env is None else env
    for folder in (env.get("DRIFT_AUDITOR_TOOLS"), str(Path.home() / ".cache/drift-auditor/bin")):
        if folder and (Path(folder) / "kubectl").exists():
            return str(Path(folder) / "kubectl")
    found = shutil.which("kubectl")
    if found:
        return found
    raise SystemExit("kubectl 1.35 not found: run `make tools`")
