"""API faults by phase (discovery, a list's first page, a continuation) and by kind (403, an
expired continue token, 429 with Retry-After, 5xx, a hang longer than the client's timeout, a
connection cut mid-response), each run through the real pipeline against the sandbox with a
Git folder synced as a GitOps controller would, and through the real CLI where the exit status
and the one-line error are the behaviour.

What must hold whatever the fault: no object judged twice; every object of the kinds that
listed is judged; a kind that could not be listed is named as skipped, none of its objects is
missing or orphan and none of its drifts is opened or resolved, and the run is partial; a
cluster that does not answer at all is one readable line and exit 2.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.ledger import reading, runs
from auditor.sandbox import Sandbox

from .apishop import (
    HANG_SECONDS,
    TIMEOUT_SECONDS,
    Install,
    Shop,
    assert_complete,
    assert_kind_skipped,
    build_shop,
    install,
)

pytestmark = pytest.mark.kubectl

CONFIGMAPS = r"^/api/v1/configmaps$"
PHASES = {"first page": False, "continuation": True}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with Sandbox() as sandbox:
        yield build_shop(tmp_path_factory.mktemp("shop"), sandbox)


@pytest.fixture
def inst(shop: Shop, tmp_path: Path) -> Iterator[Install]:
    shop.sandbox.faults.clear()
    yield install(shop, tmp_path / "install")
    shop.sandbox.faults.clear()


def _one_error_line(stderr: str) -> str:
    """The error, on the one line ``-q`` leaves on stderr."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("drift-auditor: error: "), stderr
    return lines[0]


# ------------------------------------------------------------- a list's pages


# (fault, how to add it, what the skipped kind's problem says); ``None``: the list recovers.
FAULTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "403": ({"status": 403}, "forbidden"),
    "429 once": ({"status": 429, "retry_after": 1, "times": 1}, None),
    "429 on and on": ({"status": 429, "retry_after": 1}, "HTTP 429"),
    "503 once": ({"status": 503, "times": 1}, None),
    "500 on and on": ({"status": 500}, "HTTP 500"),
    "hang once": ({"delay": HANG_SECONDS, "times": 1}, None),
    "hang on and on": ({"delay": HANG_SECONDS}, "timed out"),
    "drop once": ({"drop": True, "times": 1}, None),
    "drop on and on": ({"drop": True}, "connection dropped"),
}


def _cases() -> Iterator[Any]:
    for fault in FAULTS:
        for phase in PHASES:
            yield pytest.param(fault, phase, id=f"{fault}-{phase}")


@pytest.mark.parametrize(("fault", "phase"), list(_cases()))
def test_a_fault_listing_one_kind(inst: Install, fault: str, phase: str) -> None:
    rule, skipped = FAULTS[fault]
    if "delay" in rule:
        inst.expect_hangs()
    inst.shop.sandbox.faults.add(method="GET", path_regex=CONFIGMAPS,
                                 continued=PHASES[phase], **rule)
    before = inst.drifts()
    started = time.monotonic()
    outcome = inst.run()
    if skipped is None:
        assert_complete(inst.shop, outcome)
        if "retry_after" in rule:
            assert time.monotonic() - started >= rule["retry_after"], "Retry-After honoured"
        return
    assert_kind_skipped(inst.shop, outcome, "ConfigMap", before, inst.drifts(), skipped)
    # The next run, with the fault gone, judges what this one could not: the drift fixed
    # live resolves, the new one opens, exactly once each.
    inst.shop.sandbox.faults.clear()
    assert_complete(inst.shop, inst.run())


@pytest.mark.parametrize("after", [0, 3], ids=["on page 2", "on page 5"])
def test_an_expired_continue_token_restarts_the_list_without_repeating_it(
        inst: Install, after: int) -> None:
    # On page 5, every ConfigMap of the shop has been handed on before the list restarts.
    inst.shop.sandbox.faults.expire_continue(path_regex=CONFIGMAPS, after=after)
    outcome = inst.run()
    assert_complete(inst.shop, outcome)
    assert outcome.audit.live_stats.restarts == 1
    # Nothing false was opened, so the next run has nothing to resolve.
    following = inst.run()
    assert following.ledger["drifts_opened"] == 0
    assert following.ledger["drifts_resolved"] == {}


def test_a_continue_token_that_keeps_expiring_skips_the_kind(inst: Install) -> None:
    inst.shop.sandbox.faults.expire_continue(times=100, path_regex=CONFIGMAPS)
    before = inst.drifts()
    outcome = inst.run()
    assert_kind_skipped(inst.shop, outcome, "ConfigMap", before, inst.drifts(), "HTTP 410")


