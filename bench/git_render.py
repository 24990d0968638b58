"""Benchmark: desired state from Git — 5,000 manifests in 500 files, ~50 commits, attributed.

Builds a real repository (10 multi-document YAML files per commit, five authors, every
tenth commit also edits older files), then times :func:`auditor.desired.state.load_desired` end to
end: clone into a fresh cache, render every file, default namespaces, attribute every object
to the last commit of its file (one history walk). A second run times the warm path (fetch
into the existing clone), then the path a run takes with its caches (same commit: the
state cache; one file changed: the parse cache), and the phases on their own.

Goal: < 5 s for the cold run. Run: ``python -m bench.git_render`` (or ``python -m bench render``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from auditor.config import Source
from auditor.desired import gitrepo, render
from auditor.desired.parsecache import ParseCache
from auditor.desired.state import load_desired
from auditor.desired.statecache import StateCache
from bench.synth import objects

MANIFESTS = 5_000
FILES = 500
COMMITS = 50
AUTHORS = ("Alice", "Bob", "Carol", "Dave", "Erin")

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
    base = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env={**base, **(env or {})}, check=True,
                   capture_output=True)


def build_repo(root: Path) -> Path:
    """The benchmark repository: ``apps/<ns>/file-NNN.yaml``, ten objects per file."""
    repo = root / "origin"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    docs = list(objects(MANIFESTS))
    per_file = MANIFESTS // FILES
    files_per_commit = FILES // COMMITS
    paths = []
    for f in range(FILES):
        ns = docs[f * per_file]["metadata"]["namespace"]
        paths.append(Path("apps") / ns / f"file-{f:03d}.yaml")
    for c in range(COMMITS):
        touched = list(range(c * files_per_commit, (c + 1) * files_per_commit))
        if c % 10 == 9:
            touched = [*touched, c - 5, c * 3]  # some commits also edit older files
        for f in touched:
            chunk = docs[f * per_file:(f + 1) * per_file]
            if f < c * files_per_commit:
                for d in chunk:
                    d["metadata"].setdefault("annotations", {})["revision"] = str(c)
            target = repo / paths[f]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.dump_all(chunk, Dumper=_Dumper, sort_keys=False),
                              encoding="utf-8")
        who = AUTHORS[c % len(AUTHORS)]
        when = f"2026-03-{1 + c // 24:02d}T{c % 24:02d}:00:00Z"
        env = {"GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who.lower()}@example.com",
               "GIT_COMMITTER_NAME": "CI", "GIT_COMMITTER_EMAIL": "ci@example.com",
               "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"Change set {c} (#{100 + c})", env=env)
    return repo


def bench_render(tmpdir: str) -> dict[str, Any]:
    root = Path(tmpdir)
    started = time.perf_counter()
    repo = build_repo(root)
    build_s = time.perf_counter() - started
    source = Source(url=str(repo), name="bench", paths=("apps",), namespace="default")

    started = time.perf_counter()
    cold = load_desired([source], cache_dir=root / "cache", secrets_env={})
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = load_desired([source], cache_dir=root / "cache", secrets_env={})
    warm_s = time.perf_counter() - started

    # As a run does it, with the caches beside its ledger: the first run fills them, a run
    # on the same commit takes the whole state back, a run after a one-file commit parses
    # that file only (the state itself is assembled again).
    parse_cache = ParseCache(root / "caches" / "manifests")
    state_cache = StateCache(root / "caches" / "state")

    def cached() -> float:
        started = time.perf_counter()
        load_desired([source], cache_dir=root / "cache", secrets_env={},
                     parse_cache=parse_cache, state_cache=state_cache)
        return time.perf_counter() - started

    filling_s, same_commit_s = cached(), cached()
    touched = min((repo / "apps").rglob("*.yaml"))
    with touched.open("a", encoding="utf-8") as fh:
        fh.write("# reviewed\n")
    _git(repo, "commit", "-q", "-am", "Touch one file",
         env={"GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.com",
              "GIT_COMMITTER_NAME": "CI", "GIT_COMMITTER_EMAIL": "ci@example.com"})
    one_file_s = cached()
    state_hits = state_cache.hits

    # Phases on their own, on the warm clone.
    started = time.perf_counter()
    checkout = gitrepo.sync(str(repo), cache_dir=root / "cache")
    sync_s = time.perf_counter() - started
    started = time.perf_counter()
    rendered = render.render_path(checkout.path, "apps")
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    checkout._history.clear()
    files = {o.file: [o.file] for o in rendered.objects}
    attributed = checkout.last_commits(files)
    history_s = time.perf_counter() - started

    attributed_objects = sum(1 for o in cold.objects.values() if o.source.commit)
    return {
        "objects": len(cold.objects),
        "files": len(files),
        "commits": COMMITS,
        "attributed_objects": attributed_objects,
        "files_attributed": len(attributed),
        "problems": len(cold.problems) + len(warm.problems),
        "build_repo_s": round(build_s, 2),
        "cold_clone_render_attribute_s": round(cold_s, 2),
        "warm_fetch_render_attribute_s": round(warm_s, 2),
        "with_caches_first_s": round(filling_s, 2),
        "with_caches_same_commit_s": round(same_commit_s, 2),
        "with_caches_one_file_commit_s": round(one_file_s, 2),
        "state_cache_hits": state_hits,
        "phase_sync_s": round(sync_s, 3),
        "phase_parse_s": round(parse_s, 3),
        "phase_history_walk_s": round(history_s, 3),
        "goal_s": 5.0,
        "ok": cold_s < 5.0 and attributed_objects == MANIFESTS,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = bench_render(tmp)
    for key, value in result.items():
        print(f"{key:32} {value}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
