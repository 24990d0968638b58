"""Where a drifted value may be written: the object's own manifest, the strategic-merge
patches of a kustomization (outermost overlay first) or the resource file it came from
unless another overlay shares it, or a Helm values leaf. Each is only a candidate until a
render proves the edit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.adopt.model import RenderSpec
from auditor.adopt.source import Unit, key_of
from auditor.adopt.steps import get, parse_path, same_value
from auditor.adopt.yamledit import DocMatch, load_yaml11
from auditor.desired import render
from auditor.engine import kinds, paths
from auditor.engine.records import DriftItem, ResourceKey
from auditor.support import yamlsafe


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file and a document in it that may hold the value, and how to recognise it."""

    file: str
    match: DocMatch
    why: str
    items: tuple[DriftItem, ...] = ()  # what to write there, when not the drift item itself


def _names_match(doc: Any, key: ResourceKey, group: str | None = None) -> bool:
    if not isinstance(doc, dict) or doc.get("kind") != key.kind:
        return False
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return False
    if group is not None and kinds.group_of(str(doc.get("apiVersion") or "")) != group:
        return False
    # Kustomize may add a prefix or suffix to the name a base or patch declares.
    return name == key.name or name in key.name


def _doc_matcher(key: ResourceKey, spec: RenderSpec, exact: bool) -> DocMatch:
    def match(doc: Any) -> bool:
        if not _names_match(doc, key, key.group):
            return False
        if not exact:
            return True
        return isinstance(doc, dict) and key_of(doc, spec) == key
    return match


