"""Render the plain-YAML install (``cronjob.yaml``, and the Kustomize base) from the Helm chart.

``cronjob.yaml`` is the chart's default rendering (release ``drift-auditor`` in namespace
``drift-auditor``, with ``namespace.create=true`` so that one ``kubectl apply`` sets everything
up) under a short header. ``make manifests`` rewrites it; tests/ship/test_helm_chart.py
renders it again and compares, so the two cannot drift apart.

    python tools/render_manifests.py [--check]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "drift-auditor"
# The plain-YAML install and the Kustomize base's copy of it.
OUTPUTS = (ROOT / "cronjob.yaml", ROOT / "deploy" / "kustomize" / "base" / "drift-auditor.yaml")
RELEASE = NAMESPACE = "drift-auditor"
FLAGS = ("--set", "namespace.create=true")

HEADER = """\
# Drift Auditor in a cluster, as plain YAML: the Helm chart deploy/helm/drift-auditor rendered
# with its default values (`make manifests` writes this file; do not edit it by hand, set chart
# values instead). deploy/kustomize/base holds the same objects as a Kustomize base.
#
#   kubectl apply -f cronjob.yaml
#   kubectl -n drift-auditor create secret generic drift-auditor-git --from-literal=token=...
#   kubectl -n drift-auditor create secret generic drift-auditor-slack --from-literal=token=xoxb-...
#
# Before applying: set the image (built from the Dockerfile) and the Git source in the
# ConfigMap. One pod holds the ledger volume and runs the audits on their schedule
# (`drift-auditor schedule`), serve beside them: README "Install in a cluster" explains the
# choice and the CronJob alternative (chart value runner: cronjob).
"""


def helm() -> str:
    tools = os.environ.get("DRIFT_AUDITOR_TOOLS", str(Path.home() / ".cache/drift-auditor/bin"))
    found = shutil.which("helm", path=os.pathsep.join([tools, os.environ.get("PATH", "")]))
    if not found:
        raise SystemExit("helm not found: run `make tools`")
    return found


def render(*extra: str) -> str:
    """``helm template`` of the chart: the default install unless ``extra`` flags say more."""
    proc = subprocess.run(
        [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra],
        capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"helm template failed: {proc.stderr.strip()}")
    return proc.stdout


def plain_manifest() -> str:
    return HEADER + render(*FLAGS)


def main(argv: list[str]) -> int:
    text = plain_manifest()
    stale = [path for path in OUTPUTS
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not the chart's rendering: run `make manifests`")
        return 1 if stale else 0
    for path in stale:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
