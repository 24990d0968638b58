"""Slack: drift messages in Block Kit and their delivery. The only module importing slack-sdk.

Messages are plain dicts (``{"text": ..., "attachments": [{"color": ..., "blocks": [...]}]}``)
built by pure functions from the drift rows the ledger returns, so they can be queued in the
outbox as JSON and sent later unchanged. The coloured bar is a legacy attachment holding the
blocks: Block Kit itself has no colour.

Severity (:func:`severity`), from the drift alone:

* ``high`` — a ``human`` or ``unknown`` (unidentified client) change to RBAC (Role,
  ClusterRole, RoleBinding, ClusterRoleBinding), to a Secret, or to a workload's container
  image or security-relevant pod fields (``securityContext``, ``hostNetwork``/``PID``/``IPC``,
  ``serviceAccountName``); an RBAC object or Secret present live but not in Git (orphan);
  any drift written under a GitOps manager's name by a user who is not a GitOps identity
  (a *spoofed* manager, known from the API-server audit log: someone made their change look
  like the GitOps controller's).
* ``medium`` — any other ``human``/``unknown`` drift, and objects missing from the cluster.
* ``low`` — drift owned by controllers or GitOps managers, and other orphans.

Besides drifts, per-run news (:mod:`auditor.outputs.alerts` decides when): compliance results that
started failing (:func:`policy_message`, critical/high, grouped by policy), and auto-revert —
failed attempts with the API's error (:func:`revert_failed_message`), a run refused by the cap
(:func:`revert_capped_message`), dry-run would-be reverts and reverts no message announced
(:func:`revert_list_message`). Revert rows are shown through :func:`as_drift`, so a Secret's
values get the same treatment as in drift messages. And the kinds a run could not list
(:func:`partial_run_message`), then that they are listed again (:func:`audited_again_message`).
With sources from GitOps controllers, the sources that newly fell behind Git
(:func:`sync_lag_message`).

Secrets: the ledger already holds Secret values only as keyed hashes; messages go further
and show a Secret's drifted keys by name with at most a short prefix of that hash. Anything
under a Secret's ``data``/``stringData`` that is not such a hash is never shown.

Delivery (:func:`deliver`): one message, with retries inside a per-pass time budget: a 429
waits ``Retry-After`` (when that fits the budget), 5xx and network errors back off
exponentially up to ``max_retries``; other errors (bad channel, bad token) are not retried.
Whatever does not go out raises :class:`DeliveryError` and stays in the outbox. slack-sdk's
own log (an ERROR line per failed attempt, request bodies at DEBUG) is kept at DEBUG under
``auditor.outputs.slack.sdk``: the outcome of a delivery is reported once, by the caller, and
``-vv`` still shows every attempt.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.error import URLError

import orjson
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from auditor.errors import DeliveryError

SEVERITIES = ("high", "medium", "low")
COLOURS = {"high": "#D92D20", "medium": "#F79009", "low": "#2E90FA",
           "resolved": "#12B76A", "accepted": "#98A2B3"}
_ICONS = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_blue_circle:",
          "resolved": ":white_check_mark:", "accepted": ":heavy_minus_sign:"}
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_SENSITIVE_PATH = re.compile(
    r"([cC]ontainers\[[^\]]*\]\.image$|[cC]ontainers$|securityContext|\.host(Network|PID|IPC)$"
    r"|\.serviceAccountName$|\.serviceAccount$)")
_SECRET_PATH = re.compile(r"^(data|stringData)\b|last-applied-configuration")
HASH_PREFIX = "hmac-sha256:"
MAX_ITEMS = 10        # drifted paths shown in one message; the rest are counted
MAX_VALUE = 180       # characters of one desired/live value
MAX_ROWS = 40         # rows of a summary table
_SECTION_LIMIT = 2900  # Slack refuses section text over 3000 characters


# ------------------------------------------------------------------ severity


def _is_secret(drift: Mapping[str, Any]) -> bool:
    return drift.get("kind") == "Secret" and not drift.get("api_group")


def _is_rbac(drift: Mapping[str, Any]) -> bool:
    return drift.get("kind") in RBAC_KINDS and drift.get("api_group") == "rbac.authorization.k8s.io"


def severity(drift: Mapping[str, Any]) -> str:
    """``high``, ``medium`` or ``low`` (see the module docstring)."""
    sensitive_kind = _is_rbac(drift) or _is_secret(drift)
    status = drift.get("status")
    if status == "orphan":
        return "high" if sensitive_kind else "low"
    if status == "missing":
        return "medium"
    items = drift.get("items") or []
    if any(i.get("spoofed") for i in items):
        return "high"
    by_people = [i for i in items if i.get("category") in ("human", "unknown")]
    if not items and drift.get("category") in ("human", "unknown"):
        return "high" if sensitive_kind else "medium"
    if not by_people:
        return "low"
    if sensitive_kind or any(_SENSITIVE_PATH.search(str(i.get("path", ""))) for i in by_people):
        return "high"
    return "medium"


def worst(severities: Sequence[str]) -> str:
    return min(severities, key=SEVERITIES.index) if severities else "low"


# ------------------------------------------------------------------ formatting


def _esc(text: Any) -> str:
    """Slack mrkdwn control characters, escaped as Slack asks."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _secret_value(value: Any) -> str:
    """What may be shown of a Secret value: a prefix of its keyed hash, or nothing."""
    if isinstance(value, str) and value.startswith(HASH_PREFIX):
        return "hash " + value[len(HASH_PREFIX):][:12]
    if value is None:
        return "∅"
    return "(value hidden)"


