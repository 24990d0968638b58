"""The report's data: plain dataclasses built once from the ledger (:mod:`.period`) and read
by every renderer (HTML, CSV, JSON), so the three formats cannot disagree.

Times are ledger timestamps (UTC, ``YYYY-MM-DDTHH:MM:SSZ``); durations are whole seconds
(``None``: not computable from the ledger, e.g. a deletion's time is unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SourceScope:
    """One Git source as the period's runs saw it."""

    name: str
    repo: str
    branch: str
    first_commit: str
    last_commit: str
    heads: int  # distinct head commits audited in the period


@dataclass(frozen=True, slots=True)
class Integrity:
    """The ledger's verification and the checkpoint that seals the period."""

    ok: bool | None  # None: not verified (--skip-verify)
    message: str
    events_checked: int
    head_seq: int
    head_hash: str
    checkpoint_seq: int | None
    checkpoint_hash: str
    checkpoint_at: str
    checkpoint_signed: bool


@dataclass(frozen=True, slots=True)
class Header:
    title: str
    period_start: str
    period_end: str  # exclusive
    generated_at: str
    tool_version: str
    run_tool_versions: list[str]
    config_hash: str
    run_config_hashes: list[str]
    clusters: list[str]
    namespaces: list[str]
    objects: int
    sources: list[SourceScope]
    ledger_path: str
    integrity: Integrity
    schedule_minutes: int
    sla_hours: float
    changes_csv_name: str
    changes_csv_sha256: str
    changes_csv_rows: int
    # One sentence when some runs of the period had no API-server audit source: their actors
    # are the names clients declared (field managers), not authenticated identities.
    actors_note: str = ""
    # ``report --prepared-by``: the first name of the sign-off block ('' = a blank line).
    prepared_by: str = ""


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One row of the change population."""

    id: int
    seq: int
    run_id: int
    detected_at: str
    change_time: str
    cluster: str
    api_group: str
    kind: str
    namespace: str
    name: str
    object: str
    change: str  # created | updated | deleted
    fields: list[str]
    manager: str
    user: str
    identity_source: str  # managedFields | audit-log | observation | none
    category: str
    git_repo: str
    git_commit: str
    pr: int | None
    approvers: list[str]
    authorization: str  # authorized | unauthorized | unverified
    drift_id: int | None
    remediation: str
    remediated_at: str
    time_to_remediate_s: int | None
    time_to_detect_s: int | None
    # Written under a GitOps manager's name by a user who is not a GitOps identity (the
    # API-server audit log says who): the category is then human.
    spoofed: bool = False
    # Fleet reports qualify IDs by cluster (IDs are per ledger): ``prod-eu:change-12``. In a
    # single-ledger report ``ref`` is '' and the anchors are the historical ``chg-12`` /
    # ``drift-3``, so its HTML does not change.
    anchor: str = ""
    drift_anchor: str = ""
    ref: str = ""
    # What recorded the change: a scheduled ``run`` or a ``watch`` batch; ``transient``: no
    # scheduled run saw this version as current — changed and changed back (or changed again)
    # between two runs (:mod:`auditor.ledger.completeness`).
    detected_by: str = "run"
    transient: bool = False
    # Workloads only: the container images the new version names (from its stored content;
    # empty when retention pruned it), so a "reviewed" claim can say digest or tag.
    images: list[str] = field(default_factory=list)
    # The approval of the merge that brought the object's file in (:mod:`.approvals`):
    # authorized | exception | unknown ('' when no approval was recorded for it), where the
    # evidence came from (git host or trailer) and, for an exception, why; ``approval_anchor``
    # links the approvals table.
    approval: str = ""
    approval_source: str = ""
    approval_reason: str = ""
    approval_anchor: str = ""


@dataclass(frozen=True, slots=True)
class DriftValue:
    path: str
    op: str
    desired: str  # '' for Secrets: never rendered
    live: str
    manager: str
    category: str
    user: str = ""  # the authenticated user, when an audit source named one
    spoofed: bool = False  # a GitOps manager name written by a non-GitOps user
    # An atomic list (RBAC ``rules``) drifts as a whole: its items Git has and the cluster
    # lacks (``removed``) and the reverse (``added``), each as JSON; both empty for scalars,
    # Secrets and the same items reordered (then ``desired`` → ``live`` says it).
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DriftEpisode:
    """One occurrence of a drift: from opened (or reopened) to resolved, or still going."""

    anchor: str
    drift_id: int
    occurrence: int
    object_id: int
    opened_run_id: int | None
    resolved_run_id: int | None
    object: str
    api_group: str
    kind: str
    namespace: str
    name: str
    status: str  # drifted | missing | orphan
    category: str
    manager: str
    values: list[DriftValue]
    source_file: str
    source_commit: str
    changed_at: str
    detected_at: str
    time_to_detect_s: int | None
    state_at_end: str  # open | accepted | resolved
    resolved_at: str
    how: str
    time_to_remediate_s: int | None
    exposure_s: int  # open and not accepted, up to the period's end
    sla_breach: bool
    accepted_by: str
    accepted_reason: str
    accepted_at: str
    accepted_until: str
    secret: bool
    cluster: str = ""  # set in fleet reports (the qualified cluster name)
    ref: str = ""  # fleet reports: ``prod-eu:drift-3`` (IDs are per ledger)
    # The authenticated user behind the actor's write and whether its GitOps manager name
    # was spoofed (from the drift's items; '' / False without an audit source).
    user: str = ""
    spoofed: bool = False
    # The revert attempt that closed this occurrence (how == reverted), '' otherwise.
    revert_anchor: str = ""
    # The adoption (emergency change) that wrote this drift into Git, '' otherwise.
    adoption_anchor: str = ""
    # Who accepted it as authenticated and how the tool knows (kubeconfig user, the API
    # server's SelfSubjectReview, OS user), the change ticket, and whether its own actor
    # accepted it (an exception of DA-7); '' / False before schema step 9.
    accepted_identity: str = ""
    accepted_identity_source: str = ""
    accepted_ticket: str = ""
    accepted_self: bool = False


@dataclass(frozen=True, slots=True)
class RevertAttempt:
    """One auto-revert attempt as the ledger recorded it (``reverts`` table)."""

    anchor: str  # ``revert-<id>`` (fleet: ``prod-eu:revert-<id>``)
    id: int
    run_id: int
    at: str  # the start of the run that made it
    cluster: str
    object: str
    api_group: str
    kind: str
    namespace: str
    name: str
    action: str  # apply | delete
    mode: str  # enforce | dry-run
    result: str  # reverted | dry-run | failed
    reason: str
    values: list[DriftValue]  # previous live → desired; Secret values are '' (never shown)
    secret: bool
    desired_hash: str
    live_hash: str
    resource_version_before: str
    resource_version_after: str
    managers: list[str]  # field managers whose ownership the revert took over
    error: str
    drift_anchor: str  # the drift occurrence it acted on ('' when none was open)
    ref: str = ""


@dataclass(frozen=True, slots=True)
class RevertCap:
    """A run that planned more reverts than ``revert.max_objects`` and so reverted nothing."""

    anchor: str
    run_id: int | None
    at: str
    cluster: str
    mode: str
    cap: int
    planned: int
    objects: list[str]


@dataclass(frozen=True, slots=True)
class EmergencyChange:
    """A live change adopted into Git afterwards (``drift-auditor adopt``): the emergency
    change, its retroactive review (the branch) and approval (the merge)."""

    anchor: str  # ``adopt-<id>``
    id: int
    drift_id: int | None
    drift_anchor: str
    object: str
    paths: list[str]
    files: list[str]
    changed_by: str  # the field manager(s) whose live change was adopted
    users: list[str]  # people named by the API-server audit log ([] without one)
    changed_at: str  # when the live change was made ('' unknown)
    detected_at: str
    adopted_at: str
    adopted_by: str
    repo: str
    branch: str
    commit: str
    base_commit: str
    pushed: bool
    merged: bool
    merged_commit: str  # the adoption commit (or its squash) a run audited
    merge_head: str  # the Git head(s) of the run that saw Git match live (the merge lands there)
    approvers: list[str]  # Reviewed-by / Approved-by trailers of the merged commit
    pr: int | None
    approved_at: str  # start of the run that resolved the drift as git-changed ('' pending)
    outcome: str
    state: str  # approved | pending | resolved-otherwise
    time_to_approval_s: int | None  # live change (or detection) → approved_at
    cluster: str = ""
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Acceptance:
    drift_id: int
    anchor: str
    object: str
    by: str
    reason: str
    at: str
    expires: str  # '' = until the drift changes or resolves
    state_at_end: str
    cluster: str = ""  # set in fleet reports
    # The acknowledger as authenticated, the ticket, self-acknowledged (schema step 9).
    identity: str = ""
    identity_source: str = ""
    ticket: str = ""
    self_acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class ManagementResponse:
    """Management's response to an exception (a drift or a change), as recorded by
    ``drift-auditor respond``: who (typed and authenticated), when, what."""

    id: int
    ref: str  # drift:12 | change:34
    anchor: str  # the row it answers in this report
    by: str
    identity: str
    identity_source: str
    at: str
    text: str


@dataclass(frozen=True, slots=True)
class RunItem:
    id: int
    cluster: str
    started_at: str
    ended_at: str
    status: str
    in_sync: int
    drifted: int
    missing: int
    orphan: int
    changes: int
    problems: int


@dataclass(frozen=True, slots=True)
class Gap:
    cluster: str
    start: str
    end: str
    missed: int
    reason: str
    anchor: str = ""  # fleet reports: ``prod-eu:gap-0``; '' = ``gap-<index>`` of the list


@dataclass(frozen=True, slots=True)
class ClusterCoverage:
    cluster: str
    expected: int
    actual: int
    covered: int
    by_status: dict[str, int]
    gaps: list[Gap]
    # The ledger's first run of the cluster when the period started before it: coverage is
    # measured from there ('' = from the period's start).
    measured_from: str = ""


@dataclass(frozen=True, slots=True)
class Monitoring:
    schedule_minutes: int
    expected: int
    actual: int
    covered: int
    coverage_pct: float | None
    observed_until: str  # the period's end, or now if the period is still running
    clusters: list[ClusterCoverage]
    gaps: list[Gap]
    runs: list[RunItem]
    # The earliest of the clusters' ``measured_from`` ('' = every cluster from the start).
    measured_from: str = ""


@dataclass(frozen=True, slots=True)
class CommitItem:
    repo: str
    sha: str
    author: str
    date: str
    subject: str
    pr: int | None
    approvers: list[str]
    run_id: int | None
    cluster: str = ""  # set in fleet reports: the same commit may be audited by many clusters
    anchor: str = ""  # '' = ``commit-<sha[:12]>``
    # A first-parent change judged for approval (:mod:`.approvals`): its verdict
    # (authorized | exception | unknown), the evidence's source and the reason; '' for a
    # commit of a run that recorded no approvals (a ledger before schema step 8).
    approval: str = ""
    approval_source: str = ""
    approval_reason: str = ""


@dataclass(frozen=True, slots=True)
class ReviewItem:
    reviewer: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED
    submitted_at: str
    commit: str  # the commit reviewed ('' when the host names none: GitLab)
    on_head: bool  # made on the pull request's head commit (or a later one)


@dataclass(frozen=True, slots=True)
class ApprovalItem:
    """One first-parent change of the period and its approval, as last recorded by the end
    of the period (:mod:`.approvals`)."""

    anchor: str  # ``appr-<sha[:12]>``
    source: str
    repo: str
    sha: str
    subject: str
    commit_author: str
    pr: int | None
    evidence: str  # git host (github) | trailer (typed in the commit message, not verified)
    verdict: str  # authorized | exception | unknown
    reason: str
    author: str  # of the pull request
    last_pusher: str  # author of its head commit
    merged_by: str
    approvers: list[str]  # independent approvers only
    reviews: list[ReviewItem]
    checks: list[str]  # ``name: conclusion`` (``required`` marked)
    head: str
    fetched_at: str
    cached: bool
    first_run_id: int  # the run that first judged it
    run_id: int  # the run whose verdict stands
    objects: list[str]  # the objects whose file it brought in
    cluster: str = ""


@dataclass(frozen=True, slots=True)
class ProtectionItem:
    """A branch protection snapshot: the first of the period per source, and each one that
    differed from the snapshot before it."""

    source: str
    repo: str
    branch: str
    state: str  # protected | unprotected | unknown
    fetched_at: str
    run_id: int
    rules: list[str]  # ``name: value``
    required_checks: list[str]
    detail: str
    cached: bool


@dataclass(frozen=True, slots=True)
class Evidence:
    label: str
    href: str


@dataclass(frozen=True, slots=True)
class Control:
    id: str
    criteria: list[str]
    title: str
    check: str
    population: int
    exceptions: int
    result: str  # pass | exceptions | not-tested | not-applicable
    evidence: list[Evidence]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One point of the trend charts (a day, or a week for long periods)."""

    start: str
    score: float | None
    authorized: int
    unauthorized: int
    unverified: int
    open_drifts: int
    expected_runs: int
    covered_runs: int


