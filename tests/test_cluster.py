"""Live snapshot through the real `kubernetes` client against the sandbox over real HTTP,
including the faults a real API server produces (403, 410, 429, 5xx, unreachable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from auditor.config import ClusterConfig, ScopeConfig
from auditor.engine.records import ResourceKey
from auditor.errors import ClusterError, ClusterUnreachableError, ConfigError
from auditor.live.client import Cluster, ListStats, in_scope, iter_live
from auditor.live.snapshot import read_snapshot, write_list
from bench.synth import objects


def _cluster(kubeconfig: Path, **kw: Any) -> Cluster:
    sleeps: list[float] = []
    cluster = Cluster(ClusterConfig(kubeconfig=str(kubeconfig), **kw), sleep=sleeps.append)
    cluster.sleeps = sleeps  # type: ignore[attr-defined]
    return cluster


def _collect(cluster: Cluster, scope: ScopeConfig | None = None) -> tuple[dict[ResourceKey, dict[str, Any]], ListStats]:
    stats = ListStats()
    seen: dict[ResourceKey, dict[str, Any]] = {}
    for page in iter_live(cluster, scope or ScopeConfig(), stats=stats):
        for item in page.items:
            seen[ResourceKey.of(item)] = item
    return seen, stats


def test_discovery_prefers_group_versions_and_skips_subresources(sandbox: Any, kubeconfig: Path) -> None:
    with _cluster(kubeconfig) as cluster:
        resources = cluster.discover()
    by_kind = {(r.group, r.kind): r for r in resources}
    assert by_kind[("apps", "Deployment")].version == "v1"
    assert by_kind[("apps", "Deployment")].plural == "deployments"
    assert by_kind[("", "Namespace")].namespaced is False
    assert by_kind[("", "ConfigMap")].namespaced is True
    assert not any("/" in r.plural for r in resources)
    # Churn kinds are out of scope by default.
    scope = ScopeConfig()
    assert not in_scope(by_kind[("", "Event")], scope)
    assert not in_scope(by_kind[("coordination.k8s.io", "Lease")], scope)
    assert in_scope(by_kind[("apps", "Deployment")], scope)


def test_discovery_names_a_group_it_cannot_read(sandbox: Any, kubeconfig: Path) -> None:
    sandbox.faults.add(method="GET", path_regex=r"^/apis/apps/v1$", status=503)
    with _cluster(kubeconfig, retries=1) as cluster:
        resources = cluster.discover()
        assert list(cluster.undiscovered) == ["apps"]
        assert "/apis/apps/v1 failed with HTTP 503" in cluster.undiscovered["apps"]
    assert not any(r.group == "apps" for r in resources)
    assert any(r.kind == "ConfigMap" for r in resources)

    # The core group is no aggregated API: without it there is nothing worth auditing.
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1$", status=503)
    with _cluster(kubeconfig, retries=1) as cluster, \
            pytest.raises(ClusterError, match="/api/v1 failed with HTTP 503"):
        cluster.discover()


def test_lists_every_object_page_by_page_with_kind_and_apiversion(sandbox: Any, kubeconfig: Path) -> None:
    sandbox.load(objects(1200, namespaces=3))
    with _cluster(kubeconfig, page_size=100) as cluster:
        seen, stats = _collect(cluster)
    wanted = {ResourceKey.of(o) for o in objects(1200, namespaces=3)}
    assert wanted <= set(seen)
    dep = seen[ResourceKey("apps", "Deployment", "bench-00", "app-00000")]
    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment"
    assert dep["metadata"]["uid"] and dep["metadata"]["resourceVersion"]
    assert dep["metadata"]["managedFields"], "live objects carry managedFields"
    # 120 objects per kind at 100 a page: every kind took two pages.
    assert stats.pages >= 2 * 10
    assert stats.skipped_kinds == []


def test_forbidden_kind_is_skipped_and_named(sandbox: Any, kubeconfig: Path) -> None:
    sandbox.load(objects(40, namespaces=2))
    sandbox.faults.add(method="GET", path_regex=r"/api/v1/secrets", status=403, times=100)
    with _cluster(kubeconfig) as cluster:
        seen, stats = _collect(cluster)
    assert stats.skipped_kinds == ["Secret"]
    assert "forbidden" in stats.problems[0].message
    assert not any(k.kind == "Secret" for k in seen)
    assert any(k.kind == "ConfigMap" for k in seen)


def test_expired_continue_token_restarts_the_list(sandbox: Any, kubeconfig: Path) -> None:
    sandbox.load(objects(300, namespaces=1))
    sandbox.faults.expire_continue()
    with _cluster(kubeconfig, page_size=10) as cluster:
        seen, stats = _collect(cluster, ScopeConfig(include_kinds=("Deployment.apps",)))
    assert stats.restarts == 1
    assert len([k for k in seen if k.kind == "Deployment"]) == 30
    assert stats.skipped_kinds == []


def _handed_on(cluster: Cluster, scope: ScopeConfig) -> tuple[list[ResourceKey], ListStats]:
    """Every key in the order the pages handed it on, repeats kept."""
    stats = ListStats()
    keys = [ResourceKey.of(item) for page in iter_live(cluster, scope, stats=stats)
            for item in page.items]
    return keys, stats


@pytest.mark.parametrize("expiries", [1, 3])
def test_a_restarted_list_hands_on_each_object_once(sandbox: Any, kubeconfig: Path,
                                                    expiries: int) -> None:
    # Pages are streamed into the ledger and the comparison as they come: a restarted list
    # must not hand on again what the interrupted one already did.
    sandbox.load(objects(300, namespaces=1))
    wanted = {ResourceKey.of(o) for o in objects(300, namespaces=1) if o["kind"] == "ConfigMap"}
    for _ in range(expiries):
        # The restarted lists' tokens expire as well: each restart re-reads what was handed on.
        sandbox.faults.expire_continue(path_regex=r"/configmaps$")
    with _cluster(kubeconfig, page_size=4, retries=3) as cluster:
        keys, stats = _handed_on(cluster, ScopeConfig(include_kinds=("ConfigMap",)))
    assert stats.restarts == expiries and stats.skipped_kinds == []
    assert len(keys) == len(set(keys)), "no object handed on twice"
    assert wanted <= set(keys), "nothing lost"
    assert stats.objects == len(keys)


def test_a_restart_hands_on_what_changed_meanwhile_once(sandbox: Any, kubeconfig: Path) -> None:
    sandbox.load(objects(100, namespaces=1))
    with _cluster(kubeconfig, page_size=3) as cluster:
        resource = next(r for r in cluster.discover() if r.kind == "ConfigMap")
        pages = cluster.list_pages(resource)
        first = [ResourceKey.of(o) for o in next(pages).items]
        # Between two pages: one object deleted, one created before the list's position,
        # one after it, and the continue token expires.
        sandbox.store.delete(sandbox.resource_for("v1", "ConfigMap"), first[1].namespace,
                             first[1].name)
        sandbox.load([{"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": first[0].namespace}}
                      for name in ("0-early", "zz-late")])
        sandbox.faults.expire_continue()
        rest = [ResourceKey.of(o) for page in pages for o in page.items]
    keys = first + rest
    assert len(keys) == len(set(keys))
    names = {k.name for k in keys}
    assert {"0-early", "zz-late"} <= names, "created during the list: in the restarted one"
    live = {(o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in orjson.loads(sandbox.store.list_bytes(
                sandbox.resource_for("v1", "ConfigMap"), None))["items"]}
    assert live <= {(k.namespace, k.name) for k in keys}, "every object live at the end"


@pytest.mark.parametrize("continued", [False, True], ids=["first page", "continuation"])
def test_a_kind_whose_list_hangs_is_skipped(sandbox: Any, kubeconfig: Path,
                                            continued: bool) -> None:
    sandbox.load(objects(40, namespaces=2))
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/configmaps$", delay=1.5,
                       continued=continued)
    with _cluster(kubeconfig, page_size=2, timeout_seconds=0.5, retries=1) as cluster:
        seen, stats = _collect(cluster)
    assert stats.skipped_kinds == ["ConfigMap"]
    [problem] = stats.problems
    assert problem.where == "ConfigMap" and "timed out after 0.5s (2 attempts)" in problem.message
    assert any(k.kind == "Deployment" for k in seen) and any(k.kind == "Secret" for k in seen)


def test_a_dropped_connection_is_retried_then_skips_the_kind(sandbox: Any,
                                                             kubeconfig: Path) -> None:
    sandbox.load(objects(40, namespaces=2))
    wanted = {ResourceKey.of(o) for o in objects(40, namespaces=2)}
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/configmaps$", drop=True, times=1,
                       continued=True)
    with _cluster(kubeconfig, page_size=2) as cluster:
        keys, stats = _handed_on(cluster, ScopeConfig())
    assert stats.skipped_kinds == [] and stats.retries == 1
    assert len(keys) == len(set(keys)) and wanted <= set(keys)

    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/configmaps$", drop=True)
    with _cluster(kubeconfig, page_size=2, retries=1) as cluster:
        _, stats = _collect(cluster)
    assert stats.skipped_kinds == ["ConfigMap"]
    assert "connection dropped" in stats.problems[0].message


def test_a_server_that_stops_answering_mid_run_is_unreachable(sandbox: Any,
                                                              kubeconfig: Path) -> None:
    sandbox.load(objects(20, namespaces=1))
    with _cluster(kubeconfig, timeout_seconds=0.5, retries=0) as cluster:
        resources = [r for r in cluster.discover() if in_scope(r, ScopeConfig())]
        sandbox.faults.add(method="GET", delay=1.5)  # everything, from now on
        with pytest.raises(ClusterUnreachableError, match="stopped answering while listing"):
            for _ in iter_live(cluster, ScopeConfig(), stats=ListStats(), resources=resources):
                pass


def test_429_honours_retry_after_and_5xx_retry_with_a_bound(sandbox: Any, kubeconfig: Path) -> None:
    sandbox.load(objects(20, namespaces=1))
    sandbox.faults.add(method="GET", path_regex=r"/api/v1/configmaps", status=429, times=2,
                       retry_after=3)
    sandbox.faults.add(method="GET", path_regex=r"/api/v1/services", status=503, times=2)
    with _cluster(kubeconfig, concurrency=1) as cluster:
        seen, stats = _collect(cluster)
        sleeps = cluster.sleeps  # type: ignore[attr-defined]
    assert sleeps.count(3.0) == 2
    assert stats.retries == 4
    assert any(k.kind == "ConfigMap" for k in seen) and any(k.kind == "Service" for k in seen)

    sandbox.faults.add(method="GET", path_regex=r"/api/v1/services", status=500, times=100)
    with _cluster(kubeconfig, retries=2) as cluster:
        seen, stats = _collect(cluster)
    assert stats.skipped_kinds == ["Service"]
    assert "HTTP 500" in stats.problems[0].message


def test_unreachable_api_is_one_clear_error(dead_kubeconfig: Path) -> None:
    port = dead_kubeconfig.read_text().split("127.0.0.1:")[1].split('"')[0]
    with _cluster(dead_kubeconfig, retries=1) as cluster, \
            pytest.raises(ClusterUnreachableError) as err:
        cluster.discover()
    assert "connection refused" in str(err.value)
    assert port in str(err.value)


def test_bad_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        Cluster(ClusterConfig(kubeconfig=str(tmp_path / "missing")))


GOOD_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.parametrize(("text", "context", "says"), [
    ("apiVersion: v1\nclusters: [\n  - name: c\n", "", "line 3: invalid YAML"),
    ("apiVersion: v1\nusers:\n\tname: u\n", "", "line 3: invalid YAML"),
    ("", "", "empty"),
    ("- just\n- a list\n", "", "not a valid kubeconfig"),
    ("a string\n", "", "not a valid kubeconfig"),
    (GOOD_KUBECONFIG.replace("clusters: [", "clusters: 5 #"), "", "not a valid kubeconfig"),
    (GOOD_KUBECONFIG.replace("current-context: x\n", ""), "", "current-context"),
    (GOOD_KUBECONFIG, "elsewhere", "elsewhere"),
    (None, "", "file not found"),
], ids=["unclosed flow", "tab", "empty", "list", "string", "wrong type", "no current context",
        "unknown context", "missing file"])
def test_a_bad_kubeconfig_is_one_line_naming_the_file(tmp_path: Path, text: str | None,
                                                      context: str, says: str) -> None:
    path = tmp_path / "kubeconfig"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Cluster(ClusterConfig(kubeconfig=str(path), context=context))
    message = str(err.value)
    assert str(path) in message and says in message, message
    assert "\n" not in message


def test_snapshot_file_round_trips_and_hides_secret_values(sandbox: Any, kubeconfig: Path,
                                                           tmp_path: Path) -> None:
    sandbox.load(objects(50, namespaces=2))
    out = tmp_path / "snap.json"
    with _cluster(kubeconfig) as cluster, out.open("wb") as fh:
        stats = ListStats()
        written = write_list(iter_live(cluster, ScopeConfig(), stats=stats), fh,
                             secret_key=b"k" * 32)
    doc = orjson.loads(out.read_bytes())
    assert doc["kind"] == "List" and len(doc["items"]) == written.objects
    keys = [ResourceKey.of(o) for o in doc["items"]]
    assert keys == sorted(keys), "snapshot output is sorted by key"
    assert b"cHctM" not in out.read_bytes(), "no base64 Secret value in the snapshot"
    secret = next(o for o in doc["items"] if o["kind"] == "Secret")
    assert secret["data"]["password"].startswith("hmac-sha256:")
    assert [ResourceKey.of(o) for o in read_snapshot(out)] == keys


def test_snapshot_cli_writes_a_list(sandbox: Any, kubeconfig: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from auditor.cli import main

    sandbox.load(objects(30, namespaces=1))
    out = tmp_path / "live.json"
    result = CliRunner().invoke(main, ["--config", "/dev/null", "snapshot", "--kubeconfig",
                                       str(kubeconfig), "--output-file", str(out)],
                                env={"DRIFT_AUDITOR_LEDGER_PATH": str(tmp_path / "l.db")})
    assert result.exit_code == 0, result.output
    items = orjson.loads(out.read_bytes())["items"]
    assert {o["kind"] for o in items} >= {"Deployment", "Service", "ConfigMap", "Namespace"}
    assert (tmp_path / "l.key").exists(), "the Secret hash key is created beside the ledger"


def test_snapshot_cli_unreachable_exits_2(tmp_path: Path, dead_kubeconfig: Path) -> None:
    from click.testing import CliRunner

    from auditor.cli import main

    kubeconfig = dead_kubeconfig
    result = CliRunner().invoke(main, ["--config", "/dev/null", "snapshot", "--kubeconfig",
                                       str(kubeconfig)],
                                env={"DRIFT_AUDITOR_CLUSTER_RETRIES": "0",
                                     "DRIFT_AUDITOR_LEDGER_PATH": str(tmp_path / "l.db")})
    assert result.exit_code == 2
    assert "drift-auditor: error:" in result.output and "127.0.0.1:" in result.output


def test_a_value_that_only_looks_hashed_is_still_redacted() -> None:
    from auditor.engine.normalise import secret_hash
    from auditor.live.snapshot import redact_secret

    key = b"k" * 32
    looks = "hmac-sha256:my-real-password"
    real = secret_hash(b"x", key)
    out = redact_secret({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "s", "namespace": "n"},
                         "stringData": {"a": looks, "b": real}}, key)
    assert out["stringData"]["a"] != looks and out["stringData"]["a"].startswith("hmac-sha256:")
    assert out["stringData"]["b"] == real, "a hash from an earlier snapshot passes through"