def shown_value(drift: Mapping[str, Any], path: str, value: Any) -> str:
    """A desired/live value as a message shows it (Secret values reduced to key names and
    hash prefixes; long values cut)."""
    if _is_secret(drift) and _SECRET_PATH.search(path):
        if isinstance(value, Mapping):
            return "{" + ", ".join(f"{_esc(k)}: {_secret_value(v)}"
                                   for k, v in sorted(value.items())) + "}"
        return _secret_value(value)
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return _esc(_short(text, MAX_VALUE)).replace("`", "'")


def _when(stamp: str | None) -> str:
    """A ledger time as Slack's localised date token, with the UTC text as fallback."""
    if not stamp:
        return "—"
    try:
        epoch = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return _esc(stamp)
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{_esc(stamp)}>"


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``40s``: two units at most."""
    seconds = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _short(text, _SECTION_LIMIT)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _short(text, 2900)}]}


def ack_command(drift: Mapping[str, Any]) -> str:
    return f'drift-auditor ack {drift["id"]} --by <you> --reason "<why this is fine>"'


def _actor(drift: Mapping[str, Any]) -> str:
    manager = drift.get("manager") or "unknown client"
    out = f"{_esc(manager)} ({_esc(drift.get('category') or 'unknown')})"
    # The user behind the drift's primary item (the drift row's manager and category).
    for item in drift.get("items") or ():
        if item.get("manager") == drift.get("manager") and item.get("user"):
            out += f"\nuser {_esc(item['user'])}"
            if item.get("spoofed"):
                out += " · *spoofed GitOps manager*"
            break
    return out


def _commit(drift: Mapping[str, Any]) -> str:
    sha = str(drift.get("source_commit") or "")
    if not sha:
        return "—"
    bits = [f"`{sha[:10]}`"]
    if drift.get("commit_subject"):
        bits.append(_esc(_short(str(drift["commit_subject"]), 80)))
    if drift.get("commit_author"):
        bits.append(f"— {_esc(drift['commit_author'])}")
    if drift.get("commit_pr"):
        bits.append(f"(PR #{drift['commit_pr']})")
    return " ".join(bits)


def _item_text(drift: Mapping[str, Any], item: Mapping[str, Any]) -> str:
    path = str(item.get("path", ""))
    op = item.get("op", "changed")
    who = item.get("manager") or "unknown client"
    line = f"`{_esc(path)}` {op}\n"
    if op == "added":
        line += f"live `{shown_value(drift, path, item.get('live'))}` (not in Git)"
    elif op == "removed":
        line += f"desired `{shown_value(drift, path, item.get('desired'))}` → removed live"
    else:
        line += (f"desired `{shown_value(drift, path, item.get('desired'))}` → "
                 f"live `{shown_value(drift, path, item.get('live'))}`")
    line += f"\nby {_esc(who)} ({_esc(item.get('category') or 'unknown')})"
    if item.get("user"):
        line += f" · user {_esc(item['user'])}"
    if item.get("spoofed"):
        line += (" · *spoofed manager*: the API-server audit log says this user, not a GitOps "
                 "controller, wrote under that name")
    if item.get("operation"):
        line += f" · {_esc(item['operation'])}"
    if item.get("time"):
        line += f" · {_when(str(item['time']))}"
    return line


def _status_phrase(drift: Mapping[str, Any]) -> str:
    return {"missing": "is in Git but missing from the cluster",
            "orphan": "is live but not in Git (orphan)"}.get(str(drift.get("status")),
                                                            "drifted from Git")


def drift_message(drift: Mapping[str, Any], *, cluster: str, state: str = "open",
                  note: str = "", links: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The message announcing one drift. ``state`` ``resolved``/``accepted`` renders the
    same message as it reads after a ``chat.update`` (green/grey, struck heading).
    ``links`` (label, URL): buttons under it (:mod:`auditor.outputs.links`)."""
    sev = severity(drift)
    tone = sev if state == "open" else state
    obj = _esc(drift["object"])
    heading = f"{_ICONS[tone]} *{sev.capitalize()}-severity drift* · cluster `{_esc(cluster)}`"
    if state != "open":
        heading = (f"{_ICONS[tone]} ~{sev.capitalize()}-severity drift~ *{state}* · "
                   f"cluster `{_esc(cluster)}`")
    blocks: list[dict[str, Any]] = [_section(f"{heading}\n*{obj}* {_status_phrase(drift)}")]
    fields = [
        ("Namespace", _esc(drift.get("namespace") or "(cluster-scoped)")),
        ("Kind", _esc(f"{drift['kind']}.{drift['api_group']}" if drift.get("api_group")
                      else drift["kind"])),
        ("Actor", _actor(drift)),
        ("Detected", _when(drift.get("opened_at"))),
        ("Git file", f"`{_esc(drift['source_file'])}`" if drift.get("source_file") else "—"),
        ("Last commit", _commit(drift)),
    ]
    blocks.append({"type": "section", "fields": [
        {"type": "mrkdwn", "text": _short(f"*{name}*\n{value}", 1990)} for name, value in fields]})
    items = list(drift.get("items") or [])
    if items:
        blocks.append({"type": "divider"})
        blocks.extend(_section(_item_text(drift, i)) for i in items[:MAX_ITEMS])
        if len(items) > MAX_ITEMS:
            blocks.append(_context(f"… and {len(items) - MAX_ITEMS} more drifted paths: "
                                   f"`drift-auditor history --object \"{obj}\"`"))
    if note:
        blocks.append(_context(note))
    if state == "open":
        blocks.append(_context(f"Drift {drift['id']} · accept it: `{_esc(ack_command(drift))}`"))
    if links:
        # Block Kit: a link button's URL is at most 3,000 characters, its text 75.
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": f"link-{i}", "url": url,
             "text": {"type": "plain_text", "text": _short(label, 75)}}
            for i, (label, url) in enumerate(links[:5]) if len(url) <= 3000]})
    paths = len(items)
    text = (f"[{sev.upper()}] {'' if state == 'open' else state.capitalize() + ': '}"
            f"{drift['object']} {_status_phrase(drift)}"
            + (f" ({paths} path{'s' * (paths != 1)}, {drift.get('manager') or 'unknown client'})"
               if paths else "") + f" · cluster {cluster}")
    return {"text": text, "attachments": [{"color": COLOURS[tone], "blocks": blocks}]}


