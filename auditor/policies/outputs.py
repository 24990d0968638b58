"""What a policy evaluation looks like to people and tools: text, JSON, SARIF 2.1.0 (code
scanning in CI) and ``wgpolicyk8s.io/v1alpha2`` PolicyReports (what Kyverno, kubescape and
the policy-reporter UI read).

Compliance score: the share of applicable checks that comply, weighted by severity
(critical 10, high 5, medium 2, low 1). Passing results comply; failing and erroring ones
do not (an error proves nothing); skipped ones (exempted, or admission-only policies) are
left out. 100 when nothing applies.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from auditor import __version__
from auditor.engine.records import ResourceKey

from .model import SEVERITIES, SEVERITY_WEIGHT, STATUSES, LoadProblem, Policy, PolicyResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# GitHub code scanning ranks alerts by this property (CVSS-like, 0-10).
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
REPORT_API = "wgpolicyk8s.io/v1alpha2"
TOOL = "drift-auditor"


def compliance_score(results: Iterable[PolicyResult]) -> float:
    good = total = 0
    for r in results:
        if r.status == "skip":
            continue
        weight = SEVERITY_WEIGHT.get(r.severity, 1)
        total += weight
        if r.status == "pass":
            good += weight
    return round(100.0 * good / total, 1) if total else 100.0


def summary(results: Sequence[PolicyResult]) -> dict[str, Any]:
    """Counts by status, by severity (failures) and by policy, plus the score."""
    by_status = Counter(r.status for r in results)
    failing = [r for r in results if r.status == "fail"]
    by_policy: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        by_policy[r.policy][r.status] += 1
    return {
        "score": compliance_score(results),
        "results": len(results),
        **{s: by_status.get(s, 0) for s in STATUSES},
        "exempted": sum(1 for r in results if r.exemption is not None and r.status == "skip"),
        "failing_by_severity": {s: sum(1 for r in failing if r.severity == s)
                                for s in SEVERITIES},
        "by_policy": {name: {s: counts.get(s, 0) for s in STATUSES}
                      for name, counts in sorted(by_policy.items())},
    }


def _key(key: ResourceKey) -> dict[str, str]:
    return {"kind": key.kind, "group": key.group, "namespace": key.namespace, "name": key.name}


def result_doc(r: PolicyResult) -> dict[str, Any]:
    doc: dict[str, Any] = {"policy": r.policy, "severity": r.severity, "status": r.status,
                           "apiVersion": r.api_version, **_key(r.key),
                           "messages": list(r.messages)}
    if r.exemption is not None:
        e = r.exemption
        doc["exemption"] = {"source": e.source, "justification": e.justification,
                            "approver": e.approver, "expires": e.expires, "expired": e.expired}
    if r.source is not None:
        doc["source"] = {"file": r.source.file, "commit": r.source.commit}
    return doc


def policy_doc(p: Policy) -> dict[str, Any]:
    return {"name": p.name, "title": p.title, "severity": p.severity, "category": p.category,
            "controls": list(p.controls), "description": p.description,
            "remediation": p.remediation, "file": p.file}


def problem_doc(p: LoadProblem) -> dict[str, str]:
    return {"file": p.file, "policy": p.policy, "message": p.message}


def to_json(results: Sequence[PolicyResult], policies: Sequence[Policy],
            problems: Sequence[LoadProblem] = ()) -> bytes:
    doc = {"summary": summary(results), "policies": [policy_doc(p) for p in policies],
           "results": [result_doc(r) for r in results],
           "problems": [problem_doc(p) for p in problems]}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def to_text(results: Sequence[PolicyResult], policies: Sequence[Policy],
            problems: Sequence[LoadProblem] = (), *, show_passing: bool = False) -> str:
    """Failures first (most severe first), then errors, exemptions and a summary line."""
    titles = {p.name: p.title or p.name for p in policies}
    order = {s: i for i, s in enumerate(SEVERITIES)}
    lines: list[str] = []
    shown = [r for r in results if r.status in ("fail", "error")
             or (r.status == "skip" and r.exemption is not None) or show_passing]
    shown.sort(key=lambda r: (("fail", "error", "skip", "pass").index(r.status),
                              order.get(r.severity, 9), r.policy, r.key))
    for r in shown:
        label = {"fail": r.severity.upper(), "error": "ERROR", "skip": "EXEMPT",
                 "pass": "PASS"}[r.status]
        lines.append(f"{label:8} {r.policy}  {r.key}")
        if r.status == "skip" and r.exemption is not None:
            e = r.exemption
            who = f" (approved by {e.approver}, until {e.expires})" if e.source == "config" else \
                " (annotation)"
            lines.append(f"         exempt: {e.justification}{who}")
        else:
            for m in r.messages or (titles.get(r.policy, ""),):
                lines.append(f"         {m}")
    for p in problems:
        lines.append(f"POLICY   {p}")
    s = summary(results)
    fails = ", ".join(f"{n} {sev}" for sev, n in s["failing_by_severity"].items() if n)
    lines.append(f"{len(policies)} policies, {s['results']} results: {s['pass']} pass, "
                 f"{s['fail']} fail{f' ({fails})' if fails else ''}, {s['skip']} skip "
                 f"({s['exempted']} exempted), {s['error']} error · compliance score "
                 f"{s['score']:.1f}%" + (f" · {len(problems)} policy problems" if problems else ""))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- SARIF


def _rule(p: Policy) -> dict[str, Any]:
    return {
        "id": p.name, "name": p.title or p.name,
        "shortDescription": {"text": p.title or p.name},
        "fullDescription": {"text": p.description},
        "help": {"text": f"{p.description}\n\nRemediation: {p.remediation}",
                 "markdown": f"{p.description}\n\n**Remediation:** {p.remediation}"},
        "defaultConfiguration": {"level": SARIF_LEVEL[p.severity]},
        "properties": {"tags": ["security", "kubernetes", p.category, *p.controls],
                       "security-severity": SECURITY_SEVERITY[p.severity],
                       "severity": p.severity, "category": p.category,
                       "controls": list(p.controls)},
    }


def to_sarif(results: Sequence[PolicyResult], policies: Sequence[Policy],
             problems: Sequence[LoadProblem] = ()) -> bytes:
    """SARIF 2.1.0: one rule per policy; one result per failing (or exempted: suppressed)
    object, located at its manifest file when it came from Git."""
    index = {p.name: i for i, p in enumerate(policies)}
    out = []
    for r in results:
        if r.status not in ("fail", "error") and r.exemption is None:
            continue
        if r.policy not in index:
            continue
        location: dict[str, Any] = {"logicalLocations": [{
            "fullyQualifiedName": f"{r.key.group_kind}/{r.key.namespace or '-'}/{r.key.name}",
            "name": r.key.name, "kind": "resource"}]}
        if r.source is not None and r.source.file:
            location["physicalLocation"] = {"artifactLocation": {"uri": r.source.file},
                                            "region": {"startLine": 1}}
        item: dict[str, Any] = {
            "ruleId": r.policy, "ruleIndex": index[r.policy],
            "level": "error" if r.status == "error" else SARIF_LEVEL[r.severity],
            "message": {"text": f"{r.key}: {r.message or r.policy}"},
            "locations": [location],
            "partialFingerprints": {"driftAuditor/v1": f"{r.policy}/{r.key.group_kind}/"
                                                       f"{r.key.namespace}/{r.key.name}"},
            "properties": {"status": r.status, "severity": r.severity},
        }
        if r.exemption is not None and r.status == "skip":
            item["suppressions"] = [{"kind": "external" if r.exemption.source == "config"
                                     else "inSource",
                                     "justification": r.exemption.justification}]
        out.append(item)
    notifications = [{"level": "error", "message": {"text": str(p)},
                      "locations": [{"physicalLocation": {"artifactLocation": {"uri": p.file}}}]}
                     for p in problems]
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": TOOL, "version": __version__,
                            "informationUri": "https://github.com/drift-auditor/drift-auditor",
                            "rules": [_rule(p) for p in policies]}},
        "results": out,
        "invocations": [{"executionSuccessful": not problems,
                         "toolConfigurationNotifications": notifications}],
    }]}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


# -------------------------------------------------------------------- PolicyReport


def _report_result(r: PolicyResult, policy: Policy | None, seconds: int) -> dict[str, Any]:
    properties = {"controls": ",".join(policy.controls) if policy else ""}
    if r.exemption is not None:
        properties["exemption"] = r.exemption.justification
        if r.exemption.approver:
            properties["approver"] = r.exemption.approver
        if r.exemption.expires:
            properties["expires"] = r.exemption.expires
    out: dict[str, Any] = {
        "source": TOOL, "policy": r.policy, "rule": r.policy,
        "category": policy.category if policy else "", "severity": r.severity,
        "timestamp": {"seconds": seconds, "nanos": 0}, "result": r.status, "scored": True,
        "resources": [{"apiVersion": r.api_version, "kind": r.key.kind, "name": r.key.name,
                       **({"namespace": r.key.namespace} if r.key.namespace else {})}],
        "properties": properties,
    }
    if r.messages:
        out["message"] = r.message
    return out


def policy_reports(results: Sequence[PolicyResult], policies: Sequence[Policy], *,
                   now: datetime | None = None) -> dict[str, Any]:
    """A ``List`` of one PolicyReport per namespace and one ClusterPolicyReport for
    cluster-scoped objects, ready for ``kubectl apply``."""
    seconds = int((now or datetime.now(UTC)).timestamp())
    by_name: Mapping[str, Policy] = {p.name: p for p in policies}
    grouped: dict[str, list[PolicyResult]] = defaultdict(list)
    for r in results:
        grouped[r.key.namespace].append(r)
    items = []
    for namespace in sorted(grouped):
        group = grouped[namespace]
        counts = Counter(r.status for r in group)
        meta: dict[str, Any] = {"name": f"{TOOL}-{namespace}" if namespace else TOOL,
                                "labels": {"app.kubernetes.io/managed-by": TOOL}}
        if namespace:
            meta["namespace"] = namespace
        items.append({
            "apiVersion": REPORT_API,
            "kind": "PolicyReport" if namespace else "ClusterPolicyReport",
            "metadata": meta,
            "summary": {"pass": counts.get("pass", 0), "fail": counts.get("fail", 0),
                        "warn": 0, "error": counts.get("error", 0),
                        "skip": counts.get("skip", 0)},
            "results": [_report_result(r, by_name.get(r.policy), seconds) for r in group],
        })
    return {"apiVersion": "v1", "kind": "List", "items": items}


def to_policy_report(results: Sequence[PolicyResult], policies: Sequence[Policy], *,
                     now: datetime | None = None) -> bytes:
    return orjson.dumps(policy_reports(results, policies, now=now),
                        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