@dataclass(frozen=True, slots=True)
class Summary:
    # The in-sync ratio (Σ in sync ÷ Σ checked, %). ``compliance_score`` is its old JSON name,
    # kept for readers of earlier reports; ``in_sync_ratio`` (below) holds the same figure.
    # "Compliance score" elsewhere (``run``'s summary) is the policy score.
    compliance_score: float | None
    score_in_sync: int
    score_checked: int
    changes: int
    authorized: int
    unauthorized: int
    unverified: int
    open_drifts_at_end: int
    accepted_at_end: int
    opened_in_period: int
    resolved_in_period: int
    mttr_s: int | None
    mttr_count: int
    median_ttr_s: int | None
    mttd_s: int | None
    sla_breaches: int
    runs_expected: int
    runs_covered: int
    gaps: int
    # Remediation by the tool and emergency changes (defaults: a report without them).
    reverts_reverted: int = 0
    reverts_failed: int = 0
    reverts_dry_run: int = 0
    revert_caps: int = 0
    emergency_changes: int = 0
    emergency_approved: int = 0
    # Change completeness (defaults: a report without a watch or audit events).
    transient_changes: int = 0
    watch_changes: int = 0
    audit_writes: int = 0
    audit_matched: int = 0
    completeness_exceptions: int = 0
    # The report's name for ``compliance_score`` (the same figure, added to the JSON beside
    # it): the in-sync ratio, not the policy score ``run`` calls compliance score.
    in_sync_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.in_sync_ratio is None:
            object.__setattr__(self, "in_sync_ratio", self.compliance_score)


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One policy as the period's last policy evaluation counted it."""

    policy: str
    title: str
    severity: str
    category: str
    controls: list[str]
    passed: int
    failed: int
    skipped: int
    errors: int
    exempted: int
    remediation: str


