"""`drift-auditor serve` hardened: it cannot write the ledger (every route walked with GET,
HEAD, POST, PUT, PATCH, DELETE over a ledger a killed writer left a WAL behind, the ledger
file byte-for-byte unchanged), HTTPS with a certificate made here and a real HTTPS client,
and the bearer token read from a file (a mounted Secret), re-read when it is rotated."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auditor import config as config_mod
from auditor.errors import ConfigError, LedgerError
from auditor.ledger import Ledger, readonly
from auditor.ledger import reading as plain_reading
from auditor.web import serve

from .conftest import TOKEN, Response, serving
from .conftest import http as http_client
from .test_serve import CLI

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def killed_writer_copy(ledger: Path, folder: Path) -> Path:
    """A copy of ``ledger`` as a writer killed after its last commit leaves it: a real ack
    committed into the WAL and never checkpointed into the database file."""
    folder.mkdir(parents=True, exist_ok=True)
    with Ledger.open(ledger) as writer:
        writer.conn.execute("PRAGMA wal_autocheckpoint = 0")
        writer.ack("ConfigMap shop/settings", by="oncall@example.com", reason="known hotfix")
        for suffix in ("", "-wal", "-shm"):
            source = ledger.parent / (ledger.name + suffix)
            if source.exists():
                shutil.copyfile(source, folder / (ledger.name + suffix))
    copy = folder / ledger.name
    assert (folder / (ledger.name + "-wal")).stat().st_size > 0, "frames left in the WAL"
    return copy


def raw(base: str) -> Any:
    """A client that follows no redirect (urllib turns a redirected HEAD into a GET)."""
    parts = urlsplit(base)

    def get(path: str, *, token: str | None = None, method: str = "GET") -> Response:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            conn.request(method, path, headers={"Authorization": f"Bearer {token}"}
                         if token else {})
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read().decode())
        finally:
            conn.close()
    return get


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value and value.startswith("/"):
                self.found.append(value.split("#", 1)[0])


def walk(get: Any, seeds: list[str], token: str | None) -> dict[str, int]:
    """Every page reachable from ``seeds`` by the links the pages carry: ``{path: status}``
    of GET; HEAD and the writing methods are asked of each too."""
    seen: dict[str, int] = {}
    todo = list(seeds)
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        page: Response = get(path, token=token)
        seen[path] = page.status
        assert page.status < 500, (path, page.status, page.body[:300])
        head = get(path, token=token, method="HEAD")
        assert (head.status, head.body) == (page.status, ""), path
        for method in WRITES:
            refused = get(path, token=token, method=method)
            assert refused.status == 405 and refused.headers["Allow"] == "GET, HEAD", \
                (method, path)
        if page.headers.get("Content-Type", "").startswith("text/html") and page.status == 200:
            links = _Links()
            links.feed(page.body)
            todo.extend(link for link in links.found if link not in seen)
    return seen


SEEDS = ["/", "/metrics", "/healthz", "/reports", "/reports/", "/no-such-page",
         "/objects/_/Namespace/_/shop", "/objects/apps/Deployment/shop/missing",
         "/reports/drift-report-2026-11-01-2026-11-30.csv", "/reports/..%2Foutside.html"]


def test_every_route_leaves_the_ledger_byte_for_byte_unchanged(
        ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    ledger = killed_writer_copy(ledger_setup["ledger"], tmp_path / "single")
    before, wal_before = _sha(ledger), _sha(ledger.parent / "ledger.db-wal")
    with serving(ledger_setup["cfg"], TOKEN, ledger_path=ledger) as base:
        get = raw(base)
        seen = walk(get, SEEDS, TOKEN)
        # What only the WAL holds is shown: the reads see the whole ledger.
        assert "by oncall@example.com" in get("/", token=TOKEN).body
    assert {p for p, s in seen.items() if s == 200} >= {
        "/", "/metrics", "/healthz", "/reports/", "/objects/apps/Deployment/shop/web",
        "/objects/_/ConfigMap/shop/settings", "/objects/_/Secret/shop/token",
        "/reports/drift-report-2026-11-01-2026-11-30.html"}
    assert len(seen) >= 12, sorted(seen)
    assert _sha(ledger) == before, "serve wrote the ledger file"
    assert _sha(ledger.parent / "ledger.db-wal") == wal_before
    # Why the read-only open matters: the plain reader's last close checkpoints the WAL into
    # the file, which the walk above never did.
    with plain_reading(ledger) as conn:
        conn.execute("SELECT count(*) FROM events").fetchone()
    assert _sha(ledger) != before


def test_every_fleet_route_leaves_both_ledgers_unchanged(
        ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    ledgers = [killed_writer_copy(ledger_setup["ledger"], tmp_path / name)
               for name in ("eu", "us")]
    before = [_sha(p) for p in ledgers]
    with serving(ledger_setup["cfg"], TOKEN, ledger_paths=ledgers) as base:
        seen = walk(raw(base), SEEDS, TOKEN)
    cluster_pages = [p for p, s in seen.items() if p.startswith("/c/") and s == 200]
    assert any(p.endswith("/objects/apps/Deployment/shop/web") for p in cluster_pages)
    assert len({p.split("/")[2] for p in cluster_pages}) == 2, "both clusters walked"
    assert [_sha(p) for p in ledgers] == before


def test_the_ledger_is_opened_so_that_it_cannot_write(ledger_setup: dict[str, Any],
                                                      tmp_path: Path) -> None:
    ledger = killed_writer_copy(ledger_setup["ledger"], tmp_path / "ro")
    before = _sha(ledger)
    with readonly.reading(ledger) as conn:
        assert conn.execute("SELECT count(*) FROM drift_events WHERE event = 'accepted'"
                            ).fetchone()[0] == 1
        # Refused by SQLite's query_only, and below it by the file opened read-only: with
        # query_only switched off a write is still refused, as is a checkpoint.
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|query_only"):
            conn.execute("DELETE FROM latest")
        conn.execute("PRAGMA query_only = OFF")
        for statement in ("DELETE FROM latest", "CREATE TABLE intruder (x)"):
            with pytest.raises(sqlite3.OperationalError, match="attempt to write a readonly"):
                conn.execute(statement)
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    assert _sha(ledger) == before
    with pytest.raises(LedgerError, match="no ledger here"):
        readonly.connect(tmp_path / "missing.db")


def _small_ledger(folder: Path) -> Path:
    path = folder / "ledger.db"
    with Ledger.open(path) as ledger:
        ledger.begin_run(cluster="ro-mount").finish()
    return path


def test_a_read_only_folder_without_a_writer_is_read_immutable(tmp_path: Path) -> None:
    # A ledger volume mounted read-only into serve's pod: SQLite cannot create the WAL index
    # beside the file. As root every folder is writable, so a forked child drops to `nobody`.
    folder = Path(tempfile.mkdtemp(prefix="ro-ledger-"))
    try:
        path = _small_ledger(folder)
        folder.chmod(0o555)
        before = _sha(path)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child reports through the pipe)
            code = 1
            try:
                os.close(read)
                os.setgid(65534)
                os.setuid(65534)
                try:
                    plain_reading(path).__enter__()
                    plain = "opened"
                except Exception as exc:
                    plain = type(exc).__name__
                with readonly.reading(path) as conn:
                    runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
                os.write(write, f"{runs} {plain}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        answer = os.read(read, 200).decode()
        os.close(read)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, answer
        runs, plain = answer.split()
        assert runs == "1"
        assert plain != "opened", "the plain reader cannot open it there"
        assert _sha(path) == before
        # Nothing was created beside it either (no -wal, no -shm: SQLite could not).
        assert sorted(p.name for p in folder.iterdir()) == ["ledger.db", "ledger.db.lock"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


# ---------------------------------------------------------------------------------- TLS


def make_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (an IP SAN and localhost) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drift-auditor serve test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(IPv4Address(host)), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def https_get(url: str, cafile: Path, token: str | None = None) -> tuple[int, dict[str, str],
                                                                        str, str]:
    """(status, headers, body, TLS version) of a GET by a verifying HTTPS client."""
    context = ssl.create_default_context(cafile=str(cafile))
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            version = resp.fp.raw._sock.version()  # the TLS socket under the response
            return resp.status, dict(resp.headers.items()), resp.read().decode(), version
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode(), ""


@pytest.fixture
def tls_cfg(ledger_setup: dict[str, Any], tmp_path: Path) -> config_mod.Config:
    cert, key = make_certificate(tmp_path)
    path = tmp_path / "tls.yaml"
    path.write_text(ledger_setup["config_file"].read_text().replace(
        "serve: {token-env: SERVE_TEST_TOKEN}",
        f"serve: {{token-env: SERVE_TEST_TOKEN, tls-cert-file: {cert}, tls-key-file: {key}}}"))
    return config_mod.load(path)


@pytest.fixture
def tls_server(tls_cfg: config_mod.Config) -> Iterator[str]:
    server = serve.make_server(tls_cfg, port=0, token=TOKEN)
    serve.start(server)
    try:
        host, port = server.server_address[:2]
        assert server.scheme == "https"
        yield f"https://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_serves_https_to_a_verifying_client(tls_server: str, tls_cfg: config_mod.Config) -> None:
    cafile = Path(tls_cfg.serve.tls_cert_file)
    status, headers, body, version = https_get(tls_server + "/", cafile, TOKEN)
    assert status == 200 and "Deployment.apps" in body
    assert version in ("TLSv1.2", "TLSv1.3")
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    assert https_get(tls_server + "/", cafile)[0] == 401, "the token still applies"
    assert https_get(tls_server + "/healthz", cafile)[0] == 200
    # A client that does not trust the certificate refuses the connection.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(tls_server + "/healthz", timeout=30,
                               context=ssl.create_default_context())
    # Plain HTTP to the HTTPS port gets no page, and the server keeps serving.
    plain = tls_server.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(plain + "/healthz", timeout=10).read()
    # TLS older than 1.2 is refused.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(cafile))
    with warnings.catch_warnings():  # deprecated: which is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    host, port = urlsplit(tls_server).hostname, urlsplit(tls_server).port
    with socket.create_connection((host, port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError):
        old.wrap_socket(raw, server_hostname=host)
    assert https_get(tls_server + "/healthz", cafile)[0] == 200


def test_a_silent_client_does_not_block_others(tls_server: str,
                                               tls_cfg: config_mod.Config) -> None:
    # The handshake runs in the connection's thread: a client that connects and sends
    # nothing does not hold up the next one.
    host, port = urlsplit(tls_server).hostname, urlsplit(tls_server).port
    with socket.create_connection((host, port), timeout=10):
        assert https_get(tls_server + "/healthz", Path(tls_cfg.serve.tls_cert_file))[0] == 200


def test_tls_settings_are_checked(ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    base = ledger_setup["config_file"].read_text()

    def load(serve_line: str) -> config_mod.Config:
        path = tmp_path / "c.yaml"
        path.write_text(base.replace("serve: {token-env: SERVE_TEST_TOKEN}", serve_line))
        return config_mod.load(path)

    with pytest.raises(ConfigError, match=r"serve\.tls-key-file: serve\.tls-cert-file is set"):
        load("serve: {tls-cert-file: /x.crt}")
    with pytest.raises(ConfigError, match=r"set either serve\.token-env or serve\.token-file"):
        load("serve: {token-env: A, token-file: /b}")
    cfg = load(f"serve: {{tls-cert-file: {tmp_path / 'none.crt'}, tls-key-file: /k}}")
    with pytest.raises(ConfigError, match=r"serve\.tls-cert-file: .*none\.crt: no such file"):
        serve.make_server(cfg, port=0)
    cert, _ = make_certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = make_certificate(other)
    cfg = load(f"serve: {{tls-cert-file: {cert}, tls-key-file: {wrong_key}}}")
    with pytest.raises(ConfigError, match=r"serve\.tls-cert-file: cannot use"):
        serve.make_server(cfg, port=0)


def test_cli_serves_https(ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, *CLI, "--config", str(ledger_setup["config_file"]), "serve",
         "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "SERVE_TEST_TOKEN": TOKEN},
        cwd=str(Path(__file__).parents[2]))
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"https://127\.0\.0\.1:(\d+) \(ledger .*bearer token required\)", line)
        assert match, line
        status, _, body, _ = https_get(f"https://127.0.0.1:{match.group(1)}/", cert, TOKEN)
        assert status == 200 and "Deployment.apps" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------ token from a file


def test_token_from_a_mounted_secret_file_follows_rotation(
        ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    # A Secret volume as the kubelet writes it: the key is a symlink through `..data` to a
    # timestamped folder, swapped atomically when the Secret changes.
    mount = tmp_path / "secret"
    first = mount / "..2026_11_20_10_00_00.1"
    first.mkdir(parents=True)
    (first / "token").write_text("first-token\n")
    (mount / "..data").symlink_to(first.name)
    (mount / "token").symlink_to("..data/token")
    path = tmp_path / "file-token.yaml"
    path.write_text(ledger_setup["config_file"].read_text().replace(
        "serve: {token-env: SERVE_TEST_TOKEN}", f"serve: {{token-file: {mount / 'token'}}}"))
    cfg = config_mod.load(path)
    token = serve.token_from(cfg, {})
    assert token is not None
    with serving(cfg, token) as base:  # type: ignore[arg-type]
        get = http_client(base)
        assert get("/", token="first-token").status == 200, "the trailing newline is not part"
        assert get("/").status == 401 and get("/", token="wrong").status == 401
        # The Secret is updated: a new folder, the `..data` link swapped.
        second = mount / "..2026_11_20_11_00_00.2"
        second.mkdir()
        (second / "token").write_text("second-token")
        (mount / "..data.tmp").symlink_to(second.name)
        os.replace(mount / "..data.tmp", mount / "..data")
        assert get("/", token="first-token").status == 401
        assert get("/", token="second-token").status == 200
        # Emptied or gone: every page refuses (fail closed); probes still answer.
        (second / "token").write_text("")
        assert get("/", token="second-token").status == 401
        assert get("/", token="").status == 401
        assert get("/healthz").status == 200


def test_an_empty_or_missing_token_file_is_an_error(ledger_setup: dict[str, Any],
                                                    tmp_path: Path) -> None:
    for content, message in ((None, "cannot read"), ("  \n", "is empty")):
        file = tmp_path / "token"
        if content is not None:
            file.write_text(content)
        path = tmp_path / "c.yaml"
        path.write_text(ledger_setup["config_file"].read_text().replace(
            "serve: {token-env: SERVE_TEST_TOKEN}", f"serve: {{token-file: {file}}}"))
        with pytest.raises(ConfigError, match=f"serve.token-file: .*{message}"):
            serve.token_from(config_mod.load(path), {})


def test_cli_reads_the_token_file_and_refuses_to_start_without_it(
        ledger_setup: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    token_file = tmp_path / "token"
    path.write_text(ledger_setup["config_file"].read_text().replace(
        "serve: {token-env: SERVE_TEST_TOKEN}", f"serve: {{token-file: {token_file}}}"))

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, *CLI, "--config", str(path), "serve", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"PATH": "/usr/bin:/bin"}, cwd=str(Path(__file__).parents[2]))

    proc = start()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and f"serve.token-file: cannot read {token_file}" in err
    token_file.write_text("from-a-file")
    proc = start()
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) .*bearer token required", line)
        assert match, line
        get = http_client(f"http://127.0.0.1:{match.group(1)}")
        assert get("/").status == 401 and get("/", token="from-a-file").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
