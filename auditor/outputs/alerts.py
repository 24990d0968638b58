"""The alerting policy: which Slack messages the ledger's drift lifecycle calls for, queued in
the ledger's outbox and then delivered.

Each pass (after every ``run``, or ``drift-auditor alerts send``) does two things:

1. **Decide and queue** (one transaction with the per-drift announcement state):

   * *first pass on a ledger*: one summary per destination of every open drift, instead of
     one message per object (the same when alerts are switched on for an old ledger);
   * *new drifts* — open drifts not announced in their current episode (new, reopened, or an
     acknowledgement expired): one Block Kit message each, or one grouped message with a
     summary table per destination when more than ``group_threshold`` are new at once. A
     still-open drift (same object, same fingerprint: the same drift id) is never posted
     again; a drift on the same object that changes is a new drift id, so it is announced;
   * *follow-ups* — announced drifts now resolved (fixed live, reverted, Git changed,
     superseded) or accepted: with a bot token the original message is updated
     (``chat.update``) and a reply goes to its thread; through a webhook a short message is
     posted. More than ``group_threshold`` at once become one summary per destination;
   * *reminders* (``reminder_hours`` > 0): drifts still open that long after their
     announcement (or last reminder): a thread reply (bot) or a short message (webhook).

2. **Deliver** the outbox, oldest first (a thread's parent before its replies), with
   retries inside the run's time budget (see :func:`auditor.outputs.slack.deliver`); what still
   fails stays queued for the next pass. Nothing is lost and nothing is posted twice: a
   message is marked delivered right after Slack accepts it, under a short lease.

Step 1 also decides **per-run news** (queued in the same transaction, once per run:
``alert_runs`` in the outbox marks each run done, so ``alerts send`` again posts nothing):

   * *policy* — compliance results that started failing in the run at ``critical`` or
     ``high`` severity, grouped by policy (title, severity, object, message, remediation),
     one message per destination; a result failing on and on is a transition only once;
   * *revert-failed* — the run's failed revert attempts with the API's error (a 403 names
     the missing RBAC verb and resource);
   * *revert-capped* — the run planned more reverts than ``revert.max_objects``: how many,
     the cap, and that nothing was reverted (not again while each next run is refused the
     same objects at the same cap);
   * *revert-dry-run* — what ``revert.mode: dry-run`` would have reverted (the revert
     module records the same would-be revert once, so it is not repeated every run);
   * *reverted* — reverts of drifts that no message announced (opened and reverted in one
     run, or suppressed in quiet mode); an announced drift gets its follow-up instead,
     "reverted by drift-auditor";
   * *partial* — the kinds the run could not list (403, 5xx on and on), each with the API's
     reason: their objects were not audited (the run is ``partial``). Not again while each
     next run misses the same kinds; *audited-again* when a run lists every kind after one
     that could not.
   * *sync-lag* — with sources from Argo CD or Flux: the controller sources that fell
     behind Git in the run (an owner behind now that was not in the scheduled run before):
     one line each, naming the owner, the commits behind and since when. Not again while
     the source stays behind, so a long lag is told once (the metrics and the report follow
     it); only the controller's object, the ref and counts, never a repository URL.

The first pass that sees runs starts from the newest (``news_from_run``), so switching
alerts on for an old ledger replays no history.

Routing: a drift goes to every route whose ``namespaces`` (shell patterns; empty: any) and
``severities`` (empty: any) match it; to ``slack.channel`` (or the webhook) when none does.
Policy results route by their namespace (a Namespace object by its own name) with
``critical`` counted as ``high``; revert news
by the object's namespace and the severity of the drift it reverts; a capped run as ``high``
to the destinations of every namespace it planned to touch; kinds not audited as ``high``
news about no namespace (kinds span them all).
Quiet mode posts nothing and queues nothing: drifts opened meanwhile are marked
*suppressed*, so lifting quiet mode does not flood the channel with stale news (they are
announced again only if they resolve and come back), and runs' news is marked done unsent;
messages queued before stay queued.

Transports: a bot token (``slack.token-env`` names the environment variable) posts to
channels and threads; otherwise an incoming webhook (``slack.webhook-url-env``, or per
route). Nothing here reads the process environment: callers pass ``env``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from auditor.config import Config, SlackConfig
from auditor.engine.scope import name_selected
from auditor.errors import DeliveryError
from auditor.ledger import gitopsquery, times
from auditor.ledger.backend import StoreLedger, configured_ledger
from auditor.ledger.outbox import AlertState, DriftMark, Message, NewMessage, Outbox
from auditor.outputs import links, slack

log = logging.getLogger(__name__)


@dataclass
class AlertReport:
    """What one alerting pass did."""

    enabled: bool = True
    transport: str = ""
    first_run: bool = False
    queued: int = 0
    delivered: int = 0
    pending: int = 0
    suppressed: int = 0
    waited_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For ``run --output json``."""
        return {"enabled": self.enabled, "transport": self.transport,
                "first_run": self.first_run, "queued": self.queued,
                "delivered": self.delivered, "pending": self.pending,
                "suppressed": self.suppressed, "waited_seconds": round(self.waited_seconds, 3),
                "errors": list(self.errors)}

    def line(self) -> str:
        """One line for the end of ``run``'s output."""
        if not self.enabled:
            return "alerts: Slack not configured"
        bits = [f"{self.queued} queued", f"{self.delivered} delivered",
                f"{self.pending} pending"]
        if self.suppressed:
            bits.append(f"{self.suppressed} suppressed (quiet)")
        if self.errors:
            bits.append(f"last error: {self.errors[-1]}")
        return f"alerts ({self.transport}): " + ", ".join(bits)


