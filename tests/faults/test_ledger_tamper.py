"""Tampering with a real ledger, made by real runs against the sandbox (a hotfix, a changed
setting, an object Git does not declare and its deletion, a prune, a later change): each kind
of edit someone with write access to the file could make is named by ``drift-auditor verify``
in one line with exit status 2 (the first broken sequence number, or the damaged file), and
the compliance report built from the edited ledger does not call itself verified.

The untouched ledger, pruned content included, verifies; everything else starts from a copy
of it."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import kubectl_binary

from auditor.errors import LedgerError
from auditor.ledger import Ledger, chain
from auditor.ledger.schema import CHAINED, reading
from auditor.report.fleet import load_fleet
from auditor.sandbox import Sandbox

from .ledgershop import Shop, finish, live_changes, make_shop, one_line, untriggered

pytestmark = pytest.mark.kubectl


@dataclass(frozen=True)
class Built:
    shop: Shop
    first_day: str  # the report period starts here


def _kubectl(kubeconfig: Path, home: Path) -> Callable[..., Any]:
    binary = kubectl_binary()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home),
           "KUBECACHEDIR": str(home / "kube-cache"), "KUBE_EDITOR": "true"}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(binary), *args], env=env, text=True, capture_output=True,
                              timeout=60, input=input)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Four real runs and a prune in between; the sandbox is gone once the ledger is made
    (verify and report read only the ledger)."""
    folder = tmp_path_factory.mktemp("tamper")
    with Sandbox() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(folder / "kubeconfig")
        kubectl = _kubectl(kubeconfig, folder)
        shop = make_shop(folder / "shop", kubeconfig, kubectl)
        assert shop.run().status == "complete"
        live_changes(kubectl)
        assert shop.run().status == "complete"
        kubectl("-n", "shop", "delete", "configmap", "extra")
        assert shop.run().status == "complete"
        with Ledger.open(shop.ledger) as ledger:
            # Everything observed up to now is "old": all but each object's newest version go.
            assert ledger.prune(1, now=datetime.now(UTC) + timedelta(days=2)) > 0
        kubectl("-n", "shop", "patch", "configmap", "settings", "-p",
                '{"data": {"MODE": "trace"}}')
        assert shop.run().status == "complete"
    first_day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    yield Built(shop, first_day)


@pytest.fixture
def shop(built: Built, tmp_path: Path) -> Shop:
    return built.shop.copy(tmp_path / "copy")


def _report_cli(shop: Shop, proc: subprocess.CompletedProcess[str]) -> None:
    """``drift-auditor report`` over the edited ledger: written with its integrity FAILED
    (exit 1, one warning line), or not at all, in one line naming the file (exit 2)."""
    if proc.returncode == 2:
        assert str(shop.ledger) in one_line(proc.stderr)
        return
    assert proc.returncode == 1, proc.stderr
    integrity = orjson.loads(proc.stdout)["header"]["integrity"]
    assert integrity["ok"] is False, integrity
    assert integrity["message"].startswith(("ledger tampered", "ledger verification FAILED"))
    assert "warning" in one_line(proc.stderr)


def _report(shop: Shop, built: Built) -> None:
    """The same report built in this process (faster than a second command per case)."""
    start = datetime.fromisoformat(built.first_day).replace(tzinfo=UTC)
    try:
        model = load_fleet([shop.ledger], start, datetime.now(UTC), shop.cfg())
    except LedgerError as exc:
        assert str(exc).startswith(f"{shop.ledger}: ") and "\n" not in str(exc), exc
        return
    integrity = model.report.header.integrity
    assert integrity.ok is False, integrity
    assert integrity.message.startswith(("ledger tampered", "ledger verification FAILED"))