def _table(drifts: Sequence[Mapping[str, Any]], now: datetime | None) -> list[str]:
    """Fixed-width rows (Block Kit has no table element in attachments), cut in chunks that
    each fit one section."""
    rows = [("SEV", "ID", "OBJECT", "STATUS", "PATHS", "ACTOR", "OPEN FOR" if now else "SINCE")]
    for d in drifts[:MAX_ROWS]:
        opened = str(d.get("opened_at") or "")
        since = opened
        if now and opened:
            since = duration(now.timestamp() - datetime.fromisoformat(
                opened.replace("Z", "+00:00")).timestamp())
        rows.append((severity(d), str(d["id"]), _short(str(d["object"]), 60), str(d["status"]),
                     str(len(d.get("items") or [])),
                     _short(f"{d.get('manager') or '-'} ({d.get('category') or 'unknown'})", 36),
                     since))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    chunks: list[str] = []
    current: list[str] = []
    for line in lines:
        if current and sum(len(x) + 1 for x in current) + len(line) > _SECTION_LIMIT - 10:
            chunks.append("\n".join(current))
            current = [lines[0]]
        current.append(_esc(line).replace("`", "'"))
    if current:
        chunks.append("\n".join(current))
    return [f"```{c}```" for c in chunks]


def summary_message(drifts: Sequence[Mapping[str, Any]], *, cluster: str, title: str,
                    now: datetime | None = None, footer: str = "") -> dict[str, Any]:
    """One message for many drifts: counts by severity and a table (grouped alerts, the first
    run's summary, many resolved at once)."""
    sevs = [severity(d) for d in drifts]
    counts = ", ".join(f"{sevs.count(s)} {s}" for s in SEVERITIES if sevs.count(s))
    tone = worst(sevs) if drifts else "resolved"
    blocks = [_section(f"{_ICONS[tone]} *{_esc(title)}* · cluster `{_esc(cluster)}`"
                       + (f"\n{counts}" if counts else ""))]
    blocks.extend(_section(chunk) for chunk in (_table(drifts, now) if drifts else []))
    if len(drifts) > MAX_ROWS:
        blocks.append(_context(f"… and {len(drifts) - MAX_ROWS} more: `drift-auditor history "
                               "--type drift --since 1d`"))
    if footer:
        blocks.append(_context(footer))
    text = f"{title} · cluster {cluster}" + (f" ({counts})" if counts else "")
    return {"text": text, "attachments": [{"color": COLOURS[tone], "blocks": blocks}]}


