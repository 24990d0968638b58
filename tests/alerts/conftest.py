"""A local Slack stand-in: a real HTTP server that records every request and answers 200,
429 with ``Retry-After``, 500, or drops the connection, as a test scripts it.

It speaks both transports: ``POST /api/<method>`` for the Web API (``WebClient(base_url=
…/api/)``; JSON bodies answered ``{"ok": true, "channel": …, "ts": …}``) and
``POST /hooks/<name>`` for incoming webhooks (answered ``ok``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    status: int

    @property
    def method(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def text(self) -> str:
        """Everything a human could see in the message, as one string."""
        return json.dumps(self.body, ensure_ascii=False)


@dataclass
class SlackServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    refuse: str = ""  # Web API: answer 200 with ok=false and this error

    def answer(self, *codes: int | str) -> None:
        """Script the next answers: ``200``, ``500``, ``"429:2"`` (Retry-After 2),
        ``"drop"`` (close the connection without answering)."""
        for code in codes:
            if isinstance(code, str) and code.startswith("429"):
                after = code.partition(":")[2] or "1"
                self.script.append((429, {"Retry-After": after}))
            elif code == "drop":
                self.script.append((-1, {}))
            else:
                self.script.append((int(code), {}))

    def delivered(self) -> list[Recorded]:
        return [r for r in self.requests if r.status == 200]

    @property
    def api(self) -> str:
        return self.url + "/api/"

    def hook(self, name: str = "T000/B000/XXXX") -> str:
        return f"{self.url}/hooks/{name}"


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    state: dict[str, SlackServer] = {}

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            server = state["s"]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                body = json.loads(raw or "{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
                for key in ("attachments", "blocks"):
                    if isinstance(body.get(key), str):
                        body[key] = json.loads(body[key])
            with server.lock:
                status, headers = server.script.pop(0) if server.script else (200, {})
                server.requests.append(Recorded(self.path, dict(self.headers), body,
                                                time.monotonic(), status))
                ts = next(server.ts)
            if status == -1:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            is_hook = self.path.startswith("/hooks/")
            if status == 200 and server.refuse and not is_hook:
                payload = json.dumps({"ok": False, "error": server.refuse}).encode()
            elif status == 200:
                payload = b"ok" if is_hook else json.dumps({
                    "ok": True, "channel": "C" + str(body.get("channel", "X")).upper().strip("#"),
                    "ts": body.get("ts") or f"1700000000.{ts:06d}"}).encode()
            else:
                payload = (b"rate_limited" if status == 429 else b"internal_error") if is_hook \
                    else json.dumps({"ok": False, "error": "ratelimited" if status == 429
                                     else "internal_error"}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain" if is_hook else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state["s"] = SlackServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state["s"]
    finally:
        httpd.shutdown()
        httpd.server_close()