def _verify_names(shop: Shop, built: Built, *expected: str, report_cli: bool = False) -> str:
    """``verify`` names the tampering in one line, exit 2; the report is not verified."""
    report = shop.start("report", "--from", built.first_day, "--format", "json") \
        if report_cli else None
    proc = shop.cli("verify")
    if report is not None:
        _report_cli(shop, finish(report))
    else:
        _report(shop, built)
    line = one_line(proc.stderr)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert line.startswith(f"drift-auditor: error: {shop.ledger}: "), line
    for text in expected:
        assert text in line, line
    return line


def _seq(shop: Shop, sql: str, *params: Any) -> tuple[Any, ...]:
    with reading(shop.ledger) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return tuple(row)


def test_the_untouched_ledger_verifies_with_its_pruned_content(built: Built) -> None:
    shop = built.shop
    proc = shop.cli("verify")
    assert proc.returncode == 0 and proc.stdout.startswith("ledger OK"), proc.stderr
    with reading(shop.ledger) as conn:
        versions = conn.execute("SELECT count(*) FROM object_versions WHERE deleted = 0").fetchone()[0]
        contents = conn.execute("SELECT count(*) FROM contents").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM events WHERE type = 'prune'").fetchone()[0] == 1
    assert contents < versions, "the prune removed some content"
    report = shop.cli("report", "--from", built.first_day, "--format", "json")
    assert report.returncode == 0, report.stderr
    assert orjson.loads(report.stdout)["header"]["integrity"]["ok"] is True


@pytest.mark.parametrize("table, column, value", [
    ("changes", "manager", "argocd-application-controller"),
    ("object_versions", "resource_version", "1"),
    ("drift_events", "how", "git-changed"),
    ("drifts", "items", "[]"),
    ("objects", "name", "renamed"),
])
def test_a_modified_chained_row(shop: Shop, built: Built, table: str, column: str,
                                value: Any) -> None:
    row_id, seq = _seq(shop, f"SELECT id, seq FROM {table} ORDER BY id DESC LIMIT 1")
    untriggered(shop.ledger).execute(f"UPDATE {table} SET {column} = ? WHERE id = ?",
                                     (value, row_id))
    _verify_names(shop, built, f"first broken sequence number {seq}:", f"{table} row {row_id}",
                  "altered")


def test_a_modified_finished_run(shop: Shop, built: Built) -> None:
    (seq_end,) = _seq(shop, "SELECT seq_end FROM runs WHERE id = 2")
    untriggered(shop.ledger).execute("UPDATE runs SET problems = '[]', counts = '{}' WHERE id = 2")
    _verify_names(shop, built, f"first broken sequence number {seq_end}:", "run 2")


def test_a_modified_event(shop: Shop, built: Built) -> None:
    seq, payload = _seq(shop, "SELECT seq, payload FROM events WHERE type = 'change' "
                              "ORDER BY seq LIMIT 1")
    forged = {**orjson.loads(payload), "manager": "argocd-application-controller"}
    untriggered(shop.ledger).execute("UPDATE events SET payload = ? WHERE seq = ?",
                                     (chain.canonical(forged).decode(), seq))
    _verify_names(shop, built, f"first broken sequence number {seq}:")


def test_modified_content_of_a_configmap(shop: Shop, built: Built) -> None:
    """The issue's case: a key added to a ConfigMap's data in the stored content."""
    vid, seq, content = _seq(
        shop, "SELECT v.id, v.seq, c.content FROM object_versions v JOIN objects o "
        "ON o.id = v.object_id JOIN contents c ON c.version_id = v.id WHERE o.kind = "
        "'ConfigMap' AND o.name = 'settings' ORDER BY v.id DESC LIMIT 1")
    forged = orjson.loads(content)
    forged["data"]["BACKDOOR"] = "enabled"
    untriggered(shop.ledger).execute("UPDATE contents SET content = ? WHERE version_id = ?",
                                     (chain.canonical(forged).decode(), vid))
    _verify_names(shop, built, f"first broken sequence number {seq}:",
                  f"object_versions row {vid}", "stored content does not match", report_cli=True)
    # The UI's fleet view shows verification too: it does not say verified either.
    import time

    from auditor.web.chainstate import ChainState, Verifier
    from auditor.web.serve import ledger_signature

    verdict = ChainState(shop.ledger, Verifier()).verdict(ledger_signature(shop.ledger),
                                                          time.monotonic() + 60)
    assert verdict.ok is False and verdict.state == "current"
    assert f"first broken sequence number {seq}" in verdict.message


