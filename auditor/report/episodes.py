"""Drift lifecycles replayed from the ledger's events into *episodes* for one period.

An episode runs from ``opened`` (or ``reopened``) to ``resolved``; ``accepted`` and
``expired`` events toggle whether it counts against the remediation SLA. Replaying the
events (rather than reading ``drift_state``, a cache of *now*) is what makes a report for a
past quarter show the state at that quarter's end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import orjson

from auditor.engine.deltas import list_delta
from auditor.ledger.accountability import AckRecord
from auditor.ledger.reportquery import DriftEventRow, DriftRow

from .model import Acceptance, DriftEpisode, DriftValue
from .timeutil import between, seconds

_VALUE_LIMIT = 160


@dataclass
class _Open:
    opened_at: str
    run_id: int | None
    occurrence: int
    state: str = "open"
    resolved_at: str = ""
    resolved_run_id: int | None = None
    how: str = ""
    accepted_by: str = ""
    accepted_reason: str = ""
    accepted_at: str = ""
    accepted_until: str = ""
    # The acknowledgement's accountability (schema step 9), None before it.
    ack: AckRecord | None = None
    # (start, end) intervals open and not accepted; end '' = still going.
    exposed: list[tuple[str, str]] = field(default_factory=list)


def _value(value: object) -> str:
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else orjson.dumps(value,
                                                             option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= _VALUE_LIMIT else text[:_VALUE_LIMIT - 1] + "…"


def value_text(value: object) -> str:
    """A drift value as the report shows it (JSON for structures, cut at a readable length)."""
    return _value(value)


def list_items(desired: object, live: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(removed, added)`` items of an atomic list drift as the report shows them, from the
    logic ``diff`` prints its ``-``/``+`` lines with; empty unless both values are lists
    that differ by an item (not only by order)."""
    if not isinstance(desired, list) or not isinstance(live, list) or desired == live:
        return (), ()
    removed, added = list_delta(desired, live)
    return tuple(_value(i) for i in removed), tuple(_value(i) for i in added)


def object_label(group: str, kind: str, namespace: str, name: str) -> str:
    gk = f"{kind}.{group}" if group else kind
    return f"{gk} {namespace + '/' if namespace else ''}{name}"


def is_secret(group: str, kind: str) -> bool:
    return kind == "Secret" and group == ""


def _values(drift: DriftRow) -> list[DriftValue]:
    secret = is_secret(drift.group, drift.kind)
    out = []
    for item in drift.items:
        out.append(DriftValue(
            str(item.get("path", "")), str(item.get("op", "")),
            # Secret values (even keyed hashes) are not rendered at all: paths only.
            "" if secret else _value(item.get("desired")),
            "" if secret else _value(item.get("live")),
            str(item.get("manager") or ""), str(item.get("category") or ""),
            str(item.get("user") or ""), bool(item.get("spoofed")),
            *(((), ()) if secret else list_items(item.get("desired"), item.get("live")))))
    return out


def _actor_user(drift: DriftRow, values: list[DriftValue]) -> tuple[str, bool]:
    """The user behind the drift's actor (its primary item's manager) and whether any item
    is a spoofed GitOps manager."""
    user = next((v.user for v in values if v.manager == drift.manager and v.user), "")
    return user, any(v.spoofed for v in values)


def _earliest_item_time(drift: DriftRow) -> str:
    times = sorted(str(i["time"]) for i in drift.items if i.get("time"))
    return times[0] if times else ""


def _exposure(intervals: list[tuple[str, str]], start: str, until: str) -> int:
    total = 0
    for a, b in intervals:
        b = b or until
        if b > until:
            b = until
        if b > a:
            total += seconds(b) - seconds(a)
    return total


ChangeTime = Callable[[int | None, int], str]


