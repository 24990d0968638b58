"""Optional Ed25519 signatures of checkpoints.

A checkpoint says "after sequence number N the chain head was H". Signed with a private key
the ledger never stores, it proves the chain up to N existed as it is now at that time, even
against someone who rewrites and re-hashes the whole chain.

Key files: a PEM private key (PKCS#8, ``openssl genpkey -algorithm ed25519``) or 32 raw bytes
or 64 hex characters of seed. For verification a PEM public key or the private key file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditor.errors import LedgerError

from .chain import canonical


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LedgerError(f"ledger.signing-key-file: cannot read {path}: {exc.strerror}") from None


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    data = _read(path)
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"ledger.signing-key-file: {path}: not a usable PEM key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LedgerError(f"ledger.signing-key-file: {path}: not an Ed25519 key")
        return key
    seed = data.strip()
    if len(seed) == 64:
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            seed = bytes.fromhex(seed.decode("ascii"))
    if len(seed) != 32:
        raise LedgerError(f"ledger.signing-key-file: {path}: expected a PEM Ed25519 key, "
                          f"32 raw bytes or 64 hex characters (got {len(data)} bytes)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    data = _read(path)
    if b"PUBLIC KEY" in data:
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise LedgerError(f"{path}: not an Ed25519 public key")
        return key
    return load_private_key(path).public_key()


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def generate(path: str | Path) -> None:
    """Write a new private key as PEM (mode 0600)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    target = Path(path)
    target.write_bytes(pem)
    target.chmod(0o600)


def checkpoint_message(run_id: int | None, seq: int, head_hash: str, at: str) -> bytes:
    return canonical({"run_id": run_id, "seq": seq, "head_hash": head_hash, "at": at})


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return key.sign(message).hex()


def check(key: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