@dataclass(frozen=True, order=True)
class Target:
    """Where a message goes: a channel (bot token) or a webhook (by env var name)."""

    channel: str = ""
    webhook_env: str = ""


def transport_of(cfg: SlackConfig) -> str:
    """``bot``, ``webhook`` or ``''`` (alerts off)."""
    if cfg.token_env:
        return "bot"
    if cfg.webhook_url_env or any(r.webhook_url_env for r in cfg.routes):
        return "webhook"
    return ""


def targets(drift: Mapping[str, Any], cfg: SlackConfig) -> list[Target]:
    """The destinations of one drift under the routes (see the module docstring)."""
    return route(str(drift.get("namespace") or ""), slack.severity(drift), cfg)


def route(namespace: str, sev: str, cfg: SlackConfig) -> list[Target]:
    """The destinations of news about ``namespace`` at drift severity ``sev``."""
    mode = transport_of(cfg)
    found: list[Target] = []
    for r in cfg.routes:
        if r.namespaces and not name_selected(namespace, r.namespaces):
            continue
        if r.severities and sev not in r.severities:
            continue
        if mode == "bot" and (r.channel or not r.webhook_url_env):
            target = Target(channel=r.channel or cfg.channel)
        else:
            target = Target(webhook_env=r.webhook_url_env or cfg.webhook_url_env)
        if target not in found:
            found.append(target)
    return found or [default_target(cfg)]


def default_target(cfg: SlackConfig) -> Target:
    return (Target(channel=cfg.channel) if transport_of(cfg) == "bot"
            else Target(webhook_env=cfg.webhook_url_env))


@dataclass
class Plan:
    messages: list[NewMessage] = field(default_factory=list)
    marks: list[DriftMark] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    suppressed: int = 0
    # Runs whose per-run news this plan decides: run id → (messages queued, quiet).
    news_runs: dict[int, tuple[int, bool]] = field(default_factory=dict)


def _by_target(drifts: Sequence[dict[str, Any]], cfg: SlackConfig
               ) -> dict[Target, list[dict[str, Any]]]:
    out: dict[Target, list[dict[str, Any]]] = {}
    for drift in drifts:
        for target in targets(drift, cfg):
            out.setdefault(target, []).append(drift)
    return dict(sorted(out.items()))


def _new(kind: str, payload: dict[str, Any], target: Target, **kw: Any) -> NewMessage:
    return NewMessage(kind=kind, payload=payload, channel=target.channel,
                      webhook_env=target.webhook_env, **kw)


