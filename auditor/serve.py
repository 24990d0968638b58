"""``drift-auditor serve``: a small read-only web UI over the ledger.

Pages (GET/HEAD only; anything else is 405):

    /                                        latest runs, open drifts per namespace, reports
    /objects/<group>/<kind>/<namespace>/<name>  one object's versions, changes with their
                                             actors, and its drifts' lifecycle (``_`` stands
                                             for the core group and for no namespace)
    /reports/                                the HTML/CSV/JSON reports in reports.directory
    /reports/<file>                          one of them
    /metrics                                 Prometheus exposition (:mod:`auditor.metrics`)
    /healthz                                 200 when the ledger can be read, else 503

The ledger is opened per request with the read-only reader (:func:`auditor.ledger.reading`)
and never written. The server binds loopback unless configured (``serve.host``); with
``serve.token-env`` naming an environment variable, every page except ``/healthz`` (kubelet
probes carry no token) needs ``Authorization: Bearer <value>``, compared in constant time.
Every value shown is HTML-escaped by the templates (drift values, paths and annotations can
hold anything); Secret drift values are never shown, only their paths.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import click
import jinja2
import orjson

from auditor import __version__
from auditor.config import Config
from auditor.errors import AuditorError, ConfigError, LedgerError
from auditor.ledger import HistoryFilter, drifts, query, reading, runs, uiquery

log = logging.getLogger("auditor.serve")

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
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; " \
           "form-action 'none'; frame-ancestors 'none'"
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; " \
             "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def object_url(group: str, kind: str, namespace: str, name: str) -> str:
    """The UI's address of an object's history page (each part percent-encoded)."""
    parts = (group or EMPTY, kind, namespace or EMPTY, name)
    return "/objects/" + "/".join(quote(p, safe="") for p in parts)


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
        loader=jinja2.PackageLoader("auditor", "templates/serve"),
        # Escape everything: names are DNS-safe, but drift values, paths, commit messages and
        # reasons are not.
        autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["value"] = show_value
    env.globals.update(object_url=object_url, is_secret=is_secret, version=__version__)
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


def _metrics_text(cfg: Config, ledger_path: Path) -> str | None:
    """The Prometheus exposition from :mod:`auditor.metrics`, or ``None`` without it."""
    try:
        from auditor import metrics
    except ImportError:  # pragma: no cover - metrics ships with the package
        return None
    build: Callable[..., str] | None = getattr(metrics, "exposition", None)
    return build(cfg, ledger_path) if build is not None else None


class Pages:
    """Renders each page from the ledger; one reader connection per call."""

    def __init__(self, cfg: Config, ledger_path: Path, reports_dir: Path) -> None:
        self.cfg = cfg
        self.ledger_path = ledger_path
        self.reports_dir = reports_dir
        self.env = _environment()

    def index(self) -> str:
        now = datetime.now(UTC)
        with reading(self.ledger_path) as conn:
            latest = runs(conn, limit=10)
            current = drifts(conn)
        by_ns: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in current:
            d["age"] = _age(d["opened_at"], now)
            by_ns[d["namespace"]].append(d)
        namespaces = [(ns, sorted(rows, key=lambda d: (d["kind"], d["name"], d["id"])))
                      for ns, rows in sorted(by_ns.items())]
        return self.env.get_template("index.html.j2").render(
            title="Drift Auditor", runs=latest, namespaces=namespaces,
            open_count=sum(1 for d in current if d["state"] == "open"),
            accepted_count=sum(1 for d in current if d["state"] == "accepted"),
            reports=list_reports(self.reports_dir)[:5], now=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            cluster=self.cfg.cluster.name)

    def object(self, group: str, kind: str, namespace: str, name: str) -> str | None:
        with reading(self.ledger_path) as conn:
            oid = uiquery.object_id(conn, group, kind, namespace, name)
            if oid is None:
                return None
            gk = f"{kind}.{group}" if group else kind
            label = f"{gk} {namespace + '/' if namespace else ''}{name}"
            timeline = query(conn, HistoryFilter(object=f"{gk} {name}", namespace=namespace,
                                                 limit=1000))
            versions = uiquery.versions(conn, oid)
            object_drifts = uiquery.object_drifts(conn, oid)
        return self.env.get_template("object.html.j2").render(
            title=label, label=label, group=group, kind=kind, namespace=namespace, name=name,
            secret=is_secret(group, kind), timeline=timeline, versions=versions,
            drifts=object_drifts)

    def reports(self) -> str:
        return self.env.get_template("reports.html.j2").render(
            title="Reports", reports=list_reports(self.reports_dir),
            directory=str(self.reports_dir))

    def error(self, status: int, message: str) -> str:
        return self.env.get_template("error.html.j2").render(
            title=f"{status}", status=status, message=message)


def make_handler(pages: Pages, token: str | None) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``pages`` and the bearer ``token`` (``None``: open)."""
    expected = f"Bearer {token}".encode() if token else None

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
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _html(self, status: int, html: str, csp: str = PAGE_CSP) -> None:
            self._send(status, html.encode(), "text/html; charset=utf-8",
                       {"Content-Security-Policy": csp})

        def _error(self, status: int, message: str,
                   extra: Mapping[str, str] | None = None) -> None:
            self._send(status, pages.error(status, message).encode(),
                       "text/html; charset=utf-8",
                       {"Content-Security-Policy": PAGE_CSP, **(extra or {})})

        def _authorized(self) -> bool:
            if expected is None:
                return True
            given = self.headers.get("Authorization", "").encode()
            return hmac.compare_digest(given, expected)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/healthz":
                self._healthz()
                return
            if not self._authorized():
                self._error(401, "A bearer token is required.",
                            {"WWW-Authenticate": 'Bearer realm="drift-auditor"'})
                return
            try:
                self._route(path)
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

        do_POST = do_PUT = do_PATCH = do_DELETE = _not_allowed

        def _healthz(self) -> None:
            try:
                with reading(pages.ledger_path) as conn:
                    count, _ = uiquery.health(conn)
            except Exception as exc:  # whatever the cause, the ledger cannot be read: unhealthy
                log.warning("healthz: %s", exc)
                self._send(503, b"ledger unreadable\n", "text/plain; charset=utf-8")
                return
            self._send(200, f"ok: {count} runs\n".encode(), "text/plain; charset=utf-8")

        def _route(self, path: str) -> None:
            if path == "/":
                self._html(200, pages.index())
            elif path.startswith("/objects/"):
                parts = [unquote(p) for p in path[len("/objects/"):].split("/")]
                if len(parts) != 4 or not all(parts):
                    self._error(404, "Object addresses are /objects/<group>/<kind>/"
                                     "<namespace>/<name> (_ for none).")
                    return
                group, kind, ns, name = (p if p != EMPTY else "" for p in parts)
                html = pages.object(group, kind, ns, name)
                if html is None:
                    self._error(404, "The ledger has never seen this object.")
                else:
                    self._html(200, html)
            elif path == "/reports":
                self._send(308, b"", "text/plain", {"Location": "/reports/"})
            elif path == "/reports/":
                self._html(200, pages.reports())
            elif path.startswith("/reports/"):
                self._report(unquote(path[len("/reports/"):]))
            elif path == "/metrics":
                text = _metrics_text(pages.cfg, pages.ledger_path)
                if text is None:
                    self._error(404, "Metrics are not available in this build.")
                else:
                    self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
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


