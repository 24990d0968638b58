"""Which drift is adopted: only what people (or unknown clients) changed, never a Secret,
never a missing or orphan object; and each value without the fields the API server filled
in by itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.adopt.model import Refusal
from auditor.adopt.steps import Step, parse_path
from auditor.engine import defaults, paths
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey

ADOPTABLE_CATEGORIES: tuple[str, ...] = ("human", "unknown")


def select(result: ObjectResult, patterns: Sequence[str] = (),
           categories: Sequence[str] = ADOPTABLE_CATEGORIES
           ) -> tuple[list[DriftItem], list[Refusal]]:
    """The drift items of ``result`` to adopt, and refusals for the object or for items left out.

    ``patterns`` are path globs (:func:`auditor.engine.paths.glob_regex`); none means every path.
    """
    key = result.key
    if key.group == "" and key.kind == "Secret":
        return [], [Refusal(key, "", "Secrets are never adopted: their values must not be "
                                     "written to Git (or anywhere); rotate or change the "
                                     "Secret through your secret manager and its manifest")]
    if result.status != "drifted":
        why = {"missing": "it is missing from the cluster; there is no live value to adopt "
                          "(to adopt the deletion, remove its manifest by hand)",
               "orphan": "it is not in Git; adopting a whole object is not supported, add its "
                         "manifest by hand",
               "in-sync": "it is in sync", "ignored": "an ignore rule covers it"}
        return [], [Refusal(key, "", why.get(result.status, f"status {result.status}"))]
    regexes = [paths.glob_regex(p) for p in patterns]
    chosen: list[DriftItem] = []
    refused: list[Refusal] = []
    for item in result.drifts:
        if regexes and not any(rx.match(item.path) for rx in regexes):
            continue
        if item.category not in categories:
            refused.append(Refusal(key, item.path, f"owned by {item.manager or 'a controller'} "
                                   f"({item.category}): controller-owned values are not "
                                   "written to Git"))
            continue
        chosen.append(item)
    if regexes and not chosen and not refused:
        refused.append(Refusal(key, "", f"no drifted path matches {', '.join(patterns)}"))
    return chosen, refused


def _schema_steps(steps: Sequence[Step]) -> tuple[str, ...]:
    return tuple(s if isinstance(s, str) else "[]" for s in steps)


def strip_defaults(key: ResourceKey, path: str, value: Any) -> Any:
    """``value`` (the live content of an added or changed path) without the fields the API
    server filled in by itself (a container's ``terminationMessagePath``, a port's
    ``protocol: TCP``): those are never written to Git."""
    if not isinstance(value, dict | list):
        return value
    base = _schema_steps(parse_path(path))

    def walk(node: Any, where: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            out = {}
            for name, child in node.items():
                here = (*where, str(name))
                if not isinstance(child, dict | list) and defaults.is_server_default(
                        key.group, key.kind, here, child, node):
                    continue
                out[name] = walk(child, here)
            return out
        if isinstance(node, list):
            return [walk(child, (*where, "[]")) for child in node]
        return node

    return walk(value, base)