def plan(box: Outbox, cfg: Config, *, now: datetime, run_id: int | None = None) -> Plan:
    """Decide what to queue now (pure over the outbox's reads; writes nothing)."""
    sc = cfg.slack
    cluster = box.cluster() or cfg.cluster.name
    out = Plan()
    if box.meta("initialized") is None:
        _plan_first(box, cfg, out, cluster, now)
    else:
        _plan_new(box, sc, out, cluster, now, public_url=cfg.serve.public_url)
        _plan_follow_ups(box, sc, out, cluster, now, public_url=cfg.serve.public_url)
        if sc.reminder_hours > 0 and not sc.quiet:
            _plan_reminders(box, sc, out, cluster, now)
    _plan_run_news(box, sc, out, cluster, run_id)
    return out


# ------------------------------------------------------------ per-run news

POLICY_SEVERITIES = ("critical", "high")


def _news_floor(box: Outbox, out: Plan, run_id: int | None) -> int | None:
    """The first run whose news is considered: set once, at the first pass that sees a run,
    so switching alerts on for an old ledger does not replay its whole history."""
    stored = box.meta("news_from_run")
    if stored is not None:
        return int(stored)
    floor = run_id if run_id is not None else box.last_finished_run()
    if floor is not None:
        out.meta["news_from_run"] = str(floor)
    return floor


def _plan_run_news(box: Outbox, sc: SlackConfig, out: Plan, cluster: str,
                   run_id: int | None) -> None:
    """Per finished run not yet covered (see ``alert_runs``): newly failing critical/high
    policy results, failed reverts, a capped revert, dry-run would-be reverts, and reverts
    of drifts no message announced. Each kind is one message per run and destination; the
    run is marked in the same transaction as the messages, so a second pass over the same
    run (``alerts send`` again) queues nothing. In quiet mode the runs are marked and
    nothing is queued, as drifts are suppressed: lifting quiet mode replays no stale news.
    """
    floor = _news_floor(box, out, run_id)
    if floor is None:
        return
    for rid in box.runs_without_news(floor):
        before = len(out.messages)
        news = _run_news(box, sc, cluster, rid)
        if sc.quiet:
            out.suppressed += news.items
            out.news_runs[rid] = (0, True)
            continue
        out.messages.extend(news.messages)
        out.news_runs[rid] = (len(out.messages) - before, False)


@dataclass
class _News:
    messages: list[NewMessage] = field(default_factory=list)
    items: int = 0


def _revert_targets(row: Mapping[str, Any], sc: SlackConfig) -> list[Target]:
    return route(_namespace_of(row), slack.severity(slack.as_drift(row)), sc)


def _grouped(rows: Sequence[dict[str, Any]], where: Callable[[dict[str, Any]], list[Target]]
             ) -> dict[Target, list[dict[str, Any]]]:
    out: dict[Target, list[dict[str, Any]]] = {}
    for row in rows:
        for target in where(row):
            out.setdefault(target, []).append(row)
    return dict(sorted(out.items()))


def _namespace_of(row: Mapping[str, Any]) -> str:
    """The namespace a ledger row's news is about; a Namespace object is about itself (a
    route for ``shop`` wants "namespace shop has no NetworkPolicy")."""
    if row.get("kind") == "Namespace" and not (row.get("grp") or row.get("group")):
        return str(row.get("name") or "")
    return str(row.get("namespace") or "")


def _cap_namespace(key: str) -> str:
    """The namespace in a ``revert_capped`` event's key text (``Kind.group ns/name``)."""
    kind, _, last = key.rpartition(" ")
    if "/" in last:
        return last.split("/", 1)[0]
    return last if kind == "Namespace" else ""


