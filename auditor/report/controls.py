"""The control matrix: each of our checks, the SOC 2 (2017 Trust Services Criteria, revised
points of focus 2022) common criteria it supports, its population in the period, its
exceptions and links to the evidence rows.

A check *passes* when its population is not empty and it has no exception; with an empty
population it is *not tested* (an auditor cannot conclude anything from no evidence).
Exceptions are counted per evidence row (a change, a drift occurrence, a gap, a commit), so
the count can be re-performed by filtering the report's tables or its CSV. Drift is counted
per occurrence in the period, not per object open at its end; and each monitoring gap is an
exception interval of every control whose population the scheduled runs produce
(:data:`MONITORED`). "pass" means no exception *found by the tool*, never more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from . import images
from .model import (
    ChangeItem,
    CommitItem,
    Completeness,
    Control,
    DriftEpisode,
    EmergencyChange,
    Evidence,
    Gap,
    Integrity,
    Monitoring,
    Policies,
    RevertAttempt,
    RevertCap,
)
from .timeutil import between

CRITERIA: dict[str, str] = {
    "CC6.1": "Logical access security over protected information assets.",
    "CC6.2": "Users are registered and authorized before access is granted, and their access "
             "is removed when no longer authorized.",
    "CC6.3": "Access is authorized, modified or removed based on roles and responsibilities, "
             "with least privilege and segregation of duties.",
    "CC6.6": "Logical access security measures against threats from outside the system "
             "boundaries.",
    "CC6.8": "Controls prevent or detect and act upon the introduction of unauthorized or "
             "malicious software.",
    "CC7.1": "Detection and monitoring procedures identify changes to configurations that "
             "introduce vulnerabilities.",
    "CC7.2": "System components are monitored for anomalies indicative of malicious acts, "
             "natural disasters and errors.",
    "CC7.3": "Security events are evaluated to determine whether they could or did result in "
             "a failure to meet objectives.",
    "CC7.4": "Identified security incidents are responded to by a defined program "
             "(contain, remediate, communicate).",
    "CC8.1": "Changes to infrastructure, data, software and procedures are authorized, "
             "documented, tested, approved and implemented.",
}

# Credentials (DA-1) and the grants that say what each identity may do (DA-14): RBAC is
# authorization by role (CC6.2, CC6.3), a Secret or ServiceAccount is a credential (CC6.1).
ACCESS_KINDS = frozenset({"ServiceAccount", "Secret"})
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
BOUNDARY_KINDS = frozenset({"NetworkPolicy", "Ingress", "IngressClass", "Service", "Gateway",
                            "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod",
                            "ReplicaSet"})
EVIDENCE_LIMIT = 12

# Each control's criteria and why it supports them: the matrix shows the criteria, the
# appendix the reasons (an auditor judges the mapping, not only the figures). DA-10 names the
# criteria its policies declare; DA-6 maps to none (it vouches for the evidence itself).
MAPPINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "DA-1": (("CC6.1",),
             "Secrets and ServiceAccounts are the credentials and identities workloads "
             "authenticate with; changed only through reviewed Git, and drift on them "
             "remediated or accepted, they stay under logical access security."),
    "DA-14": (("CC6.2", "CC6.3"),
              "RBAC RoleBindings and ClusterRoleBindings grant an identity its access (CC6.2: "
              "access granted only once authorized) and Roles and ClusterRoles say what that "
              "access allows (CC6.3: by role, least privilege); a grant changed outside "
              "reviewed Git is an unauthorized access change."),
    "DA-2": (("CC6.6",),
             "NetworkPolicies, Services, Ingresses and Gateway routes are the system's "
             "boundary towards other networks; they change only through reviewed Git."),
    "DA-3": (("CC6.8",),
             "Workloads name the software that runs (their container images); a workload "
             "changed by hand is software introduced without review. The review covers the "
             "image reference Git names: pinned by digest it fixes the image, pinned by tag "
             "the registry can move it afterwards, and the control says which."),
    "DA-4": (("CC7.1",),
             "The scheduled comparison with Git is the detection procedure for configuration "
             "changes; every expected run happening is its operating evidence."),
    "DA-5": (("CC7.2",),
             "A live change Git did not carry is an anomaly of a monitored component; it is "
             "detected, raised as a drift and attributed to its field manager (and user)."),
    "DA-6": ((),
             "Not mapped to a criterion: the ledger's integrity supports the reliability of "
             "the information every other control's evidence is read from (its completeness "
             "and that it was not altered). It monitors the record, not the system, so it is "
             "not presented as evidence of CC7.2 or CC7.3."),
    "DA-7": (("CC7.3",),
             "Each drift occurrence is a security event that is evaluated: remediated, or "
             "accepted by a named person with a reason and an expiry."),
    "DA-8": (("CC7.4",),
             "Remediating a drift within the SLA is the response to the event."),
    "DA-9": (("CC8.1",),
             "Live changes match Git and Git commits carry a pull request and an approver: "
             "changes are authorized, documented and approved before they are implemented."),
    "DA-10": (("CC7.1",),
              "The criteria each evaluated policy declares (its controls field) that this "
              "matrix lists; CC7.1 (configuration monitoring) when they declare none."),
    "DA-11": (("CC7.4",),
              "Reverting a drift to Git automatically is a response that contains it."),
    "DA-12": (("CC8.1",),
              "A change made live in an emergency is written into Git and approved by a "
              "reviewed merge afterwards: change management for emergency changes."),
    "DA-13": (("CC7.1", "CC7.2"),
              "Every write the API server logged reaching the ledger shows that detection and "
              "monitoring (CC7.1, CC7.2) see every change, not a sample of them."),
}
# The controls whose population the scheduled runs produce (changes, drift occurrences, policy
# results, revert attempts, the audit trail): a monitoring gap is an exception interval of
# each, since nothing was compared then. DA-4 counts the missed runs itself; DA-12 (adoptions
# made by a person) and DA-13 (tested against the API server's audit log) do not depend on
# the schedule.
MONITORED = frozenset({"DA-1", "DA-14", "DA-2", "DA-3", "DA-5", "DA-6", "DA-7", "DA-8",
                       "DA-9", "DA-10", "DA-11"})


# A control with no population in the period because what it tests did not happen (no policy
# evaluated, no revert attempted, nothing adopted, no audit source): not a failure to test.
NOT_APPLICABLE = "not-applicable"


def _criteria(cid: str) -> list[str]:
    return list(MAPPINGS[cid][0])


@dataclass(frozen=True)
class _Inputs:
    changes: Sequence[ChangeItem]
    drifts: Sequence[DriftEpisode]
    monitoring: Monitoring
    integrity: Integrity
    commits: Sequence[CommitItem]
    sla_hours: float


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def not_applicable(cid: str, title: str, check: str, why: str) -> Control:
    """A control the period gave nothing to test: shown as not applicable in the period,
    with why, rather than left out while the appendix still defines it."""
    return Control(cid, _criteria(cid), title, check, 0, 0, NOT_APPLICABLE, [],
                   f"Not applicable in period: {why}")


def _result(population: int, exceptions: int) -> str:
    if population == 0:
        return "not-tested"
    return "exceptions" if exceptions else "pass"


def _links(rows: Sequence[tuple[str, str]], section: str, label: str) -> list[Evidence]:
    out = [Evidence(label, f"#{section}")]
    out += [Evidence(text, f"#{anchor}") for text, anchor in rows[:EVIDENCE_LIMIT]]
    if len(rows) > EVIDENCE_LIMIT:
        out.append(Evidence(f"+{len(rows) - EVIDENCE_LIMIT} more in {label}", f"#{section}"))
    return out


def _change_ref(c: ChangeItem) -> tuple[str, str]:
    # A fleet report's IDs are per ledger: its rows carry a cluster-qualified ref and anchor.
    return c.ref or f"change {c.id}", c.anchor or f"chg-{c.id}"


def _drift_ref(d: DriftEpisode) -> tuple[str, str]:
    suffix = f".{d.occurrence}" if d.occurrence > 1 else ""
    return d.ref or f"drift {d.drift_id}{suffix}", d.anchor


def _gap_ref(i: int, g: Gap) -> tuple[str, str]:
    if g.anchor:
        return f"{g.cluster} gap {g.start}", g.anchor
    return f"gap {g.start}", f"gap-{i}"


def _commit_ref(c: CommitItem) -> tuple[str, str]:
    label = f"{c.cluster}:commit {c.sha[:10]}" if c.cluster else f"commit {c.sha[:10]}"
    return label, c.anchor or f"commit-{c.sha[:12]}"


def _unevaluated(drifts: Sequence[DriftEpisode]) -> list[DriftEpisode]:
    """The drift occurrences that are exceptions, one per occurrence (an object that drifted
    twice in the period is two): open and not accepted beyond the SLA at any time (even if
    resolved later), or still unresolved and unaccepted at the period's end."""
    return [d for d in drifts if d.sla_breach or d.state_at_end == "open"]


