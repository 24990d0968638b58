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
        ledger = OUT / "drift-auditor.db"
        for stale in OUT.glob("drift-auditor.*"):
            stale.unlink()
        config = OUT / "drift-auditor.yaml"
        config.write_text(f"""# The demo's configuration: one Git source, the sandbox cluster, a ledger.
sources:
  - name: shop
    url: {repo.resolve()}
    revision: main
    paths: [apps]
cluster:
  name: demo-sandbox
  kubeconfig: {kubeconfig.resolve()}
ledger:
  path: {ledger.resolve()}
""")
        cli = [sys.executable, "-m", "auditor.cli", "--config", str(config)]

        def auditor(*args: str, ok: tuple[int, ...] = (0, 1)) -> str:
            proc = subprocess.run([*cli, *args], env=env,
                                  capture_output=True, text=True)
            if proc.returncode not in ok:
                raise SystemExit(f"demo: drift-auditor {' '.join(args)} failed:\n{proc.stderr}")
            return proc.stdout

        # What a GitOps controller does: server-side apply with its own field manager.
        k("apply", "--server-side", "--field-manager=argocd-controller",
          "-f", str(repo / "apps" / "namespaces.yaml"))
        k("apply", "--server-side", "--field-manager=argocd-controller", "-R", "-f", str(repo / "apps"))
        print("applied the shop from Git as argocd-controller\n")
        print("$ drift-auditor run        # first audit: the baseline")
        print(auditor("run", "--no-color", ok=(0,)))

        # Out-of-band changes, as an on-call engineer makes them.
        k("-n", "shop-web", "set", "image", "deployment/web", "web=registry.example.com/shop/web:1.5.0-rc1")
        k("-n", "shop-web", "scale", "deployment/web", "--replicas=5")
        k("-n", "shop-api", "set", "env", "deployment/api", "DEBUG=true")
        k("patch", "clusterrole", "shop-readonly", "--type=json", "-p",
          '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]')
        k("-n", "shop-api", "delete", "service", "api-admin")
        print("made 5 out-of-band changes with kubectl 1.35: set image, scale, set env, "
              "RBAC rule, delete Service\n")
        colour = "--color" if sys.stdout.isatty() else "--no-color"
        print("$ drift-auditor run        # second audit: who changed what")
        print(auditor("run", colour, ok=(1,)))
        print("$ drift-auditor history --since 1h")
        print(auditor("history", "--since", "1h", ok=(0,)))
        print("$ drift-auditor verify")
        print(auditor("verify", ok=(0,)))

        today = time.strftime("%Y-%m-%d", time.gmtime())
        report = Path("reports") / "demo.html"
        auditor("report", "--from", today, "--to", today, "-o", str(report), ok=(0,))
        print(f"$ drift-auditor report --from {today} --to {today} -o {report}")
        metrics = OUT / "metrics.prom"
        auditor("metrics", "--textfile", str(metrics), ok=(0,))
        print(f"$ drift-auditor metrics --textfile {metrics}")
        print("$ drift-auditor adopt Deployment.apps/shop-web/web --dry-run   # Git catches up")
        print(auditor("adopt", "Deployment.apps/shop-web/web", "--dry-run", "--by", "demo",
                      ok=(0, 1)))

        snap = OUT / "snapshot.json"
        auditor("--quiet", "snapshot", "-o", str(snap), ok=(0,))
        diff_json = OUT / "diff.json"
        diff_json.write_text(auditor("diff", "--output", "json"))
        # The same comparison against the snapshot file gives the same answer.
        offline = auditor("diff", "--live", str(snap), "--output", "json")
        same = "yes" if offline == diff_json.read_text() else "NO"
        print(f"diff against the snapshot file matches the live diff: {same}")

    print(f"\ndone in {time.perf_counter() - started:.1f}s; the sandbox is stopped. Look at:")
    print(f"  {repo}/apps   the desired state (git log shows who declared what)")
    print("  reports/demo.html             the SOC 2 style report (open it in a browser)")
    print(f"  {ledger}       the audit ledger (drift-auditor --config {config} history)")
    print(f"  {snap}         the live state, Secret values hashed")
    print(f"  {diff_json}             the drift report (drift-auditor diff --output json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