def _run_news(box: Outbox, sc: SlackConfig, cluster: str, rid: int) -> _News:
    news = _News()
    failing = box.policy_failures(rid, POLICY_SEVERITIES)
    news.items += len(failing)
    for target, rows in _grouped(failing, lambda r: route(
            _namespace_of(r), slack.policy_severity(str(r.get("severity"))), sc)).items():
        news.messages.append(_new("policy", slack.policy_message(
            rows, cluster=cluster, run_id=rid), target))
    attempts = box.revert_rows(rid)
    failed = [r for r in attempts if r["result"] == "failed"]
    dry = [r for r in attempts if r["result"] == "dry-run"]
    # A revert whose drift was announced is told by that drift's follow-up (the original
    # message updated, "reverted by drift-auditor" in its thread); only the others here.
    unannounced = [r for r in attempts if r["result"] == "reverted" and not r["followed_up"]]
    news.items += len(failed) + len(dry) + len(unannounced)
    for target, rows in _grouped(failed, lambda r: _revert_targets(r, sc)).items():
        news.messages.append(_new("revert-failed", slack.revert_failed_message(
            rows, cluster=cluster, run_id=rid), target))
    for event in box.revert_caps(rid):
        if event["repeat"]:
            continue  # the previous run was refused the same revert and said so
        news.items += 1
        found: list[Target] = []
        # A refused mass revert is high-severity news wherever its objects live.
        for ns in sorted({_cap_namespace(str(k)) for k in event.get("keys") or ()}) or [""]:
            found.extend(t for t in route(ns, "high", sc) if t not in found)
        for target in sorted(found):
            news.messages.append(_new("revert-capped", slack.revert_capped_message(
                event, cluster=cluster, run_id=rid), target))
    for kind, result, rows in (("revert-dry-run", "dry-run", dry),
                               ("reverted", "reverted", unannounced)):
        for target, group in _grouped(rows, lambda r: _revert_targets(r, sc)).items():
            news.messages.append(_new(kind, slack.revert_list_message(
                group, cluster=cluster, run_id=rid, result=result), target))
    _partial_news(box, sc, cluster, rid, news)
    _sync_lag_news(box, sc, cluster, rid, news)
    return news


def _sync_lag_news(box: Outbox, sc: SlackConfig, cluster: str, rid: int, news: _News) -> None:
    """The controller sources run ``rid`` found newly behind Git (see the module docstring);
    news about no namespace, at the severity of controller drift."""
    _, fell = gitopsquery.newly_lagging(box.conn, rid)
    if not fell:
        return
    news.items += len(fell)
    for target in route("", "low", sc):
        news.messages.append(_new("sync-lag", slack.sync_lag_message(
            [{"owner": lag.owner, "ref": lag.ref, "behind": lag.behind, "since": lag.since}
             for lag in fell], cluster=cluster, run_id=rid), target))


def _partial_news(box: Outbox, sc: SlackConfig, cluster: str, rid: int, news: _News) -> None:
    """The kinds run ``rid`` could not list; or that every kind was listed again."""
    status, skipped, before = box.skipped_kinds(rid)
    if status not in ("complete", "partial"):
        return  # a failed run audited nothing: its own error says so
    if skipped:
        if before is not None and set(before) == set(skipped):
            return  # the run before missed the same kinds and said so
        news.items += 1
        for target in route("", "high", sc):
            news.messages.append(_new("partial", slack.partial_run_message(
                skipped, cluster=cluster, run_id=rid), target))
    elif before:
        news.items += 1
        for target in route("", "high", sc):
            news.messages.append(_new("audited-again", slack.audited_again_message(
                before, cluster=cluster, run_id=rid), target))


