"""The read-only web UI over the ledger, served by ``drift-auditor serve``.

Pages (GET/HEAD only; anything else is 405):

    /                                        latest runs, open drifts per namespace, reports
    /objects/<group>/<kind>/<namespace>/<name>  one object's versions, changes with their
                                             actors, the API server's audit writes, and its
                                             drifts' lifecycle (``_`` stands for the core
                                             group and for no namespace); a version or write
                                             no scheduled run saw as current is marked
                                             transient
    /reports/                                the HTML/CSV/JSON reports in reports.directory
    /reports/<file>                          one of them
    /metrics                                 Prometheus exposition (:mod:`auditor.outputs.metrics`)
    /healthz                                 200 when the ledger can be read, else 503

With several ledgers (``--ledger prod-eu.db --ledger prod-us.db``, one per cluster) the UI is a
fleet view: ``/`` shows one row per cluster and the open drift grouped by cluster, then
namespace; ``/c/<cluster>/`` is that cluster's single-ledger page and
``/c/<cluster>/objects/…`` its object pages; ``/metrics`` carries every ledger's series with a
``cluster`` label; ``/healthz`` is 200 only when every ledger can be read. Clusters are named
exactly as ``drift-auditor report``'s fleet names them (:mod:`auditor.report.fleet`), so a name
means the same cluster in a report and in the UI. ``serve.ledgers`` in the configuration lists
them when no ``--ledger`` is given. One ledger (or none: ``ledger.path``) is the single-ledger
UI, unchanged.

A fleet also has ``/compare?a=<cluster>&b=<cluster>`` (``&all=1``: with what Git declares
per cluster, the overlays): the cross-cluster divergence ``drift-auditor compare-clusters``
prints (:mod:`auditor.ledger.divergence`), per object and field with both sides' values and who
changed each side and when; ``/api/v1/compare`` with the same parameters is its JSON, the
document ``compare-clusters -o json`` writes. An unknown cluster is 404, the same cluster twice
400.

The ledger is opened per request so that it cannot be written at all
(:mod:`auditor.ledger.readonly`: SQLite ``mode=ro`` and ``query_only``; a plain reader could
still checkpoint a leftover WAL into the file when it closes). The server binds loopback
unless configured (``serve.host``); with a bearer token (``serve.token-env`` naming an
environment variable, or ``serve.token-file``, e.g. a mounted Secret, re-read when it
changes: :mod:`.access`), every page except ``/healthz`` (kubelet probes carry no token)
needs ``Authorization: Bearer <token>``, compared in constant time. With
``serve.tls-cert-file`` and ``serve.tls-key-file`` it speaks HTTPS only (TLS 1.2 or later).
Every value shown is HTML-escaped by the templates (drift values, paths and annotations can
hold anything); Secret drift values are never shown, only their paths.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import sqlite3
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import jinja2
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auditor import __version__
from auditor.config import Config
from auditor.errors import AuditorError, ConfigError, LedgerError
from auditor.ledger import HistoryFilter, backend, drifts, query, runs, uiquery, webquery
from auditor.ledger.backend import StoreLedger, Target, readers
from auditor.ledger.divergence import Divergence
from auditor.ledger.divergence import compare as compare_ledgers
from auditor.ledger.history import TYPES, watch_summary
from auditor.ledger.readonly import reading, signature
from auditor.ledger.reportquery import cluster_names
from auditor.outputs import metrics as metrics_mod

# The report's own naming (newest recorded cluster name, the file stem without runs, name@file
# when two ledgers share a name): imported, not copied, so report and UI name clusters alike.
from auditor.report.fleet import member_names as fleet_names

from . import charts, yamlview
from .access import BearerToken, tls_context
from .chainstate import VERIFY_WAIT_S, ChainState, Verifier

log = logging.getLogger("auditor.web.serve")

# Files under reports.directory that /reports/ lists and serves, with their content types.
REPORT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}
# Stands for the core API group and for "no namespace" in object URLs: neither a group (a DNS
# subdomain) nor a namespace (a DNS label) can be "_", so the URL is never ambiguous.
EMPTY = "_"
VALUE_LIMIT = 300  # characters of a drift value shown before it is cut
# Our pages need no script and load nothing from elsewhere. Reports carry their own inline
# script and styles (sorting, filters), so they get a CSP that allows inline code only.
# The filter and version forms are GET forms to the UI itself (form-action 'self').
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; " \
           "form-action 'self'; frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
FILTERS = ("namespace", "kind", "actor", "category", "state", "q")
PAGE_SIZE = 50
# Drift rows per cluster on the fleet overview; the rest are counted and linked to the
# cluster's drift list. Every row of a 20-cluster fleet with 500 open drifts each made a
# 7.9 MiB page that took 1.5 s to serve warm (bench fleet_bench, one run).
FLEET_DRIFT_ROWS = 20
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; " \
             "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def cluster_url(cluster: str) -> str:
    """A fleet cluster's page; its name is one path segment (``name@/a/b.db`` holds slashes)."""
    return "/c/" + quote(cluster, safe="") + "/"


def compare_url(a: str, b: str, everything: bool = False, api: bool = False) -> str:
    """The fleet's divergence page (or its JSON) of clusters ``a`` and ``b``."""
    query = {"a": a, "b": b, **({"all": "1"} if everything else {})}
    return ("/api/v1/compare?" if api else "/compare?") + urlencode(query)


def object_url(group: str, kind: str, namespace: str, name: str, cluster: str = "") -> str:
    """The UI's address of an object's history page (each part percent-encoded); with
    ``cluster``, that fleet cluster's page of it."""
    parts = (group or EMPTY, kind, namespace or EMPTY, name)
    prefix = cluster_url(cluster)[:-1] if cluster else ""
    return prefix + "/objects/" + "/".join(quote(p, safe="") for p in parts)


def is_secret(group: str, kind: str) -> bool:
    return group == "" and kind == "Secret"


def show_value(value: Any) -> str:
    """A drift value as compact JSON text, cut at :data:`VALUE_LIMIT` (escaped by the template)."""
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT] + "…"


def _age(stamp: str, now: datetime) -> str:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("auditor.web", "templates"),
        # Escape everything: names are DNS-safe, but drift values, paths, commit messages and
        # reasons are not.
        autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["value"] = show_value
    env.globals.update(object_url=object_url, cluster_url=cluster_url, is_secret=is_secret,
                       compare_url=compare_url, version=__version__)
    return env


