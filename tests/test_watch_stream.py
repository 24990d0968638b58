"""The live watch streams (:mod:`auditor.live.watch`) against the sandbox over real HTTP:
changes in order with their resourceVersions, resuming without a gap or a duplicate after a
dropped connection, relisting after a compacted history, bookmarks, resuming a previous
Watcher's position, forbidden and failing kinds, stopping."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.config import ClusterConfig, ScopeConfig
from auditor.engine.records import ResourceKey
from auditor.live.client import APIResource, Cluster, ListStats
from auditor.live.watch import Watcher, WatchEvent
from auditor.sandbox import Sandbox

CM = ResourceKey("", "ConfigMap", "default", "")
CM_WATCH = r"^/api/v1/configmaps$"


def cm_key(name: str, namespace: str = "default") -> ResourceKey:
    return ResourceKey("", "ConfigMap", namespace, name)


def configmap(name: str, namespace: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}


def rv_of(obj: dict[str, Any] | None) -> str:
    assert obj is not None
    return str(obj["metadata"]["resourceVersion"])


class Run:
    """A Watcher consumed in a thread, its events gathered as they come."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.events: list[WatchEvent] = []
        self.stop = threading.Event()
        self._cond = threading.Condition()
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        try:
            for event in self.watcher.events(self.stop):
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced by wait_for and close
            self.error = exc
        finally:
            self.finished.set()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, done: Callable[[list[WatchEvent]], bool],
                 timeout: float = 10.0) -> list[WatchEvent]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or self.finished.is_set() or self.error is not None:
                    raise AssertionError(
                        f"timed out waiting; error={self.error!r}; events: "
                        + "; ".join(describe(e) for e in self.events))
                self._cond.wait(min(left, 0.1))
            return list(self.events)

    def listed(self, count: int = 1) -> list[WatchEvent]:
        return self.wait_for(lambda evs: sum(e.type == "LISTED" for e in evs) >= count)

    def close(self) -> float:
        """Stop; returns how long the Watcher took to end."""
        start = time.monotonic()
        self.stop.set()
        self._thread.join(10)
        took = time.monotonic() - start
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        return took


def describe(event: WatchEvent) -> str:
    key = event.key
    return f"{event.type} {key.name if key else ''}@{event.resource_version}"


def of(events: list[WatchEvent], name: str) -> list[tuple[str, str]]:
    """(type, object resourceVersion) of one ConfigMap's events in default."""
    return [(e.type, rv_of(e.obj)) for e in events if e.key == cm_key(name)]


def after_last_listed(events: list[WatchEvent]) -> list[WatchEvent]:
    last = max(i for i, e in enumerate(events) if e.type == "LISTED")
    return events[last + 1:]


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    with Cluster(ClusterConfig(kubeconfig=str(kubeconfig))) as c:
        yield c


@pytest.fixture
def kinds(cluster: Cluster) -> dict[str, APIResource]:
    return {r.group_kind: r for r in cluster.discover()}


@pytest.fixture
def runs() -> Iterator[Callable[[Watcher], Run]]:
    started: list[Run] = []

    def start(watcher: Watcher) -> Run:
        run = Run(watcher)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop.set()
    for run in started:
        run.finished.wait(10)


def watcher(cluster: Cluster, resources: list[APIResource], **kw: Any) -> Watcher:
    kw.setdefault("backoff_max", 0.05)
    scope = kw.pop("scope", ScopeConfig())
    return Watcher(cluster, resources, scope, **kw)


# ----------------------------------------------------------------------------- tests


