"""Start-up: ``drift-auditor --version`` and a command's ``--help`` load click and the command
modules only, and ``diff`` against a snapshot file loads what comparing needs and nothing
for the cluster, the ledger, policies, alerts or the UI. Checked by what Python reports it
imported (``-X importtime``), never by wall time: these machines are too noisy for that."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]

# The libraries that cost start-up time (celpy/cel alone ~130 ms) and what each is for.
HEAVY = ("celpy", "cel", "jinja2", "kubernetes", "git", "slack_sdk", "cryptography",
         "sqlite_utils", "deepdiff", "ruamel")


def imported(*args: str, cwd: Path = ROOT) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The top-level packages the command imported, and how it ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_AUDITOR_")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "auditor.cli", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**env, "PYTHONPATH": str(ROOT)})
    names = {line.rpartition("|")[2].strip().split(".")[0]
             for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "auditor" in names, proc.stderr[-2000:]
    return names, proc


def test_version_imports_no_library() -> None:
    names, proc = imported("--version")
    assert proc.returncode == 0 and "version" in proc.stdout
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
    assert not names & {"yaml", "urllib3", "sqlite3"}, names


@pytest.mark.parametrize("command", [("diff", "--help"), ("--help",), ("policies", "--help"),
                                     ("history", "--help"), ("report", "--help")])
def test_help_imports_no_heavy_library(command: tuple[str, ...]) -> None:
    names, proc = imported(*command)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage:" in proc.stdout
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


def test_lazy_choices_still_list_and_check_their_values() -> None:
    _names, proc = imported("policies", "check", "--help")
    assert proc.returncode == 0 and "critical" in proc.stdout, proc.stdout
    _names, proc = imported("policies", "check", "--fail-on", "bogus")
    assert proc.returncode == 2 and "'bogus' is not one of" in proc.stderr, proc.stderr[-800:]
    _names, proc = imported("history", "--help")
    assert "transient" in proc.stdout and "config" in proc.stdout


def test_diff_against_a_snapshot_loads_only_what_comparing_needs(tmp_path: Path) -> None:
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                     "  name: app\n  namespace: shop\ndata:\n  mode: blue\n")
    live = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "app", "namespace": "shop", "uid": "u1",
                      "resourceVersion": "3"}, "data": {"mode": "green"}}]}
    (tmp_path / "live.json").write_bytes(orjson.dumps(live))
    names, proc = imported("--config", "/dev/null", "diff", "--desired", str(desired),
                           "--live", str(tmp_path / "live.json"), "-o", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]  # drift: data.mode
    assert orjson.loads(proc.stdout)["resources"][0]["drifts"], proc.stdout
    # git: a folder outside any work tree; deepdiff: no multi-line value drifted.
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
    # Reading a snapshot needs no HTTP stack (~60 ms of a start-up) and no revert machinery.
    assert "urllib3" not in names and "ssl" not in names, sorted(names)
