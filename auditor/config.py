"""Configuration: frozen dataclasses built once from the config file, ``DRIFT_AUDITOR_*``
environment and command-line flags, then passed down.

Precedence (last wins): defaults, ``drift-auditor.yaml``, environment, flags. Unknown keys and
wrong types are rejected with the key's dotted path and what was expected. Nothing below the
CLI reads ``os.environ``: :func:`load` takes the environment as an argument.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from auditor.errors import ConfigError
from auditor.support import cron, yamlsafe

ENV_PREFIX = "DRIFT_AUDITOR_"
DEFAULT_CONFIG_FILE = "drift-auditor.yaml"
# A config file with every setting and a few hundred ignore rules is tens of KiB.
MAX_CONFIG_BYTES = 1024 * 1024

# Kinds that churn on their own and carry no desired state: never audited unless included.
DEFAULT_EXCLUDED_KINDS: tuple[str, ...] = (
    "Event",
    "Event.events.k8s.io",
    "EndpointSlice.discovery.k8s.io",
    "Endpoints",
    "Lease.coordination.k8s.io",
    "Binding",
    "ComponentStatus",
    "TokenReview.authentication.k8s.io",
    "SelfSubjectReview.authentication.k8s.io",
    "SubjectAccessReview.authorization.k8s.io",
    "SelfSubjectAccessReview.authorization.k8s.io",
    "SelfSubjectRulesReview.authorization.k8s.io",
    "LocalSubjectAccessReview.authorization.k8s.io",
    "Node",
    "Pod",
    "ReplicaSet.apps",
    "ControllerRevision.apps",
    "PodMetrics.metrics.k8s.io",
    "NodeMetrics.metrics.k8s.io",
    "CertificateSigningRequest.certificates.k8s.io",
    "VolumeAttachment.storage.k8s.io",
    "CSINode.storage.k8s.io",
    "FlowSchema.flowcontrol.apiserver.k8s.io",
    "PriorityLevelConfiguration.flowcontrol.apiserver.k8s.io",
    "APIService.apiregistration.k8s.io",
)

# Field managers of the common GitOps tools: their writes are the authorized path from Git.
DEFAULT_GITOPS_MANAGERS: tuple[str, ...] = (
    "argocd-controller",
    "argocd-application-controller",
    "kustomize-controller",
    "helm-controller",
    "flux",
    "drift-auditor",
)


@dataclass(frozen=True)
class Credentials:
    """Where Git credentials come from. Values are read at use and never logged."""

    username: str = ""
    password_env: str = ""
    password_file: str = ""
    ssh_key_file: str = ""


@dataclass(frozen=True)
class HelmSource:
    """``helm template`` settings: the release name, values files (relative to the
    repository, else to the chart), ``--set`` items and inline values (``values_yaml``, a
    YAML or JSON document applied after the files, as Argo CD's ``helm.values`` is)."""

    release: str = ""
    values: tuple[str, ...] = ()
    set: tuple[str, ...] = ()
    values_yaml: str = ""


@dataclass(frozen=True)
class KustomizeSource:
    """Kustomize settings applied on top of a source's paths, as Argo CD's
    ``spec.source.kustomize`` and Flux's Kustomization do: an overlay whose ``resources`` are
    the path (its kustomization, or every manifest file under it when it has none).
    ``images`` are ``name=newName:newTag`` / ``name=newName@digest`` / ``name:newTag``
    (``kustomize edit set image`` forms); ``labels`` and ``annotations`` are ``key=value``."""

    images: tuple[str, ...] = ()
    name_prefix: str = ""
    name_suffix: str = ""
    namespace: str = ""
    labels: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    # Each a JSON object {"patch": "...", "target": {...}} as a kustomization's ``patches``.
    patches: tuple[str, ...] = ()
    # A folder without a kustomization is built from every manifest file under it, as
    # Flux's kustomize-controller generates one (false: only kustomization folders).
    generate: bool = False

    def __bool__(self) -> bool:
        return bool(self.images or self.name_prefix or self.name_suffix or self.namespace
                    or self.labels or self.annotations or self.patches)

    def __post_init__(self) -> None:
        for name in ("labels", "annotations"):
            for i, item in enumerate(getattr(self, name)):
                if "=" not in item or not item.partition("=")[0]:
                    raise ConfigError(f"kustomize.{name}[{i}]: {item!r} is not key=value")


@dataclass(frozen=True)
class ApprovalsConfig:
    """Where a source's approvals are read: the pull requests (merge requests), reviews and
    branch protection on its git host (:mod:`auditor.githost`). ``provider`` and ``repo``
    (``owner/name`` on GitHub, the project's id or path on GitLab) default to what the
    source's URL says on github.com and gitlab.com; ``api_url`` to the host's API (GitHub
    Enterprise: ``https://HOST/api/v3``, GitLab self-managed: ``https://HOST/api/v4``). The
    token is named, never written here: ``token_env`` (an environment variable) or
    ``token_file`` (a file, e.g. a mounted Secret's key). ``branch`` is the branch whose
    protection is recorded (default: the source's revision when it names a branch, else the
    base branch of the pull requests). Rate limits are waited out up to ``max_wait_seconds``
    per run; past that, a commit's approval is unknown that run and asked again next run."""

    provider: Literal["", "github", "gitlab"] = ""
    api_url: str = ""
    repo: str = ""
    branch: str = ""
    token_env: str = ""
    token_file: str = ""
    max_wait_seconds: float = 60.0
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.token_env and self.token_file:
            raise ConfigError("approvals.token-file: set either approvals.token-env or "
                              "approvals.token-file, not both")
        if self.max_wait_seconds < 0 or self.timeout_seconds <= 0:
            raise ConfigError("approvals.max-wait-seconds must not be negative and "
                              "approvals.timeout-seconds must be positive")


@dataclass(frozen=True)
class Source:
    """One Git source of desired state. ``approvals`` (absent: approvals come from commit
    trailers only, which are not verified) reads them from the git host."""

    url: str = ""
    name: str = ""
    revision: str = "HEAD"
    paths: tuple[str, ...] = (".",)
    namespace: str = "default"
    render: Literal["auto", "plain", "kustomize", "helm"] = "auto"
    # false: a path's subfolders are not read (Argo CD's directory default)
    recurse: bool = True
    helm: HelmSource = field(default_factory=HelmSource)
    kustomize: KustomizeSource = field(default_factory=KustomizeSource)
    credentials: Credentials = field(default_factory=Credentials)
    depth: int = 0
    approvals: ApprovalsConfig | None = None


CONTROLLERS = ("argocd", "flux")


@dataclass(frozen=True)
class ControllerSource:
    """Sources declared by a GitOps controller in the cluster, read each run instead of
    repeated here (``sources: [{from: argocd}]``): Argo CD ``Application`` objects, or Flux
    ``Kustomization``/``HelmRelease`` objects with their ``GitRepository``.

    ``namespaces`` are where the controller's objects are looked for (empty: every
    namespace). Git credentials come from ``credentials`` (for every repository the
    controller names), or, by repository URL, from a configured plain source of the same
    URL; the controller's own repository Secrets are read only with
    ``controller_credentials`` (it needs ``get`` on those Secrets)."""

    controller: Literal["argocd", "flux"] = "argocd"
    namespaces: tuple[str, ...] = ()
    credentials: Credentials = field(default_factory=Credentials)
    controller_credentials: bool = False
    depth: int = 0


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach the Kubernetes API."""

    name: str = "default"
    kubeconfig: str = ""
    context: str = ""
    in_cluster: bool = False
    page_size: int = 500
    timeout_seconds: float = 30.0
    retries: int = 5
    concurrency: int = 4


@dataclass(frozen=True)
class ScopeConfig:
    """What is audited. Kinds are written ``Kind`` or ``Kind.group`` (e.g. ``Deployment.apps``)."""

    include_kinds: tuple[str, ...] = ()
    exclude_kinds: tuple[str, ...] = DEFAULT_EXCLUDED_KINDS
    include_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class IgnoreRule:
    """Like Argo CD's ``ignoreDifferences``: a selector and what to ignore on matching objects.

    An empty ``paths`` and ``managers`` ignores the whole object.
    """

    group: str = "*"
    kind: str = "*"
    namespace: str = "*"
    name: str = "*"
    paths: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class CompareConfig:
    """How live objects are judged against Git.

    ``gitops_managers`` are field-manager names (``*`` globs): what a client *declares*
    itself to be. ``gitops_identities`` are the authenticated users of the GitOps
    controllers (``system:serviceaccount:argocd:argocd-application-controller``; ``*``
    globs): with an API-server audit source, a write is GitOps when its user is one of
    them, whatever manager name it sent, and a write under a GitOps manager name by any
    other user is a human's, flagged as a spoofed manager. Empty (the default), or without
    an audit source, GitOps writes are recognised by manager name alone.
    """

    gitops_managers: tuple[str, ...] = DEFAULT_GITOPS_MANAGERS
    gitops_identities: tuple[str, ...] = ()
    ignore: tuple[IgnoreRule, ...] = ()
    secret_hash_key_file: str = ""

    def __post_init__(self) -> None:
        for i, name in enumerate(self.gitops_identities):
            if not name.strip() or name != name.strip() or any(c.isspace() for c in name):
                raise ConfigError(f"compare.gitops-identities[{i}]: {name!r} is not a user name "
                                  "(expected the authenticated user of a GitOps controller, "
                                  "e.g. system:serviceaccount:argocd:argocd-application-controller)")
            if name.startswith("system:serviceaccount:") and len(name.split(":")) != 4:
                raise ConfigError(f"compare.gitops-identities[{i}]: {name!r}: a ServiceAccount "
                                  "user is system:serviceaccount:<namespace>:<name>")


@dataclass(frozen=True)
class LedgerConfig:
    """``lock_wait_seconds``: how long a writer waits for another to finish (``run`` and
    ``watch`` share one ledger; a scheduled run holds it for its whole run).

    Checkpoints are signed unless ``sign`` is false: with ``signing_key_file``, else with a
    key created beside the ledger on first write (:mod:`auditor.ledger.keyfile`).
    ``anchor_repo`` (a Git URL or path) receives a copy of the newest checkpoint after each
    scheduled run and at most every ``anchor_interval_minutes`` from ``watch``
    (:mod:`auditor.outputs.anchoring`), on ``anchor_branch``, pushed with
    ``anchor_credentials`` (as a source's credentials). ``ack_ticket_pattern``: when set, a
    regular expression every ``ack --ticket`` must match whole (and ``ack`` then requires
    one).

    ``url``: empty, the SQLite file at ``path``; a ``postgresql://`` URL, this cluster's
    ledger in a shared PostgreSQL server (the fleet store, :mod:`auditor.ledger.pgconn`),
    named ``cluster`` there (required then). The URL carries no password (it is recorded with
    the configuration): ``password_file`` holds it, read by :meth:`read_password`. On
    PostgreSQL there is no "beside the ledger": checkpoints are signed only with
    ``signing_key_file``."""

    path: str = "drift-auditor.db"
    url: str = ""
    cluster: str = ""
    password_file: str = ""
    retention_days: int = 0
    signing_key_file: str = ""
    sign: bool = True
    lock_wait_seconds: float = 120.0
    anchor_repo: str = ""
    anchor_branch: str = "main"
    anchor_interval_minutes: float = 60.0
    anchor_credentials: Credentials = field(default_factory=Credentials)
    ack_ticket_pattern: str = ""

    def __post_init__(self) -> None:
        if self.url:
            _check_ledger_url(self.url)
        if self.cluster and not LEDGER_CLUSTER.fullmatch(self.cluster):
            raise ConfigError(f"ledger.cluster: {self.cluster!r} is not a cluster name (lower-case "
                              "letters, digits and -, starting with a letter or digit, at most "
                              "63 characters)")
        if self.url and not self.cluster:
            raise ConfigError("ledger.cluster: required with a PostgreSQL ledger.url (this "
                              "cluster's name in the shared ledger)")
        if self.url and len(self.cluster) > LEDGER_CLUSTER_MAX_PG:
            # Its schema, da_<cluster>, must fit PostgreSQL's 63-byte identifiers.
            raise ConfigError(f"ledger.cluster: {self.cluster!r} is longer than "
                              f"{LEDGER_CLUSTER_MAX_PG} characters, too long for a PostgreSQL "
                              "ledger")
        if self.ack_ticket_pattern:
            try:
                re.compile(self.ack_ticket_pattern)
            except re.error as exc:
                raise ConfigError(f"ledger.ack-ticket-pattern: {self.ack_ticket_pattern!r} is "
                                  f"not a valid regular expression ({exc})") from None
        if self.lock_wait_seconds < 0:
            raise ConfigError(f"ledger.lock-wait-seconds: {self.lock_wait_seconds} is negative")
        if not self.sign and self.signing_key_file:
            raise ConfigError("ledger.sign: false, yet ledger.signing-key-file is set; unset "
                              "one of them")
        if self.anchor_interval_minutes <= 0:
            raise ConfigError(f"ledger.anchor-interval-minutes: {self.anchor_interval_minutes} "
                              "must be positive")
        if self.anchor_repo and not self.anchor_branch.strip():
            raise ConfigError("ledger.anchor-branch: empty; name the branch anchors go to")

    @property
    def target(self) -> str:
        """Where the ledger is: the PostgreSQL URL, else the SQLite file."""
        return self.url or self.path

    def read_password(self) -> str | None:
        """The PostgreSQL password from ``password_file`` (None: none configured); never
        logged, never part of a message."""
        if not self.password_file:
            return None
        try:
            text = Path(self.password_file).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"ledger.password-file: cannot read {self.password_file!r} "
                              f"({exc.strerror})") from None
        password = text.rstrip("\r\n")
        if not password:
            raise ConfigError(f"ledger.password-file: {self.password_file!r} is empty")
        return password


# ``ledger.cluster``: a DNS-label-like name; on PostgreSQL its schema ``da_<name>`` must fit
# a 63-byte identifier (auditor.ledger.pgconn.schema_name), hence the shorter limit there.
LEDGER_CLUSTER = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
LEDGER_CLUSTER_MAX_PG = 60


def url_has_password(url: str) -> bool:
    """Whether a PostgreSQL URL carries a password (``user:secret@`` or ``password=``)."""
    rest = url.partition("://")[2]
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    return ":" in userinfo or "password=" in rest.lower()


def _check_ledger_url(url: str) -> None:
    """``ledger.url`` must be a PostgreSQL URL without a password (the configuration is
    recorded in the ledger and shown by ``config``); the message never repeats a password."""
    scheme, sep, _ = url.partition("://")
    shown = f"{scheme}://…" if sep else yamlsafe.excerpt(url[:40])
    if scheme not in ("postgresql", "postgres") or not sep:
        raise ConfigError(f"ledger.url: expected a postgresql:// URL (empty: the SQLite file at "
                          f"ledger.path), got {shown}")
    if url_has_password(url):
        raise ConfigError("ledger.url: carries a password; put it in ledger.password-file "
                          "instead (the URL is recorded with the configuration)")


@dataclass(frozen=True)
class SlackRoute:
    """Drifts in ``namespaces`` (empty: any) with a severity in ``severities`` (empty: any)
    go to ``channel`` (bot token), or to the webhook named by ``webhook_url_env``."""

    channel: str = ""
    namespaces: tuple[str, ...] = ()
    severities: tuple[Literal["high", "medium", "low"], ...] = ()
    webhook_url_env: str = ""


@dataclass(frozen=True)
class SlackConfig:
    webhook_url_env: str = ""
    token_env: str = ""
    channel: str = ""
    routes: tuple[SlackRoute, ...] = ()
    group_threshold: int = 10
    reminder_hours: float = 0.0
    quiet: bool = False
    base_url: str = ""
    # Delivery within one run: retries of a message on 5xx/network errors (exponential backoff
    # from backoff_seconds), and the most a run waits in total (Retry-After included) before
    # leaving the rest in the outbox for the next run.
    max_retries: int = 3
    backoff_seconds: float = 1.0
    budget_seconds: float = 60.0
    timeout_seconds: float = 10.0
    # Delivered messages are kept this long for threading follow-ups (longer while their
    # drift is still open or accepted), then dropped from the outbox; the per-run "news
    # queued" marks (alert_runs) queued before the same cut go too.
    outbox_retention_days: int = 30


@dataclass(frozen=True)
class MetricsConfig:
    pushgateway: str = ""
    textfile: str = ""
    job: str = "drift-auditor"
    # Recompute the ledger's hash chain for drift_auditor_ledger_verify_ok (cost grows with
    # the ledger; turn off for very large ledgers scraped often).
    verify: bool = True
    # Opt in to one series per open drift (drift_auditor_open_drift_age_seconds with the
    # object's name): cardinality then grows with the drift count.
    object_labels: bool = False


@dataclass(frozen=True)
class ReportsConfig:
    """``policy_sla_hours``: how long a critical or high policy failure may stay failing
    before it is an exception of the policy control (DA-10), even if fixed later."""

    directory: str = "reports"
    schedule_minutes: int = 60
    remediation_sla_hours: float = 24.0
    policy_sla_hours: float = 72.0

    def __post_init__(self) -> None:
        if self.policy_sla_hours <= 0:
            raise ConfigError(f"reports.policy-sla-hours: {self.policy_sla_hours} must be "
                              "positive")


@dataclass(frozen=True)
class PolicyExemption:
    """An approved exception to a compliance policy for the objects it selects (``*`` globs).

    ``expires`` is an ISO 8601 date (valid through that day, UTC) or time; once past, the
    policy fails again for these objects and says the exemption expired.
    """

    policy: str
    group: str = "*"
    kind: str = "*"
    namespace: str = "*"
    name: str = "*"
    justification: str = ""
    approver: str = ""
    expires: str = ""


@dataclass(frozen=True)
class PoliciesConfig:
    directory: str = "policies"
    enabled: bool = True
    exemptions: tuple[PolicyExemption, ...] = ()
    # Policy names (globs) not evaluated at all.
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True)
class RevertConfig:
    """Auto-revert (:mod:`auditor.revert`). Off by default; ``kinds``/``namespaces``/
    ``label_selector`` narrow it (empty: everything audited). ``max_objects`` is the per-run
    cap: a run that would revert more reverts nothing. An object annotated
    ``<opt_out_annotation>: "false"`` is never reverted. A failed revert of an object is
    retried after ``failure_backoff_minutes``, doubling per failure in a row (at most a day).
    """

    mode: Literal["off", "dry-run", "enforce"] = "off"
    kinds: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    recreate_missing: bool = False
    prune: bool = False
    max_objects: int = 10
    field_manager: str = "drift-auditor"
    opt_out_annotation: str = "drift-auditor.io/revert"
    failure_backoff_minutes: float = 60.0


@dataclass(frozen=True)
class ServeConfig:
    """``drift-auditor serve``: the read-only web UI over the ledger. Loopback unless set
    otherwise (in a pod: ``0.0.0.0``); with a bearer token (``token_env``, the name of an
    environment variable, or ``token_file``, a file such as a mounted Secret's key: one of
    them) every page but ``/healthz`` needs ``Authorization: Bearer <token>``. With
    ``tls_cert_file`` and ``tls_key_file`` (PEM; both or neither) it serves HTTPS only."""

    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str = ""
    token_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Ledgers of a fleet view, one per cluster (``--ledger`` repeated overrides them); empty:
    # the one ledger at ``ledger.path``, which stays the default of every other command.
    ledgers: tuple[str, ...] = ()
    # Where people reach this UI (``https://drift.example.com``): Slack alerts link the
    # object's page, its drift history and the commit on the Git host. Empty: no links.
    public_url: str = ""

    def __post_init__(self) -> None:
        if self.public_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?",
                                                self.public_url):
            raise ConfigError(f"serve.public-url: {self.public_url!r} is not an http(s) URL "
                              "(e.g. https://drift.example.com)")
        if self.token_env and self.token_file:
            raise ConfigError("serve.token-file: set either serve.token-env or serve.token-file, "
                              "not both")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            given, missing = (("tls-cert-file", "tls-key-file") if self.tls_cert_file
                              else ("tls-key-file", "tls-cert-file"))
            raise ConfigError(f"serve.{missing}: serve.{given} is set; HTTPS needs both the "
                              "certificate and its key")

    @property
    def token_required(self) -> bool:
        return bool(self.token_env or self.token_file)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)


@dataclass(frozen=True)
class WatchConfig:
    """``drift-auditor watch``: the long-running mode that records changes as they happen.

    Watch events are recorded in batches, each one ledger transaction (a *watch run*):
    a batch closes ``batch_seconds`` after its first event or at ``batch_max`` events. Git is
    read again every ``git_refresh_seconds``. ``backoff_max_seconds`` caps the wait before a
    failed watch is retried. API audit events come from ``audit_log`` (a kube-apiserver
    ``--audit-log-path`` file, tailed) and from the audit webhook when ``webhook_port`` is
    set (non-zero): kube-apiserver's ``--audit-webhook-config-file`` names it; it needs a
    bearer token (``webhook_token_file``) or a client certificate signed by
    ``webhook_client_ca_file``, and is served over HTTPS with ``webhook_tls_cert_file`` and
    ``webhook_tls_key_file``."""

    batch_seconds: float = 0.5
    batch_max: int = 2000
    git_refresh_seconds: float = 60.0
    backoff_max_seconds: float = 30.0
    audit_log: str = ""
    audit_poll_seconds: float = 1.0
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 0
    webhook_path: str = "/audit"
    webhook_token_file: str = ""
    webhook_tls_cert_file: str = ""
    webhook_tls_key_file: str = ""
    webhook_client_ca_file: str = ""

    def __post_init__(self) -> None:
        for name in ("batch_seconds", "git_refresh_seconds", "backoff_max_seconds",
                     "audit_poll_seconds"):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"watch.{name.replace('_', '-')}: {value} must be positive")
        if self.batch_max < 1:
            raise ConfigError(f"watch.batch-max: {self.batch_max} must be at least 1")
        if not 0 <= self.webhook_port <= 65535:
            raise ConfigError(f"watch.webhook-port: {self.webhook_port} is not a port")
        if bool(self.webhook_tls_cert_file) != bool(self.webhook_tls_key_file):
            raise ConfigError("watch.webhook-tls-key-file: HTTPS needs both "
                              "watch.webhook-tls-cert-file and watch.webhook-tls-key-file")
        if self.webhook_port and not (self.webhook_token_file or self.webhook_client_ca_file):
            raise ConfigError("watch.webhook-token-file: the audit webhook accepts events only "
                              "from an authenticated sender: set watch.webhook-token-file or "
                              "watch.webhook-client-ca-file")
        if self.webhook_client_ca_file and not self.webhook_tls_cert_file:
            raise ConfigError("watch.webhook-client-ca-file: client certificates need HTTPS "
                              "(watch.webhook-tls-cert-file and watch.webhook-tls-key-file)")
        if not self.webhook_path.startswith("/"):
            raise ConfigError(f"watch.webhook-path: {self.webhook_path!r} must start with '/'")


@dataclass(frozen=True)
class ScheduleJob:
    """One job of ``drift-auditor schedule``: the drift-auditor command line ``args`` (what
    follows ``drift-auditor``) run as a child process at each fire of ``cron`` (five fields,
    :mod:`auditor.support.cron`). A run still going ``deadline_seconds`` after it started
    (0: no deadline) is stopped: SIGTERM, then SIGKILL after a grace period."""

    name: str = ""
    cron: str = ""
    args: tuple[str, ...] = ()
    deadline_seconds: float = 0.0


@dataclass(frozen=True)
class ScheduleConfig:
    """``drift-auditor schedule``: the cron of a single pod holding the ledger's volume.
    ``time_zone`` (an IANA name) is the zone the cron expressions are read in."""

    time_zone: str = "Etc/UTC"
    jobs: tuple[ScheduleJob, ...] = ()

    def __post_init__(self) -> None:
        self.zone()
        seen: set[str] = set()
        for i, job in enumerate(self.jobs):
            where = f"schedule.jobs[{i}]"
            if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", job.name):
                raise ConfigError(f"{where}.name: {job.name!r} is not a job name (lower-case "
                                  "letters, digits and '-', e.g. audit)")
            if job.name in seen:
                raise ConfigError(f"{where}.name: {job.name!r} is the name of an earlier job")
            seen.add(job.name)
            try:
                cron.parse(job.cron)
            except cron.CronError as exc:
                raise ConfigError(f"{where}.cron: {exc}") from None
            if not job.args or not all(a.strip() for a in job.args):
                raise ConfigError(f"{where}.args: {list(job.args)!r}: name the drift-auditor "
                                  "command to run, e.g. [run, --exit-zero-on-drift]")
            if job.args[0] == "schedule":
                raise ConfigError(f"{where}.args: {list(job.args)!r}: a scheduled job cannot "
                                  "run the scheduler itself")
            if job.deadline_seconds < 0:
                raise ConfigError(f"{where}.deadline-seconds: {job.deadline_seconds} is "
                                  "negative (0: no deadline)")

    def zone(self) -> datetime.tzinfo:
        """``time_zone`` as a ``tzinfo`` (UTC needs no time zone database)."""
        if self.time_zone in ("UTC", "Etc/UTC"):
            return datetime.UTC
        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(f"schedule.time-zone: {self.time_zone!r} is not a time zone "
                              "(expected an IANA name such as Etc/UTC or Europe/Berlin)") from None


@dataclass(frozen=True)
class Config:
    """The whole configuration of one Drift Auditor installation."""

    sources: tuple[Source, ...] = ()
    # ``sources`` entries with ``from:`` (a GitOps controller's objects), in their own list.
    controllers: tuple[ControllerSource, ...] = ()
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    slack: SlackConfig = field(default_factory=SlackConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    policies: PoliciesConfig = field(default_factory=PoliciesConfig)
    revert: RevertConfig = field(default_factory=RevertConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def digest(self) -> str:
        """A stable SHA-256 of the effective configuration (for the ledger and reports)."""
        raw = orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- building


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _bool_hint(value: Any, path: str, tp: Any) -> str:
    """Why a value that must be a string arrived as true or false: YAML 1.1 reads an unquoted
    ``on``/``yes``/``true`` (``off``/``no``/``false``) as a boolean. '' for anything else."""
    if not isinstance(value, bool) or tp is bool:
        return ""
    key = path.rpartition(".")[2] or path
    spelt, word = ("on, yes or true", "on") if value else ("off, no or false", "off")
    allowed = typing.get_args(tp) if typing.get_origin(tp) is Literal else ()
    example = word if not allowed or word in allowed else str(allowed[-1])
    return (f" (YAML reads an unquoted {spelt} as a boolean, not a string: quote the value, "
            f'e.g. {key}: "{example}")')


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {yamlsafe.excerpt(value)}")
        return _build(tp, value, path)  # type: ignore[arg-type]
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if isinstance(value, str) and item_tp is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {yamlsafe.excerpt(value)}")
        return tuple(_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        if isinstance(value, bool) and ("on" if value else "off") in typing.get_args(tp):
            value = "on" if value else "off"  # YAML 1.1 reads an unquoted `off` as false
        if value not in typing.get_args(tp):
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {yamlsafe.excerpt(value)}"
                              f"{_bool_hint(value, path, tp)}")
        return value
    if origin in (types.UnionType, typing.Union):
        errors = []
        for alt in typing.get_args(tp):
            try:
                return _convert(value, alt, path)
            except ConfigError as exc:
                errors.append(exc)
        hint = _bool_hint(value, path, tp) if bool not in typing.get_args(tp) else ""
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {yamlsafe.excerpt(value)}"
                          f"{hint}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{path}: expected null, got {yamlsafe.excerpt(value)}")
        return None
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off", ""):
            return False
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {yamlsafe.excerpt(value)}")
        return value
    if tp is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {yamlsafe.excerpt(value)}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {yamlsafe.excerpt(value)}")
        return float(value)
    if tp is str:
        if isinstance(value, datetime.date):
            # YAML reads an unquoted `expires: 2027-03-31` as a date: keep it as written.
            return value.isoformat()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: expected a string, got {yamlsafe.excerpt(value)}"
                              f"{_bool_hint(value, path, tp)}")
        return str(value)
    raise ConfigError(f"{path}: unsupported type {tp!r}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        shown = key if isinstance(key, str) and len(key) <= 80 else yamlsafe.excerpt(key)
        where = f"{path}.{shown}" if path else shown
        if name not in names:
            allowed = ", ".join(sorted(n.replace("_", "-") for n in names))
            raise ConfigError(f"{where}: unknown key (expected one of: {allowed})")
        kwargs[name] = _convert(value, hints[name], where)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from exc


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``DRIFT_AUDITOR_<SECTION>_<FIELD>`` → ``{section: {field: value}}``.

    ``DRIFT_AUDITOR_SOURCE_<FIELD>`` sets a field of the first (or only) Git source.
    """
    sections = {f.name: f for f in dataclasses.fields(Config)}
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        if rest in ("config", "tools", "screenshots"):
            # Not settings: the config file's path and the kubectl/helm folder (read by the
            # CLI), and where the test suite keeps browser screenshots.
            continue
        if rest.startswith("source_"):
            out.setdefault("source", {})[rest[len("source_"):]] = value
            continue
        for section in sorted(sections, key=len, reverse=True):
            if rest.startswith(section + "_"):
                out.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
        else:
            raise ConfigError(f"{name}: unknown environment setting (expected "
                              f"{ENV_PREFIX}<SECTION>_<FIELD>, sections: {', '.join(sorted(sections))})")
    return out


def _controller_sources(data: dict[str, Any]) -> tuple[ControllerSource, ...]:
    """Take the ``sources`` entries that name a controller (``from:``) out of ``data``."""
    if "controllers" in data:
        raise ConfigError("controllers: unknown key (GitOps controllers are sources: "
                          "`sources: [{from: argocd}]`)")
    entries = data.get("sources")
    if not isinstance(entries, list):
        return ()
    plain: list[Any] = []
    found: list[ControllerSource] = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, Mapping) and "from" in entry):
            plain.append(entry)
            continue
        where = f"sources[{i}]"
        kind = entry["from"]
        if kind not in CONTROLLERS:
            raise ConfigError(f"{where}.from: {yamlsafe.excerpt(kind)} is not a GitOps "
                              f"controller (expected one of: {', '.join(CONTROLLERS)})")
        rest = {k: v for k, v in entry.items() if k != "from"}
        for key in rest:
            if str(key).replace("-", "_") == "controller":
                raise ConfigError(f"{where}.{key}: unknown key (the controller is `from`)")
        found.append(_build(ControllerSource, {**rest, "controller": kind}, where))
    data["sources"] = plain
    return tuple(found)