def test_content_forged_for_a_pruned_version(shop: Shop, built: Built) -> None:
    vid, seq = _seq(shop, "SELECT v.id, v.seq FROM object_versions v WHERE v.deleted = 0 AND "
                          "v.id NOT IN (SELECT version_id FROM contents) ORDER BY v.id LIMIT 1")
    untriggered(shop.ledger).execute("INSERT INTO contents (version_id, content) VALUES (?, ?)",
                                     (vid, '{"kind":"ConfigMap","data":{"MODE":"prod"}}'))
    _verify_names(shop, built, f"first broken sequence number {seq}:", f"row {vid}")


def test_deleted_content_that_no_prune_covers(shop: Shop, built: Built) -> None:
    vid, seq = _seq(shop, "SELECT v.id, v.seq FROM object_versions v JOIN objects o "
                          "ON o.id = v.object_id WHERE o.name = 'web' ORDER BY v.id DESC LIMIT 1")
    untriggered(shop.ledger).execute("DELETE FROM contents WHERE version_id = ?", (vid,))
    _verify_names(shop, built, f"first broken sequence number {seq}:",
                  "content was deleted (no prune in the chain covers it)")


@pytest.mark.parametrize("table", ["changes", "drift_events", "object_versions", "events"])
def test_a_deleted_row(shop: Shop, built: Built, table: str) -> None:
    key = "seq" if table == "events" else "id"
    where = " WHERE type = 'drift_event'" if table == "events" else ""
    row_key, seq = _seq(shop, f"SELECT {key}, seq FROM {table}{where} ORDER BY seq LIMIT 1")
    untriggered(shop.ledger).execute(f"DELETE FROM {table} WHERE {key} = ?", (row_key,))
    _verify_names(shop, built, f"first broken sequence number {seq}:")


def test_an_inserted_row_outside_the_chain(shop: Shop, built: Built) -> None:
    cols = CHAINED["changes"]
    with reading(shop.ledger) as conn:
        row = list(conn.execute(f"SELECT {', '.join(cols)} FROM changes ORDER BY id DESC "
                                "LIMIT 1").fetchone())
        new_id = row[0] = conn.execute("SELECT max(id) + 1 FROM changes").fetchone()[0]
    row[cols.index("manager")] = "someone-else"
    untriggered(shop.ledger).execute(
        f"INSERT INTO changes (seq, {', '.join(cols)}) VALUES (NULL, "
        f"{', '.join('?' * len(cols))})", row)
    line = _verify_names(shop, built, f"changes row {new_id} is in no event of the chain",
                         "inserted", report_cli=True)
    assert "first broken sequence number" not in line


def test_an_inserted_row_claiming_another_rows_event(shop: Shop, built: Built) -> None:
    cols = CHAINED["changes"]
    with reading(shop.ledger) as conn:
        seq, *row = conn.execute(f"SELECT seq, {', '.join(cols)} FROM changes ORDER BY id "
                                 "LIMIT 1").fetchone()
        new_id = row[0] = conn.execute("SELECT max(id) + 1 FROM changes").fetchone()[0]
    untriggered(shop.ledger).execute(
        f"INSERT INTO changes (seq, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
        (seq, *row))
    _verify_names(shop, built, f"first broken sequence number {seq}:",
                  f"changes row {new_id} differs from its chained event")


