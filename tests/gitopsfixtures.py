"""What the end-to-end suites share: manifests written to a Git folder and synced to the
sandbox the way a GitOps controller does it (server-side apply as ``argocd-controller``),
and the config file of an installation that audits that sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GITOPS_MANAGER = "argocd-controller"


def sync_from_git(kubectl: Any, folder: Path, manifests: str, name: str = "shop.yaml") -> Path:
    """Write ``manifests`` to ``folder/name`` and apply them as the GitOps controller."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(manifests)
    kubectl("apply", "--server-side", f"--field-manager={GITOPS_MANAGER}", "-f", str(path))
    return path


def config_file(tmp_path: Path, kubeconfig: Path, *, cluster: str = "test",
                extra: str = "") -> Path:
    """``tmp_path/drift-auditor.yaml``: this sandbox as ``cluster``, a ledger beside it, no
    compliance policies; ``extra`` adds settings (YAML lines)."""
    path = tmp_path / "drift-auditor.yaml"
    path.write_text(f"cluster: {{name: {cluster}, kubeconfig: {kubeconfig}, retries: 1}}\n"
                    f"ledger: {{path: {tmp_path / 'ledger.db'}}}\n"
                    f"policies: {{directory: {tmp_path / 'no-policies'}}}\n{extra}")
    return path
