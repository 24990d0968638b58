"""`serve`'s cross-cluster divergence page (``/compare?a=…&b=…``) and its JSON twin
(``/api/v1/compare``) over the two ledgers `tests/test_compare_clusters.py` makes with real
runs (staging and prod, each its own sandbox and Git overlay, prod then changed by a human with
kubectl). Its fixture and helpers are imported, not copied, so the page is checked against the
very ledgers and expectations the CLI is.

Checked: the page shows the drifted field with both values and the human's actor, hides what Git
declares per cluster unless ``all=1``, never a Secret value; the fleet overview links to it; an
unknown cluster is 404 and the same cluster twice 400, each with one clear line; the JSON equals
``compare-clusters -o json``; the bearer token; one ledger has no compare page; Chromium renders
it (``SERVE_SCREENSHOT_DIR`` keeps the screenshot)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

# The CLI test's module-scoped fixture (two real runs per cluster) and its helpers.
import test_compare_clusters as compared

from auditor import config as config_mod
from auditor.engine.divergence import SECRET_VALUE

from .conftest import TOKEN, Get, http, serving
from .test_browser import chromium, keep, png_facts

pytestmark = pytest.mark.kubectl

# Registered here under its own name: pytest finds fixtures among a module's attributes.
fleet = compared.fleet

IMAGE = "spec.template.spec.containers[name=web].image"
SECRETS = (compared.STAGING_SECRET, compared.PROD_SECRET, "same-in-both-clusters-value")


def _config(fleet: dict[str, Any]) -> config_mod.Config:
    return config_mod.load(fleet["staging"].config)


def _ledgers(fleet: dict[str, Any]) -> list[Path]:
    return [fleet["staging"].ledger, fleet["prod"].ledger]


@pytest.fixture
def get(fleet: dict[str, Any]) -> Iterator[Get]:
    """The fleet UI over both ledgers, a bearer token required."""
    with serving(_config(fleet), TOKEN, ledger_paths=_ledgers(fleet)) as base:
        yield http(base)


def _section(body: str, kind: str, name: str) -> str:
    """One object's section of the page."""
    found = re.findall(r'<section class="divergence" id="[^"]*/' + kind + r'/[^"]*/' + name
                       + r'">.*?</section>', body, re.S)
    assert len(found) == 1, re.findall(r'<section class="divergence" id="([^"]+)"', body)
    return found[0]


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_page_shows_the_drifted_field_with_both_sides_and_the_actor(
        fleet: dict[str, Any], get: Get) -> None:
    _code, doc = compared.as_json(fleet)
    image = compared._field(compared._object(doc, "Deployment", "web"), IMAGE)
    page = get("/compare?a=staging&b=prod", token=TOKEN)
    assert page.status == 200, page.body
    assert "<h1>staging <span class=\"muted\">vs</span> prod</h1>" in page.body
    web = _section(page.body, "Deployment", "web")
    assert '<span class="badge state-open">diverged</span>' in web
    row = _text(re.findall(r"<tr>.*?</tr>", web.split("<tbody>", 1)[1], re.S)[0])
    # Path, class, staging's value and actor, prod's value, actor and time, in that order.
    assert row.split()[:5] == [IMAGE, "drift", "shop/web:1.0.0", "argocd-controller",
                               image["a"]["time"]]
    assert row.split()[5:8] == ["shop/web:2.0.0-hotfix", "kubectl-set", image["b"]["time"]]
    assert image["b"]["time"], "the human's change has its time"
    # Each side's history is a link away, in its own cluster.
    assert 'href="/c/staging/objects/apps/Deployment/shop/web"' in web
    assert 'href="/c/prod/objects/apps/Deployment/shop/web"' in web
    # An object made by hand in prod, and one a human deleted there.
    by_hand = _text(_section(page.body, "ConfigMap", "by-hand"))
    assert "only in prod" in by_hand and "kubectl-create" in by_hand
    assert "only in staging" in _text(_section(page.body, "ConfigMap", "settings"))
    # The same counts as the CLI's summary.
    summary = doc["summary"]
    assert f'<div class="n state-open">{summary["diverged"]}</div>objects diverged' in page.body


def test_declared_differences_are_hidden_unless_all(fleet: dict[str, Any], get: Get) -> None:
    page = get("/compare?a=staging&b=prod", token=TOKEN).body
    assert "spec.replicas" not in page and "prod-tuning" not in page
    assert 'href="/compare?a=staging&amp;b=prod&amp;all=1"' in page, "the way to show them"
    everything = get("/compare?a=staging&b=prod&all=1", token=TOKEN)
    assert everything.status == 200
    web = _section(everything.body, "Deployment", "web")
    replicas = next(_text(r) for r in re.findall(r"<tr>.*?</tr>", web, re.S)
                    if "spec.replicas" in r)
    # Git set both values: declared, and nobody is named for it.
    assert replicas.split() == ["spec.replicas", "declared", "1", "—", "3", "—"]
    tuning = _text(_section(everything.body, "ConfigMap", "prod-tuning"))
    assert "Only in prod: as Git declares." in tuning
    assert "checked" in everything.body.split('name="all"', 1)[1].split(">", 1)[0]