def follow_up_message(drift: Mapping[str, Any], *, cluster: str,
                      now: datetime | None = None) -> dict[str, Any]:
    """The short notice that an announced drift was resolved or accepted."""
    state = str(drift.get("state"))
    obj = _esc(drift["object"])
    since = str(drift.get("state_since") or "")
    took = ""
    if since and drift.get("opened_at"):
        took = duration(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
                        - datetime.fromisoformat(
                            str(drift["opened_at"]).replace("Z", "+00:00")).timestamp())
    if state == "accepted":
        until = drift.get("accepted_until")
        line = (f"{_ICONS['accepted']} *Accepted*: *{obj}* (drift {drift['id']}) by "
                f"{_esc(drift.get('accepted_by') or '?')}"
                f"{' until ' + _when(str(until)) if until else ' until it changes'}"
                f" — “{_esc(drift.get('accepted_reason') or '')}”")
        text = f"Accepted: {drift['object']} (drift {drift['id']})"
    else:
        how = drift.get("resolved_how") or "resolved"
        extra = (f" by drift {drift['superseded_by']}"
                 if how == "superseded" and drift.get("superseded_by") else "")
        if how == "reverted":
            # Say who changed the cluster: the tool itself, not a person fixing it live.
            line = (f"{_ICONS['resolved']} *Resolved (reverted by drift-auditor)*: *{obj}* "
                    f"(drift {drift['id']}) — Git's state was re-applied"
                    f"{' after ' + took if took else ''} · {_when(since)}")
            text = (f"Resolved (reverted by drift-auditor): {drift['object']} "
                    f"(drift {drift['id']})")
        else:
            line = (f"{_ICONS['resolved']} *Resolved* ({_esc(how)}{extra}): *{obj}* "
                    f"(drift {drift['id']}){' after ' + took if took else ''} · {_when(since)}")
            text = f"Resolved ({how}): {drift['object']} (drift {drift['id']})"
    return {"text": f"{text} · cluster {cluster}",
            "attachments": [{"color": COLOURS["accepted" if state == "accepted" else "resolved"],
                             "blocks": [_section(line)]}]}


# ------------------------------------------------ compliance policies and auto-revert

POLICY_COLOURS = {"critical": "#7A271A", "high": "#D92D20"}
_POLICY_ICONS = {"critical": ":rotating_light:", "high": ":red_circle:"}
REVERT_COLOURS = {"failed": "#D92D20", "capped": "#F79009", "dry-run": "#2E90FA",
                  "reverted": "#12B76A"}
MAX_POLICIES = 15       # policy sections in one message (Slack allows 50 blocks)
MAX_OBJECTS = 10        # objects listed under one policy / one revert message
_QUOTED = re.compile(r"(\"[^\"]*\"|'[^']*')")


def _object_name(row: Mapping[str, Any]) -> str:
    """``Kind.group ns/name`` of a ledger row (policy result or revert attempt)."""
    grp = row.get("grp", row.get("group")) or ""
    gk = f"{row['kind']}.{grp}" if grp else str(row["kind"])
    ns = row.get("namespace") or ""
    return f"{gk} {ns + '/' if ns else ''}{row['name']}"


def as_drift(row: Mapping[str, Any]) -> dict[str, Any]:
    """A revert row seen as the drift it reverts, for :func:`severity` and
    :func:`shown_value` (both decide from kind, group, status and items)."""
    status = ("orphan" if row.get("action") == "delete"
              else "drifted" if row.get("items") else "missing")
    return {"kind": row.get("kind"), "api_group": row.get("group", row.get("grp")) or "",
            "namespace": row.get("namespace") or "", "status": status,
            "items": list(row.get("items") or []), "category": "unknown"}


def policy_severity(sev: str) -> str:
    """A policy severity on the drift scale that routes use (``critical`` counts as
    ``high``: a route taking high-severity news wants critical findings too)."""
    return "high" if sev in ("critical", "high") else "medium" if sev == "medium" else "low"


