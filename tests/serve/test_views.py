"""`drift-auditor serve`'s evidence views over a ledger written by real runs: the diff of a
drift (Git's side reconstructed against live, each drifted line labelled with who changed it),
an object's versions and the diff of two, the filtered drifts/objects/changes lists, the JSON
API, the overview's charts; escaping and Secret values throughout."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
import pytest

from auditor.web import serve

from .conftest import ANNOTATION_VALUE, GIT_VALUE, LIVE_VALUE, SECRET_GIT, SECRET_LIVE, TOKEN, UI

pytestmark = pytest.mark.kubectl

DEPLOY = "/objects/apps/Deployment/shop/web"
SETTINGS = "/objects/_/ConfigMap/shop/settings"
SECRET = "/objects/_/Secret/shop/token"


def body(ui: UI, path: str) -> str:
    page = ui.get(path, token=TOKEN)
    assert page.status == 200, (path, page.status, page.body[:500])
    return page.body


def api(ui: UI, path: str) -> Any:
    page = ui.get(path, token=TOKEN)
    assert page.status == 200, (path, page.status, page.body[:500])
    assert page.headers["Content-Type"] == "application/json"
    return orjson.loads(page.body)


def test_drift_diff_shows_the_whole_object_and_labels_the_drifted_line(ui: UI) -> None:
    page = body(ui, DEPLOY + "/diff")
    assert "Git's side is reconstructed" in page
    # The whole object, both sides, as YAML.
    assert page.count("kind: Deployment") == 3  # split (twice) and unified
    # The drifted line: Git's value on the left, live on the right, highlighted and labelled.
    assert re.search(r'<td class="code del">\s*- image: shop/web:1\.0\.0', page)
    assert re.search(r'<td class="code add">\s*- image: shop/web:2\.0\.0-hotfix<div class="who">'
                     r'kubectl-set <span class="cat">\(human\)</span> · <time>20\d\d-', page)
    # Server defaults are there but hidden until asked for; the checkbox says how many.
    default_row = re.search(r'<tr class=" hid">\s*<td class="no">\d+</td>\s*<td class="code">'
                            r'\s*progressDeadlineSeconds: 600', page)
    assert default_row, "a server default is a hidden row"
    assert re.search(r"Show server defaults and status <span class=\"muted\">\(\d+ lines\)", page)
    assert 'id="show-hidden">' in page
    assert 'id="show-hidden" checked' in body(ui, DEPLOY + "/diff?defaults=1")
    assert 'id="view-unified" checked' in body(ui, DEPLOY + "/diff?view=unified")
    # The page runs no script: the toggles are CSS.
    assert "<script" not in page


def test_diff_escapes_values_and_labels_each_drifted_line(ui: UI) -> None:
    page = body(ui, SETTINGS + "/diff")
    for raw in (GIT_VALUE, LIVE_VALUE, ANNOTATION_VALUE):
        assert raw not in page
    assert "MODE: &#34;&lt;script&gt;alert(&#39;from-git&#39;)&lt;/script&gt;&#34;" in page
    assert "MODE: &#34;&lt;img src=x onerror=alert(&#39;from-live&#39;)&gt;&#34;" in page
    assert "<script" not in page and "<img" not in page and "id=pwned>" not in page
    # Two drifted lines, two managers.
    assert re.search(r'note: &#34;.*<div class="who">kubectl-annotate ', page)
    assert re.search(r'MODE: &#34;&lt;img.*<div class="who">kubectl-patch ', page)


def test_secret_diff_shows_keyed_hashes_only(ui: UI) -> None:
    pages = [body(ui, SECRET + p) for p in ("/diff", "/diff?view=unified&defaults=1",
                                            "/versions/diff")]
    pages.append(ui.get("/api/v1/objects/_/Secret/shop/token", token=TOKEN).body)
    pages.append(ui.get("/api/v1/drifts?kind=Secret", token=TOKEN).body)
    versions = api(ui, "/api/v1/objects/_/Secret/shop/token")["versions"]
    pages += [body(ui, f"{SECRET}/versions/{v['id']}") for v in versions]
    for page in pages:
        for value in (SECRET_LIVE, SECRET_GIT):
            assert value not in page
            assert base64.b64encode(value.encode()).decode() not in page
    diff = pages[0]
    assert re.search(r'<td class="code del">\s*token: hmac-sha256:[0-9a-f]{32}', diff)
    assert re.search(r'<td class="code add">\s*token: hmac-sha256:[0-9a-f]{32}<div class="who">'
                     r"kubectl-patch", diff)
    assert 'id="secret-note"' in diff


def test_versions_are_linked_and_compared(ui: UI) -> None:
    obj = body(ui, SETTINGS)
    links = re.findall(r'href="(/objects/_/ConfigMap/shop/settings/versions/(\d+))"', obj)
    assert len({vid for _, vid in links}) == 2
    assert 'action="/objects/_/ConfigMap/shop/settings/versions/diff"' in obj
    assert 'type="radio" name="a"' in obj and 'type="radio" name="b"' in obj
    assert 'href="/objects/_/ConfigMap/shop/settings/diff"' in obj
    # Each drift's row is an anchor (Slack's "Drift history" button lands on it) and links
    # the diff of that drift.
    for drift_id in re.findall(r'href="/objects/_/ConfigMap/shop/settings/diff\?drift=(\d+)"',
                               obj):
        assert f'id="drift-{drift_id}"' in obj
    old, new = sorted(int(vid) for _, vid in set(links))
    first = body(ui, f"{SETTINGS}/versions/{old}")
    assert '<pre class="yaml" id="yaml">' in first
    assert "MODE: &#34;&lt;script&gt;alert(&#39;from-git&#39;)&lt;/script&gt;&#34;" in first
    assert "<script" not in first
    second = body(ui, f"{SETTINGS}/versions/{new}")
    # The version's writer is its newest managedFields entry: the patch or the annotation,
    # whichever the API server stamped later (the same second: the later entry).
    writer = re.search(r"written by <strong>(kubectl-(?:patch|annotate))</strong>", second)
    assert writer
    diff = body(ui, f"{SETTINGS}/versions/diff?a={old}&b={new}")
    assert f"Versions #{old} → #{new}" in diff
    # A version's lines are labelled with that version's writer (the newest entry), as above.
    assert re.search(r'<td class="code add">\s*MODE: &#34;&lt;img.*<div class="who">'
                     + writer.group(1), diff)
    # Either order; the default is the newest version against the one before.
    assert body(ui, f"{SETTINGS}/versions/diff?a={new}&b={old}").count('class="code add"') == \
        body(ui, f"{SETTINGS}/versions/diff").count('class="code add"') > 0
    assert ui.get(f"{SETTINGS}/versions/999999", token=TOKEN).status == 404
    assert ui.get(f"{SETTINGS}/versions/diff?a=x", token=TOKEN).status == 400
    assert ui.get(f"{SETTINGS}/diff?drift=999999", token=TOKEN).status == 400


def rows(page: str) -> list[str]:
    table = page.split('<table id="results">', 1)
    if len(table) != 2:
        return []
    return re.findall(r"<tr>.*?</tr>", table[1].split("<tbody>", 1)[1].split("</tbody>")[0],
                      re.S)


def test_drift_list_filters(ui: UI) -> None:
    assert len(rows(body(ui, "/drifts"))) == 3
    only = rows(body(ui, "/drifts?kind=Deployment.apps"))
    assert len(only) == 1 and f'href="{DEPLOY}/diff?drift=' in only[0]
    assert len(rows(body(ui, "/drifts?kind=ConfigMap&namespace=shop"))) == 1
    assert len(rows(body(ui, "/drifts?namespace=default"))) == 0
    assert len(rows(body(ui, "/drifts?actor=kubectl-annotate"))) == 1  # an item's manager
    assert len(rows(body(ui, "/drifts?actor=kubectl-patch"))) == 2
    assert len(rows(body(ui, "/drifts?category=human&state=open"))) == 3
    assert len(rows(body(ui, "/drifts?state=resolved"))) == 0
    assert len(rows(body(ui, "/drifts?q=HOTFIX"))) == 1  # a drifted value, any case
    assert len(rows(body(ui, "/drifts?q=containers%5Bname%3Dweb%5D"))) == 1  # a path
    # Filters are query parameters: the form keeps them, so the page is a bookmark.
    page = body(ui, "/drifts?kind=Deployment.apps&state=open&q=web")
    assert "<option selected>Deployment.apps</option>" in page
    assert "<option selected>open</option>" in page
    assert 'name="q" value="web"' in page


def test_object_and_change_lists_filter(ui: UI) -> None:
    drifting = rows(body(ui, "/objects?state=drifting"))
    assert len(drifting) == 3
    assert len(rows(body(ui, "/objects?namespace=_&kind=Namespace"))) >= 5
    assert all("(cluster-scoped)" in r for r in rows(body(ui, "/objects?namespace=_")))
    in_sync = rows(body(ui, "/objects?state=in-sync&namespace=shop"))
    assert in_sync and not any("settings" in r for r in in_sync)
    assert len(rows(body(ui, "/objects?q=2.0.0-hotfix"))) == 1  # the latest content
    assert len(rows(body(ui, "/objects?q=" + SECRET_LIVE))) == 0
    changes = rows(body(ui, "/changes"))
    assert len(changes) == 3
    assert len(rows(body(ui, "/changes?actor=kubectl-set"))) == 1
    assert len(rows(body(ui, "/changes?category=human&state=out-of-band"))) == 3
    assert len(rows(body(ui, "/changes?state=authorized"))) == 0
    set_image = rows(body(ui, "/changes?q=web&kind=Deployment.apps"))
    assert len(set_image) == 1 and "/versions/diff?a=" in set_image[0]


def test_lists_page_with_continue(ui: UI, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = rows(body(ui, "/objects?namespace=shop"))
    assert len(everything) == 5
    monkeypatch.setattr(serve, "PAGE_SIZE", 2)
    seen: list[str] = []
    url = "/objects?namespace=shop"
    while url:
        page = body(ui, url)
        seen += rows(page)
        nxt = re.search(r'rel="next" href="(/objects\?[^"]+)"', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
        assert not nxt or "namespace=shop" in url, "the filters stay on the next page"
    assert seen == everything
    assert ui.get("/drifts?continue=not-a-token", token=TOKEN).status == 400
    assert ui.get("/objects?continue=Mg", token=TOKEN).status == 400  # a drift list's token


def test_filter_values_are_escaped(ui: UI) -> None:
    hostile = "<script>alert(1)</script>"
    page = ui.get("/drifts?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&actor=%22%3E%3Cb%3E",
                  token=TOKEN)
    assert page.status == 200
    assert hostile not in page.body and '"><b>' not in page.body
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page.body
    assert "<script" not in page.body
    assert ui.get("/drifts?q=" + "x" * 201, token=TOKEN).status == 400


def test_api_drifts_paginates_with_stable_json(ui: UI) -> None:
    first = api(ui, "/api/v1/drifts?limit=2")
    assert list(first) == sorted(first), "keys in a stable (sorted) order"
    assert list(first["items"][0]) == sorted(first["items"][0])
    assert first["kind"] == "DriftList" and first["limit"] == 2 and len(first["items"]) == 2
    rest = api(ui, "/api/v1/drifts?limit=2&continue=" + first["continue"])
    assert rest["continue"] is None and len(rest["items"]) == 1
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    web = api(ui, "/api/v1/drifts?kind=Deployment.apps&state=open")["items"]
    assert [d["object"] for d in web] == [{"group": "apps", "kind": "Deployment",
                                           "namespace": "shop", "name": "web"}]
    [item] = web[0]["items"]
    assert item["path"] == "spec.template.spec.containers[name=web].image"
    assert (item["desired"], item["live"], item["manager"]) == \
        ("shop/web:1.0.0", "shop/web:2.0.0-hotfix", "kubectl-set")
    assert web[0]["url"] == f"{DEPLOY}/diff?drift={web[0]['id']}"
    # The same body for the same question.
    again = ui.get("/api/v1/drifts?limit=2", token=TOKEN).body
    assert again == ui.get("/api/v1/drifts?limit=2", token=TOKEN).body
    assert api(ui, "/api/v1/drifts?q=" + "nothing-like-this")["items"] == []


def test_api_object_and_runs(ui: UI) -> None:
    obj = api(ui, "/api/v1/objects/apps/Deployment/shop/web")
    assert obj["object"] == {"group": "apps", "kind": "Deployment", "namespace": "shop",
                             "name": "web"}
    content = obj["latest"]["content"]
    assert content["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "shop/web:2.0.0-hotfix"
    assert [d["state"] for d in obj["drifts"]] == ["open"]
    assert len(obj["versions"]) == 2
    assert obj["versions"][0]["change"]["manager"] == "kubectl-set"
    runs = api(ui, "/api/v1/runs")
    assert [r["id"] for r in runs["items"]] == [2, 1]
    assert runs["items"][0]["status"] == "complete" and runs["items"][0]["cluster"]
    one = api(ui, "/api/v1/runs?limit=1")
    assert len(one["items"]) == 1 and one["continue"]
    assert api(ui, "/api/v1/runs?limit=1&continue=" + one["continue"])["items"][0]["id"] == 1


def test_api_errors_and_token(ui: UI) -> None:
    for path in ("/api/v1/drifts", "/api/v1/runs", "/api/v1/objects/apps/Deployment/shop/web"):
        denied = ui.get(path)
        assert denied.status == 401
        assert denied.headers["Content-Type"] == "application/json"
        assert orjson.loads(denied.body) == {"error": "A bearer token is required.",
                                             "status": 401}
        assert ui.get(path, token="wrong").status == 401
    missing = ui.get("/api/v1/objects/apps/Deployment/shop/nope", token=TOKEN)
    assert missing.status == 404 and orjson.loads(missing.body)["status"] == 404
    assert ui.get("/api/v1/drifts?limit=0", token=TOKEN).status == 400
    assert ui.get("/api/v1/drifts?limit=501", token=TOKEN).status == 400
    assert ui.get("/api/v1/nothing", token=TOKEN).status == 404
    assert ui.get("/api/v1/drifts", token=TOKEN, method="POST").status == 405
    for path in ("/drifts", DEPLOY + "/diff", "/objects", "/changes"):
        assert ui.get(path).status == 401


def test_overview_charts_are_inline_svg(ui: UI) -> None:
    page = body(ui, "/")
    charts = re.findall(r'<svg class="chart" viewBox="0 0 \d+ \d+"[^>]*>.*?</svg>', page, re.S)
    assert len(charts) == 2
    assert "<title>Open drift per day, last 30 days; today 3 open, 0 accepted</title>" in charts[0]
    assert charts[0].count("<rect") >= 1  # today's bar
    assert "<title>Live changes per day by category, last 30 days: 3</title>" in charts[1]
    assert re.search(r"<title>\d{4}-\d\d-\d\d: 3 human</title>", charts[1])
    assert 'href="/changes?category=human"' in page
    assert "<script" not in page and "http" not in "".join(charts).replace(
        "http://www.w3.org/2000/svg", "")
