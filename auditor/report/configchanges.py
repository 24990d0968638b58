"""The report's "Tool configuration during the period": Drift Auditor's own configuration as
the runs recorded it (:mod:`auditor.ledger.configlog`), and the control over its changes.

An automated control's configuration is part of the control: a scope narrowed, a kind
excluded or an ignore rule added changes what it can find. For the period this section shows
the version in force at its start (per run mode) and each version recorded within it, with
a unified diff from the previous version, who changed it and whether that was approved.

Who: the author of the last commit touching each changed file (the config file, a policy
or DriftIgnore file), when the file is committed as it was read; otherwise
:data:`UNKNOWN_WHO`. Approved: every changed file is committed as read and its commit carries
a ``Reviewed-by:`` or ``Approved-by:`` trailer naming someone other than its author, and no
setting changed outside the config file (environment variables, flags and built-in defaults
have no review trail). A change without approval is an exception of control DA-15. The first
version recorded (the baseline) is judged the same way: the configuration then in force had
no recorded approval either, unless Git says otherwise.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from auditor.ledger import configlog
from auditor.ledger.configlog import Version

from .export import config_csv
from .model import ConfigVersionItem, Control, Evidence, ToolConfiguration

CONTROL_ID = "DA-15"
SECTION = "tool-config"
APPROVAL_TRAILERS = ("reviewed-by", "approved-by")
UNKNOWN_WHO = "unknown — configuration not under version control"
EVIDENCE_LIMIT = 12
_PERSON = re.compile(r"^\s*(?P<name>.*?)\s*(?:<(?P<email>[^>]*)>)?\s*$")


def _person(text: str) -> tuple[str, str]:
    match = _PERSON.match(text)
    if match is None:  # pragma: no cover - the pattern matches any text
        return text.strip().casefold(), ""
    return (match.group("name") or "").casefold(), (match.group("email") or "").casefold()


def same_person(a: str, b: str) -> bool:
    """Whether two ``Name <email>`` texts name one person: by email when both have one,
    else by name (case-insensitive)."""
    (name_a, mail_a), (name_b, mail_b) = _person(a), _person(b)
    if mail_a and mail_b:
        return mail_a == mail_b
    return bool(name_a) and name_a == name_b


def approvers(commit: Mapping[str, Any]) -> list[str]:
    """The commit's ``Reviewed-by:`` / ``Approved-by:`` trailers naming someone other than
    its author (a self-review approves nothing)."""
    author = f"{commit.get('author', '')} <{commit.get('author_email', '')}>"
    return [str(value) for key, value in commit.get("trailers") or ()
            if str(key).lower() in APPROVAL_TRAILERS and not same_person(str(value), author)]


def _changed_files(version: Version, previous: Version | None) -> list[dict[str, Any]]:
    """The files whose content differs from the previous version's: added, changed, or
    removed (a removed file is recorded without a hash)."""
    before = {f.get("path"): f.get("sha256") for f in (previous.files if previous else ())}
    return [f for f in version.files
            if (previous is None and f.get("sha256"))
            or (previous is not None and before.get(f.get("path")) != f.get("sha256"))]


def _file_change(f: Mapping[str, Any], previous: Version | None) -> str:
    if not f.get("sha256"):
        return "removed"
    if previous is None:
        return "in force"
    known = {p.get("path") for p in previous.files if p.get("sha256")}
    return "changed" if f.get("path") in known else "added"


def _some(paths: list[str]) -> str:
    """Paths for one line: the first few, then how many in all."""
    shown = ", ".join(paths[:3])
    return shown if len(paths) <= 3 else f"{shown} … ({len(paths)} files)"


def judge(version: Version, previous: Version | None) -> dict[str, Any]:
    """What changed from ``previous`` (same run mode), who did it, the commits and approvers,
    and why the change is unapproved ('' when it is approved). Files are grouped by why they
    lack an approval (a policy pack is dozens of files, often of one commit)."""
    changed: list[str] = []
    who: list[str] = []
    commits: list[str] = []
    approved_by: list[str] = []
    # Why files lack an approval, each with its files, in a stable order.
    unapproved: dict[str, list[str]] = {}
    files = _changed_files(version, previous)
    for f in files:
        path = str(f.get("path") or "")
        changed.append(f"{path} ({_file_change(f, previous)})")
        git = f.get("git")
        commit = (git or {}).get("commit")
        if git is None:
            why = "not under version control"
        elif git.get("error"):
            why = f"Git could not say who changed it ({git['error']})"
        elif git.get("modified") or (f.get("sha256") and not git.get("tracked")):
            why = "uncommitted: differs from what Git holds"
        elif not commit:
            why = "never committed"
        else:
            author = f"{commit.get('author', '')} <{commit.get('author_email', '')}>"
            who.append(author)
            sha = str(commit.get("sha", ""))[:12]
            commits.append(f"{sha} {commit.get('subject', '')}")
            found = approvers(commit)
            approved_by.extend(found)
            if not found:
                unapproved.setdefault(f"commit {sha} by {author} carries no Reviewed-by or "
                                      "Approved-by trailer by someone else", []).append(path)
            continue
        who.append(UNKNOWN_WHO)
        unapproved.setdefault(why, []).append(path)
    reasons = [f"{why}: {_some(paths)}" for why, paths in unapproved.items()]
    config_changed = any(f.get("role") == "config" for f in files)
    if (previous is None or previous.settings != version.settings) and not config_changed:
        if not version.config_file:
            what = "no config file: the settings come from defaults and the environment"
        else:
            what = ("settings changed outside the config file (environment variables, flags "
                    "or built-in defaults)")
        if previous is not None and previous.tool_version != version.tool_version:
            what += f"; drift-auditor {previous.tool_version} → {version.tool_version}"
        changed.append(what)
        reasons.append(what)
        who.append(UNKNOWN_WHO)
    if not changed:  # the digest moved, yet no file or setting did: say so, never pass it
        changed.append("unknown: no file or setting differs")
        reasons.append("the cause of the change is unknown")
        who.append(UNKNOWN_WHO)
    return {"changed": changed, "who": list(dict.fromkeys(who)),
            "commits": list(dict.fromkeys(commits)),
            "approvers": list(dict.fromkeys(approved_by)), "approved": not reasons,
            "exception": "; ".join(reasons)}


def item(version: Version, previous: Version | None, *, in_period: bool = True
         ) -> ConfigVersionItem:
    verdict = judge(version, previous)
    return ConfigVersionItem(
        anchor=f"cfgv-{version.id}", id=version.id, run_id=version.run_id, at=version.at,
        mode=version.mode, digest=version.digest,
        previous_digest=previous.digest if previous else "",
        config_file=version.config_file, changed=verdict["changed"], who=verdict["who"],
        commits=verdict["commits"], approvers=verdict["approvers"],
        approved=verdict["approved"], exception=verdict["exception"],
        diff=configlog.diff(previous, version), document=configlog.document(version),
        tool_version=version.tool_version, baseline=previous is None, in_period=in_period)


def build(conn: sqlite3.Connection, start: str, end: str) -> ToolConfiguration:
    """The section for ``[start, end)`` from the ledger (read in the report's transaction)."""
    if not configlog.recorded(conn):
        return ToolConfiguration()
    versions = configlog.versions(conn, until=end)
    by_id = {v.id: v for v in versions}
    before: dict[str, Version] = {}
    for v in versions:
        if v.at < start:
            before[v.mode] = v  # oldest first: the last one of each mode wins
    return ToolConfiguration(
        recorded=bool(versions),
        in_force=[item(v, by_id.get(v.previous_id) if v.previous_id else None,
                       in_period=False) for _, v in sorted(before.items())],
        changes=[item(v, by_id.get(v.previous_id) if v.previous_id else None)
                 for v in versions if v.at >= start])


def _n(count: int, one: str) -> str:
    return f"{count} {one}{'' if count == 1 else 's'}"


def control(section: ToolConfiguration) -> Control:
    """DA-15: every configuration version recorded in the period was approved."""
    changes = section.changes
    bad = section.exceptions
    refs = [(f"config version {c.id}", c.anchor) for c in bad]
    evidence = [Evidence("tool configuration", f"#{SECTION}")]
    evidence += [Evidence(label, f"#{anchor}") for label, anchor in refs[:EVIDENCE_LIMIT]]
    if len(refs) > EVIDENCE_LIMIT:
        evidence.append(Evidence(f"+{len(refs) - EVIDENCE_LIMIT} more in tool configuration",
                                 f"#{SECTION}"))
    result = "not-tested" if not changes else "exceptions" if bad else "pass"
    return Control(
        CONTROL_ID, ["CC8.1"], "The auditor's own configuration changes are approved",
        "Every change to Drift Auditor's own configuration (settings, ignore rules, scope, "
        "policy pack) recorded in the period was committed to Git and approved (a "
        "Reviewed-by or Approved-by trailer) by someone other than its author.",
        len(changes), len(bad), result, evidence,
        f"{_n(len(changes), 'configuration version')} recorded in the period, "
        f"{len(bad)} without an approval")


def history(conn: sqlite3.Connection, *, since: str | None = None, until: str | None = None,
            limit: int | None = None) -> list[ConfigVersionItem]:
    """Every version recorded in ``[since, until)``, oldest first, each with its diff from the
    previous version of its mode (which may be older than ``since``): ``drift-auditor
    history --type config``."""
    versions = configlog.versions(conn, until=until)
    by_id = {v.id: v for v in versions}
    chosen = [v for v in versions if since is None or v.at >= since]
    if limit is not None:
        chosen = chosen[:max(0, limit)]
    return [item(v, by_id.get(v.previous_id) if v.previous_id else None) for v in chosen]


def render(items: Sequence[ConfigVersionItem], fmt: str = "text") -> str:
    """``history --type config`` as ``text`` (each version, who, approval and its diff),
    ``json`` or ``csv`` (the report's ``config`` table)."""
    if fmt == "json":
        return orjson.dumps([dataclasses.asdict(i) for i in items],
                            option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
    if fmt == "csv":
        return config_csv(items)
    if not items:
        return "no configuration version recorded\n"
    out = []
    for i in items:
        head = (f"config version {i.id} · {i.at} · run {i.run_id} ({i.mode}) · digest "
                f"{i.digest[:16]}{' · first recorded' if i.baseline else ''}")
        lines = [head,
                 f"  from: {i.config_file or 'no config file'}"
                 f"{' · drift-auditor ' + i.tool_version if i.tool_version else ''}",
                 f"  changed: {'; '.join(i.changed)}",
                 f"  who: {', '.join(i.who)}"]
        lines += [f"  commit: {c}" for c in i.commits]
        lines.append(f"  approved by {', '.join(i.approvers)}" if i.approved
                     else f"  NOT APPROVED: {i.exception}")
        body = i.diff if not i.baseline else i.document
        lines.append("")
        lines += [f"    {line}" for line in body.rstrip("\n").splitlines()]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"
