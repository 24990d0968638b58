"""The parsed-manifest cache: hits give the same objects, errors are never cached, a
changed file misses, an unwritable cache folder only costs speed, and a document declaring
a Secret is never stored, only parsed again (nor are entries of older layouts, which held
them, kept)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from auditor.desired import render
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


# A Secret as Git may hold one: base64 `data`, `stringData`, and the annotation `kubectl
# apply` leaves, which repeats both.
SECRET_DATA = "s3cr3t-in-data-never-cached"
SECRET_STRING = "s3cr3t-in-stringdata-never-cached"
SECRET_DOC = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: token
  namespace: x
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{"apiVersion":"v1","kind":"Secret","data":{{"a":"{base64.b64encode(SECRET_DATA.encode()).decode()}"}},"stringData":{{"b":"{SECRET_STRING}"}}}}'
data: {{a: {base64.b64encode(SECRET_DATA.encode()).decode()}}}
stringData: {{b: {SECRET_STRING}}}
"""


def secret_forms() -> list[bytes]:
    """Every form of the two values that must never reach a file beside the ledger."""
    out = []
    for value in (SECRET_DATA, SECRET_STRING):
        out += [value.encode(), base64.b64encode(value.encode()),
                base64.b64encode(value.encode()).rstrip(b"=")]
    return out


def files_holding_a_secret(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()
                  and any(form in p.read_bytes() for form in secret_forms()))


def test_documents_declaring_a_secret_are_parsed_each_time_never_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Secret between two documents: the merge must keep the file's order.
    (tmp_path / "secret.yaml").write_text(DOC + "---\n" + SECRET_DOC + "---\n" + DOC)
    (tmp_path / "m.yaml").write_text(DOC)
    cache = ParseCache(tmp_path / "cache")
    first = [load_file(tmp_path, f, cache) for f in ("secret.yaml", "m.yaml")]
    parsed: list[object] = []
    real = render.parse_manifests
    monkeypatch.setattr(render, "parse_manifests",
                        lambda text, rel, documents=None: parsed.append(documents)
                        or real(text, rel, documents))
    second = [load_file(tmp_path, f, cache) for f in ("secret.yaml", "m.yaml")]
    assert second == first
    assert [o.document for o in second[0].objects] == [1, 2, 3, 4, 5]
    token = second[0].objects[2].obj
    assert token["stringData"] == {"b": SECRET_STRING}  # the run has the value it needs
    assert cache.hits == 2
    assert parsed == [(3,)], "a hit parses only the document that declares the Secret"
    assert list((tmp_path / "cache").rglob("*.bin"))
    assert files_holding_a_secret(tmp_path / "cache") == []


def test_entries_of_an_older_layout_are_removed_before_the_first_write(tmp_path: Path) -> None:
    # What an earlier version left: an entry holding a Secret in clear.
    old = tmp_path / "cache" / "ab" / ("ab" + "0" * 62 + ".bin")
    old.parent.mkdir(parents=True)
    old.write_bytes(b'[[1,["v1","Secret","token","x"],40]]\n' + SECRET_DATA.encode())
    (tmp_path / "m.yaml").write_text(DOC)
    cache = ParseCache(tmp_path / "cache")
    load_file(tmp_path, "m.yaml", cache)
    assert not old.exists()
    assert len(list((tmp_path / "cache").glob("??/*.bin"))) == 1
    # Once: the entries this layout wrote stay.
    (tmp_path / "n.yaml").write_text(DOC.replace("name: a", "name: n"))
    load_file(tmp_path, "n.yaml", ParseCache(tmp_path / "cache"))
    assert len(list((tmp_path / "cache").glob("??/*.bin"))) == 2
