"""Object keys as users type them: ``Deployment.apps shop/web`` (the form the tool prints),
``shop/web`` or ``web``."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.engine.records import ResourceKey


@dataclass(frozen=True, slots=True)
class KeyPattern:
    """A possibly partial object key; ``None`` fields match anything."""

    name: str
    namespace: str | None = None
    kind: str | None = None
    group: str | None = None

    def matches(self, key: ResourceKey) -> bool:
        return (key.name == self.name
                and (self.namespace is None or key.namespace == self.namespace)
                and (self.kind is None or key.kind == self.kind)
                and (self.group is None or key.group == self.group))


def parse(text: str) -> KeyPattern:
    text = text.strip()
    kind = group = None
    if " " in text:
        group_kind, _, text = text.partition(" ")
        kind, _, rest = group_kind.partition(".")
        group = rest
        text = text.strip()
    namespace, sep, name = text.rpartition("/")
    if not sep:
        return KeyPattern(name, None, kind, group)
    return KeyPattern(name, namespace, kind, group)
