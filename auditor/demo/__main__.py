"""`make demo`: the main job end to end on the embedded sandbox.

Starts the sandbox API server, puts a small shop's manifests in a fresh Git repository,
applies them as a GitOps controller would (server-side apply as ``argocd-controller``),
makes out-of-band changes with the real kubectl 1.35 (an image set, a scale, an added env
var, an RBAC rule, a deleted Service), then snapshots the cluster and audits it against Git.
Everything lands in ``demo-out/``; nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from auditor.demo import SHOP, kubectl_path

OUT = Path("demo-out")


def sh(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
       input: str | None = None) -> str:
    proc = subprocess.run(args, env=env, cwd=cwd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args)}` failed:\n{proc.stderr.strip()}")
    return proc.stdout


def make_repo(repo: Path) -> None:
    """A Git repository of the shop, in two commits by two people (one carrying a PR number)."""
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "apps").mkdir(parents=True)
    base = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}

    def commit(who: str, email: str, when: str, message: str) -> None:
        env = {**base, "GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": email,
               "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        sh(["git", "add", "-A"], env=env, cwd=repo)
        sh(["git", "commit", "-q", "-m", message], env=env, cwd=repo)

    sh(["git", "init", "-q", "-b", "main"], env=base, cwd=repo)
    for name in ("namespaces.yaml", "data.yaml"):
        shutil.copy(SHOP / name, repo / "apps" / name)
    commit("Dana Ops", "dana@example.com", "2026-11-02T09:00:00Z",
           "Bootstrap shop namespaces and data tier")
    for name in ("web.yaml", "api.yaml"):
        shutil.copy(SHOP / name, repo / "apps" / name)
    commit("Lee Dev", "lee@example.com", "2026-11-10T14:30:00Z",
           "Add storefront and API (#42)\n\nReviewed-by: Dana Ops <dana@example.com>")


def main() -> int:
    from auditor.sandbox import Sandbox

    started = time.perf_counter()
    OUT.mkdir(exist_ok=True)
    kubectl = kubectl_path()
    repo = OUT / "gitops-repo"
    make_repo(repo)
    with Sandbox() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(OUT / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig.resolve())}

        def k(*args: str, input: str | None = None) -> str:
            return sh([kubectl, *args], env=env, input=input)

        print(f"sandbox API server on {sandbox.url} (kubeconfig: {kubeconfig})")
        # What a GitOps controller does: server-side apply with its own field manager.
        k("apply", "--server-side", "--field-manager=argocd-controller",
          "-f", str(repo / "apps" / "namespaces.yaml"))
        k("apply", "--server-side", "--field-manager=argocd-controller", "-R", "-f", str(repo / "apps"))
        print("applied the shop from Git as argocd-controller")

        # Out-of-band changes, as an on-call engineer makes them.
        k("-n", "shop-web", "set", "image", "deployment/web", "web=registry.example.com/shop/web:1.5.0-rc1")
        k("-n", "shop-web", "scale", "deployment/web", "--replicas=5")
        k("-n", "shop-api", "set", "env", "deployment/api", "DEBUG=true")
        k("patch", "clusterrole", "shop-readonly", "--type=json", "-p",
          '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]')
        k("-n", "shop-api", "delete", "service", "api-admin")
        print("made 5 out-of-band changes with kubectl 1.35: set image, scale, set env, "
              "RBAC rule, delete Service")

        snap = OUT / "snapshot.json"
        cli = [sys.executable, "-m", "auditor.cli", "--quiet", "--config", "/dev/null"]
        cfg_env = {**env, "DRIFT_AUDITOR_LEDGER_PATH": str(OUT / "drift-auditor.db")}
        proc = subprocess.run([*cli, "snapshot", "--kubeconfig", str(kubeconfig), "-o", str(snap)],
                              env=cfg_env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"demo: snapshot failed:\n{proc.stderr}")
        print(f"snapshot: {proc.stderr.strip().splitlines()[-1]} → {snap}")

        # The audit: Git against the live cluster, as text and as the JSON contract.
        diff = [*cli, "diff", "--kubeconfig", str(kubeconfig), "--desired", str(repo / "apps")]
        text = subprocess.run([*diff, "--color" if sys.stdout.isatty() else "--no-color"],
                              env=cfg_env, capture_output=True, text=True)
        if text.returncode not in (0, 1):
            raise SystemExit(f"demo: diff failed:\n{text.stderr}")
        print("\n$ drift-auditor diff --desired demo-out/gitops-repo/apps\n" + text.stdout)
        report = OUT / "diff.json"
        js = subprocess.run([*diff, "--output", "json"], env=cfg_env, capture_output=True)
        report.write_bytes(js.stdout)
        # The same comparison against the snapshot file gives the same answer.
        offline = subprocess.run([*cli, "diff", "--desired", str(repo / "apps"), "--live",
                                  str(snap), "--output", "json"], env=cfg_env, capture_output=True)
        same = "yes" if offline.stdout == js.stdout else "NO"
        print(f"diff against the snapshot file matches the live diff: {same}")

    print(f"\ndone in {time.perf_counter() - started:.1f}s. Look at:")
    print(f"  {repo}/apps        the desired state (git log shows who declared what)")
    print(f"  {snap}      the live state, Secret values hashed")
    print(f"  {OUT / 'diff.json'}         the drift report (drift-auditor diff --output json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
