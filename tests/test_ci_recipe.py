"""docs/ci.md works as printed: its ``sh ci`` scripts (snapshot, policies, diff) run against a
test API server holding the demo's manifests (applied as a GitOps controller would), with the
exit codes the page explains, SARIF 2.1.0 out; and the GitHub Actions workflow and GitLab CI
jobs on the page run exactly those scripts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from conftest import KubectlRunner

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ci.md"
SCRIPTS = ROOT / ".venv" / "bin"
HASH_KEY = "5f0c6e2a9b7d4e1f8a3c6b9d2e5f8a1c"


def blocks(info: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```" + re.escape(info) + r"\n(.*?)^```$",
                                            DOC.read_text(), re.S | re.M)]


def lines(script: str) -> list[str]:
    return [line.strip() for line in script.strip().splitlines() if line.strip()]


def recipe() -> dict[str, str]:
    found = blocks("sh ci")
    named = {name: s for s in found for name in ("snapshot", "policies", "diff")
             if f"drift-auditor {name} " in s}
    assert len(found) == len(named) == 3, found
    return named


def test_the_workflows_run_exactly_the_tested_scripts() -> None:
    tested = {tuple(lines(s)) for s in recipe().values()}
    [github] = [yaml.safe_load(b) for b in blocks("yaml github-actions")]
    [gitlab] = [yaml.safe_load(b) for b in blocks("yaml gitlab-ci")]
    assert set(github[True]) == {"pull_request"}  # YAML 1.1 reads the key `on` as True
    runs = [step["run"] for job in github["jobs"].values() for step in job["steps"]
            if "run" in step]
    scripts = ["\n".join(job["script"]) for name, job in gitlab.items()
               if isinstance(job, dict) and "script" in job]
    for script in (*runs, *scripts):
        assert tuple(lines(script)) in tested, script
    assert len(runs) == len(scripts) == 3
    uploads = [s for job in github["jobs"].values() for s in job["steps"]
               if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif")]
    assert [u["with"]["sarif_file"] for u in uploads] == ["policies.sarif"]
    assert github["jobs"]["policies"]["permissions"]["security-events"] == "write"
    assert github["jobs"]["diff"]["needs"] == "snapshot"


def test_the_documented_flags_exist() -> None:
    text = DOC.read_text()
    for command in ("policies check", "diff", "snapshot"):
        helped = subprocess.run([str(SCRIPTS / "drift-auditor"), *command.split(), "--help"],
                                capture_output=True, text=True, timeout=60).stdout
        used = {flag for line in text.splitlines() if f"drift-auditor {command} " in line
                for flag in re.findall(r"(?<=\s)(--?[a-z][a-z-]*)", line)}
        assert used, command
        for flag in used:
            assert re.search(rf"(^|[\s,]){re.escape(flag)}[\s,/=]", helped), (command, flag)


def _run(script: str, repo: Path, env: dict[str, str], shell: str) -> subprocess.CompletedProcess[str]:
    argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script] \
        if shell == "bash" else ["sh", "-e", "-c", script]
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("shell", ["bash", "sh"])  # GitHub's run: and a plain POSIX shell
def test_the_scripts_against_the_demo(shell: str, kubectl: KubectlRunner, kubeconfig: Path,
                                      tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "auditor" / "demo" / "shop", repo / "deploy")
    shutil.copytree(ROOT / "policies", repo / "policies")
    kubectl("apply", "--server-side", "--field-manager=argocd-controller",
            "-f", str(repo / "deploy" / "namespaces.yaml"))
    kubectl("apply", "--server-side", "--field-manager=argocd-controller",
            "-f", str(repo / "deploy"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFT_AUDITOR_", "KUBE"))}
    env = {**base, "PATH": f"{SCRIPTS}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}",
           "HOME": str(tmp_path), "KUBECONFIG_DATA": kubeconfig.read_text(),
           "DRIFT_HASH_KEY": HASH_KEY}
    scripts = recipe()

    # The job with the credentials: the snapshot, the credentials gone afterwards.
    proc = _run(scripts["snapshot"], repo, env, shell)
    assert proc.returncode == 0, proc.stderr[-3000:]
    snapshot = orjson.loads((repo / "snapshot.json").read_bytes())
    assert snapshot["kind"] == "List" and snapshot["items"]
    assert not (repo / "kubeconfig").exists() and not (repo / "hash-key").exists()

    # Policies: the demo breaks some (exit 1), SARIF 2.1.0 written, text in the log.
    proc = _run(scripts["policies"], repo, env, shell)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    sarif: dict[str, Any] = orjson.loads((repo / "policies.sarif").read_bytes())
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "drift-auditor"
    assert sarif["runs"][0]["results"]
    assert re.search(r"\d+ policies, \d+ results", proc.stdout), proc.stdout[-2000:]

    # Diff: in sync (Secrets compared by the shared key), then a pull request that changes
    # the cluster (still exit 0, said so), then no snapshot at all (exit 2, the job fails).
    proc = _run(scripts["diff"], repo, env, shell)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Git and the cluster agree" in proc.stdout, proc.stdout[-3000:]
    web = repo / "deploy" / "web.yaml"
    changed = re.sub(r"replicas: \d+", "replicas: 7", web.read_text(), count=1)
    assert changed != web.read_text()
    web.write_text(changed)
    proc = _run(scripts["diff"], repo, env, shell)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Merging changes the cluster" in proc.stdout and "spec.replicas" in proc.stdout, \
        proc.stdout[-3000:]
    (repo / "snapshot.json").unlink()
    proc = _run(scripts["diff"], repo, env, shell)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "snapshot.json" in proc.stderr
    assert not (repo / "hash-key").exists()
