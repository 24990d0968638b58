"""`drift-auditor serve --ledger A --ledger B`: the fleet view over two ledgers written by real
runs (one sandbox API server audited by two installations under two cluster names, changed by
real kubectl between their runs so the clusters end with different drift: prod-eu has the
Deployment's image drift only, prod-us that and the ConfigMap's hostile values).

Checked: the overview's per-cluster rows against each ledger, cluster names equal to the fleet
report's, every link on the fleet pages resolving, cluster-qualified object pages showing that
cluster's history only, /metrics labelled by cluster (parser and promtool), /healthz per ledger,
the bearer token, escaping, a broken or tampered ledger affecting only its own cluster, chain
verification cached between requests, one --ledger unchanged, the CLI, and Chromium."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitopsfixtures import sync_from_git
from prometheus_client.parser import text_string_to_metric_families

from auditor import config as config_mod
from auditor.ledger import drifts, reading, runs
from auditor.pipeline import run_once
from auditor.report.fleet import load_fleet
from auditor.report.period import Options
from auditor.web import chainstate, serve

from .conftest import (
    ANNOTATION_VALUE,
    APPS,
    GIT_VALUE,
    LIVE_VALUE,
    TOKEN,
    Get,
    http,
    serving,
)
from .test_browser import chromium, keep, png_facts
from .test_serve import CLI

pytestmark = pytest.mark.kubectl

CLUSTERS = ("prod-eu", "prod-us")
# The image's default policy pack: prod-us evaluates it, prod-eu has no policies (no score).
POLICY_PACK = Path(__file__).parents[2] / "policies"


@dataclass
class Fleet:
    cfg: config_mod.Config  # the reader's configuration (prod-eu's file: token, reports)
    configs: dict[str, config_mod.Config]
    config_files: dict[str, Path]
    ledgers: dict[str, Path]
    apps: Path

    @property
    def paths(self) -> list[Path]:
        return [self.ledgers[c] for c in CLUSTERS]


@pytest.fixture
def fleet(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> Fleet:
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, APPS)
    reports = tmp_path / "reports"
    reports.mkdir()
    configs, files, ledgers = {}, {}, {}
    for cluster in CLUSTERS:
        ledgers[cluster] = tmp_path / f"{cluster}.db"
        files[cluster] = tmp_path / f"{cluster}.yaml"
        files[cluster].write_text(f"""
