"""Headless Chromium (Debian ``chromium``) driven over the DevTools protocol: load a report,
collect console messages, uncaught exceptions and browser log errors (CSP violations,
blocked loads), run JavaScript in the page, and take screenshots at a given width.

The websocket client is ``websocket-client`` (a dependency of the ``kubernetes`` client).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*")


def available() -> bool:
    return Path(CHROMIUM).is_file()


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        port = self._port()
        targets = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        self._ids = itertools.count(1)
        self.console: list[dict[str, Any]] = []
        self.exceptions: list[str] = []
        self.log: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.send(method)

    def _port(self) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                # Keep draining: a full stderr pipe would block the browser mid-test.
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                return int(match.group(1))
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def _record(self, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append({"type": params["type"], "text": text})
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.exceptions.append(str(details.get("exception", {}).get("description")
                                       or details.get("text")))
        elif method == "Log.entryAdded":
            self.log.append(params["entry"])
        else:
            self._events.append(message)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._record(message)

    def wait_event(self, method: str) -> dict[str, Any]:
        for i, message in enumerate(self._events):
            if message.get("method") == method:
                del self._events[i]
                return message
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("method") == method:
                return message
            self._record(message)
        raise TimeoutError(method)

    def open(self, path: Path, width: int = 1280, height: int = 900) -> float:
        """Load ``path`` at ``width``; returns seconds until the load event."""
        self.set_width(width, height)
        started = time.monotonic()
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        return time.monotonic() - started

    def set_width(self, width: int, height: int = 900) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)

    def eval(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def screenshot(self, target: Path, height: int = 2000) -> Path:
        """The top ``height`` CSS pixels of the page at the current width, as PNG."""
        width = int(self.eval("document.documentElement.clientWidth"))
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        target.write_bytes(base64.b64decode(data["data"]))
        return target

    def section_screenshot(self, element_id: str, target: Path, height: int = 1400) -> Path:
        """The element's top ``height`` pixels. Sections skip rendering while off screen
        (``content-visibility: auto``), so that is switched off for the capture."""
        self.eval("(() => { if (document.getElementById('shot-style')) return;"
                  " const s = document.createElement('style'); s.id = 'shot-style';"
                  " s.textContent = 'main > section { content-visibility: visible !important; }';"
                  " document.head.appendChild(s); })()")
        width = int(self.eval("document.documentElement.clientWidth"))
        top = float(self.eval(f"document.getElementById('{element_id}')"
                              ".getBoundingClientRect().top + scrollY"))
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": top, "width": width, "height": height, "scale": 1})
        target.write_bytes(base64.b64decode(data["data"]))
        return target

    def errors(self) -> list[str]:
        """Console errors/warnings, uncaught exceptions and browser log errors so far."""
        out = [f"console.{c['type']}: {c['text']}" for c in self.console
               if c["type"] in ("error", "assert", "warning")]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [f"log.{e.get('source')}: {e.get('text')}" for e in self.log
                if e.get("level") in ("error", "warning")]
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