def test_no_secret_value_is_ever_shown(fleet: dict[str, Any], get: Get) -> None:
    for query in ("a=staging&b=prod", "a=staging&b=prod&all=1", "a=prod&b=staging&all=1"):
        for path in ("/compare?", "/api/v1/compare?"):
            body = get(path + query, token=TOKEN).body
            for raw in SECRETS:
                assert raw not in body, (path + query, raw)
            assert "hmac-sha256" not in body, "not even the keyed hashes"
    secret = _section(get("/compare?a=staging&b=prod&all=1", token=TOKEN).body, "Secret", "token")
    # That the value differs is shown, as the library's marker (escaped), never the value.
    assert "data.token" in secret and html.escape(SECRET_VALUE) in secret


def test_the_fleet_overview_links_to_it(get: Get) -> None:
    overview = get("/", token=TOKEN).body
    form = overview.split('<form class="filters" method="get" action="/compare">', 1)[1]
    form = form.split("</form>", 1)[0]
    # Two selects, the first two clusters chosen: one click compares them.
    assert re.findall(r'<option value="([^"]+)" selected>', form) == ["staging", "prod"]
    assert 'name="all"' in form
    assert '<a href="/compare">' in overview
    picker = get("/compare", token=TOKEN)
    assert picker.status == 200 and "<h1>Compare clusters</h1>" in picker.body
    links = re.findall(r'<p class="pairs"><a href="([^"]+)">', picker.body)
    assert [html.unescape(h) for h in links] == ["/compare?a=staging&b=prod"]
    assert get(html.unescape(links[0]), token=TOKEN).status == 200


def test_unknown_cluster_is_404_and_the_same_twice_400(get: Get) -> None:
    unknown = get("/compare?a=staging&b=qa", token=TOKEN)
    assert unknown.status == 404
    assert "<p>No cluster qa in this fleet; its clusters are: staging, prod.</p>" in unknown.body
    twice = get("/compare?a=prod&b=prod", token=TOKEN)
    assert twice.status == 400
    assert "<p>a, b: give two different clusters (got prod twice)</p>" in twice.body
    assert get("/compare?a=staging", token=TOKEN).status == 400
    # A name from the query is escaped like every value.
    hostile = get("/compare?a=%3Cb%3Ex%3C%2Fb%3E&b=prod", token=TOKEN)
    assert hostile.status == 404 and "&lt;b&gt;x&lt;/b&gt;" in hostile.body
    assert "<b>x</b>" not in hostile.body
    api = get("/api/v1/compare?a=staging&b=qa", token=TOKEN)
    assert api.status == 404 and api.headers["Content-Type"] == "application/json"
    assert orjson.loads(api.body) == {
        "error": "No cluster qa in this fleet; its clusters are: staging, prod.", "status": 404}
    assert get("/api/v1/compare?a=prod&b=prod", token=TOKEN).status == 400
    assert get("/api/v1/compare", token=TOKEN).status == 400


@pytest.mark.parametrize(("query", "args"), [
    ("a=staging&b=prod", ()),
    ("a=staging&b=prod&all=1", ("--all",)),
    ("a=prod&b=staging", ("__swap__",)),
])
def test_json_equals_the_clis(fleet: dict[str, Any], get: Get, query: str,
                              args: tuple[str, ...]) -> None:
    if args == ("__swap__",):
        proc = compared.compare(fleet, "-o", "json", a="prod", b="staging")
        assert proc.returncode == 1, proc.stderr
        expected = orjson.loads(proc.stdout)
    else:
        _code, expected = compared.as_json(fleet, *args)
    got = get("/api/v1/compare?" + query, token=TOKEN)
    assert got.status == 200 and got.headers["Content-Type"] == "application/json"
    assert orjson.loads(got.body) == expected


def test_the_token_guards_it(get: Get) -> None:
    for path in ("/compare?a=staging&b=prod", "/api/v1/compare?a=staging&b=prod", "/compare"):
        assert get(path).status == 401, path
        assert get(path, token="wrong").status == 401, path


def test_one_ledger_has_no_compare_page(fleet: dict[str, Any]) -> None:
    with serving(_config(fleet), None, ledger_paths=[fleet["staging"].ledger]) as base:
        got = http(base)
        for path in ("/compare?a=staging&b=prod", "/api/v1/compare?a=staging&b=prod"):
            answer = got(path)
            assert answer.status == 404 and "needs a fleet" in answer.body, path
        assert 'href="/compare"' not in got("/").body


def test_page_renders_in_chromium(fleet: dict[str, Any], tmp_path: Path) -> None:
    shot = tmp_path / "compare-page.png"
    with serving(_config(fleet), None, ledger_paths=_ledgers(fleet)) as base:
        url = base + "/compare?a=staging&b=prod&all=1"
        proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1400", url)
        assert shot.is_file(), proc.stderr[-2000:]
        dom = chromium(tmp_path, "--dump-dom", url)
    width, height, distinct = png_facts(shot)
    assert (width, height) == (1400, 1400)
    assert distinct > 50, "the screenshot is blank"
    keep(shot)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "shop/web:2.0.0-hotfix" in dom.stdout and "kubectl-set" in dom.stdout
    for raw in SECRETS:
        assert raw not in dom.stdout

