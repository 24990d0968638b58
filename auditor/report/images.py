"""Container images named by a workload's stored content, and how each is pinned.

A review in Git approves the image *reference* Git names. Pinned by digest
(``repo@sha256:…``) the reference fixes the bytes that run; pinned by tag (``repo:1.2``) it
does not: whoever can push to the registry can move the tag after the review. The report says
which, so its "reviewed software" claim is no stronger than the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Where a pod template keeps its containers, in every workload kind the report calls one.
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

PINS = ("digest", "tag", "none")


def images_of(content: Any) -> list[str]:
    """Every container image reference in ``content`` (a pod, or any object embedding pod
    templates: Deployment, CronJob …), deduplicated, in document order."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _CONTAINER_LISTS and isinstance(value, list):
                    for container in value:
                        image = container.get("image") if isinstance(container, dict) else None
                        if isinstance(image, str) and image and image not in out:
                            out.append(image)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(content)
    return out


def pin(reference: str) -> str:
    """``digest`` (``@sha256:…``: immutable), ``tag`` (``:1.2``: movable) or ``none`` (no tag:
    the registry's ``latest``, movable too)."""
    if "@" in reference:
        return "digest"
    # A ``:`` before the last ``/`` is a registry port, not a tag.
    return "tag" if ":" in reference.rsplit("/", 1)[-1] else "none"


def pins(references: Iterable[str]) -> dict[str, int]:
    """How many of ``references`` are pinned each way (every key of :data:`PINS`)."""
    counts = dict.fromkeys(PINS, 0)
    for ref in references:
        counts[pin(ref)] += 1
    return counts