def test_kubectl_changes_arrive_in_order_with_their_resource_versions(
        cluster: Cluster, kinds: dict[str, APIResource], kubectl: Any,
        runs: Callable[[Watcher], Run]) -> None:
    run = runs(watcher(cluster, [kinds["ConfigMap"]]))
    [listed] = [e for e in run.listed() if e.type == "LISTED"]
    # The first list hands on every object, then its key set and its resourceVersion.
    assert listed.keys == {cm_key("kube-root-ca.crt", ns) for ns in
                           ("default", "kube-node-lease", "kube-public", "kube-system")}
    assert listed.obj is None and listed.namespace == "" and listed.resource_version
    assert [e.type for e in run.events] == ["ADDED"] * 4 + ["LISTED"]
    assert all(e.resource_version == "" for e in run.events[:4])  # no position before a list

    created = json.loads(kubectl("create", "-o", "json", "-f", "-", input=json.dumps(
        configmap("cfg", a="one"))).stdout)
    edited = json.loads(kubectl("edit", "configmap", "cfg", "-o", "json",
                                env={"KUBE_EDITOR": "sed -i s/one/two/"}).stdout)
    patched = json.loads(kubectl("patch", "configmap", "cfg", "-o", "json", "-p",
                                 '{"data":{"b":"3"}}').stdout)
    kubectl("delete", "configmap", "cfg")
    events = run.wait_for(lambda evs: any(e.type == "DELETED" for e in evs))
    mine = [e for e in events if e.key == cm_key("cfg")]
    assert [e.type for e in mine] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [rv_of(e.obj) for e in mine[:3]] == [rv_of(created), rv_of(edited), rv_of(patched)]
    # Each event's position is its object's resourceVersion, and they only grow.
    assert [e.resource_version for e in mine] == [rv_of(e.obj) for e in mine]
    assert [int(e.resource_version) for e in mine] == sorted(
        int(e.resource_version) for e in mine)
    assert int(mine[0].resource_version) > int(listed.resource_version)
    assert [e.obj["data"] for e in mine if e.obj] == [
        {"a": "one"}, {"a": "two"}, {"a": "two", "b": "3"}, {"a": "two", "b": "3"}]
    # Who made each change travels with it (the ledger's actor).
    assert [e.obj["metadata"]["managedFields"][-1]["manager"] for e in mine[:3] if e.obj] == [
        "kubectl-create", "kubectl-edit", "kubectl-patch"]
    assert mine[0].obj and mine[0].obj["apiVersion"] == "v1" and mine[0].obj["kind"] == "ConfigMap"
    assert run.close() < 1.0