def policy_message(results: Sequence[Mapping[str, Any]], *, cluster: str,
                   run_id: int) -> dict[str, Any]:
    """Critical/high policy results that started failing in one run, grouped by policy:
    title, severity, each object with the policy's message, the remediation once.

    Messages are the policy's own text; the shipped policies name env variables and paths,
    never values, and nothing here adds a value from the object.
    """
    by_policy: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_policy.setdefault(str(r["policy"]), []).append(r)
    order = sorted(by_policy.items(), key=lambda kv: (
        0 if kv[1][0].get("severity") == "critical" else 1, kv[0]))
    crit = sum(1 for r in results if r.get("severity") == "critical")
    tone = "critical" if crit else "high"
    n = len(results)
    title = f"{n} compliance check{'s' * (n != 1)} started failing"
    counts = ", ".join(bit for bit in (f"{crit} critical" if crit else "",
                                       f"{n - crit} high" if n - crit else "") if bit)
    blocks: list[dict[str, Any]] = [_section(
        f"{_POLICY_ICONS[tone]} *{_esc(title)}* · cluster `{_esc(cluster)}` · run {run_id}"
        f"\n{counts}; results failing since an earlier run are not repeated")]
    for policy, rows in order[:MAX_POLICIES]:
        first = rows[0]
        sev = str(first.get("severity") or "high")
        icon = _POLICY_ICONS.get(sev, _POLICY_ICONS["high"])
        lines = [f"{icon} *{_esc(first.get('title') or policy)}* · {_esc(sev)} · "
                 f"`{_esc(policy)}`"]
        for r in rows[:MAX_OBJECTS]:
            msgs = [str(m) for m in (r.get("messages") or [])] or ["failed"]
            lines.append(f"• *{_esc(_object_name(r))}*: "
                         + _esc(_short("; ".join(msgs), 200)).replace("`", "'"))
        if len(rows) > MAX_OBJECTS:
            lines.append(f"… and {len(rows) - MAX_OBJECTS} more objects")
        blocks.append(_section("\n".join(lines)))
        if first.get("remediation"):
            blocks.append(_context("Fix: " + _esc(_short(str(first["remediation"]), 600))))
    if len(order) > MAX_POLICIES:
        blocks.append(_context(f"… and {len(order) - MAX_POLICIES} more policies"))
    blocks.append(_context("Every current result: `drift-auditor policies check` (against the "
                           "cluster)"))
    text = f"{title} · cluster {cluster} ({counts})"
    return {"text": text, "attachments": [{"color": POLICY_COLOURS[tone], "blocks": blocks}]}


def _revert_items(row: Mapping[str, Any], limit: int = 3) -> str:
    """The drifted paths a revert puts back, values as :func:`shown_value` shows them."""
    drift = as_drift(row)
    items = list(row.get("items") or [])
    out = []
    for i in items[:limit]:
        path = str(i.get("path", ""))
        out.append(f"`{_esc(path)}` live `{shown_value(drift, path, i.get('live'))}` → Git "
                   f"`{shown_value(drift, path, i.get('desired'))}`")
    if len(items) > limit:
        out.append(f"… and {len(items) - limit} more paths")
    return "\n".join(out)


def safe_error(row: Mapping[str, Any]) -> str:
    """A revert's error for Slack. On a Secret, quoted text in the API server's answer could
    echo a value (validation errors quote the invalid value), so it is cut out."""
    error = str(row.get("error") or "unknown error")
    if _is_secret(as_drift(row)):
        error = _QUOTED.sub("(value hidden)", error)
    return _short(error, 600)


def revert_failed_message(rows: Sequence[Mapping[str, Any]], *, cluster: str,
                          run_id: int) -> dict[str, Any]:
    """Revert attempts that failed in one run, each with the API's error (for a 403 it
    names the missing RBAC verb and resource). The drift stays open; the next attempt
    waits for the failure backoff."""
    n = len(rows)
    title = (f"Revert failed: {_object_name(rows[0])}" if n == 1
             else f"{n} reverts failed")
    # In dry-run mode a failure is the server dry-run refusing: the real revert would fail.
    lead = ("the server dry-run of the revert was refused: in enforce mode it would fail"
            if all(r.get("mode") == "dry-run" for r in rows)
            else "drift-auditor could not put Git's state back; the drift stays open")
    blocks: list[dict[str, Any]] = [_section(
        f":x: *{_esc(title)}* · cluster `{_esc(cluster)}` · run {run_id}\n{lead}")]
    for r in rows[:MAX_OBJECTS]:
        forbidden = "forbidden" in str(r.get("error") or "").lower()
        line = (f"*{_esc(_object_name(r))}* ({_esc(r.get('action') or 'apply')}, "
                f"{_esc(r.get('mode') or 'enforce')})\nerror: {_esc(safe_error(r))}")
        if forbidden:
            line += ("\n_grant drift-auditor's service account that permission, or narrow "
                     "the revert scope_")
        items = _revert_items(r)
        if items:
            line += "\n" + items
        blocks.append(_section(line))
    if n > MAX_OBJECTS:
        blocks.append(_context(f"… and {n - MAX_OBJECTS} more (all in the run's problems and "
                               "the ledger's `reverts` table)"))
    blocks.append(_context("Retried after revert.failure_backoff_minutes (doubling per failure "
                           "in a row); opt an object out with the annotation "
                           "`drift-auditor.io/revert: \"false\"`"))
    text = f"{title} · cluster {cluster}"
    if n == 1:
        text += f": {_short(safe_error(rows[0]), 200)}"
    return {"text": text, "attachments": [{"color": REVERT_COLOURS["failed"], "blocks": blocks}]}


