"""The report ships with a manifest: the SHA-256 of every file `report` wrote, the ledger head
and checkpoint it covers, signed by the ledger's key; `verify --manifest` checks the files
against it, and a tampered file, a tampered manifest or a manifest re-signed by another key
fails with one line (exit 2)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.ledger import verify_cmd
from auditor.cli.report import report_cmd
from auditor.ledger import keyfile, signing
from auditor.report import manifest

from .conftest import RealLedger

pytestmark = pytest.mark.kubectl


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _report(real: RealLedger, out: Path, *args: str, ledger: Path | None = None) -> Any:
    result = CliRunner().invoke(report_cmd, [
        "--ledger", str(ledger or real.path), "--from", _stamp(real.start),
        "--to", _stamp(real.end), "--output-file", str(out), *args], obj=Context(str(real.config)))
    assert result.exit_code == 0, result.output
    return result


def _check(real: RealLedger, path: Path, *args: str) -> Any:
    return CliRunner().invoke(verify_cmd, ["--manifest", str(path), *args],
                              obj=Context(str(real.config)))


@pytest.fixture
def html(real_ledger: RealLedger, tmp_path: Path) -> Path:
    out = tmp_path / "reports" / "q4.html"
    result = _report(real_ledger, out)
    assert f"wrote {out.with_suffix('.manifest.json')} (SHA-256 of 2 files, signed by " \
        in result.output
    return out


def test_an_html_report_ships_with_a_signed_manifest(real_ledger: RealLedger, html: Path) -> None:
    path = manifest.path_for(html)
    assert path.name == "q4.manifest.json"
    doc = orjson.loads(path.read_bytes())
    assert [f["name"] for f in doc["files"]] == ["q4.changes.csv", "q4.html"]
    for entry in doc["files"]:
        data = (html.parent / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    [led] = doc["ledgers"]
    assert led["cluster"] == "test-cluster" and led["verified"] is True
    assert led["checkpoint"]["seq"] <= led["head_seq"]
    key_file = keyfile.beside(real_ledger.path)
    public = signing.public_hex(signing.load_public_key(key_file))
    assert doc["signature"]["public_key"] == public
    assert doc["signature"]["fingerprint"] == keyfile.fingerprint(public)

    ok = _check(real_ledger, path)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("manifest OK: 2 files match (q4.changes.csv, q4.html); "
                                f"signed by {keyfile.fingerprint(public)}; covers test-cluster: "
                                f"ledger head #{led['head_seq']} ")
    # Checked away from the cluster: only the files, the manifest and the public key.
    away = html.parent.parent / "auditor"
    shutil.copytree(html.parent, away)
    pem, _fp = keyfile.public_pem(key_file)
    (away / "ledger.pub").write_text(pem)
    elsewhere = CliRunner().invoke(verify_cmd, [
        "--manifest", str(away / "q4.manifest.json"), "--public-key", str(away / "ledger.pub"),
        "--ledger", str(away / "none.db")], obj=Context(None))
    assert elsewhere.exit_code == 0, elsewhere.output


def test_a_tampered_report_file_fails_the_manifest_check(real_ledger: RealLedger,
                                                         html: Path) -> None:
    path = manifest.path_for(html)
    csv_path = html.with_suffix(".changes.csv")
    original = csv_path.read_bytes()
    csv_path.write_bytes(original + b"99,forged,row\n")  # a change that never happened
    bad = _check(real_ledger, path)
    assert bad.exit_code == 2
    [line] = bad.output.strip().splitlines()
    assert line.startswith(f"drift-auditor: error: {path}: report file q4.changes.csv: its "
                           "SHA-256 is ")
    assert "— the file was altered" in line
    csv_path.write_bytes(original)
    html.unlink()
    gone = _check(real_ledger, path)
    assert gone.exit_code == 2 and "report file q4.html cannot be read" in gone.output


def test_a_tampered_or_re_signed_manifest_fails(real_ledger: RealLedger, html: Path,
                                                tmp_path: Path) -> None:
    path = manifest.path_for(html)
    doc = orjson.loads(path.read_bytes())
    # The CSV edited and its new hash written into the manifest: the signature breaks.
    csv_path = html.with_suffix(".changes.csv")
    csv_path.write_bytes(csv_path.read_bytes() + b"\n")
    edited = {**doc, "files": [
        {**f, "sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest()}
        if f["name"] == "q4.changes.csv" else f for f in doc["files"]]}
    manifest.write(path, edited)
    bad = _check(real_ledger, path)
    assert bad.exit_code == 2
    assert "the manifest's signature does not verify — the manifest was altered" in bad.output

    # Re-signed with the forger's own key: valid under that key, not under the ledger's.
    forger = tmp_path / "forger.pem"
    signing.generate(forger)
    manifest.write(path, manifest.sign({k: v for k, v in edited.items() if k != "signature"},
                                       forger))
    refused = _check(real_ledger, path)  # the key beside the configured ledger is trusted
    assert refused.exit_code == 2 and "was signed by another key" in refused.output
    pem, _fp = keyfile.public_pem(keyfile.beside(real_ledger.path))
    (tmp_path / "ledger.pub").write_text(pem)
    given = _check(real_ledger, path, "--public-key", str(tmp_path / "ledger.pub"))
    assert given.exit_code == 2 and "was signed by another key" in given.output


def test_a_json_report_of_a_ledger_without_a_key_gets_an_unsigned_manifest(
        real_ledger: RealLedger, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(real_ledger.path, copy)  # no key beside the copy
    out = tmp_path / "q4.json"
    result = _report(real_ledger, out, "--format", "json", ledger=copy)
    assert "unsigned: the ledger has no signing key" in result.output
    path = manifest.path_for(out)
    doc = orjson.loads(path.read_bytes())
    assert [f["name"] for f in doc["files"]] == ["q4.json"] and "signature" not in doc
    # Nothing to check it against: the files still are.
    ok = _check(real_ledger, path, "--ledger", str(copy))
    assert ok.exit_code == 0 and "unsigned" in ok.output, ok.output
    # The auditor holding a key accepts no unsigned manifest.
    strict = _check(real_ledger, path)
    assert strict.exit_code == 2 and "the manifest is not signed" in strict.output


def test_standard_output_reports_write_no_manifest(real_ledger: RealLedger,
                                                   tmp_path: Path) -> None:
    result = CliRunner().invoke(report_cmd, [
        "--ledger", str(real_ledger.path), "--from", _stamp(real_ledger.start), "--to",
        _stamp(real_ledger.end), "--format", "csv"], obj=Context(str(real_ledger.config)))
    assert result.exit_code == 0 and "manifest" not in result.output
