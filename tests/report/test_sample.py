"""`drift-auditor report sample`: a reproducible audit sample of a period's changes and drift
occurrences, from a ledger written through the ledger API (signed checkpoints, a gap, a drift
reopened, a Secret). The same seed gives the same bytes; another seed another sample; the
population is re-derived from the report's own CSVs; and every packet's ledger proof is
re-performed here from the raw SQLite rows, without the tool's verification."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.report import report_cmd
from auditor.ledger import signing
from auditor.report import export, period, sample
from auditor.report.sample import Spec

from .samplefixtures import SECRET_HASHES, SampleLedger, build_sample_ledger


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> SampleLedger:
    return build_sample_ledger(tmp_path_factory.mktemp("sample"))


def _draw(led: SampleLedger, out: Path, seed: int, size: int = 5,
          method: str = "stratified") -> sample.Sample:
    drawn = sample.build(led.path, led.start, led.end, led.cfg, Spec(seed, size, method))
    sample.write(drawn, out)
    return drawn


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _stamp(moment: object) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined]


def test_same_seed_gives_the_same_bytes(ledger: SampleLedger, tmp_path: Path) -> None:
    first = _draw(ledger, tmp_path / "a", seed=20261)
    second = _draw(ledger, tmp_path / "b", seed=20261)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b  # byte-identical: manifest, population, packets and the page
    assert {"manifest.json", "population.txt", "sample.html"} <= set(a)
    assert [i["id"] for i in first.manifest["items"]] == [i["id"] for i in second.manifest["items"]]
    assert len(first.packets) == first.manifest["size"] == 5
    assert sorted(k for k in a if k.startswith("items/")) == sorted(
        i["file"] for i in first.manifest["items"])
    # Redrawn into the same folder with another seed: only the new packets remain.
    other = _draw(ledger, tmp_path / "a", seed=3, size=2)
    assert sorted(p.name for p in (tmp_path / "a" / "items").iterdir()) == sorted(
        f"{i['id']}.json" for i in other.manifest["items"])


def test_another_seed_draws_another_sample(ledger: SampleLedger, tmp_path: Path) -> None:
    for method in ("stratified", "simple"):
        picks = {seed: [i["id"] for i in _draw(ledger, tmp_path / f"{method}{seed}", seed,
                                               method=method).manifest["items"]]
                 for seed in (1, 2)}
        assert picks[1] != picks[2], method
        # Stratified: every stratum is represented and the allocation adds up.
        manifest = orjson.loads((tmp_path / f"{method}1" / "manifest.json").read_bytes())
        assert sum(s["sampled"] for s in manifest["strata"]) == 5
        if method == "stratified":
            assert all(s["sampled"] >= 1 for s in manifest["strata"])
            assert {s["name"] for s in manifest["strata"]} == {
                "change:authorized", "change:unauthorized", "drift"}


def test_the_selection_is_reperformed_from_the_manifest(ledger: SampleLedger,
                                                        tmp_path: Path) -> None:
    import random

    drawn = _draw(ledger, tmp_path, seed=99, size=4, method="simple")
    ids = (tmp_path / "population.txt").read_text().splitlines()
    assert random.Random(99).sample(ids, 4) == [i["id"] for i in drawn.manifest["items"]]


def test_population_is_the_reports_and_its_digest_rederives(ledger: SampleLedger,
                                                            tmp_path: Path) -> None:
    drawn = _draw(ledger, tmp_path, seed=5)
    pop = drawn.manifest["population"]
    text = (tmp_path / "population.txt").read_bytes()
    assert hashlib.sha256(text).hexdigest() == pop["sha256"]
    # Re-derived from the report's exported tables, as an auditor would.
    report = period.build(ledger.path, ledger.start, ledger.end, ledger.cfg)
    changes = list(csv.DictReader(io.StringIO(export.to_csv(report, "changes"))))
    drifts = list(csv.DictReader(io.StringIO(export.to_csv(report, "drifts"))))
    assert drifts, "the drift table is exported"
    ids = [f"change-{r['change_id']}" for r in changes] + [
        f"drift-{d.drift_id}.{d.occurrence}" for d in report.drifts]
    assert sorted(ids) == text.decode().splitlines()
    assert pop["size"] == len(ids) == pop["changes"] + pop["drift_occurrences"] == 15
    assert pop["changes_csv_sha256"] == report.header.changes_csv_sha256
    # Two occurrences of the reopened drift are two members.
    assert {"drift-1.1", "drift-1.2"} <= set(ids)


def _event(conn: sqlite3.Connection, seq: int) -> tuple[str, str, int | None, str, str, str]:
    row = conn.execute("SELECT at, type, run_id, payload, prev_hash, hash FROM events "
                       "WHERE seq = ?", (seq,)).fetchone()
    assert row is not None, seq
    return row


def _canonical(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def test_every_packet_proof_verifies_against_the_chain(ledger: SampleLedger,
                                                       tmp_path: Path) -> None:
    drawn = _draw(ledger, tmp_path, seed=11, size=100, method="simple")
    assert len(drawn.packets) == 15
    public = signing.load_public_key(ledger.key_file)
    conn = sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True)
    try:
        for name in sorted((tmp_path / "items").iterdir()):
            packet = orjson.loads(name.read_bytes())
            proof = packet["proof"]
            assert proof["ledger_verified"] is True
            seqs = []
            for record in proof["records"]:
                at, type_, run_id, payload, prev_hash, stored = _event(conn, record["seq"])
                # The event as the packet gives it is the event in the chain …
                assert (record["at"], record["type"], record["run_id"], record["prev_hash"],
                        record["hash"]) == (at, type_, run_id, prev_hash, stored)
                assert record["payload"] == orjson.loads(payload)
                # … and its hash recomputes from what the packet holds alone.
                event = {"seq": record["seq"], "type": record["type"], "at": record["at"],
                         "run_id": record["run_id"], "payload": record["payload"]}
                digest = hashlib.sha256(record["prev_hash"].encode() + _canonical(event))
                assert digest.hexdigest() == record["hash"] == record["hash_recomputed"]
                # The chained row is the payload.
                columns = ", ".join(record["payload"])
                row = conn.execute(f"SELECT {columns} FROM {record['table']} WHERE id = ?",
                                   (record["id"],)).fetchone()
                assert dict(zip(record["payload"], row, strict=True)) == record["payload"]
                seqs.append(record["seq"])
            for content in proof["contents"]:
                stored = conn.execute("SELECT content FROM contents WHERE version_id = ?",
                                      (content["version_id"],)).fetchone()
                data = stored[0].encode() if isinstance(stored[0], str) else stored[0]
                assert hashlib.sha256(data).hexdigest() == content["content_hash"]
                assert content["matches"] is True
            # The checkpoint covers every record: re-walk the chain from the first record to
            # the checkpoint, link by link, and land on its head hash.
            cp = proof["checkpoint"]
            assert cp["covers"] == sorted(set(seqs)) and max(seqs) <= cp["seq"]
            prev = _event(conn, min(seqs))[5]
            for seq in range(min(seqs) + 1, cp["seq"] + 1):
                at, type_, run_id, payload, prev_hash, stored = _event(conn, seq)
                assert prev_hash == prev
                event = {"seq": seq, "type": type_, "at": at, "run_id": run_id,
                         "payload": orjson.loads(payload)}
                prev = hashlib.sha256(prev_hash.encode() + _canonical(event)).hexdigest()
                assert prev == stored
            assert prev == cp["head_hash"] and cp["head_hash_is_event_hash"] is True
            # Signed with the ledger's key: the signature checks over the message given.
            assert signing.check(public, cp["signed_message"].encode(), cp["signature"])
            assert orjson.loads(cp["signed_message"]) == {
                "run_id": cp["run_id"], "seq": cp["seq"], "head_hash": cp["head_hash"],
                "at": cp["at"]}
            assert cp["public_key"] == signing.public_hex(public)
    finally:
        conn.close()


def test_change_packet_carries_the_evidence(ledger: SampleLedger, tmp_path: Path) -> None:
    _draw(ledger, tmp_path, seed=1, size=100, method="simple")
    hand = orjson.loads((tmp_path / "items" / "change-2.json").read_bytes())
    assert hand["type"] == "change" and hand["object"]["label"] == "Deployment.apps shop/web"
    assert hand["change"]["actor"]["manager"] == "kubectl-set"
    assert hand["change"]["actor"]["category"] == "human"
    assert hand["change"]["authorization"] == "unauthorized"
    # No approval next to an unauthorized change: the commit is what it departed from.
    assert hand["change"]["approval"]["pr"] is None
    assert hand["commits_are"].startswith("the Git state the change departed from")
    assert '-            "image": "shop/web:1.0.0"' in hand["content"]["unified"]
    assert '+            "image": "shop/web:6.6.6"' in hand["content"]["unified"]
    assert hand["content"]["images"] == [{"image": "shop/web:6.6.6", "pinned_by": "tag"}]
    # The drift it opened, and that drift's whole lifecycle (two occurrences).
    assert hand["drift"]["report_anchor"] == "drift-1"
    assert [(e["event"], e["occurrence"]) for e in hand["lifecycle"]] == [
        ("opened", 1), ("resolved", 1), ("reopened", 2), ("resolved", 2)]
    tables = {r["table"] for r in hand["proof"]["records"]}
    assert tables == {"changes", "object_versions", "drifts", "drift_events"}
    sync = orjson.loads((tmp_path / "items" / "change-6.json").read_bytes())
    assert sync["change"]["authorization"] == "authorized"
    assert sync["change"]["approval"]["pr"] == 42
    assert sync["commits"][0]["trailers"] == [["Reviewed-by", "Dana Ops <dana@example.com>"]]
    assert sync["content"]["images"][0]["pinned_by"] == "digest"
    drift = orjson.loads((tmp_path / "items" / "drift-1.2.json").read_bytes())
    assert drift["drift"]["occurrence"] == 2 and drift["drift"]["sla_breach"] is True
    assert drift["opened_by_change"]["change_id"] == 4
    page = (tmp_path / "sample.html").read_text()
    for item in ("change-2", "drift-1.2", "drift-3.1"):
        assert f'id="{item}"' in page and f'href="#{item}"' in page


def test_secret_values_stay_hashed_and_unshown(ledger: SampleLedger, tmp_path: Path) -> None:
    _draw(ledger, tmp_path, seed=1, size=100, method="simple")
    secret = orjson.loads((tmp_path / "items" / "change-8.json").read_bytes())
    diff = secret["content"]["unified"]
    assert '-    "token": "<secret value #1>"' in diff and '+    "token": "<secret value #2>"' in diff
    assert all(v["desired"] == v["live"] == "" for v in secret["drift"]["values"])
    page = (tmp_path / "sample.html").read_text()
    assert "hmac-sha256:" not in page
    # Outside a proof's exact payloads (needed to recompute the hashes) no keyed hash at all.
    for name in (tmp_path / "items").iterdir():
        packet = orjson.loads(name.read_bytes())
        packet.pop("proof")
        assert not any(h in orjson.dumps(packet).decode() for h in SECRET_HASHES), name


def test_allocation() -> None:
    assert sample.allocate({"a": 7, "b": 4, "c": 4}, 5) == {"a": 3, "b": 1, "c": 1}
    assert sample.allocate({"a": 100, "b": 1}, 3) == {"a": 2, "b": 1}
    assert sample.allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}
    assert sample.allocate({"a": 5, "b": 5, "c": 5}, 2) == {"a": 1, "b": 1, "c": 0}
    assert sample.allocate({"a": 0}, 3) == {"a": 0}


def _config(led: SampleLedger, tmp_path: Path) -> Path:
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger: {{path: {led.path}}}\n"
                      f"reports: {{schedule-minutes: 60, remediation-sla-hours: 1, "
                      f"directory: {tmp_path / 'reports'}}}\n")
    return config


def test_command(ledger: SampleLedger, tmp_path: Path) -> None:
    config = _config(ledger, tmp_path)
    args = ["sample", "--from", _stamp(ledger.start), "--to", _stamp(ledger.end),
            "--seed", "42", "--size", "3"]
    result = CliRunner().invoke(report_cmd, args, obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "drift-sample-20260301-20260301-seed-42"
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    assert (manifest["seed"], manifest["size"], manifest["population"]["size"]) == (42, 3, 15)
    assert manifest["population"]["sha256"] in result.output
    again = CliRunner().invoke(report_cmd, [*args, "--output-dir", str(tmp_path / "again")],
                               obj=Context(str(config)))
    assert again.exit_code == 0, again.output
    assert _files(folder) == _files(tmp_path / "again")
    # The report itself is still `report --from …`, and still demands --from.
    html = tmp_path / "r.html"
    result = CliRunner().invoke(report_cmd, ["--from", _stamp(ledger.start), "--to",
                                             _stamp(ledger.end), "--output-file", str(html)],
                                obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    assert "Evidence sample" not in html.read_text()
    missing = CliRunner().invoke(report_cmd, [], obj=Context(str(config)))
    assert missing.exit_code == 2 and "Missing option '--from'" in missing.output
    bad = CliRunner().invoke(report_cmd, ["sample", "--from", "2026-03-02", "--to",
                                          "2026-03-01", "--seed", "1", "--size", "1"],
                             obj=Context(str(config)))
    assert bad.exit_code == 2 and "--to must be after --from" in bad.output


def test_tampered_ledger_says_so_and_exits_1(ledger: SampleLedger, tmp_path: Path) -> None:
    copy = tmp_path / "ledger.db"
    shutil.copy(ledger.path, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("DROP TRIGGER changes_no_update")
    conn.execute("UPDATE changes SET manager = 'argocd-controller', category = 'gitops', "
                 "authorized = 1 WHERE manager = 'kubectl-set'")
    conn.close()
    config = _config(ledger, tmp_path)
    result = CliRunner().invoke(report_cmd, [
        "sample", "--ledger", str(copy), "--from", _stamp(ledger.start), "--to",
        _stamp(ledger.end), "--seed", "1", "--size", "15", "--output-dir", str(tmp_path / "out")],
        obj=Context(str(config)))
    assert result.exit_code == 1 and "ledger tampered" in result.output
    manifest = orjson.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert manifest["ledger"]["verified"] is False
    packet = orjson.loads((tmp_path / "out" / "items" / "change-2.json").read_bytes())
    assert packet["proof"]["ledger_verified"] is False
    # The chained event still says who really made the change.
    change = next(r for r in packet["proof"]["records"] if r["table"] == "changes")
    assert change["payload"]["manager"] == "kubectl-set"
    assert packet["change"]["actor"]["manager"] == "argocd-controller"