def make_server(cfg: Config, *, ledger_path: str | Path | None = None, host: str | None = None,
                port: int | None = None, token: str | None = None,
                reports_dir: str | Path | None = None) -> ThreadingHTTPServer:
    """A server for the UI (not yet serving: call ``serve_forever``, or :func:`start`).
    Unset arguments come from ``cfg`` (``ledger.path``, ``serve.host``/``port``,
    ``reports.directory``); ``token`` is the bearer token's value itself."""
    pages = Pages(cfg, Path(ledger_path or cfg.ledger.path),
                  Path(reports_dir or cfg.reports.directory))
    server = ThreadingHTTPServer((host or cfg.serve.host,
                                  cfg.serve.port if port is None else port),
                                 make_handler(pages, token or None))
    server.daemon_threads = True
    return server


def start(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="drift-auditor-serve",
                              daemon=True)
    thread.start()
    return thread


def token_from(cfg: Config, env: Mapping[str, str]) -> str | None:
    """The bearer token named by ``serve.token-env``; an empty or missing variable is an error
    rather than an open UI."""
    name = cfg.serve.token_env
    if not name:
        return None
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"serve.token-env: environment variable {name} is empty or not set")
    return value


@click.command("serve")
@click.option("--host", help="Address to bind (default: serve.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: serve.port, 8080; 0 picks one).")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              help="Ledger file (default: ledger.path from the configuration).")
@click.option("--reports-dir", type=click.Path(file_okay=False),
              help="Reports folder (default: reports.directory).")
def serve_cmd(host: str | None, port: int | None, ledger_path: str | None,
              reports_dir: str | None) -> None:
    """Read-only web UI over the ledger, with /metrics and /healthz (Ctrl-C stops it)."""
    from auditor.cli import handle_errors

    def body() -> None:
        import signal

        cfg: Config = click.get_current_context().find_root().obj.load()
        server = make_server(cfg, ledger_path=ledger_path, host=host, port=port,
                             token=token_from(cfg, os.environ), reports_dir=reports_dir)
        # SIGTERM (a pod's stop) ends serve_forever from another thread, as shutdown requires;
        # installed before the address is announced, so whoever reads it may stop us at once.
        signal.signal(signal.SIGTERM,
                      lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
        bound_host, bound_port = server.server_address[:2]
        if not cfg.serve.token_env and str(bound_host) not in ("127.0.0.1", "::1", "localhost"):
            click.echo(f"drift-auditor serve: warning: listening on {bound_host!s} without a "
                       "bearer token (serve.token-env): whoever reaches the port reads the "
                       "ledger", err=True)
        click.echo(f"drift-auditor serve: http://{bound_host!s}:{bound_port} "
                   f"(ledger {ledger_path or cfg.ledger.path}"
                   f"{', bearer token required' if cfg.serve.token_env else ''})", err=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()

    handle_errors(body)()


COMMANDS = (serve_cmd,)