def _monitored(control: Control, mon: Monitoring) -> Control:
    """``control`` with each monitoring gap as one more exception (an interval): its
    population comes from scheduled runs, and where no run compared anything the tool cannot
    say that nothing happened."""
    if not mon.gaps:
        return control
    refs = [_gap_ref(i, g) for i, g in enumerate(mon.gaps)]
    missed = sum(g.missed for g in mon.gaps)
    return replace(
        control, exceptions=control.exceptions + len(refs),
        # An empty population stays not tested: a gap does not make it a tested one.
        result="not-tested" if control.result == "not-tested" else "exceptions",
        evidence=[*control.evidence, *_links(refs, "monitoring", "monitoring gaps")],
        note=f"{control.note}; {_n(len(refs), 'monitoring gap')} ({_n(missed, 'scheduled run')} "
             "missed): exception intervals, nothing was compared with Git then")


def _kind_control(cid: str, title: str, check: str, data: _Inputs,
                  wanted: Callable[[str, list[str]], bool], extra: str = "") -> Control:
    """Changes and drifts on matching objects: an unauthorized change, and each drift
    occurrence beyond the SLA or unresolved at the period's end, is an exception."""
    changes = [c for c in data.changes if wanted(c.kind, c.fields)]
    drifts = [d for d in data.drifts if wanted(d.kind, [v.path for v in d.values])]
    bad_changes = [c for c in changes if c.authorization == "unauthorized"]
    bad_drifts = _unevaluated(drifts)
    refs = [_change_ref(c) for c in bad_changes] + [_drift_ref(d) for d in bad_drifts]
    return Control(cid, _criteria(cid), title, check, len(changes) + len(drifts), len(refs),
                   _result(len(changes) + len(drifts), len(refs)),
                   [Evidence("drift and remediation", "#drifts"),
                    *_links(refs, "changes", "change population")],
                   f"{_n(len(changes), 'change')}, {_n(len(drifts), 'drift occurrence')}; "
                   f"exceptions: {len(bad_changes)} unauthorized, "
                   f"{_n(len(bad_drifts), 'drift occurrence')} beyond the SLA or unresolved at "
                   f"the period's end{extra}")


