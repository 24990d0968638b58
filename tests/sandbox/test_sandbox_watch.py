"""The sandbox's watches as kube-apiserver serves them: bookmarks when allowed, the timeout
ending the stream cleanly, compaction answered with 410, and the watch faults."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest

from auditor.sandbox import Sandbox

CMS = "/api/v1/namespaces/default/configmaps"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": data}


def watch(sb: Sandbox, query: str, path: str = CMS) -> tuple[http.client.HTTPResponse,
                                                              http.client.HTTPConnection]:
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    conn.request("GET", f"{path}?watch=1&{query}")
    return conn.getresponse(), conn


def read_all(resp: http.client.HTTPResponse) -> list[dict[str, Any]]:
    """Every event of a stream the server ends cleanly (a cut one raises IncompleteRead)."""
    return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def list_rv(sb: Sandbox) -> int:
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    conn.request("GET", CMS)
    rv = int(json.loads(conn.getresponse().read())["metadata"]["resourceVersion"])
    conn.close()
    return rv


def test_bookmarks_come_every_interval_when_allowed_and_the_timeout_ends_the_stream(
        sandbox: Sandbox) -> None:
    assert sandbox.bookmark_interval == 60.0  # kube-apiserver's, about
    sandbox.bookmark_interval = 0.3
    rv = list_rv(sandbox)
    start = time.monotonic()
    resp, conn = watch(sandbox, f"resourceVersion={rv}&allowWatchBookmarks=true"
                                f"&timeoutSeconds=1")
    sandbox.load([configmap("a", x="1")])
    events = read_all(resp)  # the terminating chunk came: a clean end
    assert 0.9 <= time.monotonic() - start < 3
    conn.close()
    types = [e["type"] for e in events]
    assert types[0] == "ADDED" and types.count("BOOKMARK") >= 2
    assert set(types[1:]) == {"BOOKMARK"}
    added_rv = int(events[0]["object"]["metadata"]["resourceVersion"])
    bookmark = events[-1]["object"]
    # Only the position is set, as the API concepts page shows a BOOKMARK.
    assert bookmark == {"kind": "ConfigMap", "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(added_rv)}}

    resp, conn = watch(sandbox, f"resourceVersion={rv}&timeoutSeconds=1")
    assert [e["type"] for e in read_all(resp)] == ["ADDED"]  # no bookmarks unless allowed
    conn.close()


def test_a_compacted_history_answers_410_and_later_positions_still_watch(
        sandbox: Sandbox) -> None:
    rv = list_rv(sandbox)
    sandbox.load([configmap("a")])
    compacted = sandbox.store.compact()
    assert compacted == list_rv(sandbox) > rv
    resp, conn = watch(sandbox, f"resourceVersion={rv}&timeoutSeconds=1")
    [event] = read_all(resp)
    conn.close()
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"] == f"too old resource version: {rv} ({compacted})"

    resp, conn = watch(sandbox, f"resourceVersion={compacted}&timeoutSeconds=1")
    sandbox.load([configmap("b")])
    assert [e["object"]["metadata"]["name"] for e in read_all(resp)] == ["b"]
    conn.close()


def test_drop_watch_cuts_the_stream_halfway_through_an_event(sandbox: Sandbox) -> None:
    sandbox.faults.drop_watch(after=1, path_regex="/configmaps")
    rv = list_rv(sandbox)
    resp, conn = watch(sandbox, f"resourceVersion={rv}&timeoutSeconds=5")
    sandbox.load([configmap("a"), configmap("b")])
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    conn.close()
    [first] = cut.value.partial.splitlines()  # the complete chunks
    assert json.loads(first)["object"]["metadata"]["name"] == "a"
    half = cut.value.__cause__
    assert isinstance(half, http.client.IncompleteRead)  # the chunk that was cut short
    assert half.partial.startswith(b'{"type":"ADDED"') and half.expected
    # The rule is used up: the next watch is whole.
    resp, conn = watch(sandbox, f"resourceVersion={rv}&timeoutSeconds=1")
    assert [e["object"]["metadata"]["name"] for e in read_all(resp)] == ["a", "b"]
    conn.close()


def test_a_fault_can_refuse_the_watch_of_a_path_whose_list_it_allows(sandbox: Sandbox) -> None:
    sandbox.faults.add(method="GET", path_regex="/configmaps", status=403, watch=True)
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
    conn.request("GET", CMS)
    listing = conn.getresponse()
    assert listing.status == 200 and json.loads(listing.read())["kind"] == "ConfigMapList"
    resp, conn2 = watch(sandbox, "timeoutSeconds=1")
    assert resp.status == 403 and json.loads(resp.read())["reason"] == "Forbidden"
    conn2.request("GET", "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1")
    assert conn2.getresponse().status == 403
    conn.close()
    conn2.close()