def replay(drifts: Sequence[DriftRow], events: Sequence[DriftEventRow], *, start: str,
           end: str, until: str, sla_seconds: float, change_time: ChangeTime,
           acks: Mapping[int, AckRecord] | None = None,
           ) -> tuple[list[DriftEpisode], list[Acceptance]]:
    """Episodes that overlap ``[start, end)`` and acceptances made in it.

    ``until`` is where "still open" stops counting (the period's end, or now for a period
    that has not ended). ``change_time(run_id, object_id)`` gives the time of the change that
    the run opening an episode recorded for the object ('' when none). ``acks`` holds the
    acknowledgements' accountability by ``accepted`` drift event id (who as authenticated,
    the ticket, self-acknowledged).
    """
    acks = acks or {}
    by_id = {d.id: d for d in drifts}
    history: dict[int, list[_Open]] = {}
    acceptances: list[Acceptance] = []
    for ev in events:
        drift = by_id.get(ev.drift_id)
        if drift is None:
            continue
        episodes = history.setdefault(ev.drift_id, [])
        current = episodes[-1] if episodes and episodes[-1].state != "resolved" else None
        if ev.event in ("opened", "reopened"):
            if current is not None:
                continue  # already open: a duplicate event changes nothing
            episode = _Open(ev.at, ev.run_id, len(episodes) + 1)
            episode.exposed.append((ev.at, ""))
            episodes.append(episode)
        elif current is None:
            continue
        elif ev.event == "resolved":
            current.state, current.resolved_at, current.how = "resolved", ev.at, ev.how
            current.resolved_run_id = ev.run_id
            if current.exposed and not current.exposed[-1][1]:
                current.exposed[-1] = (current.exposed[-1][0], ev.at)
        elif ev.event == "accepted":
            current.state = "accepted"
            current.accepted_by, current.accepted_reason = ev.by, ev.reason
            current.accepted_at, current.accepted_until = ev.at, ev.expires
            current.ack = acks.get(ev.id)
            if current.exposed and not current.exposed[-1][1]:
                current.exposed[-1] = (current.exposed[-1][0], ev.at)
            if start <= ev.at < end:
                ack = current.ack
                acceptances.append(Acceptance(
                    drift.id, "", object_label(drift.group, drift.kind, drift.namespace,
                                               drift.name),
                    ev.by, ev.reason, ev.at, ev.expires, "",
                    identity=ack.identity if ack else "",
                    identity_source=ack.identity_source if ack else "",
                    ticket=ack.ticket if ack else "",
                    self_acknowledged=bool(ack and ack.self_ack)))
        elif ev.event == "expired":
            current.state = "open"
            current.exposed.append((ev.at, ""))
    out: list[DriftEpisode] = []
    anchors: dict[int, str] = {}
    for drift_id, episodes in sorted(history.items()):
        drift = by_id[drift_id]
        label = object_label(drift.group, drift.kind, drift.namespace, drift.name)
        values = _values(drift)
        user, spoofed = _actor_user(drift, values)
        for ep in episodes:
            if ep.opened_at >= end or (ep.resolved_at and ep.resolved_at < start):
                continue
            anchor = f"drift-{drift_id}" if ep.occurrence == 1 else f"drift-{drift_id}-{ep.occurrence}"
            anchors.setdefault(drift_id, anchor)
            changed = change_time(ep.run_id, drift.object_id)
            if not changed and ep.occurrence == 1:
                changed = _earliest_item_time(drift)
            exposure = _exposure(ep.exposed, ep.opened_at, until)
            out.append(DriftEpisode(
                anchor=anchor, drift_id=drift_id, occurrence=ep.occurrence,
                object_id=drift.object_id, opened_run_id=ep.run_id,
                resolved_run_id=ep.resolved_run_id, object=label,
                api_group=drift.group, kind=drift.kind, namespace=drift.namespace,
                name=drift.name, status=drift.status, category=drift.category,
                manager=drift.manager, values=values, source_file=drift.source_file,
                source_commit=drift.source_commit, changed_at=changed,
                detected_at=ep.opened_at, time_to_detect_s=between(changed, ep.opened_at),
                state_at_end=ep.state, resolved_at=ep.resolved_at, how=ep.how,
                time_to_remediate_s=between(ep.opened_at, ep.resolved_at),
                exposure_s=exposure, sla_breach=exposure > sla_seconds,
                accepted_by=ep.accepted_by, accepted_reason=ep.accepted_reason,
                accepted_at=ep.accepted_at, accepted_until=ep.accepted_until,
                secret=is_secret(drift.group, drift.kind), user=user, spoofed=spoofed,
                accepted_identity=ep.ack.identity if ep.ack else "",
                accepted_identity_source=ep.ack.identity_source if ep.ack else "",
                accepted_ticket=ep.ack.ticket if ep.ack else "",
                accepted_self=bool(ep.ack and ep.ack.self_ack)))
    states = {(e.drift_id): e.state_at_end for e in out}
    acceptances = [replace(a, anchor=anchors.get(a.drift_id, f"drift-{a.drift_id}"),
                           state_at_end=states.get(a.drift_id, "")) for a in acceptances]
    return out, acceptances
