"""Audit sampling: a reproducible sample of a period's population, with one evidence packet
per sampled item that an auditor can re-perform against the ledger.

The population is the report's own (:func:`auditor.report.period.build`): every change of the
period's change population and every drift occurrence in scope. Each member has a stable ID
(``change-<id>``, ``drift-<drift id>.<occurrence>``); the IDs sorted in byte order, one per
line, are ``population.txt``, and its SHA-256 is the population digest the manifest states,
so the population can be re-derived from the report's CSVs and checked.

Selection is ``random.Random(seed).sample`` over the sorted IDs: of the whole population
(``simple``) or of each stratum in name order with one generator (``stratified``, sizes
proportional to the strata with at least one from each when the size allows). The same
ledger, period, seed, size and method give the same sample, byte for byte: nothing in the
JSON depends on when it was generated.

A packet holds what the ledger says of the item, and only that: the object; the change (the
before and after content as a unified diff, when retention kept it; Secret values are keyed
hashes in the ledger and are shown only as numbered placeholders) or the drift occurrence;
actor, user and category; authorization and the Git commit evidence (PR, trailers); the
drift lifecycle events; and the ledger proof: each chained record's event (sequence number,
payload, previous hash, hash, the hash recomputed), the content hashes recomputed, and the
checkpoint that covers them (its sequence number, head hash and signature, if signed). A
proof's payloads are exactly the chained rows, so a Secret drift's payload carries the keyed
hashes the ledger holds (never a value): without them its hash could not be recomputed.
"""

from __future__ import annotations

import difflib
import hashlib
import random
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from auditor import __version__
from auditor.config import Config
from auditor.errors import AuditorError
from auditor.ledger import reportquery as q
from auditor.ledger import samplequery as sq
from auditor.ledger.backend import StoreLedger, reader
from auditor.ledger.chain import canonical, link
from auditor.ledger.redact import HASH_PREFIX

from . import period
from .controls import WORKLOAD_KINDS
from .episodes import is_secret
from .images import images_of, pin
from .model import ChangeItem, DriftEpisode, Report

METHODS = ("stratified", "simple")
FORMAT = "drift-auditor evidence sample 1"
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
# How a packet's proof is re-performed; stated in every manifest, so the packet stands alone.
PROOF_METHOD = (
    "Each record's event hash is SHA-256 over the previous event's hash (ASCII hex) followed "
    "by the canonical JSON (keys sorted, no whitespace) of {seq, type, at, run_id, payload}; "
    "the chained row of the table named equals the payload. An object version's content_hash "
    "is the SHA-256 of its stored content. The checkpoint covers every record with a seq at "
    "or below its own: its head_hash is the hash of event <checkpoint seq>, reached by "
    "recomputing the chain (drift-auditor verify does, for the whole ledger); a signed "
    "checkpoint's signature is Ed25519 over signed_message, checked with the ledger's public "
    "key (drift-auditor verify --public-key).")
SELECTION_METHOD = {
    "simple": "random.Random(seed).sample(population IDs sorted in byte order, size) "
              "(Python 3)",
    "stratified": "one random.Random(seed); for each stratum in name order, "
                  ".sample(the stratum's IDs sorted in byte order, its allocation) (Python 3). "
                  "Allocation: proportional to the stratum's size (largest remainder, ties by "
                  "name), at least one per stratum when the size allows",
}


class SampleError(AuditorError):
    """A sample that cannot be drawn or written."""


@dataclass(frozen=True)
class Spec:
    seed: int
    size: int
    method: str = "stratified"


@dataclass(frozen=True)
class Member:
    """One member of the population: a change or a drift occurrence of the report."""

    id: str
    stratum: str
    change: ChangeItem | None = None
    drift: DriftEpisode | None = None


@dataclass(frozen=True)
class Sample:
    manifest: dict[str, Any]
    packets: list[dict[str, Any]]
    population: list[str]  # sorted IDs


def member_id(item: ChangeItem | DriftEpisode) -> str:
    if isinstance(item, ChangeItem):
        return f"change-{item.id}"
    return f"drift-{item.drift_id}.{item.occurrence}"