def test_a_dropped_connection_resumes_without_a_gap_or_a_duplicate(
        sandbox: Sandbox, cluster: Cluster, kinds: dict[str, APIResource],
        runs: Callable[[Watcher], Run], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auditor.live.watch")
    run = runs(watcher(cluster, [kinds["ConfigMap"]]))
    run.listed()
    # Each of the next two watches is cut halfway through an event: the first through x1's
    # ADDED, the one that resumes after it once it has sent one event.
    sandbox.faults.drop_watch(times=1, path_regex=CM_WATCH)
    sandbox.apply(configmap("x1", v="1"), field_manager="test")
    run.wait_for(lambda evs: "resuming from" in caplog.text)
    sandbox.faults.drop_watch(times=1, path_regex=CM_WATCH, after=1)
    for name in ("x2", "x3"):
        sandbox.apply(configmap(name, v="1"), field_manager="test")
    sandbox.apply(configmap("x1", v="2"), field_manager="test")
    sandbox.store.delete(sandbox.resource_for("v1", "ConfigMap"), "default", "x2")
    events = run.wait_for(lambda evs: of(evs, "x2")[-1:] and of(evs, "x2")[-1][0] == "DELETED")
    assert caplog.text.count("resuming from") == 2
    changes = [e for e in events if e.type not in ("BOOKMARK",)][5:]  # after the first list
    stored = {n: sandbox.get("v1", "ConfigMap", "default", n) for n in ("x1", "x3")}
    assert [(e.type, e.key.name if e.key else "") for e in changes] == [
        ("ADDED", "x1"), ("ADDED", "x2"), ("ADDED", "x3"), ("MODIFIED", "x1"), ("DELETED", "x2")]
    assert rv_of(changes[3].obj) == rv_of(stored["x1"])
    assert rv_of(changes[2].obj) == rv_of(stored["x3"])
    rvs = [int(e.resource_version) for e in changes]
    assert rvs == sorted(set(rvs))  # strictly growing: nothing twice, no relist
    assert sum(e.type == "LISTED" for e in events) == 1
    run.close()


def test_a_compacted_history_relists_and_listed_lacks_what_was_deleted_meanwhile(
        sandbox: Sandbox, cluster: Cluster, kinds: dict[str, APIResource],
        runs: Callable[[Watcher], Run]) -> None:
    sandbox.load([configmap("keep"), configmap("gone"), configmap("changed", v="1")])
    run = runs(watcher(cluster, [kinds["ConfigMap"]]))
    [first] = [e for e in run.listed() if e.type == "LISTED"]
    assert {cm_key("keep"), cm_key("gone"), cm_key("changed")} <= (first.keys or set())

    # Cut the watch at the next event and hold its reconnection back a second, while an
    # object is deleted, another changed, and etcd compacts the history the watch needs.
    sandbox.faults.add(method="GET", path_regex=CM_WATCH, watch=True, delay=1.0, times=1)
    sandbox.faults.drop_watch(path_regex=CM_WATCH)
    sandbox.apply(configmap("trigger"), field_manager="test")
    cms = sandbox.resource_for("v1", "ConfigMap")
    sandbox.store.delete(cms, "default", "gone")
    sandbox.apply(configmap("changed", v="2"), field_manager="test", force=True)
    sandbox.store.compact()

    events = run.listed(2)
    second = [e for e in events if e.type == "LISTED"][-1]
    assert second.keys is not None and cm_key("gone") not in second.keys
    assert {cm_key("keep"), cm_key("changed"), cm_key("trigger")} <= second.keys
    assert int(second.resource_version) >= int(rv_of(sandbox.get("v1", "ConfigMap", "default",
                                                                 "changed")))
    relist = events[events.index(first) + 1:events.index(second)]
    relisted = [e for e in relist if e.type != "BOOKMARK"]
    # Only versions the consumer has not seen are handed on again: not "keep", not the
    # kube-root-ca.crt ConfigMaps, which have not changed since the position that expired.
    assert sorted((e.type, e.key.name if e.key else "") for e in relisted) == [
        ("ADDED", "changed"), ("ADDED", "trigger")]
    # They carry the position before the list: a crash now resumes there and lists again.
    assert {e.resource_version for e in relisted} == {first.resource_version}
    assert of(events, "gone") == [("ADDED", rv_of(
        next(e.obj for e in events if e.key == cm_key("gone"))))]  # no DELETED: by absence

    # The watch goes on from the new list, without a duplicate.
    sandbox.apply(configmap("changed", v="3"), field_manager="test", force=True)
    events = run.wait_for(lambda evs: len(of(evs, "changed")) == 3)
    assert [t for t, _ in of(events, "changed")] == ["ADDED", "ADDED", "MODIFIED"]
    assert run.close() < 1.0


def test_a_list_restarted_by_an_expired_continue_token_hands_nothing_on_twice(
        sandbox: Sandbox, kubeconfig: Path, runs: Callable[[Watcher], Run]) -> None:
    sandbox.load([configmap(f"c{i:02d}") for i in range(9)])
    sandbox.faults.expire_continue(path_regex="/configmaps", after=2)
    with Cluster(ClusterConfig(kubeconfig=str(kubeconfig), page_size=3)) as small_pages:
        res = next(r for r in small_pages.discover() if r.kind == "ConfigMap")
        stats = ListStats()
        run = runs(watcher(small_pages, [res], stats=stats))
        events = run.listed()
        added = [e.key for e in events if e.type == "ADDED"]
        assert len(added) == len(set(added)) == 13
        [listed] = [e for e in events if e.type == "LISTED"]
        assert listed.keys == set(added)
        assert stats.restarts == 1 and stats.objects == 13
        run.close()


def test_bookmarks_advance_the_position(sandbox: Sandbox, cluster: Cluster,
                                        kinds: dict[str, APIResource],
                                        runs: Callable[[Watcher], Run]) -> None:
    sandbox.bookmark_interval = 0.2
    run = runs(watcher(cluster, [kinds["ConfigMap"]]))
    [listed] = [e for e in run.listed() if e.type == "LISTED"]
    # Changes to other kinds move the cluster's resourceVersion; the ConfigMap watch's
    # bookmarks say nothing of its kind happened up to there.
    sandbox.load([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "elsewhere"}, "rules": []}])
    now = int(sandbox.store.rv)
    events = run.wait_for(lambda evs: any(
        e.type == "BOOKMARK" and int(e.resource_version) >= now for e in evs))
    bookmark = next(e for e in events if e.type == "BOOKMARK" and int(e.resource_version) >= now)
    assert int(bookmark.resource_version) > int(listed.resource_version)
    assert bookmark.obj is None and bookmark.keys is None
    run.close()

    # Compaction up to the bookmark's position: resuming there needs no list...
    sandbox.store.compact(int(bookmark.resource_version))
    resumed = runs(watcher(cluster, [kinds["ConfigMap"]],
                           resume={"ConfigMap": bookmark.resource_version}))
    sandbox.apply(configmap("after"), field_manager="test")
    events = resumed.wait_for(lambda evs: bool(of(evs, "after")))
    assert [e.type for e in events if e.type != "BOOKMARK"] == ["ADDED"]
    resumed.close()
    # ...where the list's older position has to list again.
    relisting = runs(watcher(cluster, [kinds["ConfigMap"]],
                             resume={"ConfigMap": listed.resource_version}))
    events = relisting.listed()
    assert [e.key.name for e in events if e.type == "ADDED" and e.key] == ["after"]
    relisting.close()


