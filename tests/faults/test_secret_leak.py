"""Secret values never leave the process: distinctive values planted in Secrets — in Git
through ``data`` and ``stringData``, live through kubectl (a patched key, an added key, an
annotation repeating a value, a client-side apply whose
``kubectl.kubernetes.io/last-applied-configuration`` carries the values, a hand-made Secret
that Git does not declare) — then every output of the real tool is searched for each value,
plain, in base64 at any alignment (a value inside a longer encoded text) and in hex:

* ``run`` (text and JSON, with drift on the Secrets), ``diff -o json`` and text, ``diff``
  against a snapshot, ``snapshot`` (file and stdout), ``history`` (JSON, CSV, text),
  ``report`` (HTML with its CSV, CSV of every table, JSON), ``metrics --print``, ``alerts
  send --dry-run`` and ``alerts status``, every command's log at ``-vv``;
* the Slack payloads, as a local Slack stand-in received them;
* every page ``serve`` answers, crawled over HTTP from its front page;
* the ledger (the file and every cell read through SQLite: a long value may straddle two
  database pages), and every file in the ledger's folder, ``.drift-auditor-cache/``
  included.

Positive controls first: the values are really live and in Git, the drift on the Secrets
is really seen and announced, and the scan finds a value where one is (kubectl's output).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from auditor.ledger import reading
from auditor.sandbox import Sandbox
from tests.faults.leakcheck import SlackStandIn, crawl, files_under, forms, scan, scan_files
from tests.gitfixtures import RepoBuilder, tool

pytestmark = [pytest.mark.kubectl, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]

# Distinctive, and unlike anything else the tool prints.
PLANTED = {
    "git-data": "gitdata-PLANT-7c1f9e2a44",            # Git, base64 under `data`
    "git-stringdata": "gitstring-PLANT-b83d40f6e1",    # Git, plain under `stringData`
    "git-legacy": "gitlegacy-PLANT-19e5c7d2a8",        # Git, applied client-side (annotation)
    "live-patched": "livepatch-PLANT-4e9a11c0f3",      # kubectl patch: a changed key
    "live-added": "liveadded-PLANT-d5e27b93c6",        # kubectl patch: a key Git lacks
    "live-annotation": "liveannot-PLANT-0b8f6e3d15",   # kubectl annotate repeating a value
    "last-applied": "lastapply-PLANT-a0c6f83e72",      # kubectl apply: value + annotation
    "orphan": "orphan-PLANT-5d2c9a07be",               # a Secret only kubectl made
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata: {name: vault}
"""

CREDS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: vault}}
type: Opaque
data:
  db-password: {b64(PLANTED["git-data"])}
stringData:
  api-token: {PLANTED["git-stringdata"]}
"""

LEGACY = """\
apiVersion: v1
kind: Secret
metadata: {{name: legacy, namespace: vault}}
stringData:
  password: {value}
"""

SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: vault}
data: {MODE: prod}
"""


@dataclass
class Scenario:
    """Everything the tool said and wrote, by where it came from."""

    state: Path                        # the ledger's folder
    outputs: dict[str, bytes] = field(default_factory=dict)   # command → stdout / stderr
    json_docs: dict[str, Any] = field(default_factory=dict)
    slack: list[bytes] = field(default_factory=list)
    slack_texts: list[str] = field(default_factory=list)
    pages: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    kubectl_secret: bytes = b""