cluster: {{name: {cluster}, kubeconfig: {kubeconfig}, retries: 1}}
ledger: {{path: {ledgers[cluster]}}}
policies: {{directory: {POLICY_PACK if cluster == "prod-us" else tmp_path / 'no-policies'}}}
reports: {{directory: {reports}}}
serve: {{token-env: SERVE_TEST_TOKEN}}
""")
        configs[cluster] = config_mod.load(files[cluster])
        run_once(configs[cluster], desired_path=str(apps))  # both in sync
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
    run_once(configs["prod-eu"], desired_path=str(apps))  # prod-eu: the image drift only
    patch = '{"data":{"MODE":"' + LIVE_VALUE.replace("'", "\\u0027") + '"}}'
    kubectl("-n", "shop", "patch", "configmap", "settings", "-p", patch)
    kubectl("-n", "shop", "annotate", "--overwrite", "configmap", "settings",
            f"note={ANNOTATION_VALUE}")
    run_once(configs["prod-us"], desired_path=str(apps))  # prod-us: image and ConfigMap
    return Fleet(configs["prod-eu"], configs, files, ledgers, apps)


@pytest.fixture
def fleet_get(fleet: Fleet) -> Iterator[Get]:
    with serving(fleet.cfg, TOKEN, ledger_paths=fleet.paths) as base:
        yield http(base)


def _rows(page: str) -> dict[str, str]:
    """The overview's cluster rows by cluster name (the row's HTML)."""
    table = page.split("<h2>Clusters</h2>", 1)[1].split("</table>", 1)[0]
    return {m.group(1): m.group(0) for m in
            re.finditer(r'<tr id="cluster-([^"]+)">.*?</tr>', table, re.S)}


def _cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                   re.S)]


def _hrefs(page: str) -> list[str]:
    return sorted(set(re.findall(r'href="([^"]+)"', page)))


def _unguarded(path: Path) -> sqlite3.Connection:
    """A connection to a copied ledger with its append-only triggers dropped: how a test (or an
    attacker with the file) changes rows the writer never would."""
    conn = sqlite3.connect(path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    return conn


def test_overview_has_a_row_per_cluster_matching_its_ledger(fleet: Fleet,
                                                             fleet_get: Get) -> None:
    page = fleet_get("/", token=TOKEN)
    assert page.status == 200 and "<h1>Fleet · 2 clusters</h1>" in page.body
    rows = _rows(page.body)
    assert list(rows) == list(CLUSTERS), "one row per ledger, in the order given"
    for cluster, row in rows.items():
        with reading(fleet.ledgers[cluster]) as conn:
            latest = runs(conn, limit=1)[0]
            current = drifts(conn)
        cells = _cells(row)
        assert cells[0] == cluster
        assert cells[1] == latest["ended_at"]
        assert cells[2] == f"{latest['status']} #{latest['id']}"
        assert int(cells[3]) == sum(1 for d in current if d["state"] == "open")
        assert cells[5:8] == [str(latest["counts"].get(k, "")) for k in
                              ("drifted", "missing", "orphan")]
        with reading(fleet.ledgers[cluster]) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            score = (conn.execute("SELECT score FROM policy_runs ORDER BY run_id DESC LIMIT 1")
                     .fetchone() if "policy_runs" in tables else None)
        assert cells[8] == (f"{score[0]:.1f}%" if score else "—")
        assert "verified" in cells[9] and str(fleet.ledgers[cluster]) in cells[9]
        assert f'href="/c/{cluster}/"' in row
    assert _cells(rows["prod-eu"])[3] == "1" and _cells(rows["prod-us"])[3] == "2"
    assert _cells(rows["prod-eu"])[8] == "—", "no policies: no score"
    assert re.fullmatch(r"\d+\.\d%", _cells(rows["prod-us"])[8]), "the policy pack's score"
    assert '<div class="n state-open">3</div>open drifts' in page.body
    # Drift grouped by cluster, then namespace; every object link names its cluster.
    eu = page.body.split('<h3 id="drift-prod-eu">', 1)[1].split('<h3 id="drift-prod-us">')[0]
    us = page.body.split('<h3 id="drift-prod-us">', 1)[1].split("<h2>Latest reports</h2>")[0]
    assert '<h4 id="ns-prod-eu-shop">shop <span class="muted">· 1 drift</span></h4>' in eu
    assert '<h4 id="ns-prod-us-shop">shop <span class="muted">· 2 drifts</span></h4>' in us
    assert 'href="/c/prod-eu/objects/apps/Deployment/shop/web"' in eu
    assert "ConfigMap" not in eu, "prod-eu's ledger never saw the ConfigMap drift"
    assert 'href="/c/prod-us/objects/_/ConfigMap/shop/settings"' in us
    assert 'href="/c/prod-us/objects/apps/Deployment/shop/web"' in us
    assert 'href="/objects/' not in page.body, "no link without its cluster"


def test_cluster_names_are_the_fleet_reports(fleet: Fleet, fleet_get: Get,
                                             tmp_path: Path) -> None:
    now = datetime.now(UTC)
    model = load_fleet(fleet.paths, now - timedelta(days=1), now + timedelta(minutes=1),
                       fleet.cfg, now=now, options=Options(verify=False))
    assert list(_rows(fleet_get("/", token=TOKEN).body)) == [m.cluster for m in model.members]
    # Two ledgers recording the same cluster name: the report's name@file, in both.
    twin = tmp_path / "twin" / "prod-eu-copy.db"
    twin.parent.mkdir()
    shutil.copy(fleet.ledgers["prod-eu"], twin)
    paths = [fleet.ledgers["prod-eu"], twin]
    model = load_fleet(paths, now - timedelta(days=1), now + timedelta(minutes=1), fleet.cfg,
                       now=now, options=Options(verify=False))
    expected = [m.cluster for m in model.members]
    assert expected == ["prod-eu@prod-eu.db", "prod-eu@prod-eu-copy.db"]
    with serving(fleet.cfg, None, ledger_paths=paths) as base:
        get = http(base)
        assert list(_rows(get("/").body)) == expected
        assert get("/c/prod-eu%40prod-eu-copy.db/").status == 200
        assert get("/c/prod-eu/").status == 404, "the bare name is ambiguous: not served"


def test_every_link_on_the_fleet_pages_resolves(fleet_get: Get) -> None:
    seen: set[str] = set()
    for page in ("/", "/c/prod-eu/", "/c/prod-us/"):
        body = fleet_get(page, token=TOKEN).body
        for href in _hrefs(body):
            if href in seen:
                continue
            seen.add(href)
            got = fleet_get(href, token=TOKEN)
            assert got.status == 200, (page, href, got.status)
    assert {"/c/prod-eu/", "/c/prod-us/", "/c/prod-us/objects/_/ConfigMap/shop/settings",
            "/c/prod-eu/objects/apps/Deployment/shop/web", "/metrics", "/reports/"} <= seen
    # Object pages link back to the fleet and their cluster.
    obj = fleet_get("/c/prod-us/objects/_/ConfigMap/shop/settings", token=TOKEN).body
    assert '<a href="/">Fleet</a> › <a href="/c/prod-us/">prod-us</a>' in obj


def _ageless(body: str) -> str:
    """A page without what changes as the clock ticks: ages and the rendering time."""
    return re.sub(r"Page rendered \S+", "", re.sub(r">\d+[smhd]</td>", "></td>", body))


def test_cluster_pages_are_each_clusters_own(fleet_get: Get) -> None:
    eu = fleet_get("/c/prod-eu/", token=TOKEN)
    assert eu.status == 200 and "<h1>Cluster prod-eu</h1>" in eu.body
    assert '<div class="n state-open">1</div>open drifts' in eu.body
    assert 'href="/c/prod-eu/objects/apps/Deployment/shop/web"' in eu.body
    assert 'href="/objects/' not in eu.body
    us = fleet_get("/c/prod-us/", token=TOKEN)
    assert "<h1>Cluster prod-us</h1>" in us.body
    assert '<div class="n state-open">2</div>open drifts' in us.body
    # The same object, two clusters, two histories.
    eu_cm = fleet_get("/c/prod-eu/objects/_/ConfigMap/shop/settings", token=TOKEN)
    us_cm = fleet_get("/c/prod-us/objects/_/ConfigMap/shop/settings", token=TOKEN)
    assert eu_cm.status == us_cm.status == 200
    assert "This object never drifted." in eu_cm.body
    assert '<span class="badge state-open">open</span>' in us_cm.body
    assert "data.MODE" in us_cm.body
    # Redirect to the slash form, unknown clusters and objects, unqualified addresses.
    # The same page, bar its clock (a second may tick between the two reads).
    assert _ageless(fleet_get("/c/prod-eu", token=TOKEN).body) == _ageless(eu.body), \
        "308 followed to /c/prod-eu/"
    assert fleet_get("/c/nope/", token=TOKEN).status == 404
    assert fleet_get("/c/prod-eu/objects/apps/Deployment/shop/nope", token=TOKEN).status == 404
    assert fleet_get("/c/prod-eu/objects/apps/Deployment/shop", token=TOKEN).status == 404
    assert fleet_get("/c/prod-eu/nothing", token=TOKEN).status == 404
    unqualified = fleet_get("/objects/apps/Deployment/shop/web", token=TOKEN)
    assert unqualified.status == 404 and "/c/&lt;cluster&gt;/objects/" in unqualified.body


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text)
            for s in f.samples]


def test_metrics_label_every_series_with_its_cluster(fleet: Fleet, fleet_get: Get) -> None:
    got = fleet_get("/metrics", token=TOKEN)
    assert got.status == 200 and got.headers["Content-Type"].startswith("text/plain; version=0")
    samples = _samples(got.body)
    assert samples and all(labels.get("cluster") in CLUSTERS for _, labels, _ in samples)
    for cluster, expected in (("prod-eu", 1), ("prod-us", 2)):
        mine = [(n, lb, v) for n, lb, v in samples if lb["cluster"] == cluster]
        assert sum(v for n, _, v in mine if n == "drift_auditor_open_drifts") == expected
        assert [v for n, _, v in mine if n == "drift_auditor_ledger_readable"] == [1]
        assert [v for n, _, v in mine if n == "drift_auditor_ledger_verify_ok"] == [1]
        # Each cluster's series are exactly the single-ledger exposition's, plus the label.
        from auditor.outputs import metrics

        alone = {(n, tuple(sorted(lb.items()))) for n, lb, _ in
                 _samples(metrics.exposition(fleet.cfg, fleet.ledgers[cluster]))}
        labelled = {(n, tuple(sorted((k, x) for k, x in lb.items() if k != "cluster")))
                    for n, lb, _ in mine if n != "drift_auditor_ledger_readable"}
        assert labelled == alone
    # One HELP/TYPE per family: the text format allows each name once.
    types = re.findall(r"^# TYPE (\S+)", got.body, re.M)
    assert len(types) == len(set(types))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (Debian package `prometheus`)", pytrace=False)
    proc = subprocess.run([promtool, "check", "metrics"], input=got.body, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), \
        proc.stdout + proc.stderr


def test_healthz_lists_every_ledger(fleet_get: Get) -> None:
    ok = fleet_get("/healthz")
    assert ok.status == 200
    assert ok.body == "ok: 2 ledgers\nprod-eu: ok: 2 runs\nprod-us: ok: 2 runs\n"


def test_token_is_enforced_on_every_fleet_page(fleet_get: Get) -> None:
    for path in ("/", "/c/prod-eu/", "/c/prod-us/objects/_/ConfigMap/shop/settings",
                 "/metrics", "/c/nope/", "/objects/apps/Deployment/shop/web"):
        missing = fleet_get(path)
        assert missing.status == 401, path
        assert "prod-us" not in missing.body and "drift_auditor_" not in missing.body
        assert fleet_get(path, token="wrong").status == 401
    assert fleet_get("/healthz").status == 200


def test_fleet_pages_escape_drift_values(fleet_get: Get) -> None:
    for path in ("/", "/c/prod-us/", "/c/prod-us/objects/_/ConfigMap/shop/settings"):
        body = fleet_get(path, token=TOKEN).body
        for raw in (GIT_VALUE, LIVE_VALUE, ANNOTATION_VALUE):
            assert raw not in body, f"{path}: {raw!r} inserted unescaped"
        assert "&lt;img src=x onerror=alert(&#39;from-live&#39;)&gt;" in body
        assert "<script" not in body and "<img" not in body and "id=pwned>" not in body


def test_cluster_names_in_urls_and_pages_are_encoded_and_escaped(
        fleet: Fleet, tmp_path: Path) -> None:
    # A cluster name is whatever the configuration said: one with markup and a slash is
    # escaped on the page and one path segment in URLs.
    odd = tmp_path / "odd.db"
    shutil.copy(fleet.ledgers["prod-eu"], odd)
    with _unguarded(odd) as conn:
        conn.execute("UPDATE runs SET cluster = ?", ("<b>x</b>/y",))
    with serving(fleet.cfg, None, ledger_paths=[odd, fleet.ledgers["prod-us"]]) as base:
        get = http(base)
        page = get("/").body
        assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;/y" in page
        assert 'href="/c/%3Cb%3Ex%3C%2Fb%3E%2Fy/"' in page
        assert get("/c/%3Cb%3Ex%3C%2Fb%3E%2Fy/").status == 200
        assert get("/c/%3Cb%3Ex%3C%2Fb%3E%2Fy/objects/apps/Deployment/shop/web").status == 200


def test_a_broken_ledger_fails_healthz_and_leaves_the_other_cluster_served(
        fleet: Fleet, tmp_path: Path) -> None:
    copies = [tmp_path / "copies" / f"{c}.db" for c in CLUSTERS]
    copies[0].parent.mkdir()
    for cluster, copy in zip(CLUSTERS, copies, strict=True):
        shutil.copy(fleet.ledgers[cluster], copy)
    with serving(fleet.cfg, TOKEN, ledger_paths=copies) as base:
        get = http(base)
        assert get("/healthz").status == 200
        copies[1].write_bytes(b"not sqlite at all" * 100)  # prod-us's volume goes bad
        down = get("/healthz")
        assert down.status == 503
        assert down.body == ("unhealthy: 1 of 2 ledgers unreadable\nprod-eu: ok: 2 runs\n"
                             "prod-us: ledger unreadable\n"), "named as before it broke"
        assert str(copies[1]) not in down.body, "no paths without a token"
        page = get("/", token=TOKEN)
        assert page.status == 200
        rows = _rows(page.body)
        assert "unreadable" in rows["prod-us"] and "not a ledger" in rows["prod-us"]
        assert "verified" in rows["prod-eu"] and _cells(rows["prod-eu"])[3] == "1"
        assert get("/c/prod-eu/", token=TOKEN).status == 200
        assert get("/c/prod-eu/objects/apps/Deployment/shop/web", token=TOKEN).status == 200
        assert get("/c/prod-us/", token=TOKEN).status == 503
        metrics = get("/metrics", token=TOKEN)
        assert metrics.status == 200
        samples = _samples(metrics.body)
        assert ("drift_auditor_ledger_readable", {"cluster": "prod-us"}, 0) in samples
        assert ("drift_auditor_open_drifts", {"cluster": "prod-eu", "category": "human",
                                              "age": "lt_1h"}, 1) in samples or any(
            n == "drift_auditor_open_drifts" and lb["cluster"] == "prod-eu" and v == 1
            for n, lb, v in samples)
        assert not [n for n, lb, _ in samples if lb["cluster"] == "prod-us"
                    and n != "drift_auditor_ledger_readable"]
    # Missing from the start: named by its file, as the report names a ledger without runs.
    with serving(fleet.cfg, None, ledger_paths=[copies[0], tmp_path / "not-yet.db"]) as base:
        down = http(base)("/healthz")
        assert down.status == 503 and "not-yet: ledger unreadable" in down.body


def test_a_tampered_ledger_fails_verification_on_its_own_row(fleet: Fleet,
                                                            tmp_path: Path) -> None:
    tampered = tmp_path / "tampered" / "prod-us.db"
    tampered.parent.mkdir()
    shutil.copy(fleet.ledgers["prod-us"], tampered)
    with _unguarded(tampered) as conn:
        conn.execute("UPDATE events SET payload = replace(payload, 'kubectl', 'argocd') "
                     "WHERE seq = (SELECT max(seq) FROM events WHERE payload LIKE '%kubectl%')")
    with serving(fleet.cfg, None, ledger_paths=[fleet.ledgers["prod-eu"], tampered]) as base:
        get = http(base)
        rows = _rows(get("/").body)
        assert "FAILED" in rows["prod-us"] and "tampered" in rows["prod-us"]
        assert "FAILED" not in rows["prod-eu"] and "verified" in rows["prod-eu"]
        assert get("/healthz").status == 200, "readable: liveness is not integrity"
        samples = _samples(get("/metrics").body)
        assert ("drift_auditor_ledger_verify_ok", {"cluster": "prod-us"}, 0) in samples
        assert ("drift_auditor_ledger_verify_ok", {"cluster": "prod-eu"}, 1) in samples


def test_verification_is_cached_until_a_ledger_changes(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.ledger.verify import verify
    from auditor.outputs import metrics

    calls: list[str] = []

    def counting(conn: sqlite3.Connection, *args: Any) -> Any:
        calls.append(conn.execute("PRAGMA database_list").fetchone()[2])
        return verify(conn, *args)

    monkeypatch.setattr(chainstate, "verify_ledger", counting)
    monkeypatch.setattr(metrics, "verify_ledger", counting)
    with serving(fleet.cfg, None, ledger_paths=fleet.paths) as base:
        get = http(base)
        for _ in range(3):
            assert get("/").status == 200 and get("/metrics").status == 200
        # Once per ledger, shared by the overview and the scrape, not once per request.
        assert sorted(calls) == sorted(str(p) for p in fleet.paths)
        calls.clear()
        run_once(fleet.configs["prod-eu"], desired_path=str(fleet.apps))  # the next CronJob
        get("/")
        get("/metrics")
        assert calls == [str(fleet.ledgers["prod-eu"])], "only the changed ledger again"
        assert "#3" in _rows(get("/").body)["prod-eu"]


def test_fleet_pages_answer_quickly(fleet_get: Get) -> None:
    # After the first request (names read, chains verified), a page is small queries per
    # ledger: no verification and no report model per request.
    fleet_get("/", token=TOKEN)
    fleet_get("/metrics", token=TOKEN)
    start = time.perf_counter()
    for _ in range(5):
        for path in ("/", "/metrics", "/c/prod-us/", "/healthz"):
            assert fleet_get(path, token=TOKEN).status == 200
    assert (time.perf_counter() - start) / 20 < 0.2


def test_one_ledger_keeps_the_single_cluster_ui(fleet: Fleet) -> None:
    with serving(fleet.cfg, None, ledger_paths=[fleet.ledgers["prod-us"]]) as base:
        get = http(base)
        page = get("/").body
        assert "<h1>Cluster prod-eu</h1>" in page, "the configuration's name, as before"
        assert 'href="/objects/_/ConfigMap/shop/settings"' in page and "/c/" not in page
        assert get("/objects/_/ConfigMap/shop/settings").status == 200
        assert get("/c/prod-us/").status == 404
        assert get("/healthz").body == "ok: 2 runs\n"
        assert all("cluster" not in lb for _, lb, _ in _samples(get("/metrics").body))


def test_serve_ledgers_in_the_configuration_make_the_fleet(fleet: Fleet, tmp_path: Path) -> None:
    cfg_file = tmp_path / "fleet.yaml"
    cfg_file.write_text(fleet.config_files["prod-eu"].read_text() + "\n".join([
        "", "serve:", "  ledgers:", *(f"    - {p}" for p in fleet.paths), ""]).replace(
        "serve: {token-env: SERVE_TEST_TOKEN}\n", ""))
    cfg = config_mod.load(cfg_file)
    assert cfg.serve.ledgers == tuple(str(p) for p in fleet.paths)
    assert cfg.ledger.path == str(fleet.ledgers["prod-eu"]), "still every command's default"
    with serving(cfg, None) as base:
        assert list(_rows(http(base)("/").body)) == list(CLUSTERS)
    # An explicit ledger (the flag, once) wins over the list: the single-cluster UI.
    with serving(cfg, None, ledger_paths=[fleet.ledgers["prod-us"]]) as base:
        assert "<h1>Cluster prod-eu</h1>" in http(base)("/").body


def test_the_same_ledger_twice_is_an_error(fleet: Fleet) -> None:
    from auditor.errors import ConfigError

    with pytest.raises(ConfigError, match="the same ledger is given twice"):
        serve.make_server(fleet.cfg, port=0, ledger_paths=[
            fleet.ledgers["prod-eu"], fleet.ledgers["prod-eu"].parent / "." / "prod-eu.db"])


def test_cli_serves_a_fleet(fleet: Fleet) -> None:
    args = [sys.executable, *CLI, "--config", str(fleet.config_files["prod-eu"]), "serve",
            "--port", "0", "--ledger", str(fleet.ledgers["prod-eu"]), "--ledger",
            str(fleet.ledgers["prod-us"])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "SERVE_TEST_TOKEN": TOKEN},
                            cwd=str(Path(__file__).parents[2]))
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) \(ledgers .*prod-eu\.db, .*prod-us\.db, "
                          r"bearer token required\)", line)
        assert match, line
        get = http(f"http://127.0.0.1:{match.group(1)}")
        assert list(_rows(get("/", token=TOKEN).body)) == list(CLUSTERS)
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    twice = subprocess.run([*args[:-2], "--ledger", str(fleet.ledgers["prod-eu"])],
                           capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "SERVE_TEST_TOKEN": TOKEN})
    assert twice.returncode == 2 and "the same ledger is given twice" in twice.stderr


def test_fleet_overview_renders_in_chromium(fleet: Fleet, tmp_path: Path) -> None:
    with serving(fleet.cfg, None, ledger_paths=fleet.paths) as base:
        shot = tmp_path / "serve-fleet.png"
        proc = chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                        "--window-size=1400,1000", base + "/")
        assert shot.is_file(), proc.stderr[-2000:]
        problems = [line for line in proc.stderr.splitlines()
                    if "CONSOLE" in line or "Uncaught" in line
                    or "Content Security Policy" in line]
        assert not problems, problems
        width, height, distinct = png_facts(shot)
        assert (width, height) == (1400, 1000) and distinct > 50
        keep(shot)
        dom = chromium(tmp_path, "--dump-dom", base + "/")
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "Current drift by cluster and namespace" in dom.stdout
        assert "&lt;img src=x onerror=alert('from-live')&gt;" in dom.stdout
        assert "<img" not in dom.stdout and dom.stdout.count("<script") == 0


def test_each_clusters_lists_diffs_and_api(fleet_get: Get) -> None:
    us = fleet_get("/c/prod-us/drifts?kind=ConfigMap", token=TOKEN)
    assert us.status == 200 and 'href="/c/prod-us/objects/_/ConfigMap/shop/settings/diff?drift=' \
        in us.body
    assert 'action="/c/prod-us/drifts"' in us.body
    assert "This object never drifted" in fleet_get(
        "/c/prod-eu/objects/_/ConfigMap/shop/settings/diff", token=TOKEN).body
    diff = fleet_get("/c/prod-us/objects/_/ConfigMap/shop/settings/diff", token=TOKEN)
    assert diff.status == 200 and 'class="code add"' in diff.body
    drifts = orjson.loads(fleet_get("/c/prod-us/api/v1/drifts", token=TOKEN).body)
    assert {d["object"]["name"] for d in drifts["items"]} >= {"settings"}
    assert all(d["url"].startswith("/c/prod-us/objects/") for d in drifts["items"])
    # Without its cluster an address means nothing in a fleet.
    for path in ("/drifts", "/api/v1/drifts"):
        assert fleet_get(path, token=TOKEN).status == 404
    assert fleet_get("/api/v1/drifts", token=TOKEN).headers["Content-Type"] == "application/json"


def test_the_overview_shows_a_few_drifts_per_cluster_and_links_the_rest(
        fleet_get: Get, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet of thousands of open drifts keeps a small overview: each cluster's first rows,
    the count of each namespace, and a link to that cluster's drift list for the rest."""
    monkeypatch.setattr(serve, "FLEET_DRIFT_ROWS", 1)
    page = fleet_get("/", token=TOKEN).body
    us = page.split('<h3 id="drift-prod-us">', 1)[1].split("<h2>Latest reports</h2>")[0]
    assert '<h4 id="ns-prod-us-shop">shop <span class="muted">· 2 drifts</span></h4>' in us
    assert us.count('href="/c/prod-us/objects/') == 1, "one row shown"
    assert 'href="/c/prod-us/drifts?namespace=shop">1 more in shop' in us
    listed = fleet_get("/c/prod-us/drifts?namespace=shop", token=TOKEN)
    assert listed.status == 200
    for obj in ("apps/Deployment/shop/web", "_/ConfigMap/shop/settings"):
        assert f'href="/c/prod-us/objects/{obj}"' in listed.body, obj


