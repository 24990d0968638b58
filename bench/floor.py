"""The floor any Python client pays: a plain ``orjson.loads`` of the same list responses,
timed in a fresh interpreter (the benchmark's parent holds the sandbox's objects, whose
garbage-collector load would inflate the floor and flatter the auditor)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import orjson

CHILD = r"""
import sys, time, orjson
bodies = [open(p, "rb").read() for p in sys.argv[1:]]
best = float("inf")
for _ in range(3):
    t = time.process_time()
    for body in bodies:
        orjson.loads(body)
    best = min(best, time.process_time() - t)
print(best)
"""

# The kinds bench.synth makes, as list paths.
SYNTH_PATHS = ("/apis/apps/v1/deployments", "/apis/apps/v1/statefulsets", "/api/v1/services",
               "/api/v1/configmaps", "/api/v1/secrets", "/api/v1/serviceaccounts",
               "/apis/rbac.authorization.k8s.io/v1/roles",
               "/apis/rbac.authorization.k8s.io/v1/rolebindings", "/apis/batch/v1/cronjobs",
               "/apis/networking.k8s.io/v1/ingresses")


def decode_floor(url: str, paths: tuple[str, ...] = SYNTH_PATHS,
                 page_size: int = 500) -> tuple[float, int]:
    """CPU seconds of decoding every page of ``paths`` (best of 3), and their bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        files: list[str] = []
        for path in paths:
            token = ""
            while True:
                query = f"?limit={page_size}" + (f"&continue={token}" if token else "")
                with urllib.request.urlopen(url + path + query) as resp:
                    body = resp.read()
                file = Path(tmp) / f"{len(files)}.json"
                file.write_bytes(body)
                files.append(str(file))
                token = (orjson.loads(body).get("metadata") or {}).get("continue") or ""
                if not token:
                    break
        size = sum(Path(f).stat().st_size for f in files)
        out = subprocess.run([sys.executable, "-c", CHILD, *files], capture_output=True,
                             text=True, check=True)
    return float(json.loads(out.stdout)), size
