"""Live snapshots as files: writing a ``kubectl get -o json`` style ``List`` from a cluster,
and reading one (JSON or YAML, a file or a folder of them) back for ``diff --live FILE``.

Secret values are redacted on the way out: each ``data`` value (and a Secret's
``last-applied-configuration`` annotation, which repeats them) becomes a keyed hash, so a
snapshot file can be shared without leaking what a Secret holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from auditor.config import ScopeConfig
from auditor.engine.normalise import is_secret_hash, secret_hash, secret_needles_of
from auditor.errors import SnapshotError
from auditor.live.records import APIResource, ListStats, Page
from auditor.support import gcpolicy, packed, yamlsafe

if TYPE_CHECKING:  # the HTTP stack is imported only to take a snapshot, not to read one
    from auditor.live.client import Cluster

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# One snapshot file, read whole: 100,000 objects as `kubectl get -o json` are ~500 MiB.
MAX_SNAPSHOT_BYTES = 2048 * yamlsafe.MiB
# One YAML document of a snapshot (a `kubectl get -o yaml` List is one): PyYAML needs ~60
# bytes of memory per byte of YAML, so larger snapshots are for JSON.
MAX_SNAPSHOT_YAML_DOCUMENT_BYTES = 32 * yamlsafe.MiB


def _redact_data(value: str, key: bytes) -> str:
    """The keyed hash of a base64 ``data`` value, exactly as normalisation computes it."""
    if is_secret_hash(value):
        return value
    try:
        return secret_hash(base64.b64decode("".join(value.split()), validate=True), key)
    except (binascii.Error, ValueError):
        return secret_hash(value, key)


def redact_value(value: str, key: bytes) -> str:
    return value if is_secret_hash(value) else secret_hash(value, key)


def redact_secret(obj: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A copy of a Secret with its values replaced by keyed hashes."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = dict(obj)
    if isinstance(obj.get("data"), dict):
        out["data"] = {k: _redact_data(str(v or ""), key) for k, v in obj["data"].items()}
    if isinstance(obj.get("stringData"), dict):
        out["stringData"] = {k: redact_value(str(v or ""), key)
                             for k, v in obj["stringData"].items()}
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if annotations:
        # last-applied repeats the values; other tools' annotations may too.
        needles = secret_needles_of(obj)
        out["metadata"] = {**meta, "annotations": {
            name: redact_value(str(text), key)
            if name == LAST_APPLIED or any(n in str(text) for n in needles) else text
            for name, text in annotations.items()}}
    return out


@dataclass
class WriteStats:
    objects: int = 0
    duplicates: int = 0


def write_list(pages: Iterable[Page], out: IO[bytes], *, secret_key: bytes) -> WriteStats:
    """Write the pages as one ``List`` sorted by object key.

    Items are kept as serialised bytes until the sort, which costs a fraction of holding the
    decoded objects. After a list restart (expired continue token) the later copy of an
    object wins.
    """
    stats = WriteStats()
    # Plain tuples in ResourceKey's field order: the same sort, at a third of the cost.
    rows: dict[tuple[str, str, str, str], bytes] = {}
    for page in pages:
        group = page.resource.group
        for item in page.items:
            meta = item.get("metadata") or {}
            key = (group, str(item.get("kind") or ""), str(meta.get("namespace") or ""),
                   str(meta.get("name") or ""))
            if key in rows:
                stats.duplicates += 1
            # Held until the sort: right-sized bytes (packed.dumps), not orjson's buffer.
            rows[key] = packed.dumps(redact_secret(item, secret_key) if key[1] == "Secret"
                                     else item)
    out.write(b'{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":[')
    out.write(b",\n".join(rows[key] for key in sorted(rows)))
    out.write(b"]}\n")
    stats.objects = len(rows)
    return stats


def take(cluster: Cluster, scope: ScopeConfig, out: IO[bytes], *, secret_key: bytes,
         stats: ListStats, on_kind: Callable[[APIResource, int, bool], None] | None = None,
         ) -> WriteStats:
    """List every in-scope kind of ``cluster`` into ``out`` as one sorted ``List``."""
    from auditor.live.client import iter_live
    with gcpolicy.bulk():
        return write_list(iter_live(cluster, scope, stats=stats, on_kind=on_kind), out,
                          secret_key=secret_key)


# ------------------------------------------------------------------ reading


def _items_of(doc: Any, where: str) -> Iterator[dict[str, Any]]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise SnapshotError(f"{where}: expected an object or a List, got {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        item_kind = kind[: -len("List")]
        for i, item in enumerate(doc["items"]):
            if not isinstance(item, dict):
                raise SnapshotError(f"{where}: items[{i}] is not an object")
            # `kubectl get deployments -o json` names the kind only on the list.
            if item_kind and not item.get("kind"):
                item = {**item, "kind": item_kind}
            if not item.get("apiVersion") and doc.get("apiVersion") not in (None, "v1"):
                item = {**item, "apiVersion": doc["apiVersion"]}
            yield from _items_of(item, f"{where} items[{i}]")
        return
    if not doc.get("kind") or not doc.get("apiVersion"):
        name = (doc.get("metadata") or {}).get("name", "?")
        raise SnapshotError(f"{where}: object {yamlsafe.excerpt(name)} has no apiVersion/kind")
    yield doc


def read_file(path: Path) -> Iterator[dict[str, Any]]:
    """Objects in one snapshot file: a JSON document, or one or more YAML documents."""
    try:
        data = yamlsafe.read_limited(path, MAX_SNAPSHOT_BYTES)
    except yamlsafe.LimitError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix == ".json" or data.lstrip()[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"{path}: invalid JSON: {exc}") from None
        docs: Iterable[Any] = doc if isinstance(doc, list) else [doc]
    else:
        try:
            docs = list(yamlsafe.load_all(
                data, yamlsafe.FAST, max_document_bytes=MAX_SNAPSHOT_YAML_DOCUMENT_BYTES))
        except yamlsafe.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            what = (str(exc) if isinstance(exc, yamlsafe.LimitError)
                    else f"invalid YAML: {getattr(exc, 'problem', exc)}")
            raise SnapshotError(f"{path}:{line} {what}") from None
    for n, doc in enumerate(docs, 1):
        yield from _items_of(doc, f"{path} document {n}")


def read_snapshot(path: str | Path) -> Iterator[dict[str, Any]]:
    """Objects in a snapshot file or a folder of them (``*.json``, ``*.yaml``, ``*.yml``)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*")
                       if p.suffix in (".json", ".yaml", ".yml") and p.is_file())
        if not files:
            raise SnapshotError(f"{root}: no .json/.yaml files in this folder")
        for file in files:
            yield from read_file(file)
    elif root.exists():
        yield from read_file(root)
    else:
        raise SnapshotError(f"{root}: no such file or folder")