def _plan_first(box: Outbox, cfg: Config, out: Plan, cluster: str, now: datetime) -> None:
    sc = cfg.slack
    drifts = box.open_drifts()
    out.meta["initialized"] = times.stamp(now)
    state = "suppressed" if sc.quiet else "open"
    if sc.quiet:
        out.suppressed = len(drifts)
        out.marks.extend(DriftMark(d["id"], d["fingerprint"], state) for d in drifts)
        return
    run = box.last_run()
    counts = (run or {}).get("counts") or {}
    seen = sum(int(counts.get(s, 0) or 0) for s in ("in-sync", "drifted", "missing", "orphan"))
    footer = (f"Run {run['id']} ({run['status']}): {seen} objects compared, "
              f"{counts.get('in-sync', 0)} in sync. New drift from now on is posted as it "
              "appears; accept one with `drift-auditor ack <id> --by <you> --reason <why>`."
              if run else "")
    grouped = _by_target(drifts, sc) or {default_target(sc): []}
    marked: set[int] = set()
    for i, (target, group) in enumerate(grouped.items()):
        ref = f"first:{i}"
        title = (f"Drift Auditor is watching this cluster: {len(group)} open drift"
                 f"{'s' * (len(group) != 1)}" if group else
                 "Drift Auditor is watching this cluster: everything matches Git")
        out.messages.append(_new("summary", slack.summary_message(
            group, cluster=cluster, title=title, now=now, footer=footer), target, ref=ref,
            drift_ids=tuple(d["id"] for d in group)))
        for d in group:
            if d["id"] not in marked:
                marked.add(d["id"])
                out.marks.append(DriftMark(d["id"], d["fingerprint"], state, message_ref=ref))


def drift_links(drift: Mapping[str, Any], public_url: str) -> list[tuple[str, str]]:
    """The buttons of a drift's message: its object's page and drift history in ``serve``
    (with ``serve.public-url``), and the commit of its Git file on the Git host."""
    out: list[tuple[str, str]] = []
    if public_url:
        page = links.object_url(public_url, str(drift.get("api_group") or ""),
                                str(drift.get("kind") or ""), str(drift.get("namespace") or ""),
                                str(drift.get("name") or ""))
        out.append(("Diff: Git vs live", links.drift_diff_url(page, int(drift["id"]))))
        out.append(("Drift history", links.drift_history_url(page, int(drift["id"]))))
    commit = links.commit_url(str(drift.get("commit_repo") or ""),
                              str(drift.get("source_commit") or ""))
    if commit:
        out.append(("Commit in Git", commit))
    return out


def _plan_new(box: Outbox, sc: SlackConfig, out: Plan, cluster: str, now: datetime, *,
              public_url: str = "") -> None:
    drifts = box.to_announce()
    if sc.quiet:
        out.suppressed += len(drifts)
        out.marks.extend(DriftMark(d["id"], d["fingerprint"], "suppressed") for d in drifts)
        return
    first_ref: dict[int, str] = {}
    for t, (target, group) in enumerate(_by_target(drifts, sc).items()):
        if len(group) > sc.group_threshold:
            ref = f"group:{t}"
            out.messages.append(_new("group", slack.summary_message(
                group, cluster=cluster, title=f"{len(group)} new drifts", now=now,
                footer="Accept one with `drift-auditor ack <id> --by <you> --reason <why>`; "
                       "details: `drift-auditor history --type drift`"), target, ref=ref,
                drift_ids=tuple(d["id"] for d in group)))
            for d in group:
                first_ref.setdefault(d["id"], ref)
            continue
        for d in group:
            ref = f"drift:{t}:{d['id']}"
            out.messages.append(_new("drift", slack.drift_message(
                d, cluster=cluster, links=drift_links(d, public_url)), target,
                ref=ref, drift_ids=(d["id"],)))
            first_ref.setdefault(d["id"], ref)
    for d in drifts:
        out.marks.append(DriftMark(d["id"], d["fingerprint"], "open",
                                   message_ref=first_ref[d["id"]]))


