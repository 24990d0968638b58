"""The fast YAML path (auditor.support.yamlfast: rapidyaml + orjson) against the PyYAML
manifest loader: every document of the corpus (tests/data/yaml-corpus: YAML 1.1 scalars,
anchors, merge keys, tags, block scalars, BOM, CRLF, errors…) and every YAML file of the
repository loads to the same values of the same types, or to the same errors, either way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from auditor.desired import render
from auditor.desired.render import RenderResult, load_file, parse_manifests
from auditor.support import yamlfast, yamlsafe

pytestmark = pytest.mark.skipif(not yamlfast.AVAILABLE, reason="rapidyaml not installed")

REPO = Path(__file__).parents[1]
CORPUS = Path(__file__).parent / "data" / "yaml-corpus"


def typed(value: Any) -> Any:
    """``value`` with every type spelled out: ``True`` and ``1``, ``1`` and ``1.0``, ``"1"``
    differ; NaN equals NaN."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig")


def _files(*roots: Path) -> list[Path]:
    out: list[Path] = []
    for root in roots:
        if root.is_dir():
            out += sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml")
                          and p.is_file() and ".venv" not in p.parts)
    return out


def _parse(text: str, file: str, fast: bool, monkeypatch: pytest.MonkeyPatch) -> RenderResult:
    monkeypatch.setattr(render, "FAST_YAML", fast)
    return parse_manifests(text, file)


def _outcome(result: RenderResult) -> tuple[list[Any], list[str]]:
    return ([(o.file, o.document, o.api_version, o.kind, o.name, o.namespace, typed(o.obj))
             for o in result.objects], [str(e) for e in result.errors])


def _documents(text: str) -> list[str]:
    return [chunk for _index, _line, chunk in render._split_documents(text)]


def _pyyaml(chunk: str) -> Any:
    try:
        return typed(yamlsafe.load(chunk, yamlsafe.MANIFEST))
    except yamlsafe.YAMLError as exc:
        return ("error", str(exc))


CORPUS_FILES = _files(CORPUS)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.relative_to(CORPUS).as_posix()
                                                    for p in CORPUS_FILES])