@dataclass(frozen=True, slots=True)
class PolicyFailure:
    """A (policy, object) failing at the period's end."""

    anchor: str
    policy: str
    severity: str
    object: str
    since: str
    messages: list[str]
    cluster: str = ""  # set in fleet reports


@dataclass(frozen=True, slots=True)
class Policies:
    evaluated_runs: int
    score_end: float | None
    score_min: float | None
    as_of_run: int | None
    rows: list[PolicyRow]
    failing: list[PolicyFailure]
    newly_failing: int
    fixed: int
    scores: list[tuple[str, float]] = field(default_factory=list)
    # Critical and high failures that stayed failing longer than the policy SLA at some
    # moment of the period (fixed since or not): exceptions of DA-10. ``since`` is when the
    # failure began; the SLA in hours.
    sla_breaches: list[PolicyFailure] = field(default_factory=list)
    sla_hours: float = 0.0


@dataclass(frozen=True, slots=True)
class CompletenessException:
    """One exception of the change-completeness test: an audit write no ledger change
    matched, a gap of the audit stream, or a scheduled run that skipped kinds."""

    anchor: str  # ``cx-<n>`` (fleet: ``prod-eu:cx-<n>``)
    type: str  # unmatched-write | audit-gap | partial-run
    at: str  # the write's completion, the gap's start, the run's start
    end: str  # the gap's end ('' otherwise)
    object: str  # the object written, or the kinds a run skipped
    verb: str
    user: str  # authenticated user (``as`` the impersonated one)
    source: str  # audit source, or ``run <id>``
    transient: bool
    detail: str
    audit_id: str = ""
    cluster: str = ""
    ref: str = ""


