"""``kubectl drift …``: the ``kubectl-drift`` console script (the same entry point as
``drift-auditor``) found and run by the real kubectl as a plugin, naming itself ``kubectl
drift`` in its usage. kubectl finds plugins as executables named ``kubectl-<name>`` on PATH;
here PATH holds the venv's scripts, as after ``pip install drift-auditor``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import kubectl_binary

from auditor import __version__
from auditor.cli import program_name

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(sys.executable).parent  # the venv's bin/, where pip put the console scripts


def kubectl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = kubectl_binary()
    env = {"PATH": os.pathsep.join((str(SCRIPTS), str(binary.parent), "/usr/bin", "/bin")),
           "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)


def test_the_plugin_is_a_console_script_of_the_same_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-drift"] == scripts["drift-auditor"] == "auditor.cli:main"
    if not (SCRIPTS / "kubectl-drift").exists():
        pytest.fail(f"{SCRIPTS / 'kubectl-drift'} missing: reinstall the project "
                    "(pip install -e '.[dev]')", pytrace=False)


def test_kubectl_lists_the_plugin(tmp_path: Path) -> None:
    proc = kubectl(tmp_path, "plugin", "list")
    assert str(SCRIPTS / "kubectl-drift") in proc.stdout, proc.stdout + proc.stderr


def test_kubectl_runs_the_plugin(tmp_path: Path) -> None:
    proc = kubectl(tmp_path, "drift", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"drift-auditor, version {__version__}"


def test_the_plugin_names_itself_kubectl_drift(tmp_path: Path) -> None:
    proc = kubectl(tmp_path, "drift", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: kubectl drift [OPTIONS] COMMAND [ARGS]..."), proc.stdout
    proc = kubectl(tmp_path, "drift", "run", "--help")
    assert proc.stdout.startswith("Usage: kubectl drift run [OPTIONS]"), proc.stdout
    # A bad flag: kubectl passes the plugin's usage error and exit status through.
    proc = kubectl(tmp_path, "drift", "diff", "--no-such-flag")
    assert proc.returncode == 2
    assert "Usage: kubectl drift diff [OPTIONS]" in proc.stderr, proc.stderr


def test_drift_auditor_keeps_its_own_name() -> None:
    proc = subprocess.run([str(SCRIPTS / "drift-auditor"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.startswith("Usage: drift-auditor [OPTIONS] COMMAND"), proc.stdout
    assert program_name("/usr/local/bin/drift-auditor") == "drift-auditor"
    assert program_name("/x/auditor/cli/__main__.py") == "drift-auditor"
    assert program_name("/home/u/.local/bin/kubectl-drift") == "kubectl drift"
    assert program_name("kubectl-drift_audit") == "kubectl drift-audit"
