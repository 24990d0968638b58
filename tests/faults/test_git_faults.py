"""Git faults, through the real ``drift-auditor`` command against the sandbox with a real Git
repository as the configured source: a source that cannot be reached, a revision that does
not exist, a broken document among good ones, hostile YAML (an alias bomb plain and through
merge keys, an alias inside its own anchor, deep nesting, a huge document, a file past the
size limit) and a config file holding the bomb.

What must hold: a source that cannot be read is one readable line and exit 2 (auditing half
of Git would report false orphans); a file that cannot be read is a named problem (file,
document, line, which limit) and every other file is still audited; and the command stays
within a memory ceiling set on its process, so that a regression fails here instead of
taking the machine down. What becomes of the objects of a file that failed to parse is not
asserted here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitfixtures import RepoBuilder
from gitopsfixtures import config_file, sync_from_git

from auditor.support import yamlsafe

from .hostile import (
    alias_bomb_flow,
    big_scalar_manifest,
    bomb_manifest,
    configmap_text,
    deep_manifest,
    recursive_manifest,
)

pytestmark = pytest.mark.kubectl

# The command's own run takes ~100 MiB; the full bomb, unbounded, went past 3 GiB.
CEILING_MIB = 1024
MAX_RSS_MIB = 400

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"

# Run the CLI under RLIMIT_AS and report its own peak RSS (KiB) in a file.
_BOOT = """\
import resource, runpy, sys
limit = int(sys.argv[1]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
report, sys.argv = sys.argv[2], ["drift-auditor", *sys.argv[3:]]
try:
    runpy.run_module("auditor.cli", run_name="__main__", alter_sys=True)
finally:
    with open(report, "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


class Command:
    """The real command, under a memory ceiling, with its own HOME (the clone cache)."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config
        self.peak_mib = 0.0

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        report = self.folder / "peak-rss"
        proc = subprocess.run(
            [sys.executable, "-c", _BOOT, str(CEILING_MIB), str(report), "-q", "--config",
             str(self.config), *args],
            capture_output=True, text=True, timeout=240,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.folder / "home")})
        self.peak_mib = int(report.read_text()) / 1024
        return proc


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("drift-auditor: error: "), proc.stderr[-2000:]
    assert len(lines[0]) < 400, lines[0][:400]
    return lines[0]


def _source(url: str, **extra: str) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in {"url": url, "name": "apps", "paths": "[apps]",
                                                 "namespace": "shop", **extra}.items())
    return f"sources: [{{{fields}}}]\n"


def _repo(tmp_path: Path, files: dict[str, str]) -> RepoBuilder:
    origin = RepoBuilder(tmp_path / "origin")
    for rel, text in files.items():
        target = origin.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)  # as is: the hostile texts are not to be dedented
    origin.commit("Manifests")
    return origin


def _statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {f"{r['kind']}/{r['name']}": r["status"] for r in doc["resources"]
            if r.get("namespace") == "shop"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ----------------------------------------------------------------- the source itself


def test_an_unreachable_source_is_one_line_without_its_password(
        tmp_path: Path, kubeconfig: Path) -> None:
    url = f"http://auditor:hunter2-not-shown@127.0.0.1:{_closed_port()}/shop.git"
    cli = Command(tmp_path, config_file(tmp_path, kubeconfig, extra=_source(url)))
    for command in ("run", "diff"):
        line = _one_error_line(cli(command))
        assert "127.0.0.1" in line and "hunter2-not-shown" not in line, line
    assert not (tmp_path / "ledger.db").exists() or b"hunter2" not in (
        tmp_path / "ledger.db").read_bytes()


def test_a_revision_that_does_not_exist_is_one_line(tmp_path: Path, kubeconfig: Path) -> None:
    origin = _repo(tmp_path, {"apps/cm.yaml": configmap_text("settings")})
    cli = Command(tmp_path, config_file(tmp_path, kubeconfig, extra=_source(
        str(origin.path), revision="release-9")))
    line = _one_error_line(cli("run"))
    assert line.endswith("revision 'release-9' is neither a branch, a tag nor a commit"), line


# ----------------------------------------------------------------- files in the source


def test_a_broken_document_is_named_and_the_rest_of_git_is_audited(
        tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    good = NAMESPACE + "---\n" + configmap_text("settings") + "---\n" + configmap_text("flags")
    sync_from_git(kubectl, tmp_path / "applied", good)
    broken = (configmap_text("first") + "---\n"
              + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken, namespace: shop}\n"
                "data:\n  key: [unclosed\n"
              + "---\n" + configmap_text("last"))
    sync_from_git(kubectl, tmp_path / "applied", configmap_text("first") + "---\n"
                  + configmap_text("last"), name="around.yaml")
    origin = _repo(tmp_path, {"apps/good.yaml": good, "apps/broken.yaml": broken})
    cli = Command(tmp_path, config_file(tmp_path, kubeconfig, extra=_source(str(origin.path))))
    proc = cli("run", "--output", "json")
    assert proc.returncode == 2, proc.stderr  # a run with errors fails the Job
    doc = orjson.loads(proc.stdout)
    (problem,) = [p for p in doc["problems"] if p["where"] == "apps/broken.yaml"]
    assert problem["message"] == ("apps/broken.yaml: document 2, line 11: invalid YAML (while "
                                  "parsing a flow sequence (line 10): did not find expected "
                                  "',' or ']')")
    statuses = _statuses(doc)
    for name in ("settings", "flags", "first", "last"):
        assert statuses[f"ConfigMap/{name}"] == "in-sync", (name, statuses)


def test_hostile_yaml_is_named_per_file_within_a_memory_ceiling(
        tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    """Each hostile document follows a good one in its file: the good ones are audited,
    each hostile one is a problem naming its file, document, line and the limit."""
    hostile = {
        # The line of the smallest anchor that expands past the limit on its own (l5, m5).
        "bomb": (bomb_manifest("bomb"), 2, 15,
                 "aliases expand to more than 100,000 added nodes, the limit for one file"),
        "merge": (bomb_manifest("merge", merge=True), 2, 15,
                  "aliases expand to more than 100,000 added nodes, the limit for one file"),
        # The document's `x:` line, where the loop (or the nesting) starts.
        "loop": (recursive_manifest(), 2, 9, "an alias refers to a node that contains it"),
        "deep": (deep_manifest(yamlsafe.MAX_DEPTH + 50), 2, 9,
                 f"nested more than {yamlsafe.MAX_DEPTH} levels deep, the limit for a YAML "
                 "document"),
        "big": (big_scalar_manifest(8 * 1024 * 1024), 2, 5,  # where the document starts
                "a document larger than 3 MiB, the limit for one document"),
    }
    files = {"apps/good.yaml": NAMESPACE}
    for name, (text, *_rest) in hostile.items():
        files[f"apps/{name}.yaml"] = configmap_text(f"{name}-ok") + "---\n" + text
    sync_from_git(kubectl, tmp_path / "applied", NAMESPACE + "".join(
        "---\n" + configmap_text(f"{name}-ok") for name in hostile))
    origin = _repo(tmp_path, files)
    # A file past the size limit: a huge scalar, never read whole.
    with (origin.path / "apps" / "huge.yaml").open("w") as fh:
        fh.write(configmap_text("huge") + "blob: ")
        fh.write("x" * (yamlsafe.MAX_FILE_BYTES + 1024))
    origin.commit("A huge file")
    cli = Command(tmp_path, config_file(tmp_path, kubeconfig, extra=_source(str(origin.path))))

    proc = cli("run", "--output", "json")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert cli.peak_mib < MAX_RSS_MIB, cli.peak_mib
    doc = orjson.loads(proc.stdout)
    problems = {p["where"]: p["message"] for p in doc["problems"] if p["kind"] == "error"}
    for name, (_text, document, line, limit) in hostile.items():
        assert problems.pop(f"apps/{name}.yaml") == \
            f"apps/{name}.yaml: document {document}, line {line}: {limit}"
    assert problems.pop("apps/huge.yaml") == "apps/huge.yaml: larger than 64 MiB, the limit " \
                                             "for one file"
    assert not {w: m for w, m in problems.items() if w.startswith("apps/")}, problems
    statuses = _statuses(doc)
    for name in hostile:
        assert statuses[f"ConfigMap/{name}-ok"] == "in-sync", (name, statuses)
    assert len(proc.stdout) < 1_000_000


def test_a_config_file_holding_the_bomb_is_one_short_line(tmp_path: Path,
                                                           kubeconfig: Path) -> None:
    # Where a value is quoted in the error: include-kinds wants strings, and gets the bomb.
    config = config_file(tmp_path, kubeconfig, extra="scope:\n  include-kinds:\n  - "
                         + alias_bomb_flow() + "\n")
    cli = Command(tmp_path, config)
    for command in ("run", "diff"):
        line = _one_error_line(cli(command, "--desired", str(tmp_path)))
        assert line.endswith("aliases expand to more than 100,000 added nodes, the limit "
                             "for one file"), line
        assert str(config) in line
        assert cli.peak_mib < MAX_RSS_MIB, cli.peak_mib