def test_a_resume_position_picks_up_exactly_where_the_previous_watcher_stopped(
        sandbox: Sandbox, cluster: Cluster, kinds: dict[str, APIResource],
        runs: Callable[[Watcher], Run]) -> None:
    first = runs(watcher(cluster, [kinds["ConfigMap"]]))
    first.listed()
    sandbox.apply(configmap("a", v="1"), field_manager="test")
    sandbox.apply(configmap("b", v="1"), field_manager="test")
    events = first.wait_for(lambda evs: bool(of(evs, "b")))
    first.close()
    position = events[-1].resource_version  # what the consumer stored last

    cms = sandbox.resource_for("v1", "ConfigMap")
    sandbox.apply(configmap("a", v="2"), field_manager="test")
    sandbox.store.delete(cms, "default", "b")
    sandbox.apply(configmap("c"), field_manager="test")

    second = runs(watcher(cluster, [kinds["ConfigMap"]], resume={"ConfigMap": position}))
    events = second.wait_for(lambda evs: bool(of(evs, "c")))
    changes = [(e.type, e.key.name if e.key else "") for e in events if e.type != "BOOKMARK"]
    assert changes == [("MODIFIED", "a"), ("DELETED", "b"), ("ADDED", "c")]
    assert int(events[0].resource_version) > int(position)
    second.close()


def test_kinds_that_cannot_be_watched_are_skipped_and_named(
        sandbox: Sandbox, cluster: Cluster, kinds: dict[str, APIResource],
        runs: Callable[[Watcher], Run]) -> None:
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/secrets$", status=403, watch=False)
    sandbox.faults.add(method="GET", path_regex=r"^/apis/apps/v1/deployments$", status=403,
                       watch=True)
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/services$", status=500, watch=True)
    stats = ListStats()
    chosen = [kinds[k] for k in ("ConfigMap", "Secret", "Deployment.apps", "Service")]
    run = runs(watcher(cluster, chosen, stats=stats, max_failures=3))
    run.listed(3)  # ConfigMap, Deployment and Service list; Secret may not
    sandbox.apply(configmap("still-watched"), field_manager="test")
    run.wait_for(lambda evs: bool(of(evs, "still-watched")) and len(stats.skipped_kinds) == 3)
    assert sorted(stats.skipped_kinds) == ["Deployment.apps", "Secret", "Service"]
    problems = {p.where: p for p in stats.problems}
    assert problems["Secret"].kind == "forbidden"
    assert "no permission to list secrets cluster-wide" in problems["Secret"].message
    assert problems["Deployment.apps"].kind == "forbidden"
    assert problems["Deployment.apps"].message.startswith(
        "not watched: no permission to watch deployments.apps cluster-wide")
    assert problems["Service"].kind == "watch-failed"
    assert "failed 3 times in a row" in problems["Service"].message
    assert not any(e.resource.kind == "Secret" for e in run.events)
    assert run.close() < 1.0


def test_a_throttled_watch_waits_as_retry_after_says_and_goes_on(
        sandbox: Sandbox, cluster: Cluster, kinds: dict[str, APIResource],
        runs: Callable[[Watcher], Run]) -> None:
    stats = ListStats()
    run = runs(watcher(cluster, [kinds["ConfigMap"]], stats=stats, max_failures=1))
    [listed] = [e for e in run.listed() if e.type == "LISTED"]
    sandbox.faults.add(method="GET", path_regex=CM_WATCH, watch=True, status=429,
                       retry_after=1, times=2)
    sandbox.faults.drop_watch(path_regex=CM_WATCH)
    cut = time.monotonic()
    sandbox.apply(configmap("slow"), field_manager="test")
    events = run.wait_for(lambda evs: bool(of(evs, "slow")))
    assert time.monotonic() - cut >= 2.0  # two answers of Retry-After: 1
    assert stats.skipped_kinds == []  # throttling is no fault of the kind's
    assert sum(e.type == "LISTED" for e in events) == 1 and listed
    run.close()


