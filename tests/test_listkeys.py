"""The merge-key table (``auditor/engine/listkeys.json``) is what ``tools/gen_listkeys.py``
makes from the installed kubernetes-validate, byte for byte, and answers exactly as the
walk over the full schemas did: list keys and types, atomicity, known kinds and paths, the
fallback to another version of a kind, for every path of every kind the schemas describe."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.engine import schema
from auditor.engine.schema import ListInfo
from tools import gen_listkeys

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "auditor" / "engine" / "listkeys.json"


@functools.cache
def walker() -> gen_listkeys.SchemaWalker:
    return gen_listkeys.SchemaWalker(gen_listkeys.load_definitions(
        gen_listkeys.newest_schema_dir()))


def test_the_committed_table_is_what_the_generator_writes(tmp_path: Path) -> None:
    out = tmp_path / "listkeys.json"
    assert gen_listkeys.main(["--out", str(out)]) == 0
    assert out.read_bytes() == COMMITTED.read_bytes(), "stale table: run `make listkeys`"


def test_the_table_is_small_and_records_its_kubernetes_version() -> None:
    assert COMMITTED.stat().st_size < 400_000
    folder = gen_listkeys.newest_schema_dir()
    assert schema._schema_dir() == folder
    assert folder == f"v{schema.kubernetes_version()}-local"


def test_the_wheel_carries_the_table() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["auditor"]
    assert any(Path("engine/listkeys.json").match(p) or p.endswith("*.json") for p in patterns)


def test_kubernetes_validate_is_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("kubernetes-validate") for d in project["dependencies"])
    assert any(d.lower().startswith("kubernetes-validate")
               for d in project["optional-dependencies"]["dev"])
    for path in (ROOT / "auditor").rglob("*.py"):
        assert "kubernetes_validate" not in path.read_text(encoding="utf-8"), path


def _cases() -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    w = walker()
    for group, version, kind in sorted(w.kinds):
        for path in w.paths(group, version, kind):
            yield group, version, kind, path
            yield group, version, kind, (*path, "no-such-field")
        yield group, version, kind, ("[]",)
    # Kinds the schemas lack: another version of a known kind, a custom resource.
    for gvk in (("apps", "v1beta2", "Deployment"), ("batch", "v2", "CronJob"),
                ("", "v2", "Pod"), ("example.com", "v1", "Widget")):
        for path in ((), ("spec",), ("spec", "template", "spec", "containers"),
                     ("spec", "parts"), ("metadata", "ownerReferences")):
            yield (*gvk, path)


def test_every_path_of_every_kind_answers_as_the_full_schemas_did() -> None:
    schema.clear_cache()
    w = walker()
    compared = 0
    wrong: list[str] = []
    for group, version, kind, path in _cases():
        old = w.list_info(group, version, kind, path)
        new = schema._schema_list_info(group, version, kind, path)
        if (None if old is None else ListInfo(*old)) != new:  # type: ignore[arg-type]
            wrong.append(f"list_info {group}/{version} {kind} {path}: {old} != {new}")
        old_atomic = w.is_atomic(group, version, kind, path)
        new_atomic = schema.is_atomic(group, version, kind, path)
        if old_atomic is not new_atomic:
            wrong.append(f"is_atomic {group}/{version} {kind} {path}: {old_atomic} != "
                         f"{new_atomic}")
        compared += 1
        if len(wrong) > 20:
            break
    assert not wrong, "\n".join(wrong)
    assert compared > 40_000
    schema.clear_cache()


@pytest.mark.parametrize("gvk", [("apps", "v1", "Deployment"), ("apps", "v1beta2", "Deployment"),
                                 ("", "v1", "WatchEvent"), ("batch", "v9", "Job"),
                                 ("example.com", "v1", "Widget")])
def test_kinds_resolve_to_the_same_definition(gvk: tuple[str, str, str]) -> None:
    assert schema._kind_definition(*gvk) == walker().kind_definition(*gvk)
    assert schema.known_kind(*gvk) == (walker().kind_definition(*gvk) is not None)


def test_every_kind_is_in_the_table() -> None:
    assert schema._kinds() == walker().kinds