def test_an_event_appended_after_the_last_checkpoint(shop: Shop, built: Built) -> None:
    """Hashed correctly onto the head, so the chain itself holds together: no run is going,
    so nothing may follow the last checkpoint."""
    head_seq, head_hash = _seq(shop, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
    event = chain.append(chain.Head(head_seq, head_hash), "prune", "2030-01-01T00:00:00Z", None,
                         {"cutoff": "2030-01-01T00:00:00Z", "contents_deleted": 9,
                          "older_than_days": 1})
    untriggered(shop.ledger).execute(
        "INSERT INTO events (seq, at, run_id, type, payload, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", event.row())
    _verify_names(shop, built, f"first broken sequence number {head_seq + 1}:",
                  "after the last checkpoint")


def test_reordered_events(shop: Shop, built: Built) -> None:
    a, b = (s for (s,) in untriggered(shop.ledger).execute(
        "SELECT seq FROM events WHERE type = 'change' ORDER BY seq LIMIT 2").fetchall())
    conn = untriggered(shop.ledger)
    conn.execute("UPDATE events SET seq = -1 WHERE seq = ?", (a,))
    conn.execute("UPDATE events SET seq = ? WHERE seq = ?", (a, b))
    conn.execute("UPDATE events SET seq = ? WHERE seq = -1", (b,))
    _verify_names(shop, built, f"first broken sequence number {min(a, b)}:")


def test_reordered_rows(shop: Shop, built: Built) -> None:
    """Two changes swap places: each row now carries the other's event."""
    conn = untriggered(shop.ledger)
    (a, sa), (b, sb) = conn.execute("SELECT id, seq FROM changes ORDER BY id LIMIT 2").fetchall()
    conn.execute("UPDATE changes SET seq = -1 WHERE id = ?", (a,))
    conn.execute("UPDATE changes SET seq = ? WHERE id = ?", (sa, b))
    conn.execute("UPDATE changes SET seq = ? WHERE id = ?", (sb, a))
    _verify_names(shop, built, f"first broken sequence number {min(sa, sb)}:")


def test_a_truncated_file(shop: Shop, built: Built) -> None:
    size = shop.ledger.stat().st_size
    os.truncate(shop.ledger, size // 2)
    _verify_names(shop, built, "damaged", report_cli=True)


def test_a_corrupted_page(shop: Shop, built: Built) -> None:
    """Random bytes over the cells of a page in the middle of the file (one holding chained
    rows or content, not free space): the damage is named (the file, or the first row it
    changed)."""
    conn = sqlite3.connect(shop.ledger)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    candidates = [n for (n,) in conn.execute(
        "SELECT pageno FROM dbstat WHERE pagetype = 'leaf' AND pageno > 1 AND name IN "
        "('events', 'contents', 'changes', 'object_versions', 'drift_events')")]
    conn.close()
    page = min(candidates, key=lambda n: abs(n - pages // 2))
    with open(shop.ledger, "r+b") as f:
        f.seek((page - 1) * page_size + 5)
        cells = int.from_bytes(f.read(2), "big")  # where this page's cell content starts
        f.seek((page - 1) * page_size + cells)
        f.write(random.Random(7).randbytes(min(200, page_size - cells)))
    line = _verify_names(shop, built, report_cli=True)
    assert "damaged" in line or "first broken sequence number" in line, line


def test_history_on_a_damaged_file_is_one_line(shop: Shop) -> None:
    size = shop.ledger.stat().st_size
    os.truncate(shop.ledger, size // 2)
    proc = shop.cli("history")
    assert proc.returncode == 2
    assert str(shop.ledger) in one_line(proc.stderr)


def test_an_altered_index_is_found(shop: Shop, built: Built) -> None:
    """An index edited to hide a change from reads that go through it (the table itself
    untouched) fails SQLite's own check, which verify runs."""
    conn = sqlite3.connect(shop.ledger, isolation_level=None)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND "
                           "name = 'idx_changes_time'").fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(shop.ledger, "r+b") as f:  # the index's root page: entries cleared
        f.seek((root - 1) * page_size + 3)
        f.write(b"\x00\x00")  # cell count 0
    _verify_names(shop, built, "damaged")
