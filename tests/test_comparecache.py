"""The verdict cache (auditor.engine.verdicts): a verdict comes back only for the exact
(object, resourceVersion, desired digest) it was made for and the same stamp; in-sync
verdicts cost a token, drifted ones keep their items; a damaged file is a cold start."""

from __future__ import annotations

from pathlib import Path

from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.engine.verdicts import CompareCache

WEB = ResourceKey("apps", "Deployment", "shop", "web")
DB = ResourceKey("", "ConfigMap", "shop", "db")
SRC = SourceInfo("apps/web.yaml")


def _warm(path: Path) -> None:
    cache = CompareCache(path, "s1")
    cache.remember(ObjectResult(WEB, "apps/v1", "in-sync"), "10", "d-web")
    drift = DriftItem("data.mode", "changed", "a", "b", "kubectl-edit", "Update",
                      "2026-11-25T10:00:00Z", "human")
    cache.remember(ObjectResult(DB, "v1", "drifted", (drift,)), "11", "d-db")
    cache.remember(ObjectResult(ResourceKey("", "ConfigMap", "shop", "x"), "v1", "missing"),
                   "12", "d-x")
    cache.save()


def test_verdicts_come_back_for_the_exact_pair_only(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.bin"
    _warm(path)
    cache = CompareCache(path, "s1")
    hit = cache.lookup(WEB, "10", "d-web", "apps/v1", SRC)
    assert hit == ObjectResult(WEB, "apps/v1", "in-sync", source=SRC)
    drifted = cache.lookup(DB, "11", "d-db", "v1", None)
    assert drifted is not None and drifted.status == "drifted"
    assert drifted.drifts[0].path == "data.mode" and drifted.drifts[0].manager == "kubectl-edit"
    assert cache.lookup(WEB, "13", "d-web", "apps/v1", SRC) is None  # live object changed
    assert cache.lookup(DB, "11", "d-db2", "v1", None) is None       # Git changed
    assert cache.lookup(ResourceKey("", "ConfigMap", "shop", "x"), "12", "d-x", "v1", None) is None
    assert cache.lookup(WEB, "", "d-web", "apps/v1", SRC) is None    # no resourceVersion
    assert cache.hits == 2
    cache.save()  # what was reused is kept for the run after
    again = CompareCache(path, "s1")
    assert again.lookup(WEB, "10", "d-web", "apps/v1", SRC) is not None
    assert again.lookup(DB, "11", "d-db", "v1", None) is not None


def test_other_stamp_or_damaged_file_is_a_cold_start(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.bin"
    _warm(path)
    assert CompareCache(path, "s2").lookup(WEB, "10", "d-web", "apps/v1", SRC) is None
    blob = path.read_bytes()
    for damaged in (blob[:20], blob[:-5], b"not a cache", b""):
        path.write_bytes(damaged)
        cache = CompareCache(path, "s1")
        assert cache.lookup(WEB, "10", "d-web", "apps/v1", SRC) is None
        assert cache.lookup(DB, "11", "d-db", "v1", None) is None
    fresh = tmp_path / "new" / "sub" / "x.bin"
    CompareCache(fresh, "s1").save()  # creates its folder
    assert fresh.is_file() and CompareCache(fresh, "s1").lookup(WEB, "10", "d-web", "apps/v1",
                                                                 SRC) is None
