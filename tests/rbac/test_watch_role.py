"""``deploy/rbac/watch.yaml`` is what ``drift-auditor watch`` needs beside cronjob.yaml's read
role, proven in-cluster as the ServiceAccount against an API server that enforces RBAC:
without it every kind is listed but named as not watched; with it every kind is watched and
every request the watch makes is allowed."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import kubernetes_validate
import pytest

from . import kit

pytestmark = pytest.mark.kubectl

WATCH_RBAC = kit.ROOT / "deploy" / "rbac" / "watch.yaml"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kit.Cluster,
                                                                         pathlib.Path,
                                                                         dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("watch-role")
    with kit.cluster(tmp) as cluster:
        cluster.apply(kit.CRONJOB)
        repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": kit.SHOP})
        cluster.apply(repo / "apps" / "shop.yaml", server_side_as=kit.GITOPS_MANAGER)
        config = kit.write_config(tmp / "drift-auditor.yaml", kit.shipped_config())
        yield cluster, config, kit.pod_env(tmp, repo)


def test_the_watch_role_grants_watch_on_exactly_the_read_roles_kinds() -> None:
    docs = kit.documents(WATCH_RBAC)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.35.0", strict=True)
    watch_role = kit.one(docs, "ClusterRole", "drift-auditor-watch")
    read_role = kit.one(kit.documents(kit.CRONJOB), "ClusterRole", "drift-auditor-read")
    assert {(g, r) for v, g, r in kit.grants(watch_role) if v == "watch"} == \
        {(g, r) for _, g, r in kit.grants(read_role)}
    assert {v for v, _, _ in kit.grants(watch_role)} == {"watch"}


def test_without_the_role_each_kind_is_named_and_with_it_all_are_watched(
        installed: tuple[kit.Cluster, pathlib.Path, dict[str, str]]) -> None:
    cluster, config, env = installed
    # The scheduled run first: the ledger's volume exists as the Deployment would find it.
    first = cluster.pod_run(*kit.cronjob_args(), config=config, env=env)
    assert first.returncode in (0, 1), first.stderr

    refused = cluster.pod_run("watch", "--for", "4", config=config, env=env)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert "not watched" in refused.stderr and "forbidden" in refused.stderr

    cluster.apply(WATCH_RBAC)
    start = cluster.mark()
    watched = cluster.pod_run("watch", "--for", "4", config=config, env=env)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.startswith("watch stopped:"), watched.stdout
    assert "problem:" not in watched.stderr
    # A watch is long-running: its events begin at ResponseStarted (the 200 and the stream).
    requests = [e for e in kit.read_events(cluster.log)[start:]
                if e["user"]["username"] == kit.SA_USER
                and e["stage"] in ("ResponseStarted", "ResponseComplete")]
    watches = {e["objectRef"]["resource"] for e in requests if e["verb"] == "watch"}
    # Resumed from the positions the refused watch's lists left: watches, no list needed.
    read_role = kit.one(kit.documents(kit.CRONJOB), "ClusterRole", "drift-auditor-read")
    assert watches == {r for _, _, r in kit.grants(read_role)}
    assert all(e["responseStatus"]["code"] == 200 for e in requests), \
        [(e["requestURI"], e["responseStatus"]) for e in requests
         if e["responseStatus"]["code"] != 200]
