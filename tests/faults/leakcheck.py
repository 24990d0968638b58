"""What the Secret-leak suite needs besides the sandbox: the forms a planted value could take
in an output (plain, base64 at any alignment, hex), a scan of bytes and files for them, a
local Slack stand-in that records every request, and a crawler for ``drift-auditor serve``.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

# ------------------------------------------------------------------- the forms


def _b64_core(raw: bytes, shift: int, urlsafe: bool) -> bytes:
    """The base64 characters that only ``raw``'s bytes decide, when ``raw`` starts ``shift``
    bytes into a 3-byte group of a longer encoded text (its neighbours change the rest)."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(b"\0" * shift + raw)
    first = -(-shift * 8 // 6)              # the first character without prefix bits
    last = (shift + len(raw)) * 8 // 6      # past the last character without suffix bits
    return text[first:last]


def forms(value: str) -> dict[str, bytes]:
    """Every form in which ``value`` would be recognisable in an output."""
    raw = value.encode()
    out = {"plain": raw, "hex": raw.hex().encode()}
    for shift, urlsafe in itertools.product(range(3), (False, True)):
        core = _b64_core(raw, shift, urlsafe)
        out[f"base64{'url' if urlsafe else ''}+{shift}"] = core
    return out


@dataclass(frozen=True)
class Leak:
    where: str
    value: str
    form: str

    def __str__(self) -> str:
        return f"{self.where}: {self.value!r} as {self.form}"


def _decoded(blob: bytes) -> Iterator[bytes]:
    """``blob``, and what it holds compressed (gzip, zlib), should an output compress."""
    yield blob
    for opener in (gzip.decompress, zlib.decompress):
        try:
            yield opener(blob)
        except (OSError, zlib.error, EOFError):
            continue


def scan(where: str, blob: bytes, planted: Mapping[str, str]) -> list[Leak]:
    """The planted values (name → value) found in ``blob``, in any form."""
    found = []
    for data in _decoded(blob):
        for value in planted.values():
            for form, needle in forms(value).items():
                if needle in data:
                    found.append(Leak(where, value, form))
    return found


def files_under(folder: Path) -> list[Path]:
    """Every regular file below ``folder``, hidden ones included, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def scan_files(paths: Iterable[Path], planted: Mapping[str, str], *,
               relative_to: Path) -> list[Leak]:
    leaks = []
    for path in paths:
        leaks.extend(scan(str(path.relative_to(relative_to)), path.read_bytes(), planted))
    return leaks


# --------------------------------------------------------------- a fake Slack


@dataclass
class FakeSlack:
    """A Slack Web API stand-in on a local port: every request body is kept as sent."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api(self) -> str:
        return self.url + "/api/"

    def texts(self) -> list[str]:
        """The ``text`` of every posted message (JSON bodies, as the bot transport sends)."""
        out = []
        for body in self.bodies:
            try:
                out.append(str(json.loads(body).get("text", "")))
            except ValueError:
                out.append("")
        return out


class SlackStandIn:
    """``with SlackStandIn() as slack:``: a :class:`FakeSlack` served in a thread."""

    def __init__(self) -> None:
        counter = itertools.count(1)
        state: dict[str, FakeSlack] = {}

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake = state["fake"]
                with fake.lock:
                    fake.bodies.append(body)
                    n = next(counter)
                payload = json.dumps({"ok": True, "channel": "CDRIFT",
                                      "ts": f"1700000000.{n:06d}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.fake = FakeSlack(f"http://127.0.0.1:{self._httpd.server_address[1]}")
        state["fake"] = self.fake
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# ------------------------------------------------------------------ crawling

_HREF = re.compile(rb"""(?:href|src)\s*=\s*["']([^"'#]+)""")


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def crawl(base: str, starts: Iterable[str], limit: int = 300) -> dict[str, tuple[int, bytes]]:
    """Every page of ``base`` reachable from ``starts`` through links (same origin only)."""
    origin = urlsplit(base).netloc
    todo = [urljoin(base, s) for s in starts]
    pages: dict[str, tuple[int, bytes]] = {}
    while todo and len(pages) < limit:
        url = todo.pop(0)
        if url in pages:
            continue
        status, body = fetch(url)
        pages[url] = (status, body)
        for link in _HREF.findall(body):
            target = urljoin(url, link.decode("utf-8", "replace").replace("&amp;", "&"))
            parts = urlsplit(target)
            if parts.netloc == origin and parts.scheme == "http" and target not in pages:
                todo.append(target)
    return pages
