"""A kubeconfig that cannot be used stops ``drift-auditor run`` with one line naming the file
(and the line, when the YAML is broken) and exit 2: never a parser traceback, and no run
recorded in the ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auditor.ledger import reading, runs

GOOD = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""

CASES = {
    # (kubeconfig text or None for no file, --context, what the line says)
    "not YAML": ("apiVersion: v1\nkind: Config\nclusters: [\n  - name: c\n", "",
                 "line 4: invalid YAML"),
    "empty": ("", "", "empty"),
    "missing file": (None, "", "file not found"),
    "no such context": (GOOD, "staging", "'staging'"),
    "no current context": (GOOD.replace("current-context: x\n", ""), "", "current-context"),
    "not a mapping": ("- a\n- b\n", "", "not a valid kubeconfig"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_kubeconfig_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, context, says = CASES[case]
    kubeconfig = tmp_path / "kubeconfig"
    if text is not None:
        kubeconfig.write_text(text)
    desired = tmp_path / "git"
    desired.mkdir()
    args = ["--kubeconfig", str(kubeconfig), *(["--context", context] if context else [])]
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", "/dev/null", "run", "--desired",
         str(desired), *args],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DRIFT_AUDITOR_LEDGER_PATH": str(tmp_path / "l.db"),
             "HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drift-auditor: error: cluster: cannot load ")
    assert str(kubeconfig) in lines[0] and says in lines[0], lines[0]
    if (tmp_path / "l.db").exists():
        with reading(tmp_path / "l.db") as conn:
            assert runs(conn) == []