@dataclass(frozen=True, slots=True)
class KindCoverageItem:
    """One kind: audit writes and how many reached the ledger; ledger changes and how many
    came from the watch or were transient."""

    api_group: str
    kind: str
    audit_writes: int
    matched: int
    unmatched: int
    coverage_pct: float | None
    transient_writes: int
    ledger_changes: int
    watch_changes: int
    transient_changes: int


@dataclass(frozen=True, slots=True)
class AuditSourceItem:
    source: str
    deliveries: int
    events: int
    recorded: int
    first_event: str
    last_event: str
    last_heartbeat: str
    cluster: str = ""


@dataclass
class Completeness:
    """Does every change reach the ledger (:mod:`.completeness`)?"""

    audit_tested: bool = False  # an audit source delivered events up to the period's end
    watch_batches: int = 0
    watch_failed: int = 0
    watch_changes: int = 0
    transient_changes: int = 0
    audit_writes: int = 0  # in-scope create/update/patch/delete events of the period
    matched: int = 0
    transient_writes: int = 0
    out_of_scope: int = 0
    collections: int = 0
    window_s: int = 0
    gap_threshold_s: int = 0
    first_event: str = ""
    kinds: list[KindCoverageItem] = field(default_factory=list)
    sources: list[AuditSourceItem] = field(default_factory=list)
    exceptions: list[CompletenessException] = field(default_factory=list)

    @property
    def coverage_pct(self) -> float | None:
        return 100.0 * self.matched / self.audit_writes if self.audit_writes else None

    def count(self, kind: str) -> int:
        return sum(1 for x in self.exceptions if x.type == kind)