def _apply_source_override(data: dict[str, Any], over: Mapping[str, Any], where: str) -> None:
    entries = list(data.get("sources") or [])
    # Controller entries (`from:`) are not Git sources: they stay as they are.
    controllers = [e for e in entries if isinstance(e, Mapping) and "from" in e]
    sources = [e for e in entries if not (isinstance(e, Mapping) and "from" in e)]
    if len(sources) > 1:
        raise ConfigError(f"{where}: several Git sources are configured; set them in the config file")
    first = dict(sources[0]) if sources else {}
    first.update(over)
    data["sources"] = [first, *controllers]


def load(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the configuration.

    ``path`` is the config file (``None``: ``$DRIFT_AUDITOR_CONFIG`` or ``./drift-auditor.yaml``
    when present). ``overrides`` are flag values as a nested mapping; a ``source`` mapping in
    the overrides or the environment sets fields of the single Git source.
    """
    env = env or {}
    data: dict[str, Any] = {}
    explicit = path is not None or bool(env.get(ENV_PREFIX + "CONFIG"))
    file = Path(path or env.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_FILE)
    if file.exists() or explicit:
        try:
            loaded = yamlsafe.load(yamlsafe.read_text(file, MAX_CONFIG_BYTES), yamlsafe.PLAIN)
        except FileNotFoundError:
            raise ConfigError(f"{file}: config file not found") from None
        except yamlsafe.LimitError as exc:
            mark = exc.problem_mark
            line = f" line {mark.line + 1}:" if mark is not None else ""
            raise ConfigError(f"{file}:{line} {exc}") from None
        except yamlsafe.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{file}:{line} invalid YAML: {getattr(exc, 'problem', exc)}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read the config file ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: the config file is not UTF-8 text") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{file}: expected a mapping at the top level")
        data = dict(loaded)
    for layer, where in ((_env_overrides(env), "environment"), (dict(overrides or {}), "flags")):
        source = layer.pop("source", None)
        if source:
            _apply_source_override(data, source, where)
        data = _merge(data, layer)
    try:
        controllers = _controller_sources(data)
        config: Config = _build(Config, data, "")
        if controllers:
            config = dataclasses.replace(config, controllers=controllers)
        return config
    except ConfigError as exc:
        if file.exists():
            raise ConfigError(f"{file}: {exc}") from None
        raise


def dump(config: Config) -> str:
    """The effective configuration as YAML with stable key order."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return yamlsafe.dump(plain(dataclasses.asdict(config)))