def test_a_hanging_kind_is_named_by_the_cli_and_the_run_is_partial(inst: Install) -> None:
    inst.expect_hangs()
    inst.shop.sandbox.faults.add(method="GET", path_regex=CONFIGMAPS, delay=HANG_SECONDS)
    proc = inst.cli("run", "--desired", str(inst.shop.apps))
    assert proc.returncode not in (0, 2), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ConfigMap" in proc.stdout and "skipped" in proc.stdout, proc.stdout
    with reading(inst.ledger) as conn:
        last = runs(conn, limit=1)[0]
    assert last["status"] == "partial" and last["skipped_kinds"] == ["ConfigMap"]


# ----------------------------------------------------------------- discovery


DISCOVERY_RECOVERS: dict[str, dict[str, Any]] = {
    "429 once": {"status": 429, "retry_after": 1, "times": 1},
    "503 once": {"status": 503, "times": 1},
    "hang once": {"delay": HANG_SECONDS, "times": 1},
    "drop once": {"drop": True, "times": 1},
}


@pytest.mark.parametrize("fault", list(DISCOVERY_RECOVERS))
def test_discovery_recovers_from_a_passing_fault(inst: Install, fault: str) -> None:
    if "delay" in DISCOVERY_RECOVERS[fault]:
        inst.expect_hangs()
    inst.shop.sandbox.faults.add(method="GET", path_regex=r"^/apis?$",
                                 **DISCOVERY_RECOVERS[fault])
    assert_complete(inst.shop, inst.run())


# (path, fault, what the one line says)
DISCOVERY_FAILS: dict[str, tuple[str, dict[str, Any], str]] = {
    "403": (r"^/api$", {"status": 403}, "discovery failed with HTTP 403"),
    "500 on and on": (r"^/apis$", {"status": 500}, "discovery failed with HTTP 500"),
    "core 503 on and on": (r"^/api/v1$", {"status": 503},
                           "discovery of /api/v1 failed with HTTP 503"),
    "hang on and on": (r"^/api$", {"delay": HANG_SECONDS},
                       f"timed out after {TIMEOUT_SECONDS:g}s (GET /api)"),
    "drop on and on": (r"^/apis$", {"drop": True}, "connection dropped"),
}


@pytest.mark.parametrize("fault", list(DISCOVERY_FAILS))
def test_discovery_that_keeps_failing_is_one_line_and_exit_2(inst: Install, fault: str) -> None:
    path, rule, fragment = DISCOVERY_FAILS[fault]
    if "delay" in rule:
        inst.expect_hangs()
    inst.shop.sandbox.faults.add(method="GET", path_regex=path, **rule)
    before = inst.drifts()
    with reading(inst.ledger) as conn:
        recorded = len(runs(conn, limit=100))
    proc = inst.cli("run", "--desired", str(inst.shop.apps))
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert fragment in line and inst.shop.sandbox.url in line, line
    with reading(inst.ledger) as conn:
        assert len(runs(conn, limit=100)) == recorded, "no run begins without discovery"
    assert inst.drifts() == before


def test_a_group_that_discovery_cannot_read_is_skipped_not_missing(inst: Install) -> None:
    # An aggregated API that is down answers 503 for its group version: the rest is audited,
    # and its kinds are unknown this run, not gone.
    inst.shop.sandbox.faults.add(method="GET", path_regex=r"^/apis/apps/v1$", status=503)
    before = inst.drifts()
    outcome = inst.run()
    assert_kind_skipped(inst.shop, outcome, "Deployment.apps", before, inst.drifts(),
                        "/apis/apps/v1 failed with HTTP 503")


def test_a_server_that_stops_answering_after_discovery_fails_the_run(inst: Install) -> None:
    # Every list and every other request hangs once discovery is done: the cluster is gone,
    # not one kind.
    inst.expect_hangs()
    inst.shop.sandbox.faults.add(method="GET", path_regex=r"^/(api/v1|apis/[^/]+/[^/]+)/[a-z]+$"
                                 r"|^/version$", delay=HANG_SECONDS)
    before = inst.drifts()
    proc = inst.cli("run", "--desired", str(inst.shop.apps))
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "stopped answering" in line and "timed out" in line, line
    with reading(inst.ledger) as conn:
        assert runs(conn, limit=1)[0]["status"] == "failed"
    assert inst.drifts() == before
