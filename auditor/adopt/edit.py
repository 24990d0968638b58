"""Writing live values into a work tree: each edit in the first candidate file where a fresh
render proves it right, else undone and refused with the file to edit by hand."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from auditor.adopt.locate import candidates, helm_files
from auditor.adopt.model import Adopted, CannotEdit, Outcome, Refusal, RenderSpec
from auditor.adopt.selection import strip_defaults
from auditor.adopt.source import Rendered, Unit, canon, render_source
from auditor.adopt.steps import get, parse_path
from auditor.adopt.yamledit import edit_object, edit_text
from auditor.desired import render
from auditor.engine.records import DriftItem, ResourceKey


def _read(path: Path) -> str:
    # newline="": CRLF files must reach edit_text as they are, not translated to LF.
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _expected(objects: Mapping[ResourceKey, dict[str, Any]], key: ResourceKey,
              items: Sequence[DriftItem]) -> dict[ResourceKey, dict[str, Any]]:
    out = dict(objects)
    obj = copy.deepcopy(out[key])
    for item in items:
        edit_object(obj, item, ruamel=False)
    out[key] = obj
    return out


def adopt_into(root: Path, spec: RenderSpec,
               selected: Sequence[tuple[ResourceKey, Sequence[DriftItem]]], *,
               tools_dir: str | os.PathLike[str] | None = None) -> Outcome:
    """Write the live values of ``selected`` drift items into the work tree at ``root``.

    Each path is edited in the first candidate file where a fresh render proves the edit
    right; otherwise it is refused and the files are left as they were. The work tree is
    modified in place: give it a throw-away worktree.
    """
    outcome = Outcome()
    originals: dict[str, str] = {}
    try:
        current = render_source(root, spec, tools_dir)
    except CannotEdit as exc:
        outcome.refusals.append(Refusal(None, "", f"cannot render the source: {exc}"))
        return outcome
    for key, items in selected:
        if key not in current.where:
            outcome.refusals.extend(Refusal(key, i.path, "not found in the rendered source at "
                                            "this commit") for i in items)
            continue
        stripped = [dataclasses.replace(d, live=strip_defaults(key, d.path, d.live))
                    for d in items]
        batch = _try_all_at_once(root, spec, tools_dir, current, key, stripped)
        if batch is not None:
            current, placed, saved = batch
            outcome.adopted.extend(placed)
            for rel, old_text in saved.items():
                originals.setdefault(rel, old_text)
            continue
        for item in stripped:
            unit, origin = current.where[key]
            expected = canon(_expected(current.objects, key, [item]))
            found, hand = candidates(root, spec, key, unit, origin, item)
            tried: list[str] = []
            # Whether a values edit moved this path in the render (or could not be tried,
            # so might have): if none did, the value is the template's own, and the refusal
            # must send the user there.
            moved = False
            done = False
            for cand in found:
                path = root / cand.file
                old = _read(path)
                if cand.file.endswith(".json"):
                    tried.append(f"{cand.file} (JSON is not edited)")
                    moved = True
                    continue
                try:
                    new = edit_text(old, cand.match, cand.items or [item])
                except CannotEdit as exc:
                    tried.append(f"{cand.file} ({exc})")
                    moved = True
                    continue
                _write(path, new)
                try:
                    after = render_source(root, spec, tools_dir, only_plain=[cand.file],
                                    previous=current)
                    ok = after.same_as(expected, current)
                    moved = moved or _path_moved(current, after, key, item.path)
                except CannotEdit:
                    ok, moved = False, True  # the edit reached the render: not the template's
                if not ok:
                    _write(path, old)
                    tried.append(f"{cand.file} (the render did not come out as the live "
                                 "object, or changed something else)")
                    continue
                originals.setdefault(cand.file, old)
                current = after
                outcome.adopted.append(Adopted(key, item, cand.file))
                done = True
                break
            if not done:
                outcome.refusals.append(_refusal(root, spec, key, unit, origin, item, tried,
                                                 hand, values_move_it=moved))
    for rel, old in originals.items():
        new = _read(root / rel)
        if new != old:
            outcome.files[rel] = (old, new)
    return outcome


def _try_all_at_once(root: Path, spec: RenderSpec, tools_dir: str | os.PathLike[str] | None,
                     current: Rendered, key: ResourceKey, items: Sequence[DriftItem]
                     ) -> tuple[Rendered, list[Adopted], dict[str, str]] | None:
    """Every item of one object in its first candidate file, proved by one render.

    The common case costs one render per object instead of one per path (each render runs
    every kustomization and chart of the source). On any doubt the files are put back and
    None returned: the caller then goes path by path, trying further candidates.
    """
    unit, origin = current.where[key]
    saved: dict[str, str] = {}
    placed: list[Adopted] = []

    def restore() -> None:
        for rel, text in saved.items():
            _write(root / rel, text)

    for item in items:
        found, _hand = candidates(root, spec, key, unit, origin, item)
        for cand in found:
            if cand.file.endswith(".json"):
                continue
            path = root / cand.file
            text = _read(path)
            try:
                new = edit_text(text, cand.match, cand.items or [item])
            except CannotEdit:
                continue
            saved.setdefault(cand.file, text)
            _write(path, new)
            placed.append(Adopted(key, item, cand.file))
            break
        else:
            restore()
            return None
    try:
        after = render_source(root, spec, tools_dir, only_plain=list(saved), previous=current)
        ok = after.same_as(canon(_expected(current.objects, key, items)), current)
    except CannotEdit:
        ok = False
    if not ok:
        restore()
        return None
    return after, placed, saved


def _path_moved(before: Rendered, after: Rendered, key: ResourceKey, path: str) -> bool:
    """Whether the render after an edit shows something else at ``path`` of ``key``."""
    steps = parse_path(path)
    return get(after.objects.get(key), steps) != get(before.objects.get(key), steps)


def _refusal(root: Path, spec: RenderSpec, key: ResourceKey, unit: Unit,
             origin: render.RenderedObject, item: DriftItem, tried: list[str],
             hand: list[str], *, values_move_it: bool = False) -> Refusal:
    if unit.kind == "helm":
        detail = f" (tried: {'; '.join(tried)})" if tried else ""
        # helm template's `# Source:` comment names the template an object came from (the
        # chart folder when it could not be resolved to a file of the repository).
        template = origin.file if (root / origin.file).is_file() else ""
        if template and not values_move_it:
            # No values leaf holds it, or editing those that might left this path as it was:
            # the template writes it, and only an edit there changes it.
            return Refusal(key, item.path, f"rendered by Helm from the template {template}, "
                           "which writes this value itself: no value in the values files "
                           f"sets it — edit {template} by hand{detail}", template)
        files = helm_files(root, spec, unit)
        target = files[0] if files else f"{unit.rel}/values.yaml"
        return Refusal(key, item.path, f"rendered by Helm from {origin.file}; no single value "
                       f"in the values files provably sets it — edit {target} by hand{detail}",
                       target)
    if unit.kind == "kustomize":
        name = hand[0] if hand else unit.rel
        detail = f" (tried: {'; '.join(tried)})" if tried else ""
        extra = f"; also involved: {', '.join(hand[1:])}" if hand[1:] else ""
        return Refusal(key, item.path, f"cannot tell safely which file of the kustomization "
                       f"{unit.rel} sets this value (a transformer, a JSON patch or a base "
                       f"shared with another overlay){extra} — edit {name} or its patches by "
                       f"hand{detail}", name)
    detail = "; ".join(tried) or "no document of this object found"
    return Refusal(key, item.path, f"cannot edit {unit.rel} safely ({detail}) — edit it by "
                   "hand", unit.rel)
