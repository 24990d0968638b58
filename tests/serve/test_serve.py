"""`drift-auditor serve` over a ledger written by real runs: every endpoint's status and
content, bearer-token enforcement, escaping of drift values, Secret values never shown,
report serving without path traversal, and the ledger left untouched."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditor.ledger import drifts, reading
from auditor.web import serve

from .conftest import (
    ANNOTATION_VALUE,
    GIT_VALUE,
    LIVE_VALUE,
    SECRET_GIT,
    SECRET_LIVE,
    TOKEN,
    UI,
    http,
    serving,
)

pytestmark = pytest.mark.kubectl


def test_index_shows_open_drift_per_namespace_and_runs(ui: UI) -> None:
    page = ui.get("/", token=TOKEN)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in page.headers["Content-Security-Policy"], "our pages run no script"
    with reading(ui.ledger) as conn:
        current = drifts(conn)
    assert {d["name"] for d in current} == {"web", "settings", "token"}
    # One section per namespace with drift, a link per drifted object to its history page.
    assert re.search(r'<h3 id="ns-shop">shop <span class="muted">· 3 drifts</span>', page.body)
    assert 'href="/objects/apps/Deployment/shop/web"' in page.body
    assert 'href="/objects/_/ConfigMap/shop/settings"' in page.body
    assert "shop/web:1.0.0" in page.body and "shop/web:2.0.0-hotfix" in page.body
    assert "kubectl-set" in page.body and "kubectl-patch" in page.body
    # Both runs, newest first.
    assert page.body.index("<td>#2</td>") < page.body.index("<td>#1</td>")
    assert '<div class="n state-open">3</div>open drifts' in page.body
    # The latest reports are linked.
    assert 'href="/reports/drift-report-2026-11-01-2026-11-30.html"' in page.body


def test_drift_values_are_escaped(ui: UI) -> None:
    for path in ("/", "/objects/_/ConfigMap/shop/settings"):
        body = ui.get(path, token=TOKEN).body
        for raw in (GIT_VALUE, LIVE_VALUE, ANNOTATION_VALUE):
            assert raw not in body, f"{path}: {raw!r} inserted unescaped"
        assert "&lt;script&gt;alert(&#39;from-git&#39;)&lt;/script&gt;" in body
        assert "&lt;img src=x onerror=alert(&#39;from-live&#39;)&gt;" in body
        assert "&#34;&gt;&lt;b id=pwned&gt;bold&lt;/b&gt;" in body
        assert "<script" not in body and "<img" not in body and "id=pwned>" not in body


def test_secret_values_are_never_shown(ui: UI) -> None:
    import base64

    pages = [ui.get(p, token=TOKEN).body for p in
             ("/", "/objects/_/Secret/shop/token", "/metrics")]
    secret_page = pages[1]
    assert "data.token" in secret_page, "the drifted key is named"
    assert "(hidden)" in secret_page
    for body in pages:
        for value in (SECRET_LIVE, SECRET_GIT):
            assert value not in body
            assert base64.b64encode(value.encode()).decode() not in body


def test_object_page_has_versions_changes_with_actors_and_drift_lifecycle(ui: UI) -> None:
    page = ui.get("/objects/apps/Deployment/shop/web", token=TOKEN)
    assert page.status == 200
    assert "<h1>Deployment.apps shop/web</h1>" in page.body
    versions = page.body.split("<h2>Versions</h2>", 1)[1]
    assert len(re.findall(r'<td><a href="/objects/apps/Deployment/shop/web/versions/\d+">#\d+</a>'
                          r"[^\n]*?</td><td>#\d+</td>", versions)) == 2, "one version per run"
    timeline = page.body.split("<h2>Timeline</h2>", 1)[1].split("<h2>Versions</h2>")[0]
    assert "change: updated" in timeline and "kubectl-set" in timeline
    assert "out-of-band" in timeline
    assert "drift: opened" in timeline
    assert "spec.template.spec.containers[name=web].image" in page.body
    # Cluster-scoped: "_" for no namespace; the core group is "_" too.
    ns = ui.get("/objects/_/Namespace/_/shop", token=TOKEN)
    assert ns.status == 200 and "<h1>Namespace shop</h1>" in ns.body
    assert "This object never drifted." in ns.body


def test_unknown_and_malformed_object_addresses_are_404(ui: UI) -> None:
    assert ui.get("/objects/apps/Deployment/shop/nope", token=TOKEN).status == 404
    assert ui.get("/objects/apps/Deployment/shop", token=TOKEN).status == 404
    assert ui.get("/objects/apps/Deployment/shop/web/extra", token=TOKEN).status == 404
    assert ui.get("/no-such-page", token=TOKEN).status == 404


def test_reports_are_listed_and_served_without_traversal(ui: UI) -> None:
    listing = ui.get("/reports/", token=TOKEN)
    assert listing.status == 200
    assert "drift-report-2026-11-01-2026-11-30.html" in listing.body
    assert "drift-report-2026-11-01-2026-11-30.csv" in listing.body
    assert "notes.txt" not in listing.body, "only report types are listed"
    report = ui.get("/reports/drift-report-2026-11-01-2026-11-30.html", token=TOKEN)
    assert report.status == 200 and "SOC 2 drift report" in report.body
    assert report.headers["Content-Type"] == "text/html; charset=utf-8"
    csv = ui.get("/reports/drift-report-2026-11-01-2026-11-30.csv", token=TOKEN)
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    for bad in ("/reports/..%2Foutside.html", "/reports/%2E%2E%2Foutside.html",
                "/reports/notes.txt", "/reports/missing.html", "/reports/..",
                "/reports/sub%2F..%2F..%2Foutside.html"):
        got = ui.get(bad, token=TOKEN)
        assert got.status == 404, bad
        assert "outside the reports folder" not in got.body
    redirect = ui.get("/reports", token=TOKEN)
    assert redirect.status == 200 and "Reports" in redirect.body, "followed to /reports/"


def test_reports_symlink_out_of_the_folder_is_refused(ui: UI) -> None:
    (ui.reports / "escape.html").symlink_to(ui.reports.parent / "outside.html")
    assert ui.get("/reports/escape.html", token=TOKEN).status == 404


def test_metrics_is_a_valid_exposition_from_the_ledger(ui: UI) -> None:
    got = ui.get("/metrics", token=TOKEN)
    assert got.status == 200
    assert got.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(got.body)}
    open_drifts = sum(s.value for s in families["drift_auditor_open_drifts"].samples)
    assert open_drifts == 3
    assert "drift_auditor_runs" in families


def test_healthz_reports_a_readable_ledger(ui: UI, tmp_path: Path) -> None:
    ok = ui.get("/healthz")
    assert ok.status == 200 and ok.body == "ok: 2 runs\n"
    with serving(ui.cfg, None, ledger_path=tmp_path / "missing.db") as base:
        get = http(base)
        down = get("/healthz")
        assert down.status == 503 and "missing.db" not in down.body, "no detail unauthenticated"
        page = get("/")
        assert page.status == 503 and "run `drift-auditor run` first" in page.body
    (tmp_path / "garbage.db").write_bytes(b"not sqlite at all" * 100)
    with serving(ui.cfg, None, ledger_path=tmp_path / "garbage.db") as base:
        assert http(base)("/healthz").status == 503


def test_bearer_token_is_required_except_for_healthz(ui: UI) -> None:
    for path in ("/", "/metrics", "/reports/", "/objects/apps/Deployment/shop/web",
                 "/reports/drift-report-2026-11-01-2026-11-30.html"):
        missing = ui.get(path)
        assert missing.status == 401, path
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="drift-auditor"'
        assert "shop/web" not in missing.body and "drift_auditor_" not in missing.body
        assert ui.get(path, token="wrong").status == 401
        assert ui.get(path, token=TOKEN + "x").status == 401
        assert ui.get(path, headers={"Authorization": TOKEN}).status == 401, "scheme required"
        assert ui.get(path, token=TOKEN).status == 200, path
    assert ui.get("/healthz").status == 200


def test_read_only_methods_and_an_untouched_ledger(ui: UI) -> None:
    def digest() -> str:
        return hashlib.sha256(ui.ledger.read_bytes()).hexdigest()

    before = digest()
    with reading(ui.ledger) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        got = ui.get("/", token=TOKEN, method=method)
        assert got.status == 405 and got.headers["Allow"] == "GET, HEAD"
    head = ui.get("/", token=TOKEN, method="HEAD")
    assert head.status == 200 and head.body == ""
    for path in ("/", "/objects/apps/Deployment/shop/web", "/metrics", "/reports/", "/healthz"):
        assert ui.get(path, token=TOKEN).status == 200
    assert digest() == before
    with reading(ui.ledger) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == events


def test_binds_loopback_by_default(ledger_setup: dict[str, Any]) -> None:
    server = serve.make_server(ledger_setup["cfg"], port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        handler: Any = server.RequestHandlerClass
        assert handler.disable_nagle_algorithm is True
    finally:
        server.server_close()


def test_token_env_named_but_empty_is_an_error(ledger_setup: dict[str, Any]) -> None:
    from auditor.errors import ConfigError

    with pytest.raises(ConfigError, match="SERVE_TEST_TOKEN"):
        serve.token_from(ledger_setup["cfg"], {})
    token = serve.token_from(ledger_setup["cfg"], {"SERVE_TEST_TOKEN": "t"})
    assert token is not None and token.matches("Bearer t") and not token.matches("Bearer u")


CLI = ("-m", "auditor.cli")


def _cli(ledger_setup: dict[str, Any], *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *CLI, "--config", str(ledger_setup["config_file"]),
         "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", **env}, cwd=str(Path(__file__).parents[2]))


def test_cli_serves_until_sigterm(ledger_setup: dict[str, Any]) -> None:
    proc = _cli(ledger_setup, "--port", "0", env={"SERVE_TEST_TOKEN": TOKEN})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) \(ledger .*bearer token required\)", line)
        assert match, line
        get = http(f"http://127.0.0.1:{match.group(1)}")
        assert get("/healthz").status == 200
        assert get("/").status == 401
        assert "Deployment.apps" in get("/", token=TOKEN).body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_to_start_open_when_the_token_variable_is_missing(
        ledger_setup: dict[str, Any]) -> None:
    proc = _cli(ledger_setup, "--port", "0", env={})
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2
    assert "serve.token-env: environment variable SERVE_TEST_TOKEN" in err


def test_index_answers_quickly(open_ui: UI) -> None:
    # Nagle off and one reader per request: a page is a few milliseconds, not 40 ms+.
    open_ui.get("/")
    start = time.perf_counter()
    for _ in range(10):
        assert open_ui.get("/healthz").status == 200
    assert (time.perf_counter() - start) / 10 < 0.2


def test_environment_is_read_by_the_command_only() -> None:
    # Like the rest of the library: the command passes os.environ down, nothing else reads it.
    assert "os.environ" not in Path(serve.__file__).read_text().split("def serve_cmd")[0]


def test_pages_follow_the_ledger_as_runs_and_acks_write_it(
        ui: UI, ledger_setup: dict[str, Any], kubectl: Any) -> None:
    # No caching: a page read after the CronJob's next run (or an ack) shows it.
    assert "<td>#3</td>" not in ui.get("/", token=TOKEN).body
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.0.0")
    from auditor.pipeline import run_once

    run_once(ledger_setup["cfg"], desired_path=str(ledger_setup["apps"]))
    ack = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", str(ledger_setup["config_file"]),
         "ack", "ConfigMap shop/settings", "--by", "alice@example.com",
         "--reason", "<i>hotfix</i> approved"], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin"})
    assert ack.returncode == 0, ack.stderr
    page = ui.get("/", token=TOKEN).body
    assert "<td>#3</td>" in page
    assert '<div class="n state-open">1</div>open drifts' in page, "web fixed live, token open"
    assert '<div class="n state-accepted">1</div>accepted drifts' in page
    assert "by alice@example.com" in page
    history = ui.get("/objects/apps/Deployment/shop/web", token=TOKEN).body
    assert '<span class="badge state-resolved">resolved</span>' in history
    assert "drift: resolved" in history and "how fixed-live" in history
    settings = ui.get("/objects/_/ConfigMap/shop/settings", token=TOKEN).body
    assert "drift: accepted" in settings
    assert "&lt;i&gt;hotfix&lt;/i&gt; approved" in settings and "<i>hotfix" not in settings


def test_an_unexpected_failure_answers_500_and_the_server_keeps_serving(
        ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    import sqlite3

    # A file that passes the reader's checks (a schema version) but has no tables.
    odd = tmp_path / "odd.db"
    conn = sqlite3.connect(odd)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with serving(ledger_setup["cfg"], None, ledger_path=odd) as base:
        get = http(base)
        page = get("/")
        assert page.status == 500 and "Internal error" in page.body
        assert "no such table" not in page.body, "details go to the log, not the page"
        assert get("/healthz").status == 503
        assert get("/reports/").status == 200, "still serving"


def test_cli_warns_when_listening_beyond_loopback_without_a_token(
        ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    cfg_file = tmp_path / "open.yaml"
    cfg_file.write_text(ledger_setup["config_file"].read_text().replace(
        "serve: {token-env: SERVE_TEST_TOKEN}", "serve: {host: 0.0.0.0}"))
    proc = subprocess.Popen([sys.executable, *CLI, "--config", str(cfg_file), "serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"PATH": "/usr/bin:/bin"})
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        assert "warning: listening on 0.0.0.0 without a bearer token" in first + second
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