NOT_APPLICABLE_GITOPS = "not applicable in period (no sources from GitOps controllers)"


@dataclass(frozen=True, slots=True)
class SyncLagItem:
    """One controller source (its owner: ``Application argocd/shop``) and how far Git was
    ahead of what the controller applied in the period (:mod:`.gitops`): approved changes not
    live. Durations run from the first commit not applied (``since``) to the start of the run
    that saw it."""

    owner: str
    source: str
    controller: str  # argocd | flux
    ref: str
    runs_seen: int  # the period's runs that derived this source
    runs_behind: int  # of them, the runs that found Git ahead
    max_behind: int  # most commits behind seen (-1: only ever diverged)
    longest_s: int | None  # the longest lag seen (None: no run knew since when)
    longest_since: str  # its first commit not applied
    longest_seen_at: str  # the run that saw it
    first_behind_at: str
    last_behind_at: str
    behind_at_end: bool  # behind in the period's last run with the controllers' view
    behind_at_end_commits: int | None
    diverged: bool = False  # some run found the applied commit outside the ref's history
    cluster: str = ""  # set in fleet reports


@dataclass
class GitopsCoverage:
    """Sources from the GitOps controllers in the period (:mod:`.gitops`): what no source
    claims (not under GitOps) and how long Git was ahead of the controllers (sync lag)."""

    applicable: bool = False  # some run of the period read the controllers
    note: str = NOT_APPLICABLE_GITOPS  # '' when applicable
    runs: int = 0  # the period's runs with the controllers' view
    as_of_run: int | None = None  # the period's last such run
    as_of: str = ""
    sources_at_end: int = 0
    skipped_at_end: list[str] = field(default_factory=list)  # ``owner: reason``
    not_under_gitops: list[str] = field(default_factory=list)  # at the last such run
    runs_with_uncovered: int = 0  # runs of the period that found any such namespace
    sync_lag: list[SyncLagItem] = field(default_factory=list)

    @property
    def behind_at_end(self) -> int:
        return sum(1 for x in self.sync_lag if x.behind_at_end)