def population(report: Report) -> list[Member]:
    """The report's changes and drift occurrences, sorted by ID in byte order."""
    members = [Member(member_id(c), f"change:{c.authorization}", change=c)
               for c in report.changes]
    members += [Member(member_id(d), "drift", drift=d) for d in report.drifts]
    return sorted(members, key=lambda m: m.id.encode())


def population_text(ids: Iterable[str]) -> str:
    return "".join(f"{i}\n" for i in ids)


def digest(ids: Iterable[str]) -> str:
    """SHA-256 of the population file: the IDs in byte order, each ended by a line feed."""
    return hashlib.sha256(population_text(ids).encode()).hexdigest()


def allocate(sizes: Mapping[str, int], k: int) -> dict[str, int]:
    """How many of ``k`` each stratum gets: proportional, by largest remainder (ties by name),
    at least one per non-empty stratum when ``k`` allows."""
    total = sum(sizes.values())
    names = sorted(n for n, size in sizes.items() if size)
    k = min(k, total)
    if not names or k <= 0:
        return dict.fromkeys(sizes, 0)
    quota = {n: k * sizes[n] / total for n in names}
    out = {n: min(sizes[n], int(quota[n])) for n in names}
    if k >= len(names):
        for n in names:
            out[n] = max(out[n], 1)
    # Over by the minimum of one: take back from the most over-allocated (never below one).
    while sum(out.values()) > k:
        n = max((n for n in names if out[n] > 1), key=lambda n: (out[n] - quota[n], n))
        out[n] -= 1
    while sum(out.values()) < k:
        n = max((n for n in names if out[n] < sizes[n]),
                key=lambda n: (quota[n] - out[n], -names.index(n)))
        out[n] += 1
    return {n: out.get(n, 0) for n in sorted(sizes)}


def draw(members: Sequence[Member], spec: Spec) -> tuple[list[Member], dict[str, tuple[int, int]]]:
    """The sampled members in draw order, and ``{stratum: (population, sampled)}``."""
    if spec.method not in METHODS:
        raise SampleError(f"--method: {spec.method!r} is not one of {', '.join(METHODS)}")
    if spec.size < 1:
        raise SampleError(f"--size: {spec.size} is not a positive number")
    rng = random.Random(spec.seed)
    ordered = sorted(members, key=lambda m: m.id.encode())
    if spec.method == "simple":
        picked = rng.sample(ordered, min(spec.size, len(ordered)))
        return picked, {"all": (len(ordered), len(picked))}
    strata: dict[str, list[Member]] = {}
    for m in ordered:
        strata.setdefault(m.stratum, []).append(m)
    quota = allocate({n: len(ms) for n, ms in strata.items()}, spec.size)
    out: list[Member] = []
    for name in sorted(strata):
        out += rng.sample(strata[name], quota[name])
    return out, {n: (len(strata[n]), quota[n]) for n in sorted(strata)}


