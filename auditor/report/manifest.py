"""The report's manifest: ``<report>.manifest.json``, written beside the files ``report``
wrote, so that the report can leave the cluster and still be checked.

It names each file with its SHA-256 and size, the ledger head and checkpoint the report
covers (one entry per ledger of a fleet report) and the period, and carries an Ed25519
signature of all that, made with the ledger's signing key, with the public key that checks
it. ``drift-auditor verify --manifest FILE`` recomputes every hash and checks the signature
(against the auditor's copy of the public key when given: a manifest re-signed with another
key then fails too).

The signed bytes are the manifest without its ``signature`` member, as canonical JSON (sorted
keys, no whitespace: :func:`auditor.ledger.chain.canonical`), so the file may be re-indented
without breaking it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from auditor import __version__
from auditor.errors import AuditorError
from auditor.ledger import keyfile
from auditor.ledger.chain import canonical
from auditor.support.files import write_whole

from .fleet import FleetModel

if TYPE_CHECKING:
    # cryptography costs ~15 ms to import; only signing and checking need it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "drift-auditor/report-manifest/v1"
SUFFIX = ".manifest.json"
# A manifest names a handful of files: anything this large is not one.
MAX_BYTES = 4 * 1024 * 1024


class ReportTamperedError(AuditorError):
    """A report file does not match its manifest, or the manifest's signature fails."""


@dataclass(frozen=True)
class ManifestCheck:
    ok: bool
    files: int
    signed: bool
    message: str


def path_for(report: Path) -> Path:
    """The manifest of the report written to ``report`` (``x.html`` → ``x.manifest.json``)."""
    return report.with_suffix(SUFFIX)


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def build(files: Sequence[Path], model: FleetModel, *, base: Path) -> dict[str, Any]:
    """The manifest of ``files`` (named relative to ``base``, the manifest's folder) for the
    report ``model`` rendered."""
    header = model.report.header
    entries = []
    for path in files:
        sha, size = _digest(path)
        entries.append({"name": Path(os.path.relpath(path, base)).as_posix(), "sha256": sha,
                        "bytes": size})
    ledgers = []
    for member in model.members:
        i = member.integrity
        ledgers.append({
            "cluster": member.cluster, "ledger": member.ledger_path,
            "verified": i.ok, "verify_message": i.message,
            "head_seq": i.head_seq, "head_hash": i.head_hash,
            "checkpoint": None if i.checkpoint_seq is None else {
                "seq": i.checkpoint_seq, "head_hash": i.checkpoint_hash,
                "at": i.checkpoint_at, "signed": i.checkpoint_signed}})
    return {"format": FORMAT, "tool_version": __version__, "title": header.title,
            "generated_at": header.generated_at,
            "period": {"start": header.period_start, "end": header.period_end},
            "files": entries, "ledgers": ledgers}


def _signed_bytes(doc: Mapping[str, Any]) -> bytes:
    return canonical({k: v for k, v in doc.items() if k != "signature"})


def sign(doc: Mapping[str, Any], key_file: str | Path) -> dict[str, Any]:
    """``doc`` with its ``signature``: the ledger key's Ed25519 signature and public key."""
    from auditor.ledger import signing

    key = signing.load_private_key(key_file)
    public = signing.public_hex(key.public_key())
    return {**doc, "signature": {"algorithm": "ed25519", "public_key": public,
                                 "fingerprint": keyfile.fingerprint(public),
                                 "value": signing.sign(key, _signed_bytes(doc))}}


def write(path: Path, doc: Mapping[str, Any]) -> None:
    """Written whole (a temporary file renamed): a reader never sees half a manifest."""
    write_whole(path, [orjson.dumps(dict(doc), option=orjson.OPT_INDENT_2
                                    | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)])


def check(path: Path, public: Ed25519PublicKey | None = None) -> ManifestCheck:
    """The manifest at ``path`` against the files beside it; ``public``: the key the auditor
    holds (the manifest must then be signed by it). The first problem found is the message."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return ManifestCheck(False, 0, False, f"larger than {MAX_BYTES} bytes: not a manifest")
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ReportTamperedError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        return ManifestCheck(False, 0, False, "not JSON: the manifest was altered or is no "
                                              "manifest")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return ManifestCheck(False, 0, False, f"not a report manifest (expected format {FORMAT})")
    signed, problem = _signature(doc, public)
    if problem:
        return ManifestCheck(False, 0, signed, problem)
    entries = doc.get("files")
    if not isinstance(entries, list) or not entries:
        return ManifestCheck(False, 0, signed, "the manifest names no file")
    for entry in entries:
        problem = _file_problem(path.parent, entry)
        if problem:
            return ManifestCheck(False, len(entries), signed, problem)
    names = ", ".join(str(e["name"]) for e in entries)
    covers = "; ".join(
        f"{led.get('cluster')}: ledger head #{led.get('head_seq')} "
        f"{str(led.get('head_hash') or '')[:16]}…" for led in doc.get("ledgers") or ()
        if isinstance(led, dict))
    sig = doc.get("signature") or {}
    how = (f"signed by {sig.get('fingerprint')}" if signed
           else "unsigned (no ledger signing key when it was written)")
    return ManifestCheck(True, len(entries), signed,
                         f"manifest OK: {len(entries)} files match ({names}); {how}"
                         + (f"; covers {covers}" if covers else ""))


def _signature(doc: Mapping[str, Any], public: Ed25519PublicKey | None) -> tuple[bool, str]:
    """``(signed, problem)``: problem empty when the signature holds (or, without a key
    given, when there is none)."""
    sig = doc.get("signature")
    if not sig:
        return False, ("the manifest is not signed, and a public key was given"
                       if public is not None else "")
    if not isinstance(sig, dict) or not all(isinstance(sig.get(k), str)
                                            for k in ("public_key", "value")):
        return False, "the manifest's signature is malformed — the manifest was altered"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from auditor.ledger import signing

    if public is not None and signing.public_hex(public) != sig["public_key"]:
        return False, (f"the manifest was signed by another key ({sig.get('fingerprint')}) than "
                       f"the one given ({keyfile.fingerprint(signing.public_hex(public))})")
    try:
        key = public or Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["public_key"]))
    except ValueError:
        return False, "the manifest's public key is not an Ed25519 key"
    if not signing.check(key, _signed_bytes(doc), sig["value"]):
        return False, "the manifest's signature does not verify — the manifest was altered"
    return True, ""


def _file_problem(base: Path, entry: Any) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
            or not isinstance(entry.get("sha256"), str):
        return "a file entry of the manifest is malformed — the manifest was altered"
    name = entry["name"]
    target = base / name
    try:
        sha, size = _digest(target)
    except OSError as exc:
        return f"report file {name} cannot be read ({exc.strerror})"
    if sha != entry["sha256"]:
        return (f"report file {name}: its SHA-256 is {sha[:16]}…, the manifest says "
                f"{entry['sha256'][:16]}… — the file was altered ({size} bytes now, "
                f"{entry.get('bytes', '?')} then)")
    return ""
