"""The comparison's verbatim fast path (auditor.engine.compare.compare_object): a desired
object present verbatim in a live object that only machines wrote is in sync without
normalising either side. It must never change a verdict: every pair the tests hold (the
peers' cases, the compare fixtures, the realistic live objects, the benchmark's generated
pairs with and without drift, and hand-made edge cases) gives the same result with the fast
path as without it, and wherever the raw subset holds the normalised one holds too."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditor.engine.compare import CompareSettings, Normaliser, _is_secret, _subset, compare_object
from auditor.engine.normalise import normalise
from auditor.engine.records import ResourceKey
from auditor.support import yamlsafe
from bench.compare_bench import drift, serverise
from bench.synth import objects

DATA = Path(__file__).parent / "data"
KEY = b"k" * 32


def raw_subset_implies(desired: dict[str, Any], live: dict[str, Any], normaliser: Normaliser,
                       secret_key: bytes) -> bool:
    """Whether the raw subset implies the normalised one (true where the fast path does not
    apply: a Secret, or no raw subset)."""
    if _is_secret(live) or not _subset(desired, live):
        return True
    return _subset(normaliser(desired, secret_key=secret_key),
                   normaliser(live, secret_key=secret_key))


def _docs(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".json":
        doc = orjson.loads(path.read_bytes())
        docs = doc.get("items", [doc]) if isinstance(doc, dict) else doc
    else:
        docs = list(yamlsafe.load_all(path.read_text(), yamlsafe.MANIFEST))
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
            if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
                yield from (d for d in doc["items"] if isinstance(d, dict))
            else:
                yield doc


def _ident(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name"))


def _pairs_in(desired_files: list[Path], live_files: list[Path]
              ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    live = {_ident(o): o for f in live_files for o in _docs(f)}
    for f in desired_files:
        for obj in _docs(f):
            match = live.get(_ident(obj))
            if match is not None:
                yield obj, match


def _all_pairs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for case in sorted((DATA / "peer-corpus").iterdir()):
        if (case / "live.json").exists():
            desired = sorted((case / "desired").rglob("*.y*ml"))
            out += [(case.name, d, li) for d, li in _pairs_in(desired, [case / "live.json"])]
    for desired in sorted((DATA / "compare").glob("*.desired.yaml")):
        live = desired.with_name(desired.name.replace(".desired.yaml", ".live.json"))
        out += [(desired.name, d, li) for d, li in _pairs_in([desired], [live])]
    out += [("data/desired", d, li) for d, li in _pairs_in(
        [DATA / "desired" / "manifests.yaml"], sorted((DATA / "live").glob("*.yaml")))]
    for i, obj in enumerate(objects(400)):
        live = serverise(obj, i)
        out.append((f"synth-{i}", obj, live))
        out.append((f"synth-{i}-drifted", obj, drift(copy.deepcopy(live))))
    return out


PAIRS = _all_pairs()


def _key(obj: dict[str, Any]) -> ResourceKey:
    return ResourceKey.of(obj)


def test_the_pairs_cover_the_fast_path_and_the_slow_one() -> None:
    fast = sum(1 for _, d, li in PAIRS if not _is_secret(li) and _subset(d, li))
    assert len(PAIRS) > 800 and 300 < fast < len(PAIRS), (len(PAIRS), fast)


@pytest.mark.parametrize("name, desired, live", PAIRS, ids=[p[0] for p in PAIRS])
def test_a_verbatim_subset_stays_a_subset_once_normalised(name: str, desired: dict[str, Any],
                                                          live: dict[str, Any]) -> None:
    assert raw_subset_implies(desired, live, normalise, KEY), name


def test_the_fast_path_never_changes_a_verdict() -> None:
    fast = CompareSettings(secret_key=KEY)
    # The same normaliser under another identity: the fast path is off for a stand-in.
    slow = CompareSettings(secret_key=KEY, normaliser=lambda o, secret_key: normalise(
        o, secret_key=secret_key))
    assert fast.raw_subset_decides() and not slow.raw_subset_decides()
    for name, desired, live in PAIRS:
        key = _key(live)
        assert (compare_object(key, desired, live, settings=fast)
                == compare_object(key, desired, live, settings=slow)), name


def test_edge_cases_where_raw_equality_is_not_the_whole_story() -> None:
    """Values that normalise differently on each side, or that only match once normalised."""
    base = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]}}
    cases = [
        # quantities: equal text, equal canonical form
        ({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1000m"}}}]}},
         {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1000m"}}}]}}),
        # an empty selector on a PodDisruptionBudget (selects everything)
        ({"spec": {"selector": {}}}, {"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
        # status and server-owned metadata declared in Git
        ({"status": {"phase": "x"}}, {"status": {"phase": "x"}}),
        # an annotation kubectl writes
        ({"metadata": {"name": "c", "namespace": "n", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}}},
         {"metadata": {"name": "c", "namespace": "n", "annotations": {
             "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}),
        # zero and false values the server drops
        ({"spec": {"minReadySeconds": 0, "paused": False}},
         {"spec": {"minReadySeconds": 0, "paused": False}}),
    ]
    fast = CompareSettings(secret_key=KEY)
    slow = CompareSettings(secret_key=KEY, normaliser=lambda o, secret_key: normalise(
        o, secret_key=secret_key))
    for kind in ("ConfigMap", "Deployment", "PodDisruptionBudget", "StatefulSet"):
        for extra_desired, extra_live in cases:
            desired = {**copy.deepcopy(base), "kind": kind, **copy.deepcopy(extra_desired)}
            desired["metadata"] = {**extra_desired.get("metadata", {}), "name": "c",
                                   "namespace": "n"}
            live = {**copy.deepcopy(base), "kind": kind, **copy.deepcopy(extra_live)}
            live["metadata"] = {**base["metadata"], **extra_live.get("metadata", {})}
            assert raw_subset_implies(desired, live, normalise, KEY), (kind, extra_desired)
            key = _key(live)
            assert (compare_object(key, desired, live, settings=fast)
                    == compare_object(key, desired, live, settings=slow)), (kind, extra_desired)
