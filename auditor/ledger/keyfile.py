"""Where the ledger's signing key lives, and its creation on first use.

Every checkpoint is signed unless ``ledger.sign`` is false: with ``ledger.signing-key-file``
when it is set, else with an Ed25519 key kept beside the ledger (``<ledger>.signing-key``,
mode 0600), created by the first command that writes the ledger (a PostgreSQL ledger, ``ledger.url``,
has no "beside": it is signed only with ``ledger.signing-key-file``). Its public key is logged
once, on creation, for the auditor to keep: with it, checkpoints, anchors and report
manifests can be checked away from the cluster.

Every writer (``run``, ``watch``, ``ack``, ``prune``, ``adopt``) resolves the key here, and
:meth:`~auditor.ledger.store.Ledger.open` falls back to the key beside the ledger, so that one
ledger is never signed by some writers and not by others (``verify`` reports an unsigned
checkpoint after signed ones). This module imports ``cryptography`` only to create
a key: resolving a path costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from auditor.config import LedgerConfig
from auditor.errors import LedgerError

log = logging.getLogger(__name__)

SUFFIX = ".signing-key"


def beside(ledger_path: str | Path) -> Path:
    """The default key file of the ledger at ``ledger_path``."""
    return Path(ledger_path).expanduser().with_suffix(SUFFIX)


def signing_key_file(cfg: LedgerConfig, ledger_path: str | Path | None = None, *,
                     create: bool = False) -> str | None:
    """The key file that signs this ledger's checkpoints, or None (unsigned).

    ``ledger_path`` overrides ``cfg.path`` (a ``--ledger`` flag). The configured file wins;
    else the one beside the ledger, created now when ``create`` (a writer) and missing. A
    reader (``create`` false) gets None when there is none yet.
    """
    if not cfg.sign:
        return None
    if cfg.signing_key_file:
        return cfg.signing_key_file
    target = ledger_path or cfg.target
    from .backend import is_url

    if is_url(target):
        # A URL has no "beside": a PostgreSQL ledger is signed only with signing_key_file.
        return None
    path = beside(target)
    if path.exists():
        return str(path)
    if not create:
        return None
    _create(path)
    return str(path)


def fingerprint(public_hex: str) -> str:
    """A short name of a public key (hex of its 32 raw bytes) for messages and anchors."""
    try:
        raw = bytes.fromhex(public_hex)
    except ValueError:  # not a key this tool wrote: named by what it is
        return f"not a key: {public_hex[:16]!r}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def public_pem(key_file: str | Path) -> tuple[str, str]:
    """``(PEM of the public key, fingerprint)`` of a private or public key file."""
    from cryptography.hazmat.primitives import serialization

    from . import signing

    public = signing.load_public_key(key_file)
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return pem, fingerprint(signing.public_hex(public))


def _create(path: Path) -> None:
    """Write a new key to ``path`` whole and at once: a second writer starting at the same
    moment (``run`` and ``watch``) either creates it or finds the finished file, never half
    of one, and the file is never readable by others, not even while being written."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=".signing-key-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails when another writer created it first: theirs stands
        except FileExistsError:
            return
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    # Told once the command succeeded (:func:`announce_created`): a run that fails on bad
    # input must still be one line on stderr.
    _CREATED.append(path)


# Keys this process created and has not yet told about.
_CREATED: list[Path] = []


def announce_created() -> None:
    """Log, once, the public key of each signing key this process created: the operator
    hands it to the auditor. Called by a command after its work succeeded."""
    while _CREATED:
        path = _CREATED.pop(0)
        try:
            public, fp = public_pem(path)
        except (OSError, LedgerError):
            continue  # gone since (a test's folder, a ledger moved): nothing to hand over
        log.warning("ledger: created the signing key %s (Ed25519, mode 0600); every checkpoint "
                    "is signed with it. Give this public key to the auditor (%s; "
                    "`drift-auditor public-key` prints it again):\n%s", path, fp,
                    public.rstrip("\n"))