def _plan_follow_ups(box: Outbox, sc: SlackConfig, out: Plan, cluster: str,
                     now: datetime, *, public_url: str = "") -> None:
    moved = box.to_follow_up()
    # (drift, the messages that announced it); silent when suppressed or quiet
    loud: list[tuple[dict[str, Any], list[Message]]] = []
    for drift, alert in moved:
        out.marks.append(DriftMark(drift["id"], drift["fingerprint"], drift["state"]))
        if sc.quiet or alert.notified_state == "suppressed":
            continue
        loud.append((drift, box.announcements(drift["id"], alert.notified_at)))
    per_target: dict[Target, list[tuple[dict[str, Any], Message | None]]] = {}
    for drift, origins in loud:
        origin: Message | None
        if origins:
            for origin in origins:
                per_target.setdefault(Target(origin.channel, origin.webhook_env), []).append(
                    (drift, origin))
        else:
            for target in targets(drift, sc):
                per_target.setdefault(target, []).append((drift, None))
    for target, entries in sorted(per_target.items()):
        many = len(entries) > sc.group_threshold
        for drift, origin in entries:
            threaded = bool(target.channel) and origin is not None
            if threaded and origin is not None and origin.kind == "drift":
                # The original message itself shows the outcome (no notification on edits).
                out.messages.append(_new("update", slack.drift_message(
                    drift, cluster=cluster, state=drift["state"],
                    links=drift_links(drift, public_url),
                    note=slack.plain_text(slack.follow_up_message(drift, cluster=cluster))
                    .split("\n", 1)[-1]), target, action="update", parent_id=origin.id,
                    drift_ids=(drift["id"],)))
            if many:
                continue
            payload = slack.follow_up_message(drift, cluster=cluster, now=now)
            if threaded and origin is not None:
                out.messages.append(_new(drift["state"], payload, target, action="reply",
                                         parent_id=origin.id, drift_ids=(drift["id"],)))
            else:
                out.messages.append(_new(drift["state"], payload, target,
                                         drift_ids=(drift["id"],)))
        if many:
            drifts = [d for d, _ in entries]
            resolved = sum(1 for d in drifts if d["state"] == "resolved")
            reverted = sum(1 for d in drifts if d.get("resolved_how") == "reverted")
            title = (f"{resolved} drifts resolved" if resolved == len(drifts) else
                     f"{resolved} drifts resolved, {len(drifts) - resolved} accepted")
            if reverted:
                # The tool changed the cluster: say so, as the single follow-up does.
                title += (" (reverted by drift-auditor)" if reverted == len(drifts)
                          else f" ({reverted} reverted by drift-auditor)")
            out.messages.append(_new("follow-up", slack.summary_message(
                drifts, cluster=cluster, title=title), target,
                drift_ids=tuple(d["id"] for d in drifts)))


def _plan_reminders(box: Outbox, sc: SlackConfig, out: Plan, cluster: str,
                    now: datetime) -> None:
    before = times.stamp(now - timedelta(hours=sc.reminder_hours))
    due: list[tuple[dict[str, Any], AlertState]] = box.to_remind(before)
    per_target: dict[Target, list[tuple[dict[str, Any], Message | None]]] = {}
    for drift, alert in due:
        out.marks.append(DriftMark(drift["id"], drift["fingerprint"], "open", reminded=True))
        found: list[Message | None] = list(box.announcements(drift["id"], alert.notified_at))
        for origin in found or [None]:
            target = (Target(origin.channel, origin.webhook_env) if origin
                      else targets(drift, sc)[0])
            per_target.setdefault(target, []).append((drift, origin))
    for target, entries in sorted(per_target.items()):
        if len(entries) > sc.group_threshold:
            drifts = [d for d, _ in entries]
            out.messages.append(_new("reminder", slack.summary_message(
                drifts, cluster=cluster, title=f"{len(drifts)} drifts still open", now=now),
                target, drift_ids=tuple(d["id"] for d in drifts)))
            continue
        for drift, origin in entries:
            payload = slack.reminder_message(drift, cluster=cluster, now=now)
            if target.channel and origin is not None:
                out.messages.append(_new("reminder", payload, target, action="reply",
                                         parent_id=origin.id, drift_ids=(drift["id"],)))
            else:
                out.messages.append(_new("reminder", payload, target, drift_ids=(drift["id"],)))


# ------------------------------------------------------------------ delivery


