"""The peers' own cases: 27 drift scenarios from Argo CD's gitops-engine and controller tests,
Flux's ssa tests and false-drift bug reports (tests/data/peer-corpus, a copy of the shared
peer corpus with its SOURCE.md files and scorer), run through the real ``drift-auditor diff``
and scored by the corpus's own ``score.py``: every figure must be 1.000, with no Secret value
in the output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "peer-corpus"


def test_the_engine_agrees_with_every_peer_case() -> None:
    command = (f"{sys.executable} -m auditor.cli --config /dev/null diff --desired {{desired}} "
               "--live {live} --output json")
    proc = subprocess.run([sys.executable, str(CORPUS / "score.py"), "--corpus", str(CORPUS),
                           "--cmd", command, "--min", "1.0"],
                          capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).parents[1])
    last = proc.stdout.strip().splitlines()[-1]
    assert "secret_leaks=0" in last and "errors=0" in last, proc.stdout
    assert proc.returncode == 0, proc.stdout
    figures = [part.split("=") for part in last.split() if "=" in part]
    scored = [value for name, value in figures
              if name in ("precision", "recall", "manager", "category")]
    assert len(scored) == 6 and set(scored) == {"1.000"}, last