def test_every_corpus_document_loads_as_pyyaml_loads_it(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _text(path)
    for chunk in _documents(text):
        try:
            fast = typed(yamlfast.load(chunk))
        except yamlfast.Fallback:
            continue
        assert fast == _pyyaml(chunk), chunk[:200]
    assert _outcome(_parse(text, path.name, True, monkeypatch)) == \
        _outcome(_parse(text, path.name, False, monkeypatch))


def test_the_corpus_is_mostly_on_the_fast_path_and_the_tricky_parts_are_not() -> None:
    """The fast path must carry ordinary manifests (else it is no faster) and hand back
    what it cannot build exactly."""
    fast = {p.name for p in CORPUS_FILES if p.parent == CORPUS and any(
        _loads_fast(chunk) for chunk in _documents(_text(p)))}
    for name in ("k8s-realistic.yaml", "duplicate-keys.yaml", "block-scalars.yaml",
                 "crlf.yaml", "long-strings.yaml", "timestamps.yaml", "deep-60-flow.yaml"):
        assert name in fast, name
    for name in ("anchors.yaml", "merge-keys.yaml", "tags.yaml", "tabs.yaml", "keys.yaml",
                 "booleans.yaml", "numbers.yaml", "nulls.yaml", "special-floats.yaml",
                 "documents-not-mappings.yaml", "deep-80.yaml", "flow-collections.yaml"):
        assert name not in fast, name


def _loads_fast(chunk: str) -> bool:
    try:
        yamlfast.load(chunk)
    except yamlfast.Fallback:
        return False
    return True


@pytest.mark.parametrize("value", [
    "yes", "Yes", "NO", "on", "Off", "True", "FALSE", "~", "Null", "NULL", "0123", "0x1F",
    "1_000", "0o17", "0b101", "190:20:30", ".5", "-.5", "1e3", "1.5e+3", "1.", ".inf",
    "-.Inf", ".nan", "inf", "nan", "Infinity", "+1", "00", "-0", "12345678901234567890123",
    "1.5", "8080", "true", "false", "null", "", "=", "2024-01-01", "y", "n", "-", "<<"])
def test_each_scalar_plain_and_quoted_reads_as_in_yaml_1_1(value: str) -> None:
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n"
    for text in (f"{head}v: {value}\n", f"{head}v: '{value}'\n", f'{head}v: "{value}"\n',
                 f"{head}v: [{value}]\n", f"{head}m:\n  {value or 'k'}: x\n",
                 f"{head}m: {{'{value}': x}}\n", f"{head}s:\n  - {value}\n"):
        try:
            got = typed(yamlfast.load(text))
        except yamlfast.Fallback:
            continue
        assert got == _pyyaml(text), text


def test_ryml_writes_the_plain_scalars_it_keeps_as_json_literals_unquoted() -> None:
    """yamlfast trusts a JSON string ``"true"``/``"8080"``/``"1.5"``/``""`` to come from a
    quoted YAML scalar: ryml must write the plain forms unquoted (or as null)."""
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n"
    for plain, value in (("true", True), ("false", False), ("null", None), ("8080", 8080),
                         ("-3", -3), ("0", 0), ("", None)):
        assert yamlfast.load(f"{head}v: {plain}\n")["v"] == value
        assert type(yamlfast.load(f"{head}v: [{plain}]\n" if plain else
                                  f"{head}v:\n- {plain}\n")["v"][0]) is type(value)
    with pytest.raises(yamlfast.Fallback):  # a float: which text it came from is unknown
        yamlfast.load(f"{head}v: 1.5\n")


def test_bounds_and_errors_are_left_to_pyyaml() -> None:
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n"
    for text in (head + "x: " + "y" * (yamlsafe.MAX_DOCUMENT_BYTES // 4 + 1) + "\n",
                 head + "a: b: c\n", head + "x: *alias\n", head + "x: " + "[" * 200 +
                 "]" * 200 + "\n"):
        with pytest.raises(yamlfast.Fallback):
            yamlfast.load(text)


def test_stars_in_quoted_scalars_stay_fast_and_quoted_aliases_do_not() -> None:
    """A CronJob's schedule (``"0 3 * * *"``) is a string on both paths and needs no PyYAML;
    ``*"x``/``*'x`` are aliases to PyYAML (an error without the anchor) but strings to ryml:
    they must fall back, wherever they stand."""
    head = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: s}\n"
    for text in (head + 'spec: {schedule: "0 3 * * *"}\n', head + "schedule: '*/5 * * * *'\n",
                 head + 'v: ["*", "a*"]\n', head + "verbs:\n- '*'\n",
                 head + "v: ['!', \"&\", '*/5 * * * *']\n"):
        assert typed(yamlfast.load(text)) == _pyyaml(text), text
    for tail in ('x: *"y\n', "x: *'y\n", 'x: [*"y]\n', '- *"y"\n', '*"k": v\n',
                 'x: "a *\\" b"\n',
                 # Bare stars: errors to PyYAML, the string "*" to ryml.
                 "x: *\n", "x: [*, b]\n", "x: {k: *}\n", "- *\n", "x: [ * ]\n", "x: ? *\n",
                 "x: *#c\n", "x: [!]\n", "x: [&]\n"):
        with pytest.raises(yamlfast.Fallback):
            yamlfast.load(head + ("seq:\n" + tail if tail.startswith("-") else tail))


# Files of the repository that are YAML, and a peer corpus when one is shared on this machine.
REPO_FILES = [p for p in _files(REPO / "tests", REPO / "auditor" / "demo", REPO / "policies",
                                REPO / "deploy", Path("/work/shared/peer-corpus"))
              if not p.is_relative_to(CORPUS)]


def test_every_yaml_file_of_the_repository_loads_the_same_either_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compared = fast_docs = 0
    for path in REPO_FILES:
        try:
            text = _text(path)
        except (UnicodeDecodeError, OSError):
            continue
        if "{{" in text:  # a Helm template, not YAML until rendered
            continue
        for chunk in _documents(text):
            try:
                fast = typed(yamlfast.load(chunk))
            except yamlfast.Fallback:
                continue
            fast_docs += 1
            assert fast == _pyyaml(chunk), f"{path}: {chunk[:200]}"
        assert _outcome(_parse(text, str(path), True, monkeypatch)) == \
            _outcome(_parse(text, str(path), False, monkeypatch)), path
        compared += 1
    assert compared > 50 and fast_docs > 50, (compared, fast_docs)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pyyaml"])
def test_errors_name_file_document_and_line_on_both_paths(
        fast: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "FAST_YAML", fast)
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "bad.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata:\n  a: b: c\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: after, labels: {on: yes}}\n")
    result = load_file(tmp_path, "apps/bad.yaml")
    assert [o.name for o in result.objects] == ["ok", "after"]
    assert result.objects[1].obj["metadata"]["labels"] == {True: True}
    (err,) = result.errors
    assert (err.file, err.document, err.line) == ("apps/bad.yaml", 2, 9)
    assert str(err).startswith("apps/bad.yaml: document 2, line 9: invalid YAML (")
    (err,) = parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
                             "data: {a: @x}\n", "f.yaml").errors
    assert (err.file, err.document, err.line) == ("f.yaml", 1, 4)
