"""`make demo`: the main job end to end on the embedded sandbox.

Starts the sandbox API server and a GitHub-shaped API (:mod:`auditor.demo.githost`), puts a
small shop's manifests in a fresh Git repository (a pull request merged with ``--no-ff``),
applies them as a GitOps controller would (server-side apply as ``argocd-controller``),
audits a baseline, merges two more pull requests (one approved by an independent reviewer,
one only by its own author) and syncs them, makes out-of-band changes with the real kubectl
1.35 (an image set, a scale, an added env var, an RBAC rule, a deleted Service), then
snapshots the cluster and audits it against Git: approvals come from the git host, the
ledger's checkpoints are signed. Everything lands in ``demo-out/``; nothing is left running.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from auditor.demo import SHOP, kubectl_path
from auditor.demo.githost import DemoGitHub, PullRequest

OUT = Path("demo-out")


def sh(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
       input: str | None = None) -> str:
    proc = subprocess.run(args, env=env, cwd=cwd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args)}` failed:\n{proc.stderr.strip()}")
    return proc.stdout


GITHUB_REPO = "acme/shop-gitops"
TOKEN_ENV = "DEMO_GITHUB_TOKEN"
# GitHub login → Git identity.
PEOPLE = {"dana": ("Dana Ops", "dana@example.com"), "lee": ("Lee Dev", "lee@example.com"),
          "sam": ("Sam Admin", "sam@example.com")}


class _Git:
    """The demo repository's Git, with fixed identities and dates (so the same SHAs)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.base = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return sh(["git", *args], env=env or self.base, cwd=self.repo).strip()

    def env(self, author: str, when: str, committer: tuple[str, str] | None = None
            ) -> dict[str, str]:
        name, email = PEOPLE[author]
        c_name, c_email = committer or (name, email)
        return {**self.base, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": c_name, "GIT_COMMITTER_EMAIL": c_email,
                "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}

    def commit(self, author: str, when: str, message: str) -> str:
        env = self.env(author, when)
        self.git("add", "-A", env=env)
        self.git("commit", "-q", "-m", message, env=env)
        return self.git("rev-parse", "HEAD")

    def pull_request(self, number: int, branch: str, title: str, author: str, when: str,
                     change: Callable[[Path], None], *, reviews: tuple[tuple[str, str], ...],
                     merged_by: str, body: str = "") -> PullRequest:
        """A feature branch with one commit by ``author``, merged into main with
        ``git merge --no-ff`` as GitHub's merge button does (authored by whoever merged it,
        committed by GitHub): one first-parent change on main."""
        self.git("switch", "-q", "-c", branch)
        change(self.repo)
        head = self.commit(author, when, f"{title}\n\n{body}" if body else title)
        self.git("switch", "-q", "main")
        merged_at = when.replace("00Z", "30Z")
        self.git("merge", "--no-ff", "-q", "-m",
                 f"Merge pull request #{number} from {GITHUB_REPO.split('/')[0]}/{branch}"
                 f"\n\n{title}", branch,
                 env=self.env(merged_by, merged_at, ("GitHub", "noreply@github.com")))
        name, email = PEOPLE[author]
        return PullRequest(number, title, branch, author, merged_by, self.git("rev-parse", "HEAD"),
                           ((head, author, name, email),), reviews, merged_at)


def make_repo(repo: Path) -> list[PullRequest]:
    """A Git repository of the shop: Dana's bootstrap pushed straight to main, then Lee's
    storefront and API merged as pull request #42 (reviewed by Dana). Returns its pull
    requests, for the demo's git host."""
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "apps").mkdir(parents=True)
    g = _Git(repo)
    g.git("init", "-q", "-b", "main")
    for name in ("namespaces.yaml", "data.yaml"):
        shutil.copy(SHOP / name, repo / "apps" / name)
    g.commit("dana", "2026-11-02T09:00:00Z", "Bootstrap shop namespaces and data tier")

    def storefront(root: Path) -> None:
        for name in ("web.yaml", "api.yaml"):
            shutil.copy(SHOP / name, root / "apps" / name)

    return [g.pull_request(42, "lee/storefront", "Add storefront and API", "lee",
                           "2026-11-10T14:30:00Z", storefront,
                           body="Reviewed-by: Dana Ops <dana@example.com>",
                           reviews=(("dana", "APPROVED"),), merged_by="dana")]


def _edit(file: str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / "apps" / file
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"demo: {old!r} not in {file}")
        path.write_text(text.replace(old, new, 1))
    return change


def merge_changes(repo: Path) -> list[PullRequest]:
    """Two more pull requests merged after the baseline audit: #43 by Lee, approved by Dana
    (an independent reviewer: authorized), and #44 by Sam, approved only by Sam and merged by
    Sam past the branch protection as an admin (a segregation-of-duties exception)."""
    g = _Git(repo)
    return [
        g.pull_request(43, "lee/api-log-level", "api: log at warn level", "lee",
                       "2026-11-20T10:00:00Z",
                       _edit("api.yaml", "LOG_LEVEL: info", "LOG_LEVEL: warn"),
                       reviews=(("dana", "COMMENTED"), ("dana", "APPROVED")), merged_by="dana"),
        g.pull_request(44, "sam/new-checkout", "web: turn on the new checkout", "sam",
                       "2026-11-24T17:45:00Z",
                       _edit("web.yaml", 'FEATURE_NEW_CHECKOUT: "false"',
                             'FEATURE_NEW_CHECKOUT: "true"'),
                       reviews=(("sam", "APPROVED"),), merged_by="sam"),
    ]