def test_namespaces_named_by_the_scope_are_watched_one_by_one(
        sandbox: Sandbox, cluster: Cluster, kinds: dict[str, APIResource],
        runs: Callable[[Watcher], Run]) -> None:
    sandbox.load([configmap("a1", "team-a"), configmap("b1", "team-b"), configmap("c1", "team-c")])
    scope = ScopeConfig(include_namespaces=("team-a", "team-b"))
    run = runs(watcher(cluster, [kinds["ConfigMap"], kinds["Namespace"]], scope=scope))
    events = run.listed(3)
    listed = {(e.resource.kind, e.namespace): e for e in events if e.type == "LISTED"}
    assert set(listed) == {("ConfigMap", "team-a"), ("ConfigMap", "team-b"), ("Namespace", "")}
    assert listed["ConfigMap", "team-a"].keys == {cm_key("a1", "team-a"),
                                                 cm_key("kube-root-ca.crt", "team-a")}
    # Each namespace has its own position; the kind's is all of them.
    sandbox.apply(configmap("a2", "team-a"), field_manager="test")
    sandbox.apply(configmap("c2", "team-c"), field_manager="test")  # out of scope
    sandbox.apply(configmap("b2", "team-b"), field_manager="test")
    events = run.wait_for(lambda evs: {cm_key("a2", "team-a"), cm_key("b2", "team-b")}
                          <= {e.key for e in evs})
    # Each namespace's events come in order; between namespaces there is no order.
    a2 = next(e for e in events if e.key == cm_key("a2", "team-a"))
    b2 = next(e for e in events if e.key == cm_key("b2", "team-b"))
    last = events[-1]
    assert last in (a2, b2)
    assert last.resource_version == f"team-a={rv_of(a2.obj)},team-b={rv_of(b2.obj)}"
    assert not any(e.key and e.key.namespace == "team-c" for e in events)
    run.close()

    # That position resumes both namespaces where they were.
    sandbox.apply(configmap("a3", "team-a"), field_manager="test")
    resumed = runs(watcher(cluster, [kinds["ConfigMap"]], scope=scope,
                           resume={"ConfigMap": last.resource_version}))
    events = resumed.wait_for(lambda evs: bool(evs) and any(e.key for e in evs))
    assert [(e.type, e.key.name) for e in events if e.key] == [("ADDED", "a3")]
    resumed.close()


def test_stop_ends_every_stream_promptly(sandbox: Sandbox, cluster: Cluster,
                                         kinds: dict[str, APIResource],
                                         runs: Callable[[Watcher], Run]) -> None:
    from auditor.live.client import in_scope

    every = [r for r in kinds.values() if in_scope(r, ScopeConfig())]
    # One kind fails forever with a long backoff: stopping must not wait for it.
    sandbox.faults.add(method="GET", path_regex=CM_WATCH, watch=True, status=503)
    run = runs(watcher(cluster, every, backoff_max=30.0, max_failures=100))
    run.listed(len(every))
    time.sleep(0.3)
    assert run.close() < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("watch-")]


def test_over_tls_with_a_token_rbac_decides_what_is_watched(
        auth_sandbox: Callable[..., Sandbox], tmp_path: Path,
        runs: Callable[[Watcher], Run]) -> None:
    sb = auth_sandbox(users={"auditor": []}, rbac=True)
    sb.load([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "drift-watch"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "drift-watch"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "drift-watch"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": "auditor"}]},
    ])
    config = sb.write_kubeconfig(tmp_path / "auditor.kubeconfig", user="auditor")
    stats = ListStats()
    with Cluster(ClusterConfig(kubeconfig=str(config))) as tls:
        assert tls.server.startswith("https://")
        chosen = [r for r in tls.discover() if r.kind in ("ConfigMap", "Secret")]
        run = runs(watcher(tls, chosen, stats=stats))
        run.listed(2)
        sb.apply(configmap("over-tls"), field_manager="test")
        run.wait_for(lambda evs: bool(of(evs, "over-tls")) and bool(stats.skipped_kinds))
        assert stats.skipped_kinds == ["Secret"]
        [problem] = stats.problems
        assert problem.kind == "forbidden" and problem.message.startswith(
            "not watched: no permission to watch secrets cluster-wide")
        assert 'User "auditor" cannot watch resource "secrets"' in problem.message
        run.close()
