"""Rendering comparison results: the ``drift-auditor diff`` JSON contract, text, exit status.

JSON (``--output json``, DESIGN.md "Contracts")::

    {"summary": {"resources", "in_sync", "drifted", "missing", "orphan", "ignored"?},
     "resources": [{"apiVersion", "kind", "namespace", "name", "status",
                    "source": {"file", "commit", "author", "date", "committer",
                               "commit_date", "subject", "pr", "trailers"} | null,
                    "drifts": [{"path", "op", "desired", "live", "manager", "operation",
                                "time", "category", "user"?, "spoofed"?}]}],
     "problems": [{"where", "message", "kind"}]}       # only when there are problems

Exit status (:func:`exit_code`): 0 in sync, 1 drift, 2 error, 3 partial (a kind not listed).

Key order is fixed; resources are sorted by key and drifts by path, so the same results
always render to the same bytes. Keys beyond the documented contract appear only when they
carry something: ``summary.ignored`` when objects were ignored (they carry a ``reason``),
``problems`` when errors were met, a drift's ``user`` when an API-server audit source named
the authenticated user behind its owner's write, and ``spoofed: true`` when that user wrote
under a GitOps manager's name without being a GitOps identity (the drift is then ``human``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from auditor.engine.deltas import is_multiline, list_delta, text_delta
from auditor.engine.records import DriftItem, ObjectResult, Problem, SourceInfo

_STATUSES = ("in-sync", "drifted", "missing", "orphan", "ignored")


def _sorted_value(value: Any) -> Any:
    # Values are pieces of manifests; sorting their keys makes output independent of the
    # order the API server or the YAML file happened to use.
    if isinstance(value, dict):
        return {k: _sorted_value(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_value(v) for v in value]
    return value


def _sorted_results(results: Iterable[ObjectResult]) -> list[ObjectResult]:
    return sorted(results, key=lambda r: r.key)


def _drift_json(d: DriftItem) -> dict[str, Any]:
    out = {"path": d.path, "op": d.op, "desired": _sorted_value(d.desired),
           "live": _sorted_value(d.live), "manager": d.manager, "operation": d.operation,
           "time": d.time, "category": d.category}
    if d.user:
        out["user"] = d.user
    if d.spoofed:
        out["spoofed"] = True
    return out


def _source_json(source: SourceInfo) -> dict[str, Any]:
    """The Git evidence of a desired object: its file and the last commit that touched it,
    with what a reviewer looks for (who committed it, its subject, PR number, trailers)."""
    trailers: dict[str, list[str]] = {}
    for key, value in source.trailers:
        trailers.setdefault(key, []).append(value)
    return {"file": source.file, "commit": source.commit, "author": source.author,
            "date": source.date, "committer": source.committer,
            "commit_date": source.committed_date, "subject": source.subject, "pr": source.pr,
            "trailers": {key: trailers[key] for key in sorted(trailers)}}


def _resource_json(r: ObjectResult,
                   sources: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    source = None
    if r.source is not None:
        if sources is None:
            source = _source_json(r.source)
        else:
            source = sources.get(id(r.source))
            if source is None:
                source = sources[id(r.source)] = _source_json(r.source)
    out: dict[str, Any] = {
        "apiVersion": r.api_version, "kind": r.key.kind, "namespace": r.key.namespace,
        "name": r.key.name, "status": r.status,
        "source": source,
        "drifts": [_drift_json(d) for d in sorted(r.drifts, key=lambda d: (d.path, d.op))],
    }
    if r.reason:
        out["reason"] = r.reason
    return out


def summary(results: Iterable[ObjectResult]) -> dict[str, int]:
    """Counts per status, in the contract's order."""
    listed = list(results)
    counts = Counter(r.status for r in listed)
    out = {"resources": len(listed), "in_sync": counts["in-sync"], "drifted": counts["drifted"],
           "missing": counts["missing"], "orphan": counts["orphan"]}
    if counts["ignored"]:
        # Beyond the documented keys, so only there when it has something to say.
        out["ignored"] = counts["ignored"]
    return out


def to_json(results: Iterable[ObjectResult], problems: Iterable[Problem] = (),
            gitops: Mapping[str, Any] | None = None) -> bytes:
    """The ``drift-auditor diff --output json`` document. ``gitops`` (with sources from the
    GitOps controllers): the derived sources, the skipped objects, each source's sync lag
    and the namespaces not under GitOps, under ``"gitops"``."""
    ordered = _sorted_results(results)
    # The objects of one file share one SourceInfo: its JSON is built once (orjson writes
    # a shared dict as often as it is referenced).
    sources: dict[int, dict[str, Any]] = {}
    doc: dict[str, Any] = {"summary": summary(ordered),
                           "resources": [_resource_json(r, sources) for r in ordered]}
    found = [{"where": p.where, "message": p.message, "kind": p.kind} for p in problems]
    if found:
        doc["problems"] = found
    if gitops is not None:
        doc["gitops"] = dict(gitops)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


EXIT_IN_SYNC = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2
EXIT_PARTIAL = 3


