"""Tailing an audit log file (:mod:`auditor.live.audittail`): real files in a temporary
directory, written and rotated as kube-apiserver's lumberjack and logrotate do, and one real
audit log written by the sandbox for real kubectl 1.35 requests."""

from __future__ import annotations

import os
import pathlib
import shutil
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from auditor.live.audittail import AuditTail, TailBatch, decode_position, encode_position
from auditor.sandbox import AuditConfig, Sandbox

API = "audit.k8s.io/v1"
LUMBERJACK_BACKUP = "audit-2026-12-07T14-26-23.123.log"


def event(n: int) -> dict[str, Any]:
    """One Metadata event as kube-apiserver's log backend writes it."""
    return {"kind": "Event", "apiVersion": API, "level": "Metadata",
            "auditID": f"00000000-0000-4000-8000-{n:012d}", "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/default/configmaps/cm-{n}", "verb": "update",
            "user": {"username": "alice", "groups": ["dev", "system:authenticated"]},
            "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.35.0 (linux/amd64)",
            "objectRef": {"resource": "configmaps", "namespace": "default",
                          "name": f"cm-{n}", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2026-12-07T14:26:23.123456Z",
            "stageTimestamp": "2026-12-07T14:26:23.125456Z",
            "annotations": {"authorization.k8s.io/decision": "allow",
                            "authorization.k8s.io/reason": ""}}


def line(n: int) -> bytes:
    return orjson.dumps(event(n)) + b"\n"


def write(path: pathlib.Path, *numbers: int, raw: bytes = b"") -> None:
    """Append events (then raw bytes) as a writer holding the file open in append mode."""
    with path.open("ab") as f:
        f.write(b"".join(line(n) for n in numbers) + raw)


def numbers(batch: TailBatch | list[dict[str, Any]]) -> list[int]:
    events = batch.events if isinstance(batch, TailBatch) else batch
    return [int(e["auditID"].rsplit("-", 1)[1]) for e in events]


def read_all(tail: AuditTail, max_events: int = 5000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = tail.read(max_events)
        if not batch.events:
            return out
        out.extend(batch.events)


def offset_of(position: str) -> int:
    decoded = decode_position(position)
    assert decoded is not None
    return decoded[2]


def same_file(position: str, path: pathlib.Path) -> bool:
    decoded = decode_position(position)
    info = path.stat()
    return decoded is not None and decoded[:2] == (info.st_dev, info.st_ino)


def set_mtime(path: pathlib.Path, seconds_ago: float) -> None:
    # File times come from a coarse clock: rotations in one test would share them.
    stamp = path.stat().st_mtime - seconds_ago
    os.utime(path, (stamp, stamp))


@pytest.fixture
def log(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "audit.log"


# -- reading -----------------------------------------------------------------------------------


def test_events_in_file_order_with_the_position_after_them(log: pathlib.Path) -> None:
    write(log, *range(10))
    with AuditTail(log) as tail:
        batch = tail.read()
        assert numbers(batch) == list(range(10))
        assert batch.events[0] == event(0)
        assert (batch.skipped, batch.problems, batch.rotated) == (0, (), False)
        info = log.stat()
        assert batch.position == encode_position(info.st_dev, info.st_ino, info.st_size)
        assert tail.position == batch.position
        empty = tail.read()
        assert empty.events == [] and empty.position == batch.position
        write(log, 10, 11)
        assert numbers(tail.read()) == [10, 11]


def test_a_partial_last_line_waits_for_its_newline(log: pathlib.Path) -> None:
    whole = line(2)
    write(log, 0, 1, raw=whole[:100])
    with AuditTail(log) as tail:
        batch = tail.read()
        assert numbers(batch) == [0, 1] and batch.skipped == 0
        assert offset_of(batch.position) == len(line(0)) + len(line(1))
        assert tail.read().events == []
        write(log, raw=whole[100:-1])  # the whole object, still without its newline
        batch = tail.read()
        assert batch.events == [] and batch.skipped == 0
        assert offset_of(batch.position) == len(line(0)) + len(line(1))
        write(log, raw=b"\n")
        batch = tail.read()
        assert numbers(batch) == [2] and offset_of(batch.position) == log.stat().st_size


def test_resume_from_a_position_in_the_middle_of_the_file(log: pathlib.Path) -> None:
    write(log, *range(10))
    with AuditTail(log) as tail:
        first = tail.read(max_events=4)
    assert numbers(first) == [0, 1, 2, 3]
    assert offset_of(first.position) == 4 * len(line(0))
    with AuditTail(log, position=first.position) as tail:
        rest = tail.read()
    assert numbers(rest) == list(range(4, 10)) and rest.problems == ()


def test_reading_in_sevens_equals_one_read_and_every_position_resumes_exactly(
        log: pathlib.Path) -> None:
    write(log, *range(100))
    with AuditTail(log) as tail:
        whole = tail.read(max_events=1000)
    assert numbers(whole) == list(range(100))
    seen: list[int] = []
    positions: list[str] = []
    with AuditTail(log) as tail:
        while True:
            batch = tail.read(max_events=7)
            if not batch.events:
                break
            assert len(batch.events) == 7 or len(seen) + len(batch.events) == 100
            seen.extend(numbers(batch))
            positions.append(batch.position)
    assert seen == list(range(100)) and positions[-1] == whole.position
    # A process killed after committing any batch resumes with the next event.
    for i, position in enumerate(positions):
        with AuditTail(log, position=position) as tail:
            assert numbers(read_all(tail)) == list(range(min(7 * (i + 1), 100), 100))


def test_each_read_reads_a_bounded_number_of_bytes(log: pathlib.Path) -> None:
    write(log, *range(30))
    size = len(line(0))
    with AuditTail(log, max_bytes_per_read=3 * size + 10) as tail:
        counts = []
        while True:
            batch = tail.read()
            if not batch.events:
                break
            counts.append(len(batch.events))
        assert sum(counts) == 30 and max(counts) <= 4 and tail.read().events == []


def test_lines_that_are_not_json_objects_are_skipped_and_counted(log: pathlib.Path) -> None:
    write(log, 0, raw=b'not json\n[1, 2]\n42\n\n   \n{"kind": "Event", "trunc\n')
    write(log, 1)
    with AuditTail(log) as tail:
        batch = tail.read()
    assert numbers(batch) == [0, 1]
    assert batch.skipped == 4  # blank lines are passed over, not counted
    [problem] = batch.problems
    assert problem.startswith(f"audit log {log}: 4 line(s) that are not JSON objects skipped")
    assert f"at offset {len(line(0))} of inode" in problem


def test_an_over_long_line_is_skipped_without_being_held(log: pathlib.Path) -> None:
    huge = b'{"kind":"Event","pad":"' + b"x" * (24 << 20) + b'"}\n'
    write(log, 0, raw=huge)
    write(log, 1)
    tracemalloc.start()
    try:
        with AuditTail(log, max_line=64 << 10, max_bytes_per_read=64 << 20) as tail:
            batch = tail.read()
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert numbers(batch) == [0, 1] and batch.skipped == 1
    assert batch.problems == (f"audit log {log}: line at offset {len(line(0))} of inode "
                              f"{log.stat().st_ino} longer than 65536 bytes skipped",)
    assert peak < 6 << 20, f"peak {peak} bytes for a 24 MiB line"


def test_a_position_never_points_into_an_over_long_line(log: pathlib.Path) -> None:
    head = b'{"kind":"Event","pad":"' + b"y" * 5000
    write(log, 0, raw=head)
    with AuditTail(log, max_line=1000) as tail:
        batch = tail.read()
        assert numbers(batch) == [0] and batch.skipped == 0
        assert offset_of(batch.position) == len(line(0))  # the long line's start
        write(log, raw=b"y" * 5000)
        assert tail.read().events == [] and offset_of(tail.position) == len(line(0))
        # "yyy…{event 1}\n": the long line ends with event 1's newline, event 1 within it.
        write(log, 1, 2)
        batch = tail.read()
        assert numbers(batch) == [2] and batch.skipped == 1
        assert batch.position == tail.position
        assert offset_of(batch.position) == log.stat().st_size


def test_a_missing_file_is_picked_up_when_it_appears(log: pathlib.Path) -> None:
    with AuditTail(log) as tail:
        batch = tail.read()
        assert batch.events == [] and batch.problems == (f"audit log {log}: not found (yet)",)
        assert tail.read().problems == ()  # said once
        assert decode_position(batch.position) == (0, 0, 0)
        write(log, 0, 1)
        batch = tail.read()
        assert numbers(batch) == [0, 1] and batch.problems == ()
        assert same_file(batch.position, log)
    # A position taken before the file existed means its start.
    write(log, 2)
    with AuditTail(log, position=encode_position(0, 0, 0)) as tail:
        assert numbers(tail.read()) == [0, 1, 2]


def test_a_malformed_position_is_a_problem_not_an_error(log: pathlib.Path) -> None:
    write(log, 0, 1)
    for bad in ("", "v1:1:2", "v9:1:2:3", "v1:a:b:c", "v1:1:2:-3", "garbage"):
        with AuditTail(log, position=bad) as tail:
            batch = tail.read()
        assert numbers(batch) == [0, 1]
        assert batch.problems == (f"audit log {log}: position {bad!r} not understood; reading "
                                  "the current file from the start",)


def test_a_position_off_a_line_start_reads_that_file_from_its_start(
        log: pathlib.Path) -> None:
    # What a reused inode looks like: a position the file's lines do not fall on.
    write(log, 0, 1)
    info = log.stat()
    with AuditTail(log, position=encode_position(info.st_dev, info.st_ino, 10)) as tail:
        batch = tail.read()
    assert numbers(batch) == [0, 1]
    assert "does not fall at a line start of audit.log" in batch.problems[0]


def test_read_after_close_and_bad_arguments() -> None:
    tail = AuditTail("/nonexistent/audit.log")
    tail.close()
    with pytest.raises(ValueError):
        tail.read()
    with pytest.raises(ValueError):
        AuditTail("/nonexistent/audit.log").read(0)
    with pytest.raises(ValueError):
        AuditTail("/x", max_line=0)


# -- rotation ----------------------------------------------------------------------------------


def lumberjack_rotate(log: pathlib.Path, backup: str = LUMBERJACK_BACKUP) -> pathlib.Path:
    """lumberjack's openNew: rename the file aside, create the name afresh (O_TRUNC)."""
    target = log.with_name(backup)
    log.rename(target)
    log.open("wb").close()
    return target


def test_rename_rotation_while_reading_loses_and_repeats_nothing(log: pathlib.Path) -> None:
    write(log, *range(5))
    with AuditTail(log) as tail:
        assert numbers(tail.read(max_events=3)) == [0, 1, 2]
        # The writer goes on in the old file, then rotates and writes in the new one.
        write(log, 5, 6)
        backup = lumberjack_rotate(log)
        write(log, 7, 8, 9)
        batch = tail.read()
        assert numbers(batch) == [3, 4, 5, 6, 7, 8, 9]
        assert batch.rotated and batch.problems == ()
        assert same_file(batch.position, log)
        assert offset_of(batch.position) == log.stat().st_size
        write(log, 10)
        later = tail.read()
        assert numbers(later) == [10] and not later.rotated
    assert backup.exists()


def test_a_write_between_the_end_seen_and_the_rename_is_not_lost(log: pathlib.Path) -> None:
    write(log, 0, 1)
    with AuditTail(log) as tail:
        assert numbers(tail.read()) == [0, 1]  # at the end of the old file
        write(log, 2)  # lands in the old file after the end was seen
        lumberjack_rotate(log)
        write(log, 3)
        batch = tail.read()
        assert numbers(batch) == [2, 3] and batch.rotated


def test_the_path_vanishing_then_reappearing(log: pathlib.Path) -> None:
    write(log, 0, 1)
    with AuditTail(log) as tail:
        assert numbers(tail.read(max_events=1)) == [0]
        log.rename(log.with_name("audit.log.1"))  # logrotate: renamed, not yet created
        batch = tail.read()
        assert numbers(batch) == [1] and not batch.rotated and batch.problems == ()
        assert tail.read().events == []
        write(log, 2)
        batch = tail.read()
        assert numbers(batch) == [2] and batch.rotated


def test_a_partial_line_left_in_a_rotated_file_is_skipped(log: pathlib.Path) -> None:
    write(log, 0, raw=line(1)[:50])
    with AuditTail(log) as tail:
        assert numbers(tail.read()) == [0]
        lumberjack_rotate(log)
        write(log, 2)
        batch = tail.read()
        assert numbers(batch) == [2] and batch.skipped == 1 and batch.rotated
        assert "incomplete last line" in batch.problems[0]


@pytest.mark.parametrize("backup", [LUMBERJACK_BACKUP, "audit.log.1", "audit.log-20261207"])
def test_resume_from_a_position_in_a_file_rotated_away(log: pathlib.Path,
                                                       backup: str) -> None:
    write(log, *range(10))
    with AuditTail(log) as tail:
        position = tail.read(max_events=3).position
    lumberjack_rotate(log, backup)
    write(log, 10, 11)
    with AuditTail(log, position=position) as tail:
        batch = tail.read()
        assert numbers(batch) == list(range(3, 12))
        assert batch.rotated and batch.problems == ()
        assert same_file(batch.position, log)


def test_resume_several_rotations_behind_reads_each_backup_in_turn(
        log: pathlib.Path) -> None:
    write(log, *range(5))
    with AuditTail(log) as tail:
        position = tail.read(max_events=2).position
    first = lumberjack_rotate(log, "audit-2026-12-07T14-00-00.000.log")
    write(log, 5, 6)
    second = lumberjack_rotate(log, "audit-2026-12-07T15-00-00.000.log")
    write(log, 7)
    # An older backup, and a compressed one: neither read.
    older = log.with_name("audit-2026-12-06T09-00-00.000.log")
    write(older, 900)
    write(log.with_name("audit-2026-12-06T08-00-00.000.log.gz"), 901)
    write(log.with_name("audit-policy.yaml"), 902)
    set_mtime(older, 300)
    set_mtime(first, 200)
    set_mtime(second, 100)
    with AuditTail(log, position=position) as tail:
        assert numbers(read_all(tail)) == [2, 3, 4, 5, 6, 7]
    # The same, tailing: the reader was at the end of the first file when both happened.
    log2 = log.with_name("b.log")
    write(log2, 0)
    with AuditTail(log2) as tail:
        assert numbers(tail.read()) == [0]
        write(log2, 1)
        first = lumberjack_rotate(log2, "b-2026-12-07T14-00-00.000.log")
        write(log2, 2)
        second = lumberjack_rotate(log2, "b-2026-12-07T15-00-00.000.log")
        write(log2, 3)
        set_mtime(first, 200)
        set_mtime(second, 100)
        batch = tail.read()
        assert numbers(batch) == [1, 2, 3] and batch.rotated


def test_a_rotated_file_deleted_or_compressed_is_a_problem_and_the_tail_goes_on(
        log: pathlib.Path) -> None:
    write(log, *range(6))
    with AuditTail(log) as tail:
        position = tail.read(max_events=2).position
    backup = lumberjack_rotate(log)
    write(log, 6, 7)
    # lumberjack --audit-log-compress: a new .gz file, the original removed.
    shutil.copyfile(backup, str(backup) + ".gz")
    backup.unlink()
    with AuditTail(log, position=position) as tail:
        batch = tail.read()
    assert numbers(batch) == [6, 7]
    assert batch.problems == (f"audit log {log}: rotated file for position {position} not "
                              "found; events between may be missing",)


def test_copytruncate_restarts_from_the_start(log: pathlib.Path) -> None:
    write(log, *range(5))
    with AuditTail(log) as tail:
        assert numbers(tail.read()) == list(range(5))
        # logrotate copytruncate: copied aside, then the same inode truncated.
        shutil.copyfile(log, log.with_name("audit.log.1"))
        os.truncate(log, 0)
        write(log, 5, 6)
        batch = tail.read()
        assert numbers(batch) == [5, 6] and batch.rotated
        assert "truncated in place" in batch.problems[0]
        assert offset_of(batch.position) == log.stat().st_size
        position = batch.position
    # Truncated while nobody read: the position is past the end of its own file.
    os.truncate(log, 0)
    write(log, 7)
    with AuditTail(log, position=position) as tail:
        batch = tail.read()
    assert numbers(batch) == [7]
    assert "does not fall at a line start" in batch.problems[0]


# -- the sandbox's real audit log --------------------------------------------------------------


@pytest.mark.kubectl
def test_the_sandbox_audit_log_of_real_kubectl_changes(
        auth_sandbox: Callable[..., Sandbox], tmp_path: pathlib.Path) -> None:
    from tests.sandbox.authkit import kubectl_for

    log = tmp_path / "audit" / "audit.log"
    quiet = {"level": "None", "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                  "/openapi/*", "/version"]}
    sb = auth_sandbox(audit=AuditConfig(log_path=log, policy={
        "apiVersion": API, "kind": "Policy", "omitStages": ["RequestReceived"],
        "rules": [quiet, {"level": "Metadata"}]}))
    kubectl = kubectl_for(sb, tmp_path)
    with AuditTail(log) as tail:
        tail.read()
        # apply, not create: kubectl create sends protobuf, which the sandbox does not read.
        kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: "
                "{name: tailed, namespace: default}\ndata: {a: '1'}\n")
        kubectl("label", "configmap", "tailed", "team=audit")
        batch = tail.read()
        assert all(e["kind"] == "Event" and e["apiVersion"] == API for e in batch.events)
        changes = [(e["verb"], e["objectRef"]["resource"], e["objectRef"]["name"])
                   for e in batch.events
                   if e["stage"] == "ResponseComplete" and e["verb"] not in ("get", "list")]
        assert changes == [("create", "configmaps", "tailed"), ("patch", "configmaps", "tailed")]
        position = batch.position
    kubectl("delete", "configmap", "tailed")
    with AuditTail(log, position=position) as tail:
        batch = tail.read()
    deletes = [e for e in batch.events if e["verb"] == "delete"]
    assert [(e["stage"], e["objectRef"]["namespace"], e["objectRef"]["name"],
             e["responseStatus"]["code"]) for e in deletes] == [
        ("ResponseComplete", "default", "tailed", 200)]
    assert not any(e["verb"] in ("create", "patch") for e in batch.events)  # nothing twice