def revert_capped_message(event: Mapping[str, Any], *, cluster: str,
                          run_id: int) -> dict[str, Any]:
    """A run that planned more reverts than ``revert.max_objects``: nothing was reverted."""
    planned, cap = int(event.get("planned") or 0), int(event.get("cap") or 0)
    mode = str(event.get("mode") or "enforce")
    keys = [str(k) for k in event.get("keys") or ()]
    title = f"Revert capped: {planned} objects would have been reverted, the cap is {cap}"
    listing = "\n".join(f"• {_esc(k)}" for k in keys[:MAX_OBJECTS])
    if len(keys) > MAX_OBJECTS:
        listing += f"\n… and {len(keys) - MAX_OBJECTS} more"
    blocks = [_section(f":warning: *{_esc(title)}* · cluster `{_esc(cluster)}` · run {run_id}"
                       f"\n*Nothing was reverted* (mode {_esc(mode)}): a mass revert is more "
                       "likely a wrong Git revision than a bad night"),
              _section(listing or "(no objects listed)"),
              _context("Check the Git revision, then raise `revert.max_objects` or revert "
                       "by hand")]
    return {"text": f"{title}; nothing was reverted · cluster {cluster}",
            "attachments": [{"color": REVERT_COLOURS["capped"], "blocks": blocks}]}


def revert_list_message(rows: Sequence[Mapping[str, Any]], *, cluster: str, run_id: int,
                        result: str) -> dict[str, Any]:
    """One run's would-be reverts (``result='dry-run'``: nothing changed) or its reverts of
    drifts never announced (``'reverted'``: opened and put back in the same run)."""
    n = len(rows)
    objs = f"{n} object{'s' * (n != 1)}"
    if result == "dry-run":
        title = f"Dry-run: drift-auditor would revert {objs}"
        lead = (":mag: *{}* · cluster `{}` · run {}\nNothing was changed (`revert.mode: "
                "dry-run`); each was checked by a server dry-run")
        foot = "Set `revert.mode: enforce` to carry them out; the same would-be revert is "                "not repeated next run"
    else:
        title = f"Reverted by drift-auditor: {objs}"
        lead = (":leftwards_arrow_with_hook: *{}* · cluster `{}` · run {}\nGit's state was "
                "re-applied (server-side apply, field manager drift-auditor)")
        foot = "Each revert is recorded on the ledger's hash chain (`reverts` table)"
    blocks: list[dict[str, Any]] = [_section(lead.format(_esc(title), _esc(cluster), run_id))]
    for r in rows[:MAX_OBJECTS]:
        line = f"*{_esc(_object_name(r))}* ({_esc(r.get('action') or 'apply')})"
        if r.get("reason"):
            line += f": {_esc(_short(str(r['reason']), 200))}"
        items = _revert_items(r)
        if items:
            line += "\n" + items
        blocks.append(_section(line))
    if n > MAX_OBJECTS:
        blocks.append(_context(f"… and {n - MAX_OBJECTS} more"))
    blocks.append(_context(foot))
    return {"text": f"{title} · cluster {cluster}",
            "attachments": [{"color": REVERT_COLOURS[result], "blocks": blocks}]}


# ------------------------------------------------------------ kinds not audited

PARTIAL_COLOUR = "#F79009"
MAX_KINDS = 20  # kinds listed in one message; the rest are counted


def partial_run_message(skipped: Mapping[str, str], *, cluster: str,
                        run_id: int) -> dict[str, Any]:
    """A run that could not list some kinds (``skipped``: kind → the API's reason): their
    objects were not audited, so the run is partial and its silence about them means
    nothing."""
    kinds = sorted(skipped)
    n = len(kinds)
    title = f"Partial run: {n} kind{'s' * (n != 1)} not audited"
    lines = [f"• *{_esc(k)}*" + (f": {_esc(_short(skipped[k], 300))}" if skipped[k] else "")
             for k in kinds[:MAX_KINDS]]
    if n > MAX_KINDS:
        lines.append(f"… and {n - MAX_KINDS} more (`drift-auditor history` shows the run)")
    blocks = [_section(f":warning: *{_esc(title)}* · cluster `{_esc(cluster)}` · run {run_id}"
                       "\nThese kinds could not be listed, so none of their objects was "
                       "compared with Git: no drift on them was opened or resolved, none was "
                       "reported missing."),
              _section("\n".join(lines)),
              _context("A 403 needs get/list for drift-auditor's service account (or the kind "
                       "taken out of `scope`); a 5xx is retried next run. Not repeated while "
                       "the same kinds stay unlisted; `drift-auditor run` exits 3 meanwhile.")]
    return {"text": f"{title} ({', '.join(kinds[:MAX_KINDS])}"
                    f"{', …' if n > MAX_KINDS else ''}) · cluster {cluster} · run {run_id}",
            "attachments": [{"color": PARTIAL_COLOUR, "blocks": blocks}]}


def audited_again_message(kinds: Sequence[str], *, cluster: str,
                          run_id: int) -> dict[str, Any]:
    """The first run listing every kind again after runs that could not list ``kinds``."""
    names = sorted(kinds)
    shown = ", ".join(names[:MAX_KINDS]) + (", …" if len(names) > MAX_KINDS else "")
    title = "Every kind audited again"
    return {"text": f"{title} ({shown}) · cluster {cluster} · run {run_id}",
            "attachments": [{"color": COLOURS["resolved"], "blocks": [_section(
                f"{_ICONS['resolved']} *{title}* · cluster `{_esc(cluster)}` · run {run_id}"
                f"\nListed again: {_esc(shown)}")]}]}