def _image_note(changes: Sequence[ChangeItem]) -> str:
    """How the images of the authorized workload changes (the ones called reviewed) were
    pinned, counted per distinct image reference."""
    refs = sorted({i for c in changes if c.kind in WORKLOAD_KINDS
                   and c.authorization == "authorized" for i in c.images})
    if not refs:
        return ""
    by = images.pins(refs)
    return (f"; reviewed images (of authorized workload changes): {by['digest']} pinned by "
            f"digest, {by['tag']} by tag only, {by['none']} without a tag — a tag can be moved "
            "after the review")


def _revert_ref(r: RevertAttempt) -> tuple[str, str]:
    return r.ref or f"revert {r.id}", r.anchor


def _cap_ref(c: RevertCap) -> tuple[str, str]:
    return f"{c.cluster + ':' if c.cluster else ''}capped run {c.run_id}", c.anchor


def _adoption_ref(c: EmergencyChange) -> tuple[str, str]:
    return c.ref or f"adoption {c.id}", c.anchor


def _completeness_control(c: Completeness) -> Control:
    """DA-13: only where an API-server audit source delivered events (else nothing to test
    the ledger against). Population: the period's in-scope audit writes; exceptions: each
    unmatched write, each gap of the audit stream, each scheduled run that skipped kinds."""
    refs = [(x.ref or f"{x.type} {x.anchor.rsplit('-', 1)[-1]}", x.anchor)
            for x in c.exceptions]
    unmatched, gaps, partial = (c.count("unmatched-write"), c.count("audit-gap"),
                                c.count("partial-run"))
    result = "exceptions" if refs else _result(c.audit_writes, 0)
    pct = f"{c.coverage_pct:.1f}%" if c.coverage_pct is not None else "—"
    return Control(
        "DA-13", _criteria("DA-13"), "Every change reaches the ledger",
        "Every create, update, patch and delete the API server logged on an object in scope "
        "is matched by a change recorded in the ledger (by a scheduled run or the watch); "
        "the audit stream has no gap and every scheduled run listed every kind.",
        c.audit_writes, len(refs), result,
        _links(refs, "completeness", "change completeness"),
        f"{c.matched} of {_n(c.audit_writes, 'audit write')} matched ({pct}); "
        f"{_n(unmatched, 'unmatched write')}, {_n(gaps, 'audit stream gap')}, "
        f"{_n(partial, 'run')} that skipped kinds; {_n(c.transient_changes, 'transient change')} "
        "recorded by the watch")