def approval_lines(ledger: Path) -> list[str]:
    """The ledger's newest verdict on each judged pull request, as the report shows it."""
    import sqlite3

    from auditor.ledger import approvals

    conn = sqlite3.connect(f"file:{ledger.resolve()}?mode=ro", uri=True)
    try:
        rows = approvals.latest(approvals.rows_until(conn, "9999"))
    finally:
        conn.close()
    ordered = sorted(rows.values(), key=lambda r: (int(r["run_id"]), r.get("pr") or 0))
    return [f"PR #{row.get('pr')} {str(row['sha'])[:12]}: {row.get('verdict')} — "
            f"{row.get('reason')} · {row.get('evidence')}" for row in ordered]


def signing_hint(ledger: Path) -> str:
    """Where the checkpoints' signing key is and its public key's fingerprint."""
    from auditor.ledger import keyfile

    key = keyfile.beside(ledger)
    if not key.exists():
        return f"checkpoints NOT signed: no {key}"
    _pem, fp = keyfile.public_pem(key)
    return (f"checkpoints signed with {key} (Ed25519, public key {fp}; "
            f"`drift-auditor public-key` prints it for the auditor)")


def main() -> int:
    from auditor.sandbox import Sandbox

    started = time.perf_counter()
    OUT.mkdir(exist_ok=True)
    kubectl = kubectl_path()
    repo = OUT / "gitops-repo"
    pulls = make_repo(repo)
    token = secrets.token_hex(16)
    with Sandbox() as sandbox, DemoGitHub(GITHUB_REPO, pulls, token=token) as github:
        kubeconfig = sandbox.write_kubeconfig(OUT / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig.resolve()), TOKEN_ENV: token}

        def k(*args: str, input: str | None = None) -> str:
            return sh([kubectl, *args], env=env, input=input)

        print(f"sandbox API server on {sandbox.url} (kubeconfig: {kubeconfig})")
        print(f"git host: a GitHub-shaped API on {github.url} serving {GITHUB_REPO} "
              f"(token in ${TOKEN_ENV})")
        ledger = OUT / "drift-auditor.db"
        for stale in OUT.glob("drift-auditor.*"):
            stale.unlink()
        # The approvals cached by an earlier demo (same SHAs): asked afresh.
        shutil.rmtree(OUT / ".drift-auditor-cache" / "approvals", ignore_errors=True)
        config = OUT / "drift-auditor.yaml"
        config.write_text(f"""# The demo's configuration: one Git source (its approvals read from the
# local GitHub-shaped API), the sandbox cluster, a ledger (checkpoints signed by default).
sources:
  - name: shop
    url: {repo.resolve()}
    revision: main
    paths: [apps]
    approvals:
      provider: github
      api-url: {github.url}
      repo: {GITHUB_REPO}
      token-env: {TOKEN_ENV}
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
        print(signing_hint(ledger) + "\n")

        # Two pull requests merged on the git host, synced by the controller.
        more = merge_changes(repo)
        github.pulls.extend(more)
        k("apply", "--server-side", "--field-manager=argocd-controller", "-R", "-f", str(repo / "apps"))
        for pr in more:
            approved = ", ".join(login for login, state in pr.reviews if state == "APPROVED")
            print(f"merged PR #{pr.number} by {pr.author} ({pr.title!r}), approved by "
                  f"{approved}, merged by {pr.merged_by}: {pr.merge_sha[:12]}")
        print("synced main as argocd-controller\n")

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
        print("$ drift-auditor public-key --fingerprint")
        print(auditor("public-key", "--fingerprint", ok=(0,)))

        today = time.strftime("%Y-%m-%d", time.gmtime())
        report = Path("reports") / "demo.html"
        auditor("report", "--from", today, "--to", today, "--output-file", str(report), ok=(0,))
        print(f"$ drift-auditor report --from {today} --to {today} --output-file {report}")
        print("  Approvals of the changes to Git (from the git host, segregation of duties):")
        for line in approval_lines(ledger):
            print(f"    {line}")
        metrics = OUT / "metrics.prom"
        auditor("metrics", "--textfile", str(metrics), ok=(0,))
        print(f"$ drift-auditor metrics --textfile {metrics}")
        print("$ drift-auditor adopt Deployment.apps/shop-web/web --dry-run   # Git catches up")
        print(auditor("adopt", "Deployment.apps/shop-web/web", "--dry-run", "--by", "demo",
                      ok=(0, 1)))

        snap = OUT / "snapshot.json"
        auditor("--quiet", "snapshot", "--output-file", str(snap), ok=(0,))
        diff_json = OUT / "diff.json"
        diff_json.write_text(auditor("diff", "--output", "json"))
        # The same comparison against the snapshot file gives the same answer.
        offline = auditor("diff", "--live", str(snap), "--output", "json")
        same = "yes" if offline == diff_json.read_text() else "NO"
        print(f"diff against the snapshot file matches the live diff: {same}")

    # The command as this interpreter has it: after `make demo` the venv is not on PATH.
    found = shutil.which("drift-auditor") or str(Path(sys.executable).with_name("drift-auditor"))
    command = os.path.relpath(found) if found.startswith(os.getcwd()) else found
    print(f"\ndone in {time.perf_counter() - started:.1f}s; the sandbox is stopped. Look at:")
    print(f"  {repo}/apps   the desired state (git log shows who declared what)")
    print("  reports/demo.html             the SOC 2 style report (open it in a browser)")
    print(f"  {ledger}       the audit ledger ({command} --config {config} history)")
    print(f"  {ledger.with_suffix('.signing-key')}  the key signing its checkpoints "
          f"({command} --config {config} public-key)")
    print(f"  {snap}         the live state, Secret values hashed")
    print(f"  {diff_json}             the drift report ({command} diff --output json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