def exit_code(results: Iterable[ObjectResult], problems: Iterable[Problem] = (), *,
              partial: bool = False, zero_on_drift: bool = False,
              zero_on_partial: bool = False) -> int:
    """0 all in sync, 1 drift/missing/orphan found, 2 an error occurred, 3 the audit was
    partial (``partial``: a kind could not be listed, so its objects were not audited).

    The most serious wins: an error, then a partial audit (an in-sync answer would be a claim
    about objects nobody looked at; drift found besides does not make it complete), then
    drift. ``zero_on_drift`` and ``zero_on_partial`` take drift and the partial audit out of
    the exit status (each is still reported); an error always counts.
    """
    if any(p.kind == "error" for p in problems):
        return EXIT_ERROR
    if partial and not zero_on_partial:
        return EXIT_PARTIAL
    if not zero_on_drift and any(r.status in ("drifted", "missing", "orphan") for r in results):
        return EXIT_DRIFT
    return EXIT_IN_SYNC


# --------------------------------------------------------------------------- text

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_BLUE = "\x1b[34m"
_MAGENTA = "\x1b[35m"
_CYAN = "\x1b[36m"

_STATUS_COLOUR = {"in-sync": _GREEN, "drifted": _YELLOW, "missing": _RED, "orphan": _MAGENTA,
                  "ignored": _DIM}
_CATEGORY_COLOUR = {"human": _RED, "controller": _BLUE, "gitops": _GREEN, "unknown": _YELLOW}
_OP_MARK = {"changed": "~", "added": "+", "removed": "-"}


def _show(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, str):
        return orjson.dumps(value).decode() if (not value or value.strip() != value
                                                 or "\n" in value) else value
    return orjson.dumps(_sorted_value(value)).decode()


def _truncate(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _list_delta(desired: list[Any], live: list[Any]) -> list[str]:
    """``-``/``+`` lines for the items one list has and the other lacks (an atomic list, such
    as RBAC ``rules``, drifts as a whole; its items say what changed)."""
    removed, added = list_delta(desired, live)
    lines = [f"- {_show(i)}" for i in removed] + [f"+ {_show(i)}" for i in added]
    if not lines:
        # Same items in another order: order is meaning in an atomic list.
        lines = [f"- {_show(desired)}", f"+ {_show(live)}"]
    return lines


def _drift_lines(d: DriftItem, paint: Any) -> list[str]:
    who = d.manager or "?"
    extra = ", ".join(x for x in (d.operation, d.time) if x)
    owner = f"{who} ({extra})" if extra else who
    if d.user:
        owner += f" by {d.user}"
    head = f"  {_OP_MARK[d.op]} {paint(d.path, _BOLD)}"
    category = paint(d.category, _CATEGORY_COLOUR.get(d.category, ""))
    if d.spoofed:
        category += " " + paint("[spoofed manager]", _RED)
    if is_multiline(d.desired) and is_multiline(d.live):
        lines = [f"{head}   {owner} {category}"]
        for line in text_delta(d.desired, d.live):
            colour = _RED if line.startswith("-") else _GREEN if line.startswith("+") else _DIM
            lines.append("      " + paint(line, colour))
        return lines
    if isinstance(d.desired, list) and isinstance(d.live, list) and d.desired != d.live:
        lines = [f"{head}   {owner} {category}"]
        for line in _list_delta(d.desired, d.live):
            colour = _RED if line.startswith("-") else _GREEN
            lines.append("      " + paint(line, colour))
        return lines
    values = f"{_truncate(_show(d.desired))} → {_truncate(_show(d.live))}"
    return [f"{head}: {values}   {owner} {category}"]


def gitops_lines(gitops: Mapping[str, Any] | None) -> list[str]:
    """The sync lag of the controllers' sources, one line each: approved changes not live
    yet, which is not drift."""
    if not gitops:
        return []
    out = []
    for lag in gitops.get("sync_lag") or ():
        if lag["behind"] < 0:
            out.append(f"sync lag: {lag['owner']}: applied {lag['applied'][:12]} is not in "
                       f"the history of {lag['ref']} (head {lag['head'][:12]})")
        else:
            out.append(f"sync lag: {lag['owner']}: Git is ahead of the cluster by "
                       f"{lag['behind']} commit{'s' if lag['behind'] != 1 else ''} on "
                       f"{lag['ref']} since {lag['since']} (applied {lag['applied'][:12]}, "
                       f"head {lag['head'][:12]})")
    return out


def to_text(results: Iterable[ObjectResult], problems: Iterable[Problem] = (), color: bool = False) -> str:
    """A human-readable report: one header per object not in sync, one line per drift."""
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color and code else text

    ordered = _sorted_results(results)
    lines: list[str] = []
    for r in ordered:
        if r.status == "in-sync":
            continue
        where = f"{r.key.namespace}/" if r.key.namespace else ""
        header = f"{r.key.group_kind} {where}{r.key.name}"
        status = paint(r.status, _STATUS_COLOUR.get(r.status, ""))
        origin = ""
        if r.source is not None and r.source.file:
            commit = f" @ {r.source.commit[:10]}" if r.source.commit else ""
            origin = paint(f"  ({r.source.file}{commit})", _DIM)
        reason = f"  {r.reason}" if r.reason else ""
        lines.append(f"{paint(header, _BOLD + _CYAN)}  {status}{origin}{reason}")
        for d in sorted(r.drifts, key=lambda x: (x.path, x.op)):
            lines.extend(_drift_lines(d, paint))
    for p in problems:
        lines.append(paint(f"{p.kind}: {p.where}: {p.message}", _RED))
    s = summary(ordered)
    counts = ", ".join(f"{s[k]} {k.replace('_', '-')}" for k in
                       ("in_sync", "drifted", "missing", "orphan", "ignored") if s.get(k))
    lines.append(f"{s['resources']} resources" + (f": {counts}" if counts else ""))
    return "\n".join(lines) + "\n"
