"""The verdict cache (auditor.engine.verdicts): a verdict comes back only for the exact
(object, resourceVersion, desired digest) it was made for and the same stamp; in-sync
verdicts cost a token, drifted ones keep their items; damaged bytes are a cold start."""

from __future__ import annotations

from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.engine.verdicts import VerdictCache

WEB = ResourceKey("apps", "Deployment", "shop", "web")
DB = ResourceKey("", "ConfigMap", "shop", "db")
SRC = SourceInfo("apps/web.yaml")


def _warm() -> bytes:
    cache = VerdictCache("s1")
    cache.remember(ObjectResult(WEB, "apps/v1", "in-sync"), "10", "d-web")
    drift = DriftItem("data.mode", "changed", "a", "b", "kubectl-edit", "Update",
                      "2026-11-25T10:00:00Z", "human")
    cache.remember(ObjectResult(DB, "v1", "drifted", (drift,)), "11", "d-db")
    cache.remember(ObjectResult(ResourceKey("", "ConfigMap", "shop", "x"), "v1", "missing"),
                   "12", "d-x")
    return b"".join(cache.chunks())


def test_verdicts_come_back_for_the_exact_pair_only() -> None:
    cache = VerdictCache("s1", _warm())
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
    # What was reused is kept for the run after.
    again = VerdictCache("s1", b"".join(cache.chunks()))
    assert again.lookup(WEB, "10", "d-web", "apps/v1", SRC) is not None
    assert again.lookup(DB, "11", "d-db", "v1", None) is not None


def test_other_stamp_or_damaged_bytes_are_a_cold_start() -> None:
    blob = _warm()
    assert VerdictCache("s2", blob).lookup(WEB, "10", "d-web", "apps/v1", SRC) is None
    for damaged in (blob[:20], blob[:-5], b"not a cache", b""):
        cache = VerdictCache("s1", damaged)
        assert cache.lookup(WEB, "10", "d-web", "apps/v1", SRC) is None
        assert cache.lookup(DB, "11", "d-db", "v1", None) is None
    assert VerdictCache("s1").chunks()[0].startswith(b'{"format"')