def build(changes: Sequence[ChangeItem], drifts: Sequence[DriftEpisode], monitoring: Monitoring,
          integrity: Integrity, commits: Sequence[CommitItem], sla_hours: float,
          policies: Policies | None = None, *, reverts: Sequence[RevertAttempt] = (),
          caps: Sequence[RevertCap] = (),
          emergency: Sequence[EmergencyChange] = (),
          completeness: Completeness | None = None) -> list[Control]:
    data = _Inputs(changes, drifts, monitoring, integrity, commits, sla_hours)
    out = [
        _kind_control(
            "DA-1", "Access credentials match Git",
            "ServiceAccounts and Secrets change only through Git; drift on them is remediated "
            "or accepted.", data,
            lambda kind, _paths: kind in ACCESS_KINDS),
        _kind_control(
            "DA-14", "Access grants (RBAC) match Git",
            "RBAC Roles, ClusterRoles and their bindings change only through Git; drift on "
            "them is remediated or accepted.", data,
            lambda kind, _paths: kind in RBAC_KINDS),
        _kind_control(
            "DA-2", "Network boundary matches Git",
            "NetworkPolicies, Services, Ingresses and Gateway routes change only through Git.",
            data, lambda kind, _paths: kind in BOUNDARY_KINDS),
        _kind_control(
            "DA-3", "Only reviewed software runs",
            "Workloads (and their container images) change only through Git; an image set "
            "by hand is an unauthorized change. An image counts as reviewed as Git names it: "
            "pinned by digest that is the image that runs, pinned by tag the registry can "
            "move the tag after the review.", data,
            lambda kind, _paths: kind in WORKLOAD_KINDS, _image_note(changes)),
    ]
    mon = data.monitoring
    gap_refs = [_gap_ref(i, g) for i, g in enumerate(mon.gaps)]
    missed = sum(g.missed for g in mon.gaps)
    out.append(Control(
        "DA-4", _criteria("DA-4"), "Configuration is compared with Git on schedule",
        f"A run every {mon.schedule_minutes} minutes compares every object in scope with Git; "
        "every expected run happened and finished.",
        mon.expected, missed, _result(mon.expected, missed),
        _links(gap_refs, "monitoring", "monitoring completeness"),
        f"{mon.covered} of {mon.expected} scheduled runs covered; {_n(len(mon.gaps), 'gap')}"
        + (f"; coverage measured from the first run at {mon.measured_from}"
           if mon.measured_from else "")))
    unraised = [c for c in changes if c.authorization == "unauthorized" and c.drift_id is None]
    unverified = [c for c in changes if c.authorization == "unverified"]
    refs = [_change_ref(c) for c in unraised + unverified]
    out.append(Control(
        "DA-5", _criteria("DA-5"), "Out-of-band changes are detected and attributed",
        "Every live change is judged against Git; an unauthorized one is raised as a drift "
        "naming its field manager (and user, from the audit log).",
        len(changes), len(refs), _result(len(changes), len(refs)),
        _links(refs, "changes", "change population"),
        f"{_n(len(unraised), 'unauthorized change')} not raised as drift, "
        f"{_n(len(unverified), 'change')} whose authorization could not be judged (e.g. a "
        "deletion without an audit log)"))
    integ = data.integrity
    out.append(Control(
        "DA-6", _criteria("DA-6"), "The audit trail is complete and unaltered",
        "Supports the reliability of the evidence in this report (not a criterion of its "
        "own): the ledger's hash chain, every chained row, every stored object content and "
        "every checkpoint verify, and the scheduled runs left no interval unrecorded.",
        integ.events_checked if integ.ok is not None else 0,
        0 if integ.ok else 1, "not-tested" if integ.ok is None else "exceptions"
        if not integ.ok else _result(integ.events_checked, 0),
        [Evidence("ledger verification", "#header")], integ.message))
    unevaluated = _unevaluated(drifts)
    open_ended = [d for d in drifts if d.accepted_by and not d.accepted_until
                  and d.state_at_end == "accepted"]
    # Accepted by the drift's own actor (``ack --allow-self``): no segregation of duties.
    counted = {(d.drift_id, d.occurrence, d.cluster) for d in unevaluated + open_ended}
    self_acked = [d for d in drifts if d.accepted_self
                  and (d.drift_id, d.occurrence, d.cluster) not in counted]
    refs = [_drift_ref(d) for d in unevaluated + open_ended + self_acked]
    out.append(Control(
        "DA-7", _criteria("DA-7"), "Every drift is evaluated",
        f"Each drift occurrence is remediated or accepted (who, why, until when) within "
        f"{sla_hours:g} h, by someone other than its own actor.",
        len(drifts), len(refs), _result(len(drifts), len(refs)),
        _links(refs, "drifts", "drift and remediation"),
        f"{_n(len(unevaluated), 'drift occurrence')} not remediated or accepted within the "
        f"SLA or unresolved at the period's end (each occurrence counts), "
        f"{_n(len(open_ended), 'acceptance')} without an expiry"
        + (f", {_n(len(self_acked), 'acceptance')} by the drift's own actor "
           "(self-acknowledged)" if self_acked else "")))
    breaches = [d for d in drifts if d.sla_breach]
    refs = [_drift_ref(d) for d in breaches]
    out.append(Control(
        "DA-8", _criteria("DA-8"), "Drift is remediated within the SLA",
        f"Time open and not accepted stays within {sla_hours:g} h for every drift occurrence.",
        len(drifts), len(refs), _result(len(drifts), len(refs)),
        [*_links(refs, "drifts", "drift and remediation"),
         # Reverts by the tool are remediation evidence of the same criterion.
         *([Evidence("reverts", "#reverts")] if reverts or caps else [])],
        _n(len(breaches), "SLA breach", "SLA breaches")
        + (f"; {_n(sum(1 for r in reverts if r.result == 'reverted'), 'drift')} reverted by "
           "the tool" if reverts else "")))
    unauthorized = [c for c in changes if c.authorization == "unauthorized"]
    # A judged change (auditor.githost) is an exception when segregation of duties failed;
    # one the git host could not be asked about is unknown, never unapproved.
    unreviewed = [c for c in commits if c.approval == "exception" or (
        not c.approval and (c.pr is None or not c.approvers))]
    unknown = [c for c in commits if c.approval == "unknown"]
    refs = [_change_ref(c) for c in unauthorized] + [_commit_ref(c) for c in unreviewed]
    population = len(changes) + len(commits)
    out.append(Control(
        "DA-9", _criteria("DA-9"), "Changes go through reviewed Git commits",
        "Every live change matches Git (authorized), and every change to Git in the period "
        "(each first-parent commit: a merge counts once, with its branch) has an independent "
        "approval: from the git host, an approving review of the pull request's head by "
        "someone other than its author and last pusher; without a host, a Reviewed-by / "
        "Approved-by trailer (not verified).",
        population, len(refs), _result(population, len(refs)),
        [*_links(refs, "changes", "change population"),
         # Emergency changes made live and approved afterwards are change-management evidence.
         Evidence("emergency changes", "#emergency")],
        f"{_n(len(unauthorized), 'unauthorized change')}, {len(unreviewed)} of "
        f"{_n(len(commits), 'commit')} without a pull request or independent approver"
        f"{f', {len(unknown)} not judged (git host not reachable)' if unknown else ''}; "
        f"{_n(len(emergency), 'emergency change')} adopted into Git"))
    if policies is not None and policies.evaluated_runs:
        # Each policy names the criteria it supports; the row lists those in this matrix.
        named = sorted({cc for row in policies.rows for cc in row.controls if cc in CRITERIA})
        population = sum(r.passed + r.failed for r in policies.rows)
        # Short labels: the failures table beside the anchors says which policy and object.
        refs = [(f.anchor if f.cluster else f"failure {i + 1}", f.anchor)
                for i, f in enumerate(policies.failing)]
        # A failure beyond the SLA that is still failing at the end is counted once, above.
        at_end = {(f.policy, f.object, f.since, f.cluster) for f in policies.failing}
        overdue = [f for f in policies.sla_breaches
                   if (f.policy, f.object, f.since, f.cluster) not in at_end]
        refs += [(f.anchor if f.cluster else f"SLA breach {i + 1}", f.anchor)
                 for i, f in enumerate(overdue)]
        sla = (f"; a critical or high failure open longer than {policies.sla_hours:g} h is "
               "one too, even if fixed later") if policies.sla_hours else ""
        out.append(Control(
            "DA-10", named or _criteria("DA-10"), "Live configuration meets the policies",
            "Every live object in scope is evaluated against the configured policies each "
            f"run; a non-exempted failure at the period's end is an exception{sla}.",
            population, len(refs), _result(population, len(refs)),
            _links(refs, "policies", "policy compliance"),
            f"{_n(len(policies.rows), 'policy', 'policies')} evaluated in "
            f"{_n(policies.evaluated_runs, 'run')}; {policies.newly_failing} newly failing, "
            f"{policies.fixed} fixed in the period"
            + (f"; {_n(len(policies.sla_breaches), 'critical or high failure')} beyond the "
               f"{policies.sla_hours:g} h policy SLA" if policies.sla_breaches else "")))
    else:
        out.append(not_applicable(
            "DA-10", "Live configuration meets the policies",
            "Every live object in scope is evaluated against the configured policies each run.",
            "no run of the period evaluated policies (no policies folder configured, or no "
            "run)"))
    if reverts or caps:
        # Only where auto-revert ran: with it off (the default) there is nothing to test.
        failed = [r for r in reverts if r.result == "failed"]
        refs = [_revert_ref(r) for r in failed] + [_cap_ref(c) for c in caps]
        population = len(reverts) + len(caps)
        by = {k: sum(1 for r in reverts if r.result == k) for k in ("reverted", "dry-run")}
        out.append(Control(
            "DA-11", _criteria("DA-11"), "Drift is reverted to Git automatically",
            "Each revert attempt (server-side apply of Git's object) succeeds, or, in dry-run, "
            "is checked by the API server; a failed attempt or a run refused by the revert cap "
            "is an exception.",
            population, len(refs), _result(population, len(refs)),
            _links(refs, "reverts", "reverts"),
            f"{by['reverted']} reverted, {by['dry-run']} dry-run, {len(failed)} failed; "
            f"{_n(len(caps), 'run')} over the cap"))
    else:
        out.append(not_applicable(
            "DA-11", "Drift is reverted to Git automatically",
            "Each revert attempt (server-side apply of Git's object) succeeds, or, in dry-run, "
            "is checked by the API server.",
            "auto-revert made no attempt in the period (revert.mode off, or no drift to "
            "revert)"))
    if emergency:
        limit = data.monitoring.observed_until
        # Only a live change left unapproved beyond the SLA is an exception: one that closed
        # another way (reverted, fixed live, Git changed by another reviewed commit) no longer
        # runs unapproved, and a fresh adoption is still within its review time.
        late = [c for c in emergency if c.state == "pending"
                and (between(c.adopted_at, limit) or 0) > sla_hours * 3600]
        pending = sum(1 for c in emergency if c.state == "pending")
        otherwise = sum(1 for c in emergency if c.state == "resolved-otherwise")
        refs = [_adoption_ref(c) for c in late]
        out.append(Control(
            "DA-12", _criteria("DA-12"), "Emergency changes are approved retroactively",
            f"A live change adopted into Git (drift-auditor adopt) is merged — reviewed and "
            f"approved after the fact — within {sla_hours:g} h, and the next run sees Git match "
            "the cluster. An adoption still pending beyond that is an exception.",
            len(emergency), len(refs), _result(len(emergency), len(refs)),
            _links(refs, "emergency", "emergency changes"),
            f"{sum(1 for c in emergency if c.state == 'approved')} merged and resolved, "
            f"{pending} pending review, {otherwise} closed another way"))
    else:
        out.append(not_applicable(
            "DA-12", "Emergency changes are approved retroactively",
            "A live change adopted into Git (drift-auditor adopt) is merged within "
            f"{sla_hours:g} h.", "no drift was adopted into Git in the period"))
    if completeness is not None and completeness.audit_tested:
        out.append(_completeness_control(completeness))
    else:
        out.append(not_applicable(
            "DA-13", "Every change reaches the ledger",
            "Every write the API server's audit log recorded is matched by a change in the "
            "ledger.", "no API-server audit event was recorded up to the period's end, so "
            "there was no population of writes to test against"))
    return [_monitored(c, monitoring) if c.id in MONITORED and c.result != NOT_APPLICABLE
            else c for c in out]