class _Secrets:
    """Numbered placeholders for a Secret's keyed hashes: the same hash gets the same number
    within a packet, so a diff still shows which value changed and which did not."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def mask(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self.mask(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.mask(v) for v in node]
        if isinstance(node, str) and node.startswith(HASH_PREFIX):
            return self.names.setdefault(node, f"<secret value #{len(self.names) + 1}>")
        return node


def _pretty(doc: Any) -> list[str]:
    if doc is None:
        return []
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() \
        .splitlines(keepends=True)


def unified_diff(before: Any, after: Any, before_name: str, after_name: str) -> str:
    """The two contents as indented, key-sorted JSON, diffed line by line."""
    lines = difflib.unified_diff(_pretty(before), _pretty(after), before_name, after_name,
                                 n=3)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class _Packets:
    """Builds the packets of one sample on one read-only connection."""

    def __init__(self, conn: sqlite3.Connection, report: Report, members: Sequence[Member]
                 ) -> None:
        self.conn = conn
        self.report = report
        self.members = members
        self.commits = {c.sha: c for c in q.commits(conn)}
        self.drifts = {d.anchor: d for d in report.drifts}
        self.opened_by: dict[str, ChangeItem] = {}
        for c in report.changes:
            if c.drift_anchor:
                self.opened_by.setdefault(c.drift_anchor, c)
        changes = [m.change for m in members if m.change is not None]
        drifts = [m.drift for m in members if m.drift is not None]
        # The change that opened each sampled drift occurrence is evidence of it too.
        openers = [self.opened_by[d.anchor] for d in drifts if d.anchor in self.opened_by]
        self.links = sq.change_versions(conn, [c.id for c in [*changes, *openers]])
        version_ids = {v for cv in self.links.values()
                       for v in (cv.version_id, cv.prev_version_id) if v is not None}
        self.versions = sq.versions(conn, version_ids)
        self.content = dict(q.contents(conn, version_ids))
        drift_ids = {d.drift_id for d in drifts} | {c.drift_id for c in changes
                                                   if c.drift_id is not None}
        self.drift_seq = sq.drift_seqs(conn, drift_ids)
        # The report replays events before the period's end; so does the packet.
        self.lifecycles = sq.lifecycle(conn, drift_ids, report.header.period_end)

    # -- evidence pieces -------------------------------------------------------------------

    def _commit(self, sha: str) -> list[dict[str, Any]]:
        out = []
        for one in [s for s in sha.split(";") if s]:
            row = self.commits.get(one)
            if row is None:
                out.append({"sha": one, "recorded": False})
                continue
            out.append({"sha": one, "recorded": True, "repo": row.repo, "author": row.author,
                        "author_email": row.author_email, "date": row.date,
                        "subject": row.subject, "pr": row.pr,
                        "trailers": [list(t) for t in row.trailers],
                        "audited_by_run": row.run_id})
        return out

    def _record(self, table: str, row_id: int, event: sq.EventRow | None) -> dict[str, Any]:
        if event is None:
            # A cited row whose event is not in the chain: the proof fails, visibly.
            return {"table": table, "id": row_id, "seq": None, "hash": None,
                    "hash_matches": False}
        recomputed = link(event.prev_hash, event.seq, event.type, event.at, event.run_id,
                          event.payload)
        return {"table": table, "id": row_id, "seq": event.seq, "type": event.type,
                "at": event.at, "run_id": event.run_id, "payload": orjson.loads(event.payload),
                "prev_hash": event.prev_hash, "hash": event.hash,
                "hash_recomputed": recomputed, "hash_matches": recomputed == event.hash}

    def _proof(self, records: list[tuple[str, int, int]],
               contents: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """``records``: (table, row id, seq) of each chained row the packet cites."""
        seqs = sorted({seq for _t, _i, seq in records})
        events = sq.events(self.conn, seqs)
        out: dict[str, Any] = {
            "records": [self._record(t, i, events.get(seq))
                        for t, i, seq in sorted(records, key=lambda r: (r[2], r[0]))],
            "contents": list(contents),
        }
        integ = self.report.header.integrity
        out["ledger_verified"] = integ.ok
        out["ledger_verification"] = integ.message
        checkpoint = sq.covering_checkpoint(self.conn, seqs[-1]) if seqs else None
        if checkpoint is None:
            out["checkpoint"] = None
            return out
        head = sq.events(self.conn, [checkpoint.seq]).get(checkpoint.seq)
        out["checkpoint"] = {
            "id": checkpoint.id, "run_id": checkpoint.run_id, "seq": checkpoint.seq,
            "head_hash": checkpoint.head_hash, "at": checkpoint.at,
            "covers": seqs, "head_hash_is_event_hash": bool(head and
                                                            head.hash == checkpoint.head_hash),
            "signature": checkpoint.signature or None,
            "public_key": checkpoint.public_key or None,
            # What was signed (signing.checkpoint_message), so the signature is re-checked
            # without the tool.
            "signed_message": canonical({"run_id": checkpoint.run_id, "seq": checkpoint.seq,
                                         "head_hash": checkpoint.head_hash,
                                         "at": checkpoint.at}).decode()
            if checkpoint.signature else None,
        }
        return out

    def _lifecycle(self, drift_id: int, rows: Sequence[sq.LifecycleRow]) -> list[dict[str, Any]]:
        """The drift's events before the period's end, each with the occurrence it belongs to
        (numbered as the report's replay numbers them)."""
        out = []
        occurrence, is_open = 0, False
        for r in rows:
            if r.event in ("opened", "reopened") and not is_open:
                occurrence, is_open = occurrence + 1, True
            elif r.event == "resolved":
                is_open = False
            out.append({"id": r.id, "seq": r.seq, "occurrence": occurrence, "event": r.event,
                        "at": r.at, "run_id": r.run_id, "how": r.how, "by": r.by,
                        "reason": r.reason, "expires": r.expires,
                        "related_drift_id": r.related_drift_id})
        return out

    def _drift_summary(self, d: DriftEpisode) -> dict[str, Any]:
        return {
            "drift_id": d.drift_id, "occurrence": d.occurrence, "report_anchor": d.anchor,
            "status": d.status, "category": d.category, "manager": d.manager, "user": d.user,
            "spoofed_manager": d.spoofed,
            "values": [{"path": v.path, "op": v.op, "desired": v.desired, "live": v.live,
                        "manager": v.manager, "category": v.category, "user": v.user}
                       for v in d.values],
            "secret_values_shown": not d.secret,
            "git_file": d.source_file, "git_commit": d.source_commit,
            "changed_at": d.changed_at, "detected_at": d.detected_at,
            "time_to_detect_s": d.time_to_detect_s, "state_at_period_end": d.state_at_end,
            "resolved_at": d.resolved_at, "how": d.how,
            "time_to_remediate_s": d.time_to_remediate_s, "exposure_s": d.exposure_s,
            "sla_breach": d.sla_breach,
            "accepted": {"by": d.accepted_by, "reason": d.accepted_reason,
                         "at": d.accepted_at, "until": d.accepted_until}
            if d.accepted_by else None,
            "revert_anchor": d.revert_anchor, "adoption_anchor": d.adoption_anchor,
        }

    def _change_summary(self, c: ChangeItem) -> dict[str, Any]:
        return {
            "change_id": c.id, "report_anchor": c.anchor or f"chg-{c.id}", "run_id": c.run_id,
            "detected_by": c.detected_by, "detected_at": c.detected_at,
            "change_time": c.change_time, "change": c.change, "fields": c.fields,
            "transient": c.transient,
            "actor": {"manager": c.manager, "user": c.user,
                      "identity_source": c.identity_source, "category": c.category,
                      "spoofed_manager": c.spoofed},
            "authorization": c.authorization,
            "approval": {"git_repo": c.git_repo, "git_commit": c.git_commit, "pr": c.pr,
                         "approvers": c.approvers},
            "remediation": c.remediation, "remediated_at": c.remediated_at,
            "time_to_detect_s": c.time_to_detect_s,
            "time_to_remediate_s": c.time_to_remediate_s,
        }

    # -- packets ---------------------------------------------------------------------------

    def build(self) -> list[dict[str, Any]]:
        out = []
        for draw_index, m in enumerate(self.members, 1):
            packet = self._change(m.change) if m.change is not None else \
                self._drift(m.drift) if m.drift is not None else {}
            out.append({"id": m.id, "stratum": m.stratum, "draw": draw_index, **packet})
        return out

    def _object(self, item: ChangeItem | DriftEpisode) -> dict[str, Any]:
        return {"cluster": item.cluster, "api_group": item.api_group, "kind": item.kind,
                "namespace": item.namespace, "name": item.name, "label": item.object}

    def _content(self, version_id: int | None, secrets: _Secrets, secret: bool
                 ) -> tuple[Any, dict[str, Any] | None]:
        """The version's content (Secret hashes masked) and its content proof."""
        if version_id is None:
            return None, None
        version = self.versions.get(version_id)
        raw = self.content.get(version_id)
        doc = orjson.loads(raw) if raw else None
        proof = {"version_id": version_id, "content_hash": version.content_hash if version
                 else "", "observed_at": version.observed_at if version else "",
                 "resource_version": version.resource_version if version else "",
                 "deleted": version.deleted if version else False,
                 "stored": raw is not None,
                 "sha256_of_stored": hashlib.sha256(raw).hexdigest() if raw else None}
        proof["matches"] = bool(raw) and proof["sha256_of_stored"] == proof["content_hash"]
        return (secrets.mask(doc) if secret and doc is not None else doc), proof

    def _diff(self, c: ChangeItem) -> tuple[dict[str, Any], list[dict[str, Any]],
                                             list[tuple[str, int, int]]]:
        cv = self.links.get(c.id)
        if cv is None:
            return {"available": False, "why": "change row not found"}, [], []
        secret = is_secret(c.api_group, c.kind)
        secrets = _Secrets()
        before, before_proof = self._content(cv.prev_version_id, secrets, secret)
        after, after_proof = self._content(cv.version_id, secrets, secret)
        proofs = [p for p in (before_proof, after_proof) if p is not None]
        records = [("object_versions", v.id, v.seq) for v in
                   (self.versions.get(cv.prev_version_id) if cv.prev_version_id else None,
                    self.versions.get(cv.version_id)) if v is not None]
        pruned = [p["version_id"] for p in proofs if not p["stored"] and not p["deleted"]]
        diff: dict[str, Any] = {
            "before_version": cv.prev_version_id, "after_version": cv.version_id,
            "secret_values": "numbered placeholders for the ledger's keyed hashes" if secret
            else None}
        if pruned:
            diff.update(available=False,
                        why=f"content of version {', '.join(map(str, pruned))} pruned by "
                            "retention (the chained content hash remains)")
        else:
            diff.update(available=True, unified=unified_diff(
                before, after,
                f"version {cv.prev_version_id}" if cv.prev_version_id else "(none)",
                f"version {cv.version_id}" + (" (deleted)" if after is None else "")))
        # A workload's images and how each is pinned: a review of a tag is no review of
        # what the tag points at later.
        diff["images"] = [{"image": i, "pinned_by": pin(i)} for i in images_of(after)] \
            if c.kind in WORKLOAD_KINDS and after is not None else None
        return diff, proofs, records

    def _change(self, c: ChangeItem) -> dict[str, Any]:
        diff, content_proofs, records = self._diff(c)
        records.append(("changes", c.id, c.seq))
        lifecycle: list[dict[str, Any]] = []
        drift = self.drifts.get(c.drift_anchor) if c.drift_anchor else None
        if c.drift_id is not None:
            lifecycle = self._lifecycle(c.drift_id, self.lifecycles.get(c.drift_id, []))
            records += [("drift_events", e["id"], e["seq"]) for e in lifecycle]
            if c.drift_id in self.drift_seq:
                records.append(("drifts", c.drift_id, self.drift_seq[c.drift_id]))
        return {"type": "change", "object": self._object(c), "change": self._change_summary(c),
                "content": diff, "commits": self._commit(c.git_commit),
                # As in the report: only a change that carried Git's content is approved by
                # the commit; beside any other it is the state the change departed from.
                "commits_are": "approval evidence: the Git state this authorized change carried"
                if c.authorization == "authorized" else "the Git state the change departed "
                "from, not an approval of it",
                "drift": self._drift_summary(drift) if drift is not None else None,
                "lifecycle": lifecycle, "proof": self._proof(records, content_proofs)}

    def _drift(self, d: DriftEpisode) -> dict[str, Any]:
        lifecycle = self._lifecycle(d.drift_id, self.lifecycles.get(d.drift_id, []))
        records = [("drift_events", e["id"], e["seq"]) for e in lifecycle]
        if d.drift_id in self.drift_seq:
            records.append(("drifts", d.drift_id, self.drift_seq[d.drift_id]))
        opener = self.opened_by.get(d.anchor)
        content: dict[str, Any] | None = None
        content_proofs: list[dict[str, Any]] = []
        if opener is not None:
            records.append(("changes", opener.id, opener.seq))
            content, content_proofs, version_records = self._diff(opener)
            records += version_records
        return {"type": "drift", "object": self._object(d), "drift": self._drift_summary(d),
                "opened_by_change": self._change_summary(opener) if opener else None,
                "content": content, "commits": self._commit(d.source_commit),
                "commits_are": "the Git state the live object drifted from",
                "lifecycle": lifecycle, "proof": self._proof(records, content_proofs)}


def item_file(member_id_: str) -> str:
    return f"items/{member_id_}.json"


def build(ledger_path: str | Path | StoreLedger, start: datetime, end: datetime, cfg: Config,
          spec: Spec, *, now: datetime | None = None) -> Sample:
    """The sample of ``[start, end)`` from one ledger: the report's population, drawn by
    ``spec``, each member with its evidence packet."""
    report = period.build(ledger_path, start, end, cfg, now=now)
    members = population(report)
    ids = [m.id for m in members]
    picked, strata = draw(members, spec)
    with reader(ledger_path) as conn:
        packets = _Packets(conn, report, picked).build()
    h = report.header
    integ = h.integrity
    manifest = {
        "format": FORMAT, "tool_version": __version__,
        "period": {"from": h.period_start, "to": h.period_end, "end": "exclusive"},
        "clusters": h.clusters, "config_hash": h.config_hash,
        "ledger": {"path": h.ledger_path, "verified": integ.ok, "verification": integ.message,
                   "events_checked": integ.events_checked, "head_seq": integ.head_seq,
                   "head_hash": integ.head_hash,
                   "period_checkpoint": {"seq": integ.checkpoint_seq,
                                         "head_hash": integ.checkpoint_hash,
                                         "at": integ.checkpoint_at,
                                         "signed": integ.checkpoint_signed}},
        "population": {
            "definition": "the report's change population (every change recorded by a run or "
                          "watch batch that started in the period) and every drift "
                          "occurrence unresolved at some moment of the period; IDs change-<change "
                          "id> and drift-<drift id>.<occurrence>",
            "size": len(ids), "changes": len(report.changes),
            "drift_occurrences": len(report.drifts), "file": "population.txt",
            "sha256": digest(ids), "digest_of": "the IDs sorted in byte order, each followed "
                                                "by a line feed (population.txt)",
            "changes_csv_sha256": h.changes_csv_sha256},
        "seed": spec.seed, "size_requested": spec.size, "size": len(picked),
        "method": spec.method, "selection": SELECTION_METHOD[spec.method],
        "strata": [{"name": n, "population": size, "sampled": k}
                   for n, (size, k) in strata.items()],
        "proof_method": PROOF_METHOD,
        "items": [{"id": p["id"], "stratum": p["stratum"], "draw": p["draw"],
                   "file": item_file(p["id"]), "anchor": p["id"]} for p in packets],
    }
    return Sample(manifest, packets, ids)


def render_html(sample: Sample) -> str:
    """The sample as one self-contained page with an anchor per item (``#change-12``)."""
    from .html import environment

    return environment().get_template("sample.html.j2").render(
        manifest=sample.manifest, packets=sample.packets)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_JSON)


def write(sample: Sample, directory: str | Path) -> list[Path]:
    """``manifest.json``, ``population.txt``, ``items/<id>.json`` and ``sample.html`` in
    ``directory``. Packets of an earlier sample in the same folder are removed first: the
    folder then holds exactly the manifest's items."""
    target = Path(directory)
    items = target / "items"
    try:
        items.mkdir(parents=True, exist_ok=True)
        for old in items.glob("*.json"):
            if old.name.startswith(("change-", "drift-")):
                old.unlink()
        written = []
        for name, data in (("manifest.json", dumps(sample.manifest)),
                           ("population.txt", population_text(sample.population).encode())):
            (target / name).write_bytes(data)
            written.append(target / name)
        for packet in sample.packets:
            path = target / item_file(packet["id"])
            path.write_bytes(dumps(packet))
            written.append(path)
        page = target / "sample.html"
        page.write_text(render_html(sample), encoding="utf-8")
        written.append(page)
    except OSError as exc:
        raise SampleError(f"{target}: cannot write the sample: "
                          f"{exc.strerror or exc}") from None
    return written
