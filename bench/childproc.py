"""Benchmarks run what they time in a fresh interpreter: its own imports, CPU and peak RSS.

A child script gets :func:`peak_mib` defined before its first line and prints one JSON
object on its last; :func:`run_child` runs it with the project on ``PYTHONPATH`` and returns
that object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

# VmHWM belongs to the exec'd image; ru_maxrss would carry the forking parent's peak.
PRELUDE = r"""
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` (with :data:`PRELUDE`) as ``python -c`` with ``args``; its JSON output."""
    # An installed package has its bytecode compiled: a child must not compile every module
    # it imports on each run (PYTHONDONTWRITEBYTECODE in the caller's environment).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, "-c", PRELUDE + script, *args], capture_output=True,
                          text=True, env={**env, "PYTHONPATH": "."})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return dict(json.loads(proc.stdout))
