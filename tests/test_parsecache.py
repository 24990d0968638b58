"""The parsed-manifest cache: hits give the same objects, errors are never cached, a
changed file misses, and an unwritable cache folder only costs speed."""

from __future__ import annotations

from pathlib import Path

from auditor.desired.parsecache import ParseCache
from auditor.desired.render import load_file

DOC = """\
# comment
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: x}
data: {when: 2024-01-01, big: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: x}
"""


def test_second_parse_comes_from_the_cache_and_is_identical(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(DOC)
    cache = ParseCache(tmp_path / "cache")
    first = load_file(tmp_path, "m.yaml", cache)
    second = load_file(tmp_path, "m.yaml", cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert second == first
    assert [o.document for o in second.objects] == [1, 2]
    assert second.objects[0].obj["data"]["when"] == "2024-01-01"


def test_changed_file_misses_and_errors_are_not_cached(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache")
    (tmp_path / "m.yaml").write_text(DOC)
    load_file(tmp_path, "m.yaml", cache)
    (tmp_path / "m.yaml").write_text(DOC.replace("name: b", "name: c"))
    assert load_file(tmp_path, "m.yaml", cache).objects[1].obj["metadata"]["name"] == "c"
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    for _ in range(2):
        bad = load_file(tmp_path, "bad.yaml", cache)
        assert bad.errors and "bad.yaml" in str(bad.errors[0])
    assert cache.hits == 0


def test_unwritable_cache_path_is_only_slower(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(DOC)
    (tmp_path / "file").write_text("not a folder")
    cache = ParseCache(tmp_path / "file" / "cache")
    assert len(load_file(tmp_path, "m.yaml", cache).objects) == 2
    assert len(load_file(tmp_path, "m.yaml", cache).objects) == 2
    assert cache.hits == 0
