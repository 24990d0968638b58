"""The other YAML the command reads, hostile, through the real ``drift-auditor`` command
under a memory ceiling: a live snapshot (``diff --live FILE``), a DriftIgnore file and a
compliance policy file, each holding the alias bomb. A snapshot or an ignore file the run
depends on is one readable line and exit 2; a policy file is a problem of that file while
the other policies load."""

from __future__ import annotations

import shutil
from pathlib import Path

from gitopsfixtures import config_file

from .hostile import bomb_manifest, configmap_text
from .test_git_faults import MAX_RSS_MIB, Command, _one_error_line

LIMIT = "aliases expand to more than 100,000 added nodes, the limit for one file"
POLICIES = Path(__file__).parents[2] / "policies"
DEAD_KUBECONFIG = "/nonexistent/kubeconfig"  # never read: the live side is a file here


def _desired(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "cm.yaml").write_text(configmap_text("settings"))
    return apps


def test_a_snapshot_holding_the_bomb_is_one_line(tmp_path: Path) -> None:
    snapshot = tmp_path / "live.yaml"
    snapshot.write_text(configmap_text("settings") + "---\n" + bomb_manifest())
    cli = Command(tmp_path, config_file(tmp_path, Path(DEAD_KUBECONFIG)))
    line = _one_error_line(cli("diff", "--desired", str(_desired(tmp_path)),
                               "--live", str(snapshot)))
    assert line == f"drift-auditor: error: {snapshot}: line 15 {LIMIT}", line
    assert cli.peak_mib < MAX_RSS_MIB, cli.peak_mib


def test_a_drift_ignore_file_holding_the_bomb_is_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "policies"
    rules.mkdir()
    (rules / "ignore.yaml").write_text(
        "apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nmetadata: {name: lol}\n"
        "spec:\n  match: {kind: ConfigMap}\n  reason: x\n"
        + bomb_manifest().split("x:\n", 1)[1].replace("  l0:", "x:\n  l0:", 1))
    snapshot = tmp_path / "live.yaml"
    snapshot.write_text(configmap_text("settings"))
    config = config_file(tmp_path, Path(DEAD_KUBECONFIG))
    config.write_text(config.read_text().replace(str(tmp_path / "no-policies"), str(rules)))
    cli = Command(tmp_path, config)
    line = _one_error_line(cli("diff", "--desired", str(_desired(tmp_path)),
                               "--live", str(snapshot)))
    assert line.startswith(f"drift-auditor: error: {rules / 'ignore.yaml'}: line "), line
    assert line.endswith(LIMIT), line
    assert cli.peak_mib < MAX_RSS_MIB, cli.peak_mib


def test_a_policy_file_holding_the_bomb_is_its_problem_and_the_others_load(
        tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(POLICIES / "disallow-host-pid.yaml", folder)
    (folder / "lol.yaml").write_text(
        "apiVersion: drift-auditor.io/v1\nkind: CompliancePolicy\nmetadata: {name: lol}\n"
        "spec:\n  params:\n" + bomb_manifest().split("x:\n", 1)[1].replace("  ", "    "))
    cli = Command(tmp_path, config_file(tmp_path, Path(DEAD_KUBECONFIG)))
    proc = cli("policies", "validate", str(folder))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "1 policies OK, 1 with errors", proc.stdout
    (problem,) = [line for line in lines if "lol.yaml" in line]
    assert problem.endswith(LIMIT) and len(problem) < 300, problem
    assert cli.peak_mib < MAX_RSS_MIB, cli.peak_mib
