"""Who may read the UI and over what: the bearer token and the TLS context of ``serve``.

The token is given by value (``serve.token-env`` names an environment variable; the CLI reads
it) or as a file (``serve.token-file``: a Kubernetes Secret mounted as a volume). A mounted
Secret changes in place when the Secret is updated (the kubelet swaps the volume's ``..data``
symlink), so the file is read again whenever its identity, size or mtime changes: a rotated
token takes effect without a restart, and the old one stops working. A token file that
becomes unreadable or empty refuses every request (fail closed) until it is fixed; at start
it is an error. Tokens are compared in constant time and never logged.

TLS: a certificate chain and its key (PEM), TLS 1.2 at least; the handshake happens in the
request's own thread, so a client that connects and says nothing holds up no one else.
"""

from __future__ import annotations

import hmac
import logging
import os
import ssl
import threading
from pathlib import Path

from auditor.errors import ConfigError

log = logging.getLogger("auditor.web.access")


class BearerToken:
    """The expected ``Authorization: Bearer <token>`` header, from a value or a file."""

    def __init__(self, value: str = "", file: str | Path | None = None) -> None:
        self._file = Path(file) if file else None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._expected: bytes | None = None
        if self._file is None:
            if not value:
                raise ConfigError("serve: the bearer token is empty")
            self._expected = f"Bearer {value}".encode()
        else:
            try:
                self._expected = self._read(self._file)
            except OSError as exc:
                raise ConfigError(f"serve.token-file: cannot read {self._file}: "
                                  f"{exc.strerror}") from None
            if self._expected is None:
                raise ConfigError(f"serve.token-file: {self._file} is empty")

    @classmethod
    def from_file(cls, path: str | Path) -> BearerToken:
        return cls(file=path)

    def _read(self, path: Path) -> bytes | None:
        st = path.stat()
        self._stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        # A Secret's value as `kubectl create secret --from-file` stores it may end with a
        # newline; the token is the text without surrounding whitespace.
        text = path.read_bytes().strip()
        return b"Bearer " + text if text else None

    def _current(self) -> bytes | None:
        path = self._file
        if path is None:
            return self._expected
        with self._lock:
            try:
                st = path.stat()
                stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                if stamp != self._stamp:
                    self._expected = self._read(path)
                    if self._expected is None:
                        log.warning("serve: token file %s is empty: refusing requests", path)
            except OSError as exc:
                log.warning("serve: token file %s cannot be read (%s): refusing requests",
                            path, exc.strerror)
                self._stamp, self._expected = None, None
            return self._expected

    def matches(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries the token (constant time)."""
        expected = self._current()
        if expected is None:
            return False
        return hmac.compare_digest(header.encode(), expected)


def tls_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server context for ``cert_file`` (the chain, PEM) and ``key_file``; errors name the
    setting and the file."""
    for setting, path in (("tls-cert-file", cert_file), ("tls-key-file", key_file)):
        if not os.path.isfile(path):
            raise ConfigError(f"serve.{setting}: {path}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"serve.tls-cert-file: cannot use {cert_file} with the key "
                          f"{key_file}: {getattr(exc, 'reason', None) or exc}") from None
    return context