@dataclass(frozen=True, slots=True)
class ConfigVersionItem:
    """One version of Drift Auditor's own configuration (:mod:`.configchanges`): what changed
    from the previous version of its run mode, who changed it, whether it was approved."""

    anchor: str  # ``cfgv-<id>``
    id: int
    run_id: int
    at: str  # the start of the run that recorded it
    mode: str  # run | watch: versions are compared per mode
    digest: str
    previous_digest: str  # '' for the first version of its mode (the baseline)
    config_file: str  # '' when no file was read (defaults and environment)
    changed: list[str]  # the files changed, or the settings changed outside any file
    who: list[str]  # the commits' authors, or "unknown — …" when not under version control
    commits: list[str]  # ``<sha12> <subject>`` of the commits behind the change
    approvers: list[str]  # Reviewed-by / Approved-by trailers by someone other than the author
    approved: bool
    exception: str  # why the change counts as unapproved ('' when approved)
    diff: str  # unified diff of the YAML from the previous version of its mode
    document: str  # the whole configuration as YAML
    tool_version: str = ""
    baseline: bool = False
    in_period: bool = False  # recorded in the period (else: in force at its start)


@dataclass
class ToolConfiguration:
    """The tool's configuration during the period: the versions in force at its start (one
    per run mode) and every version recorded within it."""

    recorded: bool = False  # the ledger has configuration versions (schema step 7)
    in_force: list[ConfigVersionItem] = field(default_factory=list)
    changes: list[ConfigVersionItem] = field(default_factory=list)

    @property
    def exceptions(self) -> list[ConfigVersionItem]:
        return [c for c in self.changes if not c.approved]


@dataclass
class Report:
    header: Header
    summary: Summary
    controls: list[Control]
    monitoring: Monitoring
    changes: list[ChangeItem]
    drifts: list[DriftEpisode]
    acceptances: list[Acceptance]
    commits: list[CommitItem]
    buckets: list[Bucket]
    bucket_label: str
    policies: Policies
    definitions: list[tuple[str, str]] = field(default_factory=list)
    reverts: list[RevertAttempt] = field(default_factory=list)
    revert_caps: list[RevertCap] = field(default_factory=list)
    emergency: list[EmergencyChange] = field(default_factory=list)
    # Fleet reports only (:mod:`.fleet`): one entry per ledger, in the order given. Empty for
    # a single-ledger report, whose HTML then stays exactly as it was.
    fleet: list[FleetMember] = field(default_factory=list)
    completeness: Completeness = field(default_factory=Completeness)
    # Drift Auditor's own configuration: in force at the start, its changes (single ledger).
    configuration: ToolConfiguration = field(default_factory=ToolConfiguration)
    # Approvals of the period's first-parent changes, and the branch protection seen
    # (single ledger; empty for a ledger before schema step 8).
    approvals: list[ApprovalItem] = field(default_factory=list)
    protections: list[ProtectionItem] = field(default_factory=list)
    # Management responses to the drifts and changes of this report (schema step 9), oldest
    # first; :meth:`responses_for` finds a row's.
    responses: list[ManagementResponse] = field(default_factory=list)
    # Sources from Argo CD / Flux: not under GitOps and sync lag (completeness section).
    gitops: GitopsCoverage = field(default_factory=GitopsCoverage)

    def responses_for(self, ref: str) -> list[ManagementResponse]:
        """The management responses to ``ref`` (``drift:12``, ``change:34``)."""
        return [r for r in self.responses if r.ref == ref]


@dataclass(frozen=True, slots=True)
class FleetMember:
    """One ledger (one cluster) of a fleet report: its own figures, computed by the same
    single-ledger model, so the per-cluster breakdown re-performs from that cluster's own
    report."""

    cluster: str  # the qualified name used in the fleet (anchors, cluster columns)
    ledger_clusters: list[str]  # cluster names its runs recorded
    ledger_path: str
    integrity: Integrity
    summary: Summary
    coverage_pct: float | None
    runs_actual: int
    policies: Policies
    changes_csv_sha256: str  # the member's own single-ledger population, for cross-checks