@dataclass(frozen=True)
class Report:
    name: str
    size: int
    modified: str


def list_reports(directory: Path) -> list[Report]:
    """Report files directly in ``directory`` (no subfolders), newest first."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if entry.suffix in REPORT_TYPES and entry.is_file() and not entry.name.startswith("."):
            st = entry.stat()
            found.append(Report(entry.name, st.st_size, datetime.fromtimestamp(
                st.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return sorted(found, key=lambda r: (r.modified, r.name), reverse=True)


def _report_file(directory: Path, name: str) -> Path | None:
    """The file ``name`` in ``directory`` if it is a listed report — never a path outside it
    (``..``, separators, symlinks leaving the folder)."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        return None
    path = directory / name
    if path.suffix not in REPORT_TYPES or not path.is_file():
        return None
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return None
    return path


def ledger_signature(path: Target) -> tuple[int, ...]:
    """What any write of the ledger moves (the files' mtime, size and inode; a store
    cluster's newest event, :func:`auditor.ledger.readonly.signature`), so a cached
    verification is redone exactly when the ledger changed (as :mod:`auditor.outputs.metrics`
    does for its scrapes)."""
    return signature(path)


@dataclass
class Member:
    """One ledger of a fleet, with what the UI caches about it between requests."""

    path: Target
    collector: metrics_mod.LedgerCollector
    # Its chain's last verification, refreshed off the request path (:mod:`.chainstate`).
    chain: ChainState
    # The cluster names its runs recorded, as last read: kept while the ledger cannot be read,
    # so a broken ledger keeps its name (and its URLs) instead of falling back to the file stem.
    recorded: list[str] = field(default_factory=list)


class Fleet:
    """The ledgers of ``serve --ledger A --ledger B``: their names and per-ledger caches."""

    def __init__(self, cfg: Config, paths: Sequence[Target]) -> None:
        self.cfg = cfg
        verifier = Verifier()
        self.members = [Member(p, metrics_mod.LedgerCollector(cfg, p, opener=reading),
                               ChainState(p, verifier)) for p in paths]
        self._lock = threading.Lock()
        self._named: tuple[tuple[tuple[int, ...], ...], list[str]] | None = None

    def names(self) -> list[str]:
        """Each member's qualified cluster name, in the order given. Re-read only when a
        ledger changed (a run may be the first to record a name, or rename the cluster)."""
        signature = tuple(ledger_signature(m.path) for m in self.members)
        with self._lock:
            if self._named is None or self._named[0] != signature:
                for m in self.members:
                    try:
                        with reading(m.path) as conn:
                            m.recorded = cluster_names(conn)
                    except Exception as exc:  # unreadable: keep the last names read
                        log.debug("serve: %s: cluster names: %s", m.path, exc)
                self._named = (signature, fleet_names([m.path for m in self.members],
                                                      [m.recorded for m in self.members]))
            return list(self._named[1])

    def named(self) -> list[tuple[str, Member]]:
        return list(zip(self.names(), self.members, strict=True))

    def member(self, cluster: str) -> Member | None:
        return next((m for n, m in self.named() if n == cluster), None)


class FleetCollector(Collector):
    """Every member's metrics, each series labelled with its cluster. :mod:`auditor.outputs.metrics`'
    series carry no cluster label (one ledger is one cluster there), so each ledger keeps its
    own collector (and its verification cache) and the label is added here. Families of the
    same name are merged into one, as the text format allows each name once."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def describe(self) -> list[Metric]:
        return []  # reading happens at collection only

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        readable = GaugeMetricFamily(metrics_mod.PREFIX + "ledger_readable",
                                     "1 when serve can read the cluster's ledger, 0 when not "
                                     "(its other series are then absent).", labels=["cluster"])
        named = self.fleet.named()
        # A scrape reads the chains' verifications as the overview does: every stale chain
        # queued first, then waited for as briefly as a page does, in all (not per cluster).
        deadline = time.monotonic() + VERIFY_WAIT_S
        if self.fleet.cfg.metrics.verify:
            for _, member in named:
                member.chain.refresh(ledger_signature(member.path))
        for name, member in named:
            try:
                families = member.collector.read(
                    verified=functools.partial(member.chain.for_metrics, deadline=deadline))
            except Exception as exc:  # one broken ledger must not hide the others' metrics
                log.warning("metrics: %s (%s): %s", name, member.path, exc)
                readable.add_metric([name], 0)
                continue
            readable.add_metric([name], 1)
            for fam in families:
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type,
                                                    fam.unit)
                out.samples += [s._replace(labels={"cluster": name, **s.labels})
                                for s in fam.samples]
        yield from merged.values()
        yield readable


def _iso(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if stamp else ""


class BadRequest(Exception):
    """A query parameter the page cannot use (answered 400)."""


class NotFound(Exception):
    """A query parameter naming what does not exist, e.g. a cluster (answered 404)."""


def _capped(namespaces: list[tuple[str, list[dict[str, Any]]]], budget: int
            ) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """``(namespace, rows, rows shown)``: the first ``budget`` rows of the cluster, in order."""
    out = []
    for ns, rows in namespaces:
        take = rows[:max(budget, 0)]
        budget -= len(take)
        out.append((ns, rows, take))
    return out


def encode_continue(value: Any) -> str | None:
    """The opaque ``continue`` token of a list's next page (``None``: no next page)."""
    if value is None:
        return None
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_continue(token: str) -> Any:
    if not token:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest("continue: not a token this server gave out") from None


def list_filter(params: Mapping[str, list[str]]) -> webquery.ListFilter:
    """The list filters of a query string (each at most 200 characters)."""
    values = {}
    for name in FILTERS:
        value = (params.get(name) or [""])[0].strip()
        if len(value) > 200:
            raise BadRequest(f"{name}: at most 200 characters")
        values[name] = value
    return webquery.ListFilter(**values)


def int_param(params: Mapping[str, list[str]], name: str, default: int | None = None,
              low: int = 1, high: int = 10**12) -> int | None:
    raw = (params.get(name) or [""])[0].strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name}: a whole number from {low} to {high}")
    return int(raw)