def test_overview_does_not_wait_for_a_slow_verification(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain walk happens off the request path: while it runs, the overview answers within
    its short wait and says the chain is being verified (never verified); once done, the
    result shows; after a cluster's next run, the earlier result shows as covering an earlier
    event until the new walk ends."""
    from auditor.ledger.verify import verify

    gate = threading.Event()

    def slow(conn: sqlite3.Connection, *args: Any) -> Any:
        gate.wait(30)
        return verify(conn, *args)

    monkeypatch.setattr(chainstate, "verify_ledger", slow)
    with serving(fleet.cfg, None, ledger_paths=fleet.paths) as base:
        get = http(base)
        start = time.perf_counter()
        rows = _rows(get("/").body)
        assert time.perf_counter() - start < chainstate.VERIFY_WAIT_S + 5
        assert all("verifying" in rows[c] and "verified" not in rows[c] for c in CLUSTERS)
        gate.set()
        deadline = time.monotonic() + 30
        rows = _rows(get("/").body)
        while not all("verified" in r for r in rows.values()):
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
            rows = _rows(get("/").body)
        head = int(re.search(r"(\d+) events", rows["prod-eu"]).group(1))  # type: ignore[union-attr]
        gate.clear()
        run_once(fleet.configs["prod-eu"], desired_path=str(fleet.apps))
        rows = _rows(get("/").body)
        assert f"verified up to event #{head}, the newer events are being verified" in (
            rows["prod-eu"])
        assert "newer events" not in rows["prod-us"]
        gate.set()
