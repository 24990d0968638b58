"""A ledger built by real runs, shared by the report tests (module scope: it takes a few
seconds): a Git repository with a reviewed and an unreviewed commit, the sandbox API server,
real kubectl 1.35 changes between ``run_once`` calls, and an acknowledgement.

Sequence: GitOps apply → run 1 (baseline) → ``kubectl set image`` + Secret patched by hand
→ run 2 (two drifts open) → the Secret drift accepted for 3 days → GitOps re-apply of the
Deployment → run 3 (the image drift resolves, fixed live).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from auditor import config as config_mod
from auditor.ledger import Ledger
from auditor.pipeline import run_once
from auditor.sandbox import Sandbox
from tests.conftest import kubectl_binary

# The project's own policy set: runs record real policy results for the report.
POLICIES = Path(__file__).resolve().parents[2] / "policies"
SECRET_PLAIN = "s3cr3t-value-never-shown"
SECRET_LIVE = "hand-typed-s3cr3t"

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"""
APPS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shop}
stringData: {token: SECRET}
""".replace("SECRET", SECRET_PLAIN)


@dataclass(frozen=True)
class RealLedger:
    path: Path
    config: Path
    repo: Path
    start: datetime
    end: datetime
    tmp: Path


def _git(repo: Path, *args: str, who: str = "Lee Dev", when: str = "2026-11-10T14:30:00Z") -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def real_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLedger]:
    tmp = tmp_path_factory.mktemp("report")
    repo = tmp / "gitops"
    (repo / "apps").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "apps" / "namespace.yaml").write_text(NAMESPACE)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Bootstrap the shop namespace", who="Dana Ops",
         when="2026-11-02T09:00:00Z")
    (repo / "apps" / "shop.yaml").write_text(APPS)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m",
         "Add the storefront (#42)\n\nReviewed-by: Dana Ops <dana@example.com>")
    binary = kubectl_binary()
    start = datetime.now(UTC).replace(microsecond=0)
    with Sandbox() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp),
               "KUBECACHEDIR": str(tmp / "kube-cache"), "KUBE_EDITOR": "true"}

        def kubectl(*args: str) -> None:
            proc = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True,
                                  timeout=60)
            assert proc.returncode == 0, proc.stderr

        def sync(force: bool = False) -> None:
            for name in ("namespace.yaml", "shop.yaml"):
                kubectl("apply", "--server-side", "--field-manager=argocd-controller",
                        *(["--force-conflicts"] if force else []), "-f",
                        str(repo / "apps" / name))

        config = tmp / "drift-auditor.yaml"
        config.write_text(f"""
sources:
  - {{name: shop, url: {repo}, revision: main, paths: [apps]}}
cluster: {{name: test-cluster, kubeconfig: {kubeconfig}, retries: 1}}
ledger: {{path: {tmp / 'ledger.db'}}}
policies: {{directory: {POLICIES}}}
reports: {{schedule-minutes: 60, remediation-sla-hours: 24}}
""")
        cfg = config_mod.load(config)
        sync()
        run_once(cfg)
        kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
        kubectl("-n", "shop", "patch", "secret", "token", "--type=merge", "-p",
                orjson.dumps({"stringData": {"token": SECRET_LIVE}}).decode())
        run_once(cfg)
        with Ledger.open(cfg.ledger.path) as ledger:
            ledger.ack("Secret shop/token", by="Dana Ops", reason="token rotation in progress",
                       expires="3d")
        sync(force=True)
        run_once(cfg)
    yield RealLedger(tmp / "ledger.db", config, repo, start,
                     datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), tmp)