# ------------------------------------------------------------ sync lag

SYNC_LAG_COLOUR = "#F79009"
MAX_LAGS = 20  # sources listed in one message; the rest are counted


def _lag_line(lag: Mapping[str, Any]) -> str:
    owner, ref = _esc(_short(str(lag.get("owner") or "?"), 200)), _esc(
        _short(str(lag.get("ref") or "?"), 100))
    behind = int(lag.get("behind") or 0)
    if behind < 0:
        return (f"• *{owner}*: the commit it applied is not in the history of `{ref}` "
                "(a force-push or another branch)")
    since = str(lag.get("since") or "")
    when = f" since {_when(since)}" if since else ""
    return (f"• *{owner}*: Git is {behind} commit{'s' * (behind != 1)} ahead on `{ref}`"
            f"{when}")


def sync_lag_message(lags: Sequence[Mapping[str, Any]], *, cluster: str,
                     run_id: int) -> dict[str, Any]:
    """Controller sources that fell behind Git in run ``run_id`` (``owner``, ``ref``,
    ``behind``, ``since`` each): approved changes the controller has not applied yet. Sync
    lag, not drift: the cluster matches what the controller applied. Names no repository
    URL (it may carry credentials)."""
    rows = sorted(lags, key=lambda x: str(x.get("owner") or ""))
    n = len(rows)
    title = f"Git ahead of the cluster: {n} GitOps source{'s' * (n != 1)} fell behind"
    lines = [_lag_line(x) for x in rows[:MAX_LAGS]]
    if n > MAX_LAGS:
        lines.append(f"… and {n - MAX_LAGS} more (`drift-auditor sources`)")
    return {"text": f"{title} · cluster {cluster} · run {run_id}: "
                    + "; ".join(str(x.get("owner") or "?") for x in rows[:MAX_LAGS])
                    + ("; …" if n > MAX_LAGS else ""),
            "attachments": [{"color": SYNC_LAG_COLOUR, "blocks": [
                _section(f":hourglass_flowing_sand: *{_esc(title)}* · cluster "
                         f"`{_esc(cluster)}` · run {run_id}\n" + "\n".join(lines)),
                _context("Approved changes the controller has not applied yet: sync lag, not "
                         "drift. Not repeated while the source stays behind "
                         "(`drift_auditor_sync_lag_seconds`, the report's sync lag).")]}]}


def reminder_message(drift: Mapping[str, Any], *, cluster: str, now: datetime) -> dict[str, Any]:
    opened = datetime.fromisoformat(str(drift["opened_at"]).replace("Z", "+00:00"))
    age = duration(now.timestamp() - opened.timestamp())
    sev = severity(drift)
    return {"text": f"Reminder: {drift['object']} still drifted after {age} · cluster {cluster}",
            "attachments": [{"color": COLOURS[sev], "blocks": [
                _section(f":alarm_clock: *Still open after {age}*: *{_esc(drift['object'])}* "
                         f"(drift {drift['id']}, {sev})"),
                _context(f"accept it: `{_esc(ack_command(drift))}`")]}]}


def plain_text(payload: Mapping[str, Any]) -> str:
    """A payload as text, for ``--dry-run`` and logs (mrkdwn left as is)."""
    lines = [str(payload.get("text", ""))]
    for att in payload.get("attachments") or ():
        for block in att.get("blocks") or ():
            if block.get("type") == "section":
                if block.get("text"):
                    lines.append(block["text"]["text"])
                lines.extend(f["text"].replace("\n", ": ", 1) for f in block.get("fields") or ())
            elif block.get("type") == "context":
                lines.extend(e["text"] for e in block["elements"])
    return "\n".join(lines)


# ------------------------------------------------------------------ delivery


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a message landed: ``ts`` and channel id (bot token only; webhooks return none)."""

    ts: str = ""
    channel: str = ""
    attempts: int = 1
    waited: float = 0.0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Transport(Protocol):
    threads: bool

    def post(self, payload: Mapping[str, Any], *, channel: str, thread_ts: str = "") -> Sent: ...

    def update(self, payload: Mapping[str, Any], *, channel: str, ts: str) -> Sent: ...


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _classify(status: int, headers: Mapping[str, Any] | None, detail: str) -> Exception:
    if status == 429:
        return _Retryable(f"HTTP 429 rate limited ({detail})", _retry_after(headers) or 1.0)
    if status >= 500:
        return _Retryable(f"HTTP {status} ({detail})")
    if status == 200:
        # The Web API answers errors such as channel_not_found with 200 and ok=false.
        return DeliveryError(f"Slack refused the message: {detail}")
    return DeliveryError(f"HTTP {status}: {detail}")


class _AsDebug(logging.Filter):
    """Every record of slack-sdk's logger demoted to DEBUG, and dropped unless DEBUG is on:
    its ERROR line for each failed attempt would repeat, once per retry, what the delivery's
    outcome says once."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return _SDK_LOG.isEnabledFor(logging.DEBUG)