class _Transports:
    """Clients built lazily from the environment, one per token/webhook."""

    def __init__(self, cfg: SlackConfig, env: Mapping[str, str]) -> None:
        self.cfg = cfg
        self.env = env
        self._bot: slack.BotTransport | None = None
        self._hooks: dict[str, slack.WebhookTransport] = {}

    def _value(self, name: str, what: str) -> str:
        value = self.env.get(name, "") if name else ""
        if not value:
            raise DeliveryError(f"{what}: environment variable {name or '(none configured)'} "
                                "is not set; the message stays queued")
        return value

    def bot(self) -> slack.BotTransport:
        if self._bot is None:
            token = self._value(self.cfg.token_env, "slack.token-env")
            self._bot = slack.BotTransport(token, base_url=self.cfg.base_url,
                                           timeout=self.cfg.timeout_seconds)
        return self._bot

    def webhook(self, env_name: str) -> slack.WebhookTransport:
        name = env_name or self.cfg.webhook_url_env
        if name not in self._hooks:
            url = self._value(name, "slack.webhook-url-env")
            self._hooks[name] = slack.WebhookTransport(url, timeout=self.cfg.timeout_seconds)
        return self._hooks[name]


def _send_one(box: Outbox, msg: Message, clients: _Transports,
              budget: slack.Budget) -> slack.Sent | None:
    """Deliver one message; ``None`` when it has nothing to do (skipped) or must wait."""
    parent = box.get(msg.parent_id) if msg.parent_id else None
    if parent is not None and parent.status == "pending":
        return None  # its parent failed earlier in this pass; both go next time
    in_thread = parent is not None and bool(parent.slack_ts) and bool(msg.channel)
    if msg.action == "update":
        if not in_thread or parent is None:
            box.delivered(msg.id, at=times.stamp(times.now()), status="skipped")
            return None
        bot = clients.bot()
        return slack.deliver(lambda: bot.update(msg.payload, channel=parent.slack_channel,
                                                ts=parent.slack_ts), budget)
    if msg.channel:
        bot = clients.bot()
        thread = parent.slack_ts if in_thread and parent is not None else ""
        channel = parent.slack_channel if in_thread and parent is not None else msg.channel
        return slack.deliver(lambda: bot.post(msg.payload, channel=channel, thread_ts=thread),
                             budget)
    hook = clients.webhook(msg.webhook_env)
    return slack.deliver(lambda: hook.post(msg.payload), budget)


def deliver(box: Outbox, cfg: SlackConfig, env: Mapping[str, str], report: AlertReport,
            budget: slack.Budget) -> None:
    """Send every pending message that the budget allows; failures stay queued."""
    clients = _Transports(cfg, env)
    for msg in box.pending():
        if budget.remaining() <= 0:
            report.errors.append("delivery time budget spent; the rest waits for the next run")
            break
        now = times.now()
        lease = times.stamp(now + timedelta(seconds=budget.seconds + 60))
        if not box.claim(msg.id, now=times.stamp(now), until=lease):
            continue
        try:
            sent = _send_one(box, msg, clients, budget)
        except DeliveryError as exc:
            attempts = int(getattr(exc, "attempts", 1))
            box.failed(msg.id, at=times.stamp(times.now()), error=str(exc), attempts=attempts)
            report.errors.append(f"message {msg.id} ({msg.kind}): {exc}")
            # Reported once by the caller (run's alerts line, `alerts send`'s error), from
            # report.errors: a warning here would say it twice.
            log.debug("slack: message %s (%s) not delivered: %s", msg.id, msg.kind, exc)
            if getattr(exc, "rate_limited", False):
                break  # Slack asked for a longer pause than this pass can give
            continue
        except BaseException:
            box.failed(msg.id, at=times.stamp(times.now()), error="interrupted")
            raise
        if sent is None:
            current = box.get(msg.id)
            if current is not None and current.status == "pending":
                # Not sent (its thread's parent is still undelivered): release the lease.
                box.failed(msg.id, at=times.stamp(times.now()),
                           error="waiting for its parent message", attempts=0)
            continue
        box.delivered(msg.id, at=times.stamp(times.now()), ts=sent.ts, channel=sent.channel,
                      status="delivered", attempts=sent.attempts)
        report.delivered += 1
    report.waited_seconds = budget.waited


# ---------------------------------------------------------------------- entry points


def _budget(cfg: SlackConfig, sleep: Callable[[float], None] | None) -> slack.Budget:
    return slack.Budget(max_retries=cfg.max_retries, backoff_seconds=cfg.backoff_seconds,
                        seconds=cfg.budget_seconds, sleep=sleep or time.sleep)