class _Serve:
    """``drift-auditor serve --port 0`` as a process of our own; its log drained as it
    comes (a full pipe would stall the server at -vv)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self.lines: list[bytes] = []
        self.url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith(b"drift-auditor serve: http://"):
                self.url = line.split()[2].decode()
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> str:
        assert self._ready.wait(60), b"".join(self.lines).decode()
        assert self.url, b"".join(self.lines).decode()
        return self.url

    def stop(self) -> tuple[bytes, bytes]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        self._reader.join(timeout=10)
        return out, b"".join(self.lines)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("leak")
    kubectl_bin = tool("kubectl")
    with Sandbox() as sandbox, SlackStandIn() as slack:
        kubeconfig = sandbox.write_kubeconfig(tmp / "kubeconfig")
        kube_env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp / "home"),
                    "KUBECACHEDIR": str(tmp / "kube-cache"), "KUBE_EDITOR": "true"}

        def kubectl(*args: str, input: str | None = None) -> str:
            proc = subprocess.run([kubectl_bin, *args], input=input, env=kube_env, text=True,
                                  capture_output=True, timeout=60)
            assert proc.returncode == 0, f"kubectl {args}: {proc.stderr}"
            return proc.stdout

        # Git: a real repository; the GitOps controller applies it server-side, except the
        # legacy Secret, applied with a client-side `kubectl apply` (last-applied annotation).
        repo = RepoBuilder(tmp / "gitops")
        repo.write("apps/namespace.yaml", NAMESPACE)
        repo.write("apps/creds.yaml", CREDS)
        repo.write("apps/legacy.yaml", LEGACY.format(value=PLANTED["git-legacy"]))
        repo.write("apps/settings.yaml", SETTINGS)
        repo.commit("vault: credentials")
        apps = repo.path / "apps"
        for name in ("namespace", "creds", "settings"):
            kubectl("apply", "--server-side", "--field-manager=argocd-controller",
                    "-f", str(apps / f"{name}.yaml"))
        kubectl("apply", "-f", str(apps / "legacy.yaml"))

        state = tmp / "state"
        config = tmp / "drift-auditor.yaml"
        config.write_text(
            f"cluster: {{name: leak, kubeconfig: {kubeconfig}, retries: 1}}\n"
            f"ledger: {{path: {state / 'ledger.db'}}}\n"
            f"policies: {{directory: {ROOT / 'policies'}}}\n"
            f"reports: {{directory: {state / 'reports'}}}\n"
            f"metrics: {{textfile: {state / 'metrics' / 'drift_auditor.prom'}}}\n"
            f"slack: {{token-env: SLACK_TOKEN, channel: '#drift', base-url: '{slack.api}', "
            "backoff-seconds: 0.01}\n")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "SLACK_TOKEN": "xoxb-leak"}
        out = Scenario(state)

        def cli(name: str, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
            proc = subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config),
                                   "-vv", *args], capture_output=True, env=env, timeout=180)
            assert proc.returncode in ok, (name, proc.returncode, proc.stderr.decode()[-3000:])
            out.outputs[f"{name} (stdout)"] = proc.stdout
            out.outputs[f"{name} (stderr, -vv)"] = proc.stderr
            return proc.stdout

        desired = ("--desired", str(apps))
        cli("run 1 (baseline)", "run", *desired, "-o", "json", ok=(0, 1))

        # Out of band, as a person at a terminal would.
        kubectl("-n", "vault", "patch", "secret", "creds", "-p", json.dumps({"data": {
            "db-password": b64(PLANTED["live-patched"]), "extra": b64(PLANTED["live-added"])}}))
        kubectl("-n", "vault", "annotate", "secret", "creds",
                f"note={PLANTED['live-annotation']}")
        kubectl("-n", "vault", "patch", "secret", "creds", "-p", json.dumps(
            {"data": {"note-copy": b64(PLANTED["live-annotation"])}}))
        handmade = tmp / "handmade-legacy.yaml"
        handmade.write_text(LEGACY.format(value=PLANTED["last-applied"]))
        kubectl("apply", "-f", str(handmade))
        kubectl("create", "--save-config", "-f", "-", input=(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: by-hand, namespace: vault}\n"
            f"stringData: {{token: {PLANTED['orphan']}}}\n"))
        out.kubectl_secret = kubectl("-n", "vault", "get", "secret", "creds", "legacy",
                                     "by-hand", "-o", "json").encode()

        out.json_docs["run"] = json.loads(cli("run 2 (drift)", "run", *desired, "-o", "json",
                                              ok=(1,)))
        cli("run 3 (text)", "run", *desired, ok=(1,))
        out.json_docs["diff"] = json.loads(cli("diff -o json", "diff", *desired, "-o", "json",
                                               ok=(1,)))
        cli("diff (text)", "diff", *desired, "--no-color", ok=(1,))
        snapshot = state / "snapshot.json"
        cli("snapshot --output-file", "snapshot", "--output-file", str(snapshot))
        cli("snapshot (stdout)", "snapshot")
        cli("diff --live snapshot", "diff", *desired, "--live", str(snapshot), "-o", "json",
            ok=(1,))
        out.json_docs["history"] = json.loads(cli("history -o json", "history", "-o", "json"))
        cli("history -o csv", "history", "-o", "csv")
        cli("history (text)", "history")
        cli("history --object", "history", "--object", "Secret vault/creds", "-o", "json")
        cli("report html", "report", "--from", "2000-01-01", "--output-file",
            str(state / "reports" / "leak.html"))
        for table in ("changes", "drifts", "runs", "reverts", "emergency"):
            cli(f"report csv {table}", "report", "--from", "2000-01-01", "--format", "csv",
                "--table", table)
        out.json_docs["report"] = json.loads(cli("report json", "report", "--from",
                                                 "2000-01-01", "--format", "json"))
        cli("report json -o", "report", "--from", "2000-01-01", "--format", "json", "-o",
            str(state / "reports" / "leak.json"))
        cli("metrics --print", "metrics", "--print")
        cli("alerts send --dry-run", "alerts", "send", "--dry-run")
        cli("alerts status", "alerts", "status")

        server = _Serve([sys.executable, "-m", "auditor.cli", "--config", str(config), "-vv",
                         "serve", "--port", "0"], env)
        try:
            base = server.wait_ready()
            out.pages = crawl(base, ["/", "/metrics", "/healthz", "/reports/",
                                     "/objects/_/Secret/vault/creds",
                                     "/objects/_/Secret/vault/legacy",
                                     "/objects/_/Secret/vault/by-hand"])
        finally:
            stdout, stderr = server.stop()
        out.outputs["serve (stdout)"] = stdout
        out.outputs["serve (stderr, -vv)"] = stderr
        out.slack = list(slack.bodies)
        out.slack_texts = slack.texts()
        yield out


def _report(leaks: list[Any]) -> str:
    return "Secret values found:\n" + "\n".join(f"  {leak}" for leak in leaks)


# ---------------------------------------------------------------- controls


def test_the_planted_values_are_in_play_and_the_scan_would_see_them(scenario: Scenario) -> None:
    # Live: kubectl shows the values (base64 under data, plain in last-applied annotations),
    # and the scan finds every one of them there.
    found = {leak.value for leak in scan("kubectl get", scenario.kubectl_secret, PLANTED)}
    live = {k: v for k, v in PLANTED.items() if k not in ("git-data", "git-legacy")}
    assert set(live.values()) <= found, set(live.values()) - found
    # The tool saw the drift on the Secrets, by key name.
    resources = {(r["kind"], r["name"]): r for r in scenario.json_docs["diff"]["resources"]}
    creds = resources[("Secret", "creds")]
    assert creds["status"] == "drifted"
    paths = {d["path"] for d in creds["drifts"]}
    assert {"data.db-password", "data.extra"} <= paths, paths
    assert resources[("Secret", "legacy")]["status"] == "drifted"
    assert resources[("Secret", "by-hand")]["status"] == "orphan"
    # ... recorded it, announced it, reported it and serves it.
    assert scenario.json_docs["run"]["run"]["status"] == "complete"
    assert any("Secret vault/creds" in text for text in scenario.slack_texts), \
        scenario.slack_texts
    assert any(e["object"].endswith("vault/creds") for e in scenario.json_docs["history"])
    pages = {url.split("/", 3)[-1]: status for url, (status, _) in scenario.pages.items()}
    assert pages["objects/_/Secret/vault/creds"] == 200
    assert pages["metrics"] == 200 and pages[""] == 200
    assert any(url.endswith(".html") and "/reports/" in url for url in scenario.pages)
    # The cache and the ledger the later tests search are really there.
    assert (scenario.state / "ledger.db").is_file()
    assert files_under(scenario.state / ".drift-auditor-cache")


def test_the_forms_cover_a_value_inside_longer_base64() -> None:
    value = PLANTED["orphan"]
    for prefix in ("", "a", "ab", "abc"):
        text = base64.b64encode(f'{{"x": "{prefix}{value}"}}'.encode())
        assert any(needle in text for needle in forms(value).values()), prefix


# ----------------------------------------------------------------- outputs


def test_no_secret_value_in_any_command_output_or_its_debug_log(scenario: Scenario) -> None:
    assert len(scenario.outputs) >= 40
    leaks = [leak for name, blob in sorted(scenario.outputs.items())
             for leak in scan(name, blob, PLANTED)]
    assert leaks == [], _report(leaks)


def test_no_secret_value_in_what_slack_received(scenario: Scenario) -> None:
    assert scenario.slack
    leaks = [leak for n, body in enumerate(scenario.slack)
             for leak in scan(f"slack request {n + 1}", body, PLANTED)]
    assert leaks == [], _report(leaks)


def test_no_secret_value_in_any_served_page(scenario: Scenario) -> None:
    assert len(scenario.pages) >= 6
    leaks = [leak for url, (_, body) in sorted(scenario.pages.items())
             for leak in scan(f"GET {url}", body, PLANTED)]
    assert leaks == [], _report(leaks)


# -------------------------------------------------------------------- files


def test_no_secret_value_in_the_ledger(scenario: Scenario) -> None:
    ledger = scenario.state / "ledger.db"
    files = [p for p in files_under(scenario.state) if p.name.startswith("ledger.db")]
    leaks = scan_files(files, PLANTED, relative_to=scenario.state)
    # Every cell as SQLite returns it: a long JSON value may be split over two pages.
    with reading(ledger) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        assert {"runs", "objects", "events"} <= set(tables)
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                cells = b"\x00".join(c if isinstance(c, bytes) else str(c).encode()
                                     for c in row)
                leaks.extend(scan(f"ledger table {table}", cells, PLANTED))
    assert leaks == [], _report(leaks)


def test_no_secret_value_in_the_caches_beside_the_ledger(scenario: Scenario) -> None:
    """`.drift-auditor-cache/`: parsed manifests, the last run's desired state and verdicts."""
    cache = scenario.state / ".drift-auditor-cache"
    leaks = scan_files(files_under(cache), PLANTED, relative_to=scenario.state)
    assert leaks == [], _report(leaks)


def test_no_secret_value_in_any_other_file_beside_the_ledger(scenario: Scenario) -> None:
    """Reports (HTML, its CSV, JSON), the snapshot, the metrics textfile, the hash key, the
    lock: every file in the ledger's folder outside the ledger and the caches."""
    others = [p for p in files_under(scenario.state)
              if not p.name.startswith("ledger.db")
              and ".drift-auditor-cache" not in p.relative_to(scenario.state).parts]
    names = {p.relative_to(scenario.state).as_posix() for p in others}
    assert {"snapshot.json", "reports/leak.html", "reports/leak.json",
            "metrics/drift_auditor.prom"} <= names, names
    leaks = scan_files(others, PLANTED, relative_to=scenario.state)
    assert leaks == [], _report(leaks)
