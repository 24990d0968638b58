"""Packed objects (auditor.support.packed): what the parser produces comes back equal, values JSON
cannot carry survive in memory but never reach the on-disk parse cache, and desired objects
decode with their namespace from the key."""

from __future__ import annotations

from pathlib import Path

from auditor.desired.parsecache import ParseCache
from auditor.desired.render import load_file
from auditor.desired.state import DesiredObject, Manifests, load_folder
from auditor.engine.records import ResourceKey, SourceInfo
from auditor.support import packed


def test_round_trip_keeps_order_types_and_unicode() -> None:
    obj = {"kind": "ConfigMap", "z": 1, "a": [1.5, None, True, "ü", {"b": -3}], "big": 2**62}
    raw = packed.pack(obj)
    back = packed.unpack(raw)
    assert back == obj and list(back) == list(obj)
    assert packed.portable(raw)
    assert packed.unpack(raw) is not back  # a fresh copy each time: callers may edit it


def test_values_json_cannot_hold_fall_back_in_memory_only(tmp_path: Path) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
           "data": {"n": 2**70}, "binaryData": {1: b"\x00\xff"}}
    raw = packed.pack(obj)
    assert not packed.portable(raw)
    assert packed.unpack(raw) == obj

    (tmp_path / "m.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {n: 12345678901234567890123}\n")
    cache = ParseCache(tmp_path / "cache")
    first = load_file(tmp_path, "m.yaml", cache)
    assert first.objects[0].obj["data"]["n"] == 12345678901234567890123
    again = load_file(tmp_path, "m.yaml", cache)
    assert again == first and cache.hits == 0  # parsed afresh, never stored half-right


def test_corrupt_cache_entry_is_a_miss(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    cache = ParseCache(tmp_path / "cache")
    first = load_file(tmp_path, "m.yaml", cache)
    [entry] = list((tmp_path / "cache").glob("??/*.bin"))
    entry.write_bytes(entry.read_bytes()[:-3])  # truncated by a full disk, say
    assert load_file(tmp_path, "m.yaml", cache) == first
    assert cache.hits == 0 and cache.misses == 2


def test_prune_removes_entries_unused_for_the_given_days(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    cache = ParseCache(tmp_path / "cache")
    load_file(tmp_path, "m.yaml", cache)
    assert cache.prune(1) == 0
    import time
    assert cache.prune(1, now=time.time() + 2 * 86400) == 1
    assert not list((tmp_path / "cache").glob("??/*"))


def test_desired_object_takes_its_namespace_from_the_key(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: stray}\n")
    state = load_folder(tmp_path, "shop")
    cm = state.objects[ResourceKey("", "ConfigMap", "shop", "a")]
    assert cm.obj == {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "a", "namespace": "shop"}, "data": {"k": "v"}}
    assert cm.api_version == "v1"
    ns = state.objects[ResourceKey("", "Namespace", "", "shop")]
    assert ns.obj["metadata"] == {"name": "shop"}
    view = Manifests(state.objects)
    assert view[cm.key] == cm.obj and view.get(ResourceKey("", "X", "", "y")) is None
    assert len(view) == 2 and set(view) == set(state.objects)


def test_digest_follows_the_declared_content() -> None:
    key = ResourceKey("", "ConfigMap", "a", "x")

    def desired(data: dict[str, str], file: str) -> DesiredObject:
        raw = packed.pack({"apiVersion": "v1", "data": data})
        return DesiredObject(key, raw, SourceInfo(file), "v1", packed.digest(raw))

    one, same, other = desired({"k": "1"}, "f"), desired({"k": "1"}, "g"), desired({"k": "2"}, "f")
    assert one.digest == same.digest != other.digest


def test_cache_retention_runs_once_a_day(tmp_path: Path) -> None:
    import time

    from auditor.support.files import once_a_day

    (tmp_path / "m.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    cache = ParseCache(tmp_path / "cache")
    load_file(tmp_path, "m.yaml", cache)
    later = time.time() + 40 * 86400
    stamp = tmp_path / "cache" / ".pruned"
    assert once_a_day(stamp, now=later)                # first pass of the day
    assert cache.prune(30, now=later) == 1             # the old entry goes
    assert not once_a_day(stamp, now=later + 3600)     # within the day: not even looked at
    assert once_a_day(stamp, now=later + 86400)        # the next day again
    (tmp_path / "file").write_text("not a folder")
    assert not once_a_day(tmp_path / "file" / ".pruned", now=later)  # unusable: never due
    assert ParseCache(tmp_path / "missing").prune(30) == 0