def send(cfg: Config, ledger_path: str | Path | StoreLedger | None = None, *,
         env: Mapping[str, str],
         run_id: int | None = None, dry_run: bool = False, now: datetime | None = None,
         sleep: Callable[[float], None] | None = None) -> AlertReport:
    """Queue what the ledger calls for, then deliver everything pending.

    ``dry_run`` queues and sends nothing: the report's ``previews`` hold the text of what
    is already pending and of what would be queued. ``ledger_path``: a file, a store
    cluster (:class:`~auditor.ledger.backend.StoreLedger`), else (None) the configured
    ledger, the store's when ``ledger.url`` is set.
    """
    mode = transport_of(cfg.slack)
    report = AlertReport(enabled=bool(mode), transport=mode)
    if not mode:
        return report
    moment = now or times.now()
    with Outbox.open(_ledger(cfg, ledger_path)) as box:
        if dry_run:
            report.first_run = box.meta("initialized") is None
            decided = plan(box, cfg, now=moment, run_id=run_id)
            report.suppressed = decided.suppressed
            for msg in box.pending():
                report.previews.append(f"[pending #{msg.id} {msg.action} {msg.kind} → "
                                       f"{_where(msg.channel, msg.webhook_env)}]\n"
                                       + slack.plain_text(msg.payload))
            for new in decided.messages:
                report.previews.append(f"[new {new.action} {new.kind} → "
                                       f"{_where(new.channel, new.webhook_env)}]\n"
                                       + slack.plain_text(new.payload))
            report.queued = len(decided.messages)
            report.pending = len(box.pending()) + report.queued
            return report
        with box.locked():
            report.first_run = box.meta("initialized") is None
            decided = plan(box, cfg, now=moment, run_id=run_id)
            report.suppressed = decided.suppressed
            box.enqueue(decided.messages, decided.marks, at=times.stamp(moment), run_id=run_id,
                        meta=decided.meta, news_runs=decided.news_runs)
        report.queued = len(decided.messages)
        if not cfg.slack.quiet:
            deliver(box, cfg.slack, env, report, _budget(cfg.slack, sleep))
        if cfg.slack.outbox_retention_days > 0:
            box.prune(times.stamp(moment - timedelta(days=cfg.slack.outbox_retention_days)))
        report.pending = box.counts()["pending"]
    return report


def _where(channel: str, webhook_env: str) -> str:
    return channel if channel else f"webhook ${webhook_env}"


def _ledger(cfg: Config | None, given: str | Path | StoreLedger | None
            ) -> str | Path | StoreLedger:
    """The outbox's ledger: ``given``, else the configured one (a file or a store cluster)."""
    if given is not None:
        return given
    if cfg is None:
        raise TypeError("alerts: neither a ledger nor a configuration given")
    return configured_ledger(cfg.ledger)


def status(ledger_path: str | Path | StoreLedger) -> list[str]:
    """The outbox in a few lines: counts, then each pending message and its last error."""
    with Outbox.open(ledger_path) as box:
        counts = box.counts()
        lines = [f"outbox: {counts['pending']} pending, {counts['delivered']} delivered, "
                 f"{counts['skipped']} skipped"
                 + ("" if box.meta("initialized") else " (first summary not yet queued)")]
        for msg in box.pending():
            lines.append(f"  #{msg.id} {msg.created_at} {msg.action} {msg.kind} → "
                         f"{_where(msg.channel, msg.webhook_env)}: {msg.attempts} attempt(s)"
                         + (f", last error: {msg.last_error}" if msg.last_error else ""))
    return lines


def after_run(cfg: Config, ledger_path: str | Path | StoreLedger | None, run_id: int, *,
              env: Mapping[str, str]) -> AlertReport:
    """The end of ``drift-auditor run``: queue and deliver alerts for what the run recorded.

    Never raises for delivery problems (they are in the report and the outbox keeps the
    messages); a broken ledger still raises :class:`auditor.errors.LedgerError`.
    """
    return send(cfg, ledger_path, env=env, run_id=run_id)