_SDK_LOG = logging.getLogger(f"{__name__}.sdk")
_SDK_LOG.addFilter(_AsDebug())


class WebhookTransport:
    """An incoming webhook: posts only (no threads, no edits; the channel is the webhook's)."""

    threads = False

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._client = WebhookClient(url, timeout=max(1, int(timeout)), retry_handlers=[],
                                     logger=_SDK_LOG)

    def post(self, payload: Mapping[str, Any], *, channel: str = "", thread_ts: str = "") -> Sent:
        try:
            resp = self._client.send_dict(dict(payload))
        except (URLError, OSError, SlackClientError) as exc:
            raise _Retryable(f"network error: {exc}") from None
        if resp.status_code == 200:
            return Sent()
        raise _classify(resp.status_code, resp.headers, _short(str(resp.body), 200))

    def update(self, payload: Mapping[str, Any], *, channel: str, ts: str) -> Sent:
        raise DeliveryError("an incoming webhook cannot edit messages")


class BotTransport:
    """A bot token: ``chat.postMessage`` (threads via ``thread_ts``) and ``chat.update``."""

    threads = True

    def __init__(self, token: str, *, base_url: str = "", timeout: float = 10.0) -> None:
        kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
        self._client = WebClient(token=token, timeout=max(1, int(timeout)), retry_handlers=[],
                                 logger=_SDK_LOG, **kwargs)

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Sent:
        try:
            resp = fn(**kwargs)
        except SlackApiError as exc:
            r = exc.response
            error = (r.data.get("error") if isinstance(r.data, dict) else None) or str(r.data)[:200]
            raise _classify(int(r.status_code), r.headers, str(error)) from None
        except (URLError, OSError, SlackClientError) as exc:
            raise _Retryable(f"network error: {exc}") from None
        data = resp.data if isinstance(resp.data, dict) else {}
        return Sent(ts=str(data.get("ts") or ""), channel=str(data.get("channel") or ""))

    def post(self, payload: Mapping[str, Any], *, channel: str, thread_ts: str = "") -> Sent:
        if not channel:
            raise DeliveryError("no channel for the bot token (set slack.channel or a route)")
        extra = {"thread_ts": thread_ts} if thread_ts else {}
        return self._call(self._client.chat_postMessage, channel=channel,
                          text=payload.get("text", ""), attachments=payload.get("attachments"),
                          blocks=payload.get("blocks"), unfurl_links=False, unfurl_media=False,
                          **extra)

    def update(self, payload: Mapping[str, Any], *, channel: str, ts: str) -> Sent:
        return self._call(self._client.chat_update, channel=channel, ts=ts,
                          text=payload.get("text", ""), attachments=payload.get("attachments"),
                          blocks=payload.get("blocks"))


@dataclass
class Budget:
    """Retry settings and the time one delivery pass may still spend waiting."""

    max_retries: int = 3
    backoff_seconds: float = 1.0
    seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    waited: float = 0.0
    _deadline: float | None = field(default=None, repr=False)

    def remaining(self) -> float:
        if self._deadline is None:
            self._deadline = self.clock() + self.seconds
        return self._deadline - self.clock()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` if the budget allows; ``False`` (no sleep) when it does not."""
        if seconds > self.remaining():
            return False
        self.sleep(seconds)
        self.waited += seconds
        return True


def deliver(send: Callable[[], Sent], budget: Budget) -> Sent:
    """Call ``send`` until it succeeds, retrying 429 (after ``Retry-After``) and 5xx/network
    errors (exponential backoff, ``max_retries``) within ``budget``. Raises
    :class:`DeliveryError` (``.attempts`` set) when the message must wait for a later pass."""
    attempts = 0
    failures = 0
    waited = 0.0
    while True:
        attempts += 1
        try:
            sent = send()
            return Sent(sent.ts, sent.channel, attempts, waited)
        except _Retryable as exc:
            if exc.retry_after is not None:
                # Rate limited: Slack said when to come back; that is not a failure of ours,
                # but keep it bounded (the budget, and a cap on consecutive 429s).
                delay = exc.retry_after
                failures += 1 if attempts > 10 else 0
            else:
                failures += 1
                delay = budget.backoff_seconds * (2 ** (failures - 1))
            if failures > budget.max_retries or not budget.wait(delay):
                err = DeliveryError(f"{exc} after {attempts} attempt(s); left queued")
                err.attempts = attempts  # type: ignore[attr-defined]
                # Still rate limited: the next message would be refused too.
                err.rate_limited = exc.retry_after is not None  # type: ignore[attr-defined]
                raise err from None
            waited += delay
        except DeliveryError as exc:
            exc.attempts = attempts  # type: ignore[attr-defined]
            raise