def json_body(data: Any) -> bytes:
    """The API's JSON: keys sorted (a stable order), UTF-8, newline-terminated."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def _object_ref(group: str, kind: str, namespace: str, name: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "namespace": namespace, "name": name}


def _drift_json(d: Mapping[str, Any], cluster: str) -> dict[str, Any]:
    secret = is_secret(d["api_group"], d["kind"])
    items = []
    for item in d["items"]:
        desired, live = item.get("desired"), item.get("live")
        if secret:
            desired = yamlview.redact_value(item.get("path", ""), desired)
            live = yamlview.redact_value(item.get("path", ""), live)
        items.append({"path": item.get("path", ""), "op": item.get("op", ""),
                      "desired": desired, "live": live, "manager": item.get("manager", ""),
                      "operation": item.get("operation", ""),
                      "category": item.get("category", ""), "user": item.get("user", ""),
                      "spoofed": bool(item.get("spoofed")), "time": item.get("time", "")})
    return {"id": d["id"],
            "object": _object_ref(d["api_group"], d["kind"], d["namespace"], d["name"]),
            "state": d["state"], "status": d["status"], "category": d["category"],
            "manager": d["manager"], "opened_at": d["opened_at"],
            "state_since": d["state_since"], "accepted_until": d["accepted_until"] or None,
            "source": {"file": d["source_file"], "commit": d["source_commit"]},
            "items": items,
            "url": object_url(d["api_group"], d["kind"], d["namespace"], d["name"], cluster)
            + "/diff?drift=" + str(d["id"])}


def _view(params: Mapping[str, list[str]]) -> str:
    """``split``, ``unified`` or ``""`` (the page's width decides)."""
    view = (params.get("view") or [""])[0]
    return view if view in ("split", "unified") else ""


def _flag(params: Mapping[str, list[str]], name: str) -> bool:
    return (params.get(name) or [""])[0] in ("1", "true", "yes", "on")


def _label(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"manager": item.get("manager") or "", "category": item.get("category") or "",
            "user": item.get("user") or "", "time": item.get("time") or "",
            "path": item.get("path") or "", "op": item.get("op") or "",
            "spoofed": bool(item.get("spoofed"))}


def _pairs(names: Sequence[str], limit: int = 10) -> list[tuple[str, str]]:
    """Each pair of clusters, for one-click links (a large fleet uses the form instead)."""
    out = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return out if len(out) <= limit else []


class Pages:
    """Renders each page from the ledger(s); one reader connection per ledger and call."""

    def __init__(self, cfg: Config, ledger_paths: Sequence[Target], reports_dir: Path) -> None:
        self.cfg = cfg
        self.ledger_path = ledger_paths[0]
        self.reports_dir = reports_dir
        self.env = _environment()
        # Pages and scrapes read each store cluster several times per request: its reader
        # sessions are kept for the next request instead of reconnecting.
        backend.keep_readers(ledger_paths)
        # One ledger: today's UI. Several: the fleet view.
        self.fleet = Fleet(cfg, ledger_paths) if len(ledger_paths) > 1 else None
        self.env.globals["fleet_mode"] = self.fleet is not None
        # Kept for the server's life (not rebuilt per scrape) so that the chain is verified
        # again only when the ledger changed.
        self.registry = CollectorRegistry(auto_describe=False)
        if self.fleet is not None:
            self.registry.register(FleetCollector(self.fleet))
        else:
            self.registry.register(metrics_mod.LedgerCollector(cfg, self.ledger_path,
                                                               opener=reading))

    def metrics(self) -> str:
        return generate_latest(self.registry).decode()

    def _current(self, conn: sqlite3.Connection,
                 now: datetime) -> list[tuple[str, list[dict[str, Any]]]]:
        """Open and accepted drifts by namespace, each with its age."""
        by_ns: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in drifts(conn):
            d["age"] = _age(d["opened_at"], now)
            by_ns[d["namespace"]].append(d)
        return [(ns, sorted(rows, key=lambda d: (d["kind"], d["name"], d["id"])))
                for ns, rows in sorted(by_ns.items())]

    def index(self, cluster: str | None = None) -> str:
        """The single-ledger overview; ``cluster``: that fleet member's (links qualified)."""
        now = datetime.now(UTC)
        path = self.ledger_path
        if cluster is not None:
            member = self.fleet.member(cluster) if self.fleet else None
            if member is None:
                raise KeyError(cluster)
            path = member.path
        with reading(path) as conn:
            latest = runs(conn, limit=10)  # scheduled runs: a watch batch is no audit
            watching = watch_summary(conn)
            namespaces = self._current(conn, now)
            open_series = webquery.open_drift_by_day(conn, 30, now)
            change_series = webquery.changes_by_category(conn, 30, now)
        current = [d for _, rows in namespaces for d in rows]
        totals: dict[str, int] = defaultdict(int)
        for _, counts in change_series:
            for category, n in counts.items():
                totals[category] += n
        order = [c for c in charts.COLOURS if c in totals] + sorted(
            c for c in totals if c not in charts.COLOURS)
        return self.env.get_template("index.html.j2").render(
            open_chart=charts.open_drift(open_series),
            changes_chart=charts.changes(change_series, order),
            change_legend=[(c, charts.colour(c, order), totals[c]) for c in order],
            open_today=open_series[-1] if open_series else ("", 0, 0),
            title="Drift Auditor" if cluster is None else f"Cluster {cluster}", runs=latest,
            watch=watching, namespaces=namespaces,
            open_count=sum(1 for d in current if d["state"] == "open"),
            accepted_count=sum(1 for d in current if d["state"] == "accepted"),
            reports=list_reports(self.reports_dir)[:5], now=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            cluster=self.cfg.cluster.name if cluster is None else cluster,
            link_cluster=cluster or "")

    def _member_row(self, name: str, member: Member, now: datetime, signature: tuple[int, ...],
                    deadline: float) -> dict[str, Any]:
        """One cluster's overview row and its drift; an unreadable ledger gives a row that
        says so (the other clusters still render)."""
        # recorded[0] names the cluster; older names (a renamed cluster) stay visible.
        row: dict[str, Any] = {"name": name, "path": str(member.path),
                               "recorded": member.recorded[1:], "error": "",
            "namespaces": [], "shown": [], "open": 0, "accepted": 0, "last": None, "counts": {},
            "score": None, "verified": None, "verify_message": "", "verify_state": "off",
            "events": 0}
        try:
            with reading(member.path) as conn:
                latest = runs(conn, limit=20)
                row["namespaces"] = self._current(conn, now)
                score, events = uiquery.policy_score(conn), uiquery.head_seq(conn)
            if self.cfg.metrics.verify:
                verdict = member.chain.verdict(signature, deadline)
                row["verified"], row["verify_message"] = verdict.ok, verdict.message
                row["verify_state"] = verdict.state
        except LedgerError as exc:
            row["error"] = str(exc)
            return row
        except Exception:  # SQLite trouble or a bug: the page says so, the log has details
            log.exception("serve: overview of %s (%s) failed", name, member.path)
            row["error"] = "cannot be read (details in the server log)"
            return row
        current = [d for _, rows in row["namespaces"] for d in rows]
        row["shown"] = _capped(row["namespaces"], FLEET_DRIFT_ROWS)
        row["open"] = sum(1 for d in current if d["state"] == "open")
        row["accepted"] = sum(1 for d in current if d["state"] == "accepted")
        row["last"] = latest[0] if latest else None
        # Object counts come from the newest finished run: a running one has none yet.
        done = next((r for r in latest if r["status"] != "running"), None)
        row["counts"] = done["counts"] if done else {}
        row["score"], row["events"] = score, events
        return row

    def fleet_index(self) -> str:
        assert self.fleet is not None
        now = datetime.now(UTC)
        named = self.fleet.named()
        # Signatures before our connections touch a WAL; every stale chain is queued for
        # verification before the first row waits for its own.
        signatures = [ledger_signature(m.path) for _, m in named]
        if self.cfg.metrics.verify:
            for (_, m), sig in zip(named, signatures, strict=True):
                m.chain.refresh(sig)
        deadline = time.monotonic() + VERIFY_WAIT_S
        members = [self._member_row(n, m, now, sig, deadline)
                   for (n, m), sig in zip(named, signatures, strict=True)]
        return self.env.get_template("fleet.html.j2").render(
            title="Drift Auditor fleet", members=members,
            open_count=sum(m["open"] for m in members),
            accepted_count=sum(m["accepted"] for m in members),
            drifting=sum(1 for m in members if m["open"]),
            unhealthy=sum(1 for m in members if m["error"] or m["verified"] is False),
            reports=list_reports(self.reports_dir)[:5], now=now.strftime("%Y-%m-%dT%H:%M:%SZ"))

    # ------------------------------------------------------------ cross-cluster divergence

    def _pair(self, params: Mapping[str, list[str]]) -> tuple[str, str] | None:
        """The clusters ``a`` and ``b`` of the query (``None``: neither given), checked as
        ``compare-clusters`` checks them: two different clusters of this fleet."""
        assert self.fleet is not None
        a, b = ((params.get(n) or [""])[0].strip() for n in ("a", "b"))
        if not a and not b:
            return None
        if not a or not b:
            raise BadRequest("a, b: name the two clusters of this fleet to compare")
        if max(len(a), len(b)) > 1000:
            raise BadRequest("a, b: at most 1000 characters")
        if a == b:
            raise BadRequest(f"a, b: give two different clusters (got {a} twice)")
        names = self.fleet.names()
        unknown = [n for n in (a, b) if n not in names]
        if unknown:
            raise NotFound(f"No cluster {', '.join(unknown)} in this fleet; its clusters are: "
                           f"{', '.join(names)}.")
        return a, b

    def _divergence(self, a: str, b: str) -> Divergence:
        assert self.fleet is not None
        member_a, member_b = self.fleet.member(a), self.fleet.member(b)
        assert member_a is not None and member_b is not None  # _pair checked the names
        # Both ledgers only read, as for every page; the library keeps Secret values out.
        with reading(member_a.path) as conn_a, reading(member_b.path) as conn_b:
            return compare_ledgers(conn_a, conn_b, a, b)

    def compare(self, params: Mapping[str, list[str]]) -> str:
        """Two clusters' divergence; without ``a`` and ``b`` only the form choosing them."""
        assert self.fleet is not None
        names = self.fleet.names()
        everything = _flag(params, "all")
        pair = self._pair(params)
        context: dict[str, Any] = dict(
            title="Compare clusters", names=names, everything=everything, a="", b="",
            result=None, objects=[], summary={}, pairs=_pairs(names))
        if pair is not None:
            a, b = pair
            result = self._divergence(a, b)
            context.update(title=f"{a} vs {b}", a=a, b=b, result=result,
                           objects=result.shown(everything), summary=result.summary())
        return self._render("compare.html.j2", **context)

    def api_compare(self, params: Mapping[str, list[str]]) -> bytes:
        """``compare-clusters -o json``'s document (keys sorted, as every API answer)."""
        pair = self._pair(params)
        if pair is None:
            raise BadRequest("a, b: name the two clusters of this fleet to compare")
        return json_body(self._divergence(*pair).to_dict(_flag(params, "all")))

    def health(self) -> tuple[bool, str]:
        """(every ledger readable, the plain-text body). Names and run counts only: /healthz
        needs no token, so no paths or error details."""
        if self.fleet is None:
            with reading(self.ledger_path) as conn:
                count, _ = uiquery.health(conn)
            return True, f"ok: {count} runs\n"
        lines, bad = [], 0
        for name, member in self.fleet.named():
            try:
                with reading(member.path) as conn:
                    count, _ = uiquery.health(conn)
                lines.append(f"{name}: ok: {count} runs")
            except Exception as exc:  # whatever the cause, this ledger cannot be read
                log.warning("healthz: %s (%s): %s", name, member.path, exc)
                bad += 1
                lines.append(f"{name}: ledger unreadable")
        total = len(self.fleet.members)
        head = (f"ok: {total} ledgers" if not bad
                else f"unhealthy: {bad} of {total} ledgers unreadable")
        return not bad, "\n".join([head, *lines]) + "\n"

    def object(self, group: str, kind: str, namespace: str, name: str,
               cluster: str | None = None) -> str | None:
        path = self.ledger_path
        if cluster is not None:
            member = self.fleet.member(cluster) if self.fleet else None
            if member is None:
                return None
            path = member.path
        with reading(path) as conn:
            oid = uiquery.object_id(conn, group, kind, namespace, name)
            if oid is None:
                return None
            gk = f"{kind}.{group}" if group else kind
            label = f"{gk} {namespace + '/' if namespace else ''}{name}"
            # Changes, drift events and the API server's audit writes of the object, each
            # change and write marked when it was transient (changed back between runs).
            timeline = query(conn, HistoryFilter(object=f"{gk} {name}", namespace=namespace,
                                                 types=TYPES, limit=1000))
            versions = uiquery.versions(conn, oid)
            object_drifts = uiquery.object_drifts(conn, oid)
        return self.env.get_template("object.html.j2").render(
            title=label if cluster is None else f"{label} · {cluster}", label=label,
            group=group, kind=kind, namespace=namespace, name=name,
            secret=is_secret(group, kind), timeline=timeline, versions=versions,
            drifts=object_drifts, link_cluster=cluster or "")

    def _ledger(self, cluster: str | None) -> Target | None:
        """The ledger of ``cluster`` (``None``: the single ledger); ``None`` when no such
        cluster."""
        if cluster is None:
            return self.ledger_path
        member = self.fleet.member(cluster) if self.fleet else None
        return member.path if member else None

    def _render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def drift_diff(self, group: str, kind: str, namespace: str, name: str,
                   cluster: str | None, params: Mapping[str, list[str]]) -> str | None:
        """A drift of the object as a diff of the whole object, Git's side against live."""
        path = self._ledger(cluster)
        if path is None:
            return None
        wanted = int_param(params, "drift")
        with reading(path) as conn:
            oid = uiquery.object_id(conn, group, kind, namespace, name)
            if oid is None:
                return None
            rows = webquery.object_drift_rows(conn, oid)
            if wanted is not None:
                chosen = next((d for d in rows if d["id"] == wanted), None)
                if chosen is None:
                    raise BadRequest(f"drift: #{wanted} is no drift of this object")
            else:
                chosen = next((d for d in rows if d["state"] in ("open", "accepted")),
                              rows[0] if rows else None)
            vid = (webquery.version_with_hash(conn, oid, chosen["live_hash"])
                   if chosen and chosen["live_hash"] else None)
            exact = vid is not None
            if vid is None:
                vid = webquery.latest_version_id(conn, oid)
            stored = webquery.version(conn, oid, vid) if vid is not None else None
        gk = f"{kind}.{group}" if group else kind
        label = f"{gk} {namespace + '/' if namespace else ''}{name}"
        secret = is_secret(group, kind)
        context: dict[str, Any] = dict(
            title=f"Diff · {label}", label=label, group=group, kind=kind, namespace=namespace,
            name=name, link_cluster=cluster or "", drift=chosen, drifts=rows, shown=stored,
            exact=exact, secret=secret, view=_view(params), show_hidden=_flag(params, "defaults"),
            diff=None, unplaced=[], mode="drift")
        if chosen is None or stored is None or stored["content"] is None:
            return self._render("diff.html.j2", **context)
        live = stored["content"]
        items = chosen["items"]
        if secret:
            live = yamlview.redact_secret(live)
            items = [{**i, "desired": yamlview.redact_value(i.get("path", ""), i.get("desired")),
                      "live": yamlview.redact_value(i.get("path", ""), i.get("live"))}
                     for i in items]
        git, unplaced = yamlview.git_side(live, items)
        if secret:
            git = yamlview.redact_secret(git)
        git_marks = [(p, _label(i)) for p, i in yamlview.places(git, items)]
        live_marks = [(p, _label(i)) for p, i in yamlview.places(live, items)]
        left = yamlview.lines_of(git, group, kind, [p for p, _ in git_marks])
        right = yamlview.lines_of(live, group, kind, [p for p, _ in live_marks])
        context.update(diff=yamlview.diff(left, right, git_marks, live_marks),
                       unplaced=unplaced, left_title="Git (reconstructed)",
                       right_title=f"Live · version #{stored['id']}")
        return self._render("diff.html.j2", **context)

    def version_page(self, group: str, kind: str, namespace: str, name: str,
                     cluster: str | None, vid: int) -> str | None:
        """One stored version of the object as YAML, with the change that wrote it."""
        path = self._ledger(cluster)
        if path is None:
            return None
        with reading(path) as conn:
            oid = uiquery.object_id(conn, group, kind, namespace, name)
            stored = webquery.version(conn, oid, vid) if oid is not None else None
            if oid is None or stored is None:
                return None
            writer = webquery.version_changes(conn, oid).get(vid)
        content = stored["content"]
        if content is not None and is_secret(group, kind):
            content = yamlview.redact_secret(content)
        gk = f"{kind}.{group}" if group else kind
        label = f"{gk} {namespace + '/' if namespace else ''}{name}"
        text = (yamlview.as_yaml(yamlview.lines_of(content, group, kind))
                if content is not None else None)
        return self._render("version.html.j2", title=f"Version #{vid} · {label}", label=label,
                            group=group, kind=kind, namespace=namespace, name=name,
                            link_cluster=cluster or "", shown=stored, yaml=text,
                            writer=writer)

    def version_diff(self, group: str, kind: str, namespace: str, name: str,
                     cluster: str | None, params: Mapping[str, list[str]]) -> str | None:
        """Two stored versions of the object side by side (or unified): who changed what."""
        path = self._ledger(cluster)
        if path is None:
            return None
        a, b = int_param(params, "a"), int_param(params, "b")
        with reading(path) as conn:
            oid = uiquery.object_id(conn, group, kind, namespace, name)
            if oid is None:
                return None
            listed = uiquery.versions(conn, oid, limit=10_000)
            ids = [v["id"] for v in listed]  # newest first
            if b is None:
                b = ids[0] if ids else None
            if a is None and b is not None:
                older = [i for i in ids if i < b]
                a = older[0] if older else b
            if a is None or b is None:
                raise BadRequest("the object has no stored version")
            a, b = min(a, b), max(a, b)
            old, new = webquery.version(conn, oid, a), webquery.version(conn, oid, b)
            if old is None or new is None:
                raise BadRequest("a, b: versions of this object")
            writers = webquery.version_changes(conn, oid)
        between = [(vid, writers[vid]) for vid in sorted(writers) if a < vid <= b]
        gk = f"{kind}.{group}" if group else kind
        label = f"{gk} {namespace + '/' if namespace else ''}{name}"
        secret = is_secret(group, kind)
        context: dict[str, Any] = dict(
            title=f"Versions #{a} → #{b} · {label}", label=label, group=group, kind=kind,
            namespace=namespace, name=name, link_cluster=cluster or "", drift=None, drifts=[],
            shown=new, old_version=old, exact=True, secret=secret, view=_view(params),
            show_hidden=_flag(params, "defaults"), diff=None, unplaced=[], mode="versions",
            between=between, versions=listed, a=a, b=b)
        if old["content"] is None or new["content"] is None:
            return self._render("diff.html.j2", **context)
        left_obj, right_obj = old["content"], new["content"]
        if secret:
            left_obj, right_obj = yamlview.redact_secret(left_obj), yamlview.redact_secret(right_obj)
        marks = [((), {"manager": w["manager"], "category": w["category"], "user": w["user"],
                       "time": w["time"], "path": "", "op": w["change"], "spoofed": False})
                 for _, w in between]
        context.update(diff=yamlview.diff(yamlview.lines_of(left_obj, group, kind),
                                          yamlview.lines_of(right_obj, group, kind),
                                          marks, marks),
                       left_title=f"Version #{a} · {old['observed_at']}",
                       right_title=f"Version #{b} · {new['observed_at']}")
        return self._render("diff.html.j2", **context)

    def listing(self, which: str, cluster: str | None,
                params: Mapping[str, list[str]]) -> str | None:
        """The drifts, objects or changes list, filtered by the query string, a page each."""
        path = self._ledger(cluster)
        if path is None:
            return None
        f = list_filter(params)
        token = (params.get("continue") or [""])[0]
        cont = decode_continue(token)
        with reading(path) as conn:
            facets = webquery.facets(conn)
            rows, nxt = self._list(conn, which, f, PAGE_SIZE, cont)
        query_now = {k: v for k, v in ((n, getattr(f, n)) for n in FILTERS) if v}
        next_url = ("?" + urlencode({**query_now, "continue": encode_continue(nxt)})
                    if nxt is not None else "")
        states = {"drifts": webquery.DRIFT_STATES, "objects": webquery.OBJECT_STATES,
                  "changes": webquery.CHANGE_STATES}[which]
        return self._render("list.html.j2", title=which.capitalize(), which=which, rows=rows,
                            filters=f, facets=facets, states=states, next_url=next_url,
                            first_url="?" + urlencode(query_now) if token else "",
                            link_cluster=cluster or "", filtered=bool(query_now))

    @staticmethod
    def _list(conn: sqlite3.Connection, which: str, f: webquery.ListFilter, limit: int,
              cont: Any) -> tuple[list[dict[str, Any]], Any]:
        if which == "objects":
            if cont is not None and not (
                    isinstance(cont, list) and len(cont) == 4
                    and all(isinstance(x, str) for x in cont[:3]) and isinstance(cont[3], int)):
                raise BadRequest("continue: not a token of this list")
            after = (cont[0], cont[1], cont[2], cont[3]) if cont is not None else None
            rows, nxt_key = webquery.object_list(conn, f, limit, after)
            return rows, list(nxt_key) if nxt_key is not None else None
        if cont is not None and (not isinstance(cont, int) or isinstance(cont, bool)):
            raise BadRequest("continue: not a token of this list")
        lister = webquery.drift_list if which == "drifts" else webquery.change_list
        return lister(conn, f, limit, cont)

    # ----------------------------------------------------------------------- JSON API

    def api_drifts(self, cluster: str | None, params: Mapping[str, list[str]]) -> bytes | None:
        path = self._ledger(cluster)
        if path is None:
            return None
        f = list_filter(params)
        limit = int_param(params, "limit", 100, 1, webquery.MAX_LIMIT) or 100
        cont = decode_continue((params.get("continue") or [""])[0])
        with reading(path) as conn:
            rows, nxt = self._list(conn, "drifts", f, limit, cont)
        return json_body({"kind": "DriftList", "limit": limit,
                          "continue": encode_continue(nxt),
                          "items": [_drift_json(d, cluster or "") for d in rows]})

    def api_runs(self, cluster: str | None, params: Mapping[str, list[str]]) -> bytes | None:
        path = self._ledger(cluster)
        if path is None:
            return None
        limit = int_param(params, "limit", 100, 1, webquery.MAX_LIMIT) or 100
        cont = decode_continue((params.get("continue") or [""])[0])
        if cont is not None and (not isinstance(cont, int) or isinstance(cont, bool)):
            raise BadRequest("continue: not a token of this list")
        with reading(path) as conn:
            rows, nxt = webquery.run_list(conn, limit, cont)
        return json_body({"kind": "RunList", "limit": limit, "continue": encode_continue(nxt),
                          "items": rows})

    def api_object(self, group: str, kind: str, namespace: str, name: str,
                   cluster: str | None) -> bytes | None:
        path = self._ledger(cluster)
        if path is None:
            return None
        with reading(path) as conn:
            oid = uiquery.object_id(conn, group, kind, namespace, name)
            if oid is None:
                return None
            listed = uiquery.versions(conn, oid, limit=10_000)
            latest = webquery.version(conn, oid, listed[0]["id"]) if listed else None
            rows = webquery.object_drift_rows(conn, oid)
            writers = webquery.version_changes(conn, oid)
        secret = is_secret(group, kind)
        if latest is not None and latest["content"] is not None and secret:
            latest["content"] = yamlview.redact_secret(latest["content"])
        versions = []
        for v in listed:
            entry = {k: v[k] for k in ("id", "run_id", "api_version", "resource_version",
                                       "content_hash", "observed_at", "deleted",
                                       "detected_by", "transient")}
            entry["change"] = writers.get(v["id"])
            versions.append(entry)
        return json_body({"kind": "Object",
                          "object": _object_ref(group, kind, namespace, name),
                          "url": object_url(group, kind, namespace, name, cluster or ""),
                          "latest": latest,
                          "drifts": [_drift_json(d, cluster or "") for d in rows],
                          "versions": versions})

    def reports(self) -> str:
        return self.env.get_template("reports.html.j2").render(
            title="Reports", reports=list_reports(self.reports_dir),
            directory=str(self.reports_dir))

    def error(self, status: int, message: str) -> str:
        return self.env.get_template("error.html.j2").render(
            title=f"{status}", status=status, message=message)


def make_handler(pages: Pages, token: BearerToken | None,
                 https: bool = False) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``pages`` and the bearer ``token`` (``None``:
    open); ``https`` adds HSTS to every answer."""
    secure = {"Strict-Transport-Security": "max-age=31536000"} if https else {}

    class Handler(BaseHTTPRequestHandler):
        # Without it each small response waits ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def version_string(self) -> str:
            return "drift-auditor"  # no Python version in the Server header

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, ctype: str,
                  extra: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for key, value in {**secure, **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _html(self, status: int, html: str, csp: str = PAGE_CSP) -> None:
            self._send(status, html.encode(), "text/html; charset=utf-8",
                       {"Content-Security-Policy": csp})

        def _error(self, status: int, message: str,
                   extra: Mapping[str, str] | None = None) -> None:
            if self.api:
                self._json(status, json_body({"error": message, "status": status}), extra)
                return
            self._send(status, pages.error(status, message).encode(),
                       "text/html; charset=utf-8",
                       {"Content-Security-Policy": PAGE_CSP, **(extra or {})})

        def _authorized(self) -> bool:
            if token is None:
                return True
            return token.matches(self.headers.get("Authorization", ""))

        api = False  # the request is for /api/: errors are answered as JSON
        params: dict[str, list[str]] = {}  # noqa: RUF012 (replaced per request, never shared)

        def _json(self, status: int, body: bytes,
                  extra: Mapping[str, str] | None = None) -> None:
            self._send(status, body, "application/json",
                       {"Content-Security-Policy": API_CSP, **(extra or {})})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            below = path.split("/", 3)[3] if path.startswith("/c/") and path.count("/") >= 3 \
                else ""
            self.api = path.startswith("/api/") or below.startswith("api/")
            self.params = parse_qs(parts.query, keep_blank_values=True)
            if path == "/healthz":
                self._healthz()
                return
            if not self._authorized():
                self._error(401, "A bearer token is required.",
                            {"WWW-Authenticate": 'Bearer realm="drift-auditor"'})
                return
            try:
                self._route(path)
            except BadRequest as exc:
                self._error(400, str(exc))
            except NotFound as exc:
                self._error(404, str(exc))
            except LedgerError as exc:
                # Typically: no run has written the ledger yet.
                self._error(503, str(exc))
            except AuditorError as exc:
                self._error(500, str(exc))
            except Exception:  # a bug or SQLite trouble: answer, log the details, keep serving
                log.exception("serve: %s failed", path)
                self._error(500, "Internal error (details in the server log).")

        do_HEAD = do_GET

        def _not_allowed(self) -> None:
            self._error(405, "This UI is read-only.", {"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = _not_allowed

        def _healthz(self) -> None:
            try:
                ok, body = pages.health()
            except Exception as exc:  # whatever the cause, the ledger cannot be read: unhealthy
                log.warning("healthz: %s", exc)
                self._send(503, b"ledger unreadable\n", "text/plain; charset=utf-8")
                return
            self._send(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")

        def _object(self, rest: str, cluster: str | None = None) -> None:
            """``<group>/<kind>/<namespace>/<name>`` and below it ``/diff``,
            ``/versions/<id>`` and ``/versions/diff``."""
            # Split before unquoting: an encoded "/" stays inside its part.
            parts = [unquote(p) for p in rest.split("/")]
            if len(parts) < 4 or not all(parts[:4]):
                self._error(404, "Object addresses are /objects/<group>/<kind>/"
                                 "<namespace>/<name> (_ for none).")
                return
            group, kind, ns, name = (p if p != EMPTY else "" for p in parts[:4])
            sub = parts[4:]
            html: str | None
            if not sub:
                html = pages.object(group, kind, ns, name, cluster)
            elif sub == ["diff"]:
                html = pages.drift_diff(group, kind, ns, name, cluster, self.params)
            elif sub == ["versions", "diff"]:
                html = pages.version_diff(group, kind, ns, name, cluster, self.params)
            elif len(sub) == 2 and sub[0] == "versions" and sub[1].isdigit():
                html = pages.version_page(group, kind, ns, name, cluster, int(sub[1]))
            else:
                self._error(404, "No such page.")
                return
            if html is None:
                self._error(404, "The ledger has never seen this object (or that version).")
            else:
                self._html(200, html)

        def _api(self, rest: str, cluster: str | None) -> None:
            """``/api/v1/…``: drifts, runs, one object."""
            body: bytes | None
            if rest == "drifts":
                body = pages.api_drifts(cluster, self.params)
            elif rest == "runs":
                body = pages.api_runs(cluster, self.params)
            elif rest.startswith("objects/"):
                parts = [unquote(p) for p in rest[len("objects/"):].split("/")]
                if len(parts) != 4 or not all(parts):
                    self._error(404, "Object addresses are /api/v1/objects/<group>/<kind>/"
                                     "<namespace>/<name> (_ for none).")
                    return
                group, kind, ns, name = (p if p != EMPTY else "" for p in parts)
                body = pages.api_object(group, kind, ns, name, cluster)
                if body is None:
                    self._error(404, "The ledger has never seen this object.")
                    return
            else:
                self._error(404, "No such API resource (drifts, runs, objects/…).")
                return
            if body is None:
                self._error(404, "No such cluster.")
            else:
                self._json(200, body)

        def _cluster_page(self, rest: str, cluster: str | None) -> bool:
            """The pages a ledger has below its root (``/`` or ``/c/<cluster>/``); False
            when ``rest`` is none of them."""
            if rest in ("drifts", "objects", "changes"):
                html = pages.listing(rest, cluster, self.params)
                if html is None:
                    self._error(404, "No such cluster.")
                else:
                    self._html(200, html)
            elif rest in ("objects/",):
                self._send(308, b"", "text/plain", {"Location": "../objects"})
            elif rest.startswith("objects/"):
                self._object(rest[len("objects/"):], cluster)
            elif rest.startswith("api/v1/"):
                self._api(rest[len("api/v1/"):], cluster)
            else:
                return False
            return True

        def _fleet(self, path: str) -> None:
            """``/`` and ``/c/<cluster>/…`` of the fleet view."""
            assert pages.fleet is not None
            if path == "/":
                self._html(200, pages.fleet_index())
                return
            if path == "/compare":
                self._html(200, pages.compare(self.params))
                return
            if path == "/api/v1/compare":
                self._json(200, pages.api_compare(self.params))
                return
            if path.startswith("/objects/"):
                self._error(404, "This UI serves several clusters: object addresses are "
                                 "/c/<cluster>/objects/<group>/<kind>/<namespace>/<name>.")
                return
            if not path.startswith("/c/"):
                self._error(404, "This UI serves several clusters: each cluster's pages and "
                                 "API are under /c/<cluster>/ (objects, drifts, changes, "
                                 "api/v1/…).")
                return
            quoted, _, rest = path[len("/c/"):].partition("/")
            cluster = unquote(quoted)
            if not cluster or pages.fleet.member(cluster) is None:
                self._error(404, "No such cluster in this fleet.")
            elif path == "/c/" + quoted:
                self._send(308, b"", "text/plain", {"Location": cluster_url(cluster)})
            elif rest == "":
                self._html(200, pages.index(cluster))
            elif not self._cluster_page(rest, cluster):
                self._error(404, "No such page.")

        def _route(self, path: str) -> None:
            lists = ("/drifts", "/objects", "/changes", "/api/")
            if pages.fleet is not None and (path in ("/", "/compare")
                                            or path.startswith(("/c/", *lists))):
                self._fleet(path)
            elif path in ("/compare", "/api/v1/compare"):
                self._error(404, "Comparing clusters needs a fleet: serve two or more --ledger "
                                 "files, or a store URL.")
            elif path == "/":
                self._html(200, pages.index())
            elif path.startswith(lists) and self._cluster_page(path[1:], None):
                pass
            elif path == "/reports":
                self._send(308, b"", "text/plain", {"Location": "/reports/"})
            elif path == "/reports/":
                self._html(200, pages.reports())
            elif path.startswith("/reports/"):
                self._report(unquote(path[len("/reports/"):]))
            elif path == "/metrics":
                self._send(200, pages.metrics().encode(),
                           "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._error(404, "No such page.")

        def _report(self, name: str) -> None:
            file = _report_file(pages.reports_dir, name)
            if file is None:
                self._error(404, "No such report.")
                return
            self._send(200, file.read_bytes(), REPORT_TYPES[file.suffix],
                       {"Content-Security-Policy": REPORT_CSP})

    return Handler


def ledger_list(cfg: Config, ledger_path: str | Path | None = None,
                ledger_paths: Sequence[str | Path | StoreLedger] = ()) -> list[Target]:
    """The ledgers to serve: ``ledger_paths`` (the repeated ``--ledger``), else
    ``ledger_path``, else ``serve.ledgers``, else the configured ledger (``ledger.url`` and
    ``ledger.cluster``, else ``ledger.path``). A store URL alone is every cluster of the
    store; ``URL#CLUSTER`` one (:func:`auditor.ledger.backend.parse_target`). The same
    ledger twice is an error."""
    if ledger_paths and all(isinstance(p, StoreLedger) for p in ledger_paths):
        files: list[Target] = [p for p in ledger_paths if isinstance(p, StoreLedger)]
    else:
        given = [str(p) for p in ledger_paths] or ([str(ledger_path)] if ledger_path else []) \
            or list(cfg.serve.ledgers)
        files = readers(given, cfg.ledger)
    seen: set[Path | StoreLedger] = set()
    for f in files:
        key = f if isinstance(f, StoreLedger) else f.resolve()
        if key in seen:
            raise ConfigError(f"--ledger {f}: the same ledger is given twice")
        seen.add(key)
    return files


class Server(ThreadingHTTPServer):
    """The UI's HTTP server; with ``tls`` every connection is HTTPS, its handshake done in
    the connection's own thread (a client that connects and stays silent blocks no one)."""

    daemon_threads = True
    # Seconds a connection may stay silent (handshake, request line, headers).
    timeout_seconds = 30.0

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        super().__init__(address, handler)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.timeout_seconds)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            # Plain HTTP to the HTTPS port, a scanner, a client giving up: nothing to answer,
            # nothing worth more than a debug line.
            log.debug("serve: TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            # The TLS socket took the connection over; closing it is ours.
            self.shutdown_request(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("serve: connection from %s failed", client_address, exc_info=True)


def make_server(cfg: Config, *, ledger_path: str | Path | None = None,
                ledger_paths: Sequence[str | Path | StoreLedger] = (), host: str | None = None,
                port: int | None = None, token: str | BearerToken | None = None,
                reports_dir: str | Path | None = None,
                tls: ssl.SSLContext | None = None) -> Server:
    """A server for the UI (not yet serving: call ``serve_forever``, or :func:`start`).
    Unset arguments come from ``cfg`` (``ledger.path``, ``serve.host``/``port``,
    ``reports.directory``, ``serve.tls-cert-file``/``tls-key-file``); ``token`` is the
    bearer token's value itself, or a :class:`~.access.BearerToken`. Two or more
    ``ledger_paths`` (one per cluster) make the fleet view."""
    pages = Pages(cfg, ledger_list(cfg, ledger_path, ledger_paths),
                  Path(reports_dir or cfg.reports.directory))
    if tls is None and cfg.serve.tls:
        tls = tls_context(cfg.serve.tls_cert_file, cfg.serve.tls_key_file)
    bearer = BearerToken(token) if isinstance(token, str) and token else (
        token if isinstance(token, BearerToken) else None)
    return Server((host or cfg.serve.host, cfg.serve.port if port is None else port),
                  make_handler(pages, bearer, https=tls is not None), tls)


def start(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="drift-auditor-serve",
                              daemon=True)
    thread.start()
    return thread


def token_from(cfg: Config, env: Mapping[str, str]) -> BearerToken | None:
    """The bearer token of ``serve.token-env`` (an environment variable) or
    ``serve.token-file`` (a file, re-read when it changes); an empty or missing variable or
    file is an error rather than an open UI."""
    if cfg.serve.token_file:
        return BearerToken.from_file(cfg.serve.token_file)
    name = cfg.serve.token_env
    if not name:
        return None
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"serve.token-env: environment variable {name} is empty or not set")
    return BearerToken(value)
