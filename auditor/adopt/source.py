"""The audited source rendered unit by unit (a plain file, a kustomization, a chart), so that
each object knows how it was made and an edit can be proved by rendering again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.adopt.model import CannotEdit, RenderSpec
from auditor.desired import render
from auditor.engine import kinds
from auditor.engine.records import ResourceKey
from auditor.errors import ManifestError


@dataclass(frozen=True, slots=True)
class Unit:
    """One render unit: a plain file, a kustomization folder or a chart folder."""

    kind: str  # 'plain' | 'kustomize' | 'helm'
    rel: str


def key_of(obj: Mapping[str, Any], spec: RenderSpec) -> ResourceKey:
    """The key the audit gave this rendered object (namespace defaulted per source)."""
    key = ResourceKey.of(dict(obj))
    namespaced = kinds.is_namespaced(key.group, key.kind, spec.scopes)
    if not key.namespace and namespaced:
        key = ResourceKey(key.group, key.kind, spec.namespace, key.name)
    elif key.namespace and not namespaced:
        key = ResourceKey(key.group, key.kind, "", key.name)
    return key


@dataclass
class Rendered:
    objects: dict[ResourceKey, dict[str, Any]]
    where: dict[ResourceKey, tuple[Unit, render.RenderedObject]]
    # Per unit: a broken file elsewhere in the source does not stop an adoption, but an edit
    # must not break anything (the errors after it must be the errors before it).
    errors: dict[Unit, tuple[str, ...]] = field(default_factory=dict)

    def same_as(self, expected: Mapping[ResourceKey, str], before: Rendered) -> bool:
        return self.errors == before.errors and canon(self.objects) == expected


def render_source(root: Path, spec: RenderSpec, tools_dir: str | os.PathLike[str] | None,
            only_plain: Iterable[str] | None = None,
            previous: Rendered | None = None) -> Rendered:
    """Render the source unit by unit (so each object knows how it was made).

    With ``previous`` and ``only_plain``, plain files other than those are taken from
    ``previous`` (a plain file only ever renders its own objects); kustomizations and charts
    always render again, as an edit anywhere may reach them.
    """
    objects: dict[ResourceKey, dict[str, Any]] = {}
    where: dict[ResourceKey, tuple[Unit, render.RenderedObject]] = {}
    errors: dict[Unit, tuple[str, ...]] = {}
    skip = {os.path.normpath(v) for v in spec.values}
    redo = set(only_plain) if only_plain is not None else None

    def add(unit: Unit, result: render.RenderResult) -> None:
        if result.errors:
            errors[unit] = tuple(str(e) for e in result.errors)
        for ro in result.objects:
            key = key_of(ro.obj, spec)
            objects[key] = ro.obj
            where[key] = (unit, ro)

    for rel in spec.paths:
        try:
            plan = render.plan(root, rel, spec.mode)
        except ManifestError as exc:
            raise CannotEdit(str(exc)) from None
        for file in plan.files:
            if os.path.normpath(file) in skip:
                continue
            unit = Unit("plain", file)
            if previous is not None and redo is not None and file not in redo:
                for key, (u, ro) in previous.where.items():
                    if u == unit:
                        objects[key], where[key] = previous.objects[key], (u, ro)
                if unit in previous.errors:
                    errors[unit] = previous.errors[unit]
                continue
            add(unit, render.load_file(root, file))
        for folder in plan.kustomizations:
            add(Unit("kustomize", folder), render.render_kustomize(root, folder, tools_dir))
        for chart in plan.charts:
            add(Unit("helm", chart), render.render_helm(
                root, chart, release=spec.release or Path(chart).resolve().name,
                namespace=spec.namespace, values=spec.values, set_values=spec.set_values,
                tools_dir=tools_dir))
    return Rendered(objects, where, errors)


def canon(objects: Mapping[ResourceKey, dict[str, Any]]) -> dict[ResourceKey, str]:
    # JSON text: ``2 == 2.0`` and ``True == 1`` must not make a wrong edit pass.
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in objects.items()}