def _kustomization_data(folder: Path) -> dict[str, Any]:
    kfile = render.kustomization_file(folder)
    if kfile is None:
        return {}
    try:
        data = yamlsafe.load(yamlsafe.read_text(kfile), yamlsafe.PLAIN)
    except (OSError, UnicodeDecodeError, yamlsafe.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _patch_files(root: Path, folder: Path, seen: set[Path] | None = None
                 ) -> Iterator[tuple[str, bool]]:
    """``(file, is strategic merge)`` for the patches of a kustomization and of the
    kustomizations it includes, the outermost (applied last, so winning) first."""
    seen = seen if seen is not None else set()
    if folder in seen:
        return
    seen.add(folder)
    data = _kustomization_data(folder)
    entries: list[tuple[str, bool]] = []
    for entry in data.get("patchesStrategicMerge") or ():
        if isinstance(entry, str):
            entries.append((entry, True))
    for entry in data.get("patches") or ():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entries.append((entry["path"], True))
    for entry in data.get("patchesJson6902") or ():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entries.append((entry["path"], False))
    for rel, smp in entries:
        target = (folder / rel).resolve()
        if target.is_file() and target.is_relative_to(root):
            # A `patches:` file holding a JSON 6902 op list is no strategic-merge patch.
            is_smp = smp and not target.read_text(encoding="utf-8").lstrip().startswith("-")
            yield target.relative_to(root).as_posix(), is_smp
    for entry in [*(data.get("resources") or ()), *(data.get("bases") or ()),
                  *(data.get("components") or ())]:
        if isinstance(entry, str) and "://" not in entry:
            sub = (folder / entry).resolve()
            if sub.is_dir() and sub.is_relative_to(root):
                yield from _patch_files(root, sub, seen)


def _file_docs(root: Path, rel: str) -> list[Any]:
    try:
        return load_yaml11(yamlsafe.read_text(root / rel))
    except (OSError, UnicodeDecodeError, yamlsafe.YAMLError):
        return []


def candidates(root: Path, spec: RenderSpec, key: ResourceKey, unit: Unit,
                origin: render.RenderedObject, item: DriftItem
                ) -> tuple[list[Candidate], list[str]]:
    """Where the value of ``item`` may be written, in order, and files worth naming in a
    refusal (JSON 6902 patches, kustomization files, values files)."""
    steps = parse_path(item.path)
    hand: list[str] = []
    if unit.kind == "plain":
        return [Candidate(unit.rel, _doc_matcher(key, spec, exact=True), "manifest")], hand
    if unit.kind == "helm":
        return _helm_candidates(root, spec, unit, item), hand
    folder = (root / unit.rel).resolve()
    kfile = render.kustomization_file(folder)
    if kfile is not None:
        hand.append(kfile.relative_to(root.resolve()).as_posix())
    loose = _doc_matcher(key, spec, exact=False)
    out: list[Candidate] = []
    patches: list[str] = []
    for rel, smp in _patch_files(root.resolve(), folder):
        if not smp:
            hand.append(rel)
            continue
        docs = [d for d in _file_docs(root, rel) if loose(d)]
        if not docs:
            continue
        patches.append(rel)
        if item.op != "added" and not any(get(d, steps)[0] for d in docs):
            continue
        out.append(Candidate(rel, loose, "patch"))
    if item.op == "added" and patches and not out:
        out.append(Candidate(patches[0], loose, "patch"))
    if origin.file != unit.rel and not origin.file.endswith(render.KUSTOMIZATION_FILES):
        docs = [d for d in _file_docs(root, origin.file) if loose(d)]
        if docs and (item.op == "added" or any(get(d, steps)[0] for d in docs)):
            users = _other_users(root.resolve(), folder, (root / origin.file).resolve().parent)
            if users:
                # The render of this source cannot see the other overlays: changing a shared
                # base would change them unreviewed.
                hand.append(f"{origin.file} (shared with {', '.join(users)})")
            else:
                out.append(Candidate(origin.file, loose, "resource"))
    return out, hand


def _reachable(root: Path, folder: Path, seen: set[Path] | None = None) -> set[Path]:
    """Folders a kustomization builds from: itself and its local resources, recursively."""
    seen = seen if seen is not None else set()
    if folder in seen:
        return seen
    seen.add(folder)
    data = _kustomization_data(folder)
    for entry in [*(data.get("resources") or ()), *(data.get("bases") or ()),
                  *(data.get("components") or ())]:
        if isinstance(entry, str) and "://" not in entry:
            target = (folder / entry).resolve()
            if target.is_dir() and target.is_relative_to(root):
                _reachable(root, target, seen)
            elif target.is_file():
                seen.add(target.parent)
    return seen


def _other_users(root: Path, unit: Path, base: Path) -> list[str]:
    """Kustomizations elsewhere in the repository that also build from ``base``."""
    mine = _reachable(root, unit)
    users = []
    for folder, dirnames, _files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(folder)
        if here in mine or render.kustomization_file(here) is None:
            continue
        if base in _reachable(root, here):
            users.append(here.relative_to(root).as_posix())
    return users


def helm_files(root: Path, spec: RenderSpec, unit: Unit) -> list[str]:
    """Values files, the ones given with ``-f`` (which win) first."""
    files = []
    for value in spec.values:  # relative to the repository, else to the chart (as helm runs)
        if (root / value).is_file():
            files.append(os.path.normpath(value))
        elif (root / unit.rel / value).is_file():
            files.append(os.path.normpath(f"{unit.rel}/{value}"))
    if (root / unit.rel / "values.yaml").is_file():
        files.append(f"{unit.rel}/values.yaml" if unit.rel != "." else "values.yaml")
    return files


def _leaves(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                yield from _leaves(v, (*prefix, k))
    elif not isinstance(node, list) and node is not None:
        yield prefix, node


def _helm_candidates(root: Path, spec: RenderSpec, unit: Unit,
                     item: DriftItem) -> list[Candidate]:
    """Values leaves that may hold a changed scalar: equal to the desired value, or a part of
    a desired string (an image tag) whose surroundings the live value keeps. Each is only a
    guess until the render proves it; additions and removals are never mapped."""
    if item.op != "changed" or isinstance(item.desired, dict | list) \
            or isinstance(item.live, dict | list) or item.desired is None:
        return []
    out: list[Candidate] = []
    for rel in helm_files(root, spec, unit):
        docs = _file_docs(root, rel)
        if len(docs) != 1 or not isinstance(docs[0], dict):
            continue
        for where, leaf in _leaves(docs[0]):
            new: Any = None
            if same_value(leaf, item.desired) and type(leaf) is type(item.desired):
                new = item.live
            elif isinstance(leaf, str) and isinstance(item.desired, str) \
                    and isinstance(item.live, str) and leaf and item.desired.count(leaf) == 1:
                before, _, after = item.desired.partition(leaf)
                live = item.live
                if live.startswith(before) and live.endswith(after) \
                        and len(live) > len(before) + len(after):
                    new = live[len(before):len(live) - len(after)]
            if new is None:
                continue
            edit = DriftItem(paths.render(where), "changed", leaf, new)
            out.append(Candidate(rel, lambda d: isinstance(d, dict), "values", (edit,)))
    return out
