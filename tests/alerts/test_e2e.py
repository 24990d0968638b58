"""From real runs to Slack and Prometheus: the sandbox API server changed with the real
kubectl 1.35, ``run_once`` recording each audit in a real ledger, then the functions the
``run`` command calls at its end (``alerts.after_run``, ``metrics.after_run``)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from gitopsfixtures import sync_from_git
from prometheus_client.parser import text_string_to_metric_families

from auditor.config import (
    ClusterConfig,
    Config,
    LedgerConfig,
    MetricsConfig,
    PoliciesConfig,
    SlackConfig,
)
from auditor.outputs import alerts, metrics
from auditor.pipeline import run_once

from .conftest import SlackServer

pytestmark = pytest.mark.kubectl

SECRET_VALUE = "s3cr3t-value-never-shown"
NEW_SECRET_VALUE = "rotated-by-hand-0xDEAD"

APPS = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: shop}}
stringData: {{token: {SECRET_VALUE}}}
"""


@pytest.fixture
def setup(tmp_path: Path, kubeconfig: Path, kubectl: Any, slack_server: SlackServer
          ) -> dict[str, Any]:
    apps = tmp_path / "git"
    apps.mkdir()
    sync_from_git(kubectl, apps, APPS)
    cfg = Config(
        cluster=ClusterConfig(name="e2e", kubeconfig=str(kubeconfig), retries=1),
        ledger=LedgerConfig(path=str(tmp_path / "ledger.db")),
        policies=PoliciesConfig(directory=str(tmp_path / "no-policies")),
        slack=SlackConfig(token_env="SLACK_TOKEN", channel="#drift",
                          base_url=slack_server.api, backoff_seconds=0.05),
        metrics=MetricsConfig(textfile=str(tmp_path / "metrics" / "drift_auditor.prom")))
    return {"cfg": cfg, "apps": str(apps), "ledger": tmp_path / "ledger.db"}


def cycle(setup: dict[str, Any]) -> tuple[alerts.AlertReport, metrics.MetricsReport]:
    """What `drift-auditor run` does: the audit, then alerts and metrics from the ledger."""
    cfg = setup["cfg"]
    outcome = run_once(cfg, desired_path=setup["apps"])
    report = alerts.after_run(cfg, cfg.ledger.path, outcome.run_id,
                              env={"SLACK_TOKEN": "xoxb-e2e"})
    return report, metrics.after_run(cfg, cfg.ledger.path)


def test_real_runs_alert_once_follow_up_and_never_leak_secrets(
        setup: dict[str, Any], kubectl: Any, slack_server: SlackServer) -> None:
    report, mreport = cycle(setup)
    assert report.first_run and report.delivered == 1
    assert "everything matches Git" in slack_server.requests[0].body["text"]
    assert not mreport.errors and Path(mreport.textfile).exists()

    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
    encoded = base64.b64encode(NEW_SECRET_VALUE.encode()).decode()
    kubectl("-n", "shop", "patch", "secret", "token", "-p",
            '{"data": {"token": "' + encoded + '"}}')
    report, _ = cycle(setup)
    assert (report.queued, report.delivered, report.pending) == (2, 2, 0)
    posts = {r.body["text"].split(" ")[1]: r for r in slack_server.requests[1:]}
    web, secret = posts["Deployment.apps"], posts["Secret"]
    assert "shop/web:1.0.0" in web.text() and "shop/web:2.0.0-hotfix" in web.text()
    assert "kubectl-set (human)" in web.text() and "shop.yaml" in web.text()
    assert web.body["attachments"][0]["color"] == "#D92D20"
    assert secret.body["attachments"][0]["color"] == "#D92D20"  # a human edited a Secret
    assert "data.token" in secret.text() and "kubectl-patch" in secret.text()

    # Still drifted: nothing new. Then fixed live: the thread is updated.
    report, _ = cycle(setup)
    assert report.queued == 0
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.0.0")
    report, mreport = cycle(setup)
    assert report.delivered == 2
    update, reply = slack_server.requests[-2:]
    assert update.method == "chat.update" and update.body["ts"] == web_ts(slack_server, web)
    assert reply.body["thread_ts"] == update.body["ts"] and "Resolved (fixed-live)" in reply.text()

    # No Secret value, plain or base64, in anything sent to Slack.
    for request in slack_server.requests:
        raw = request.text()
        for secret_text in (SECRET_VALUE, NEW_SECRET_VALUE):
            assert secret_text not in raw
            assert base64.b64encode(secret_text.encode()).decode() not in raw

    families = {f.name: f for f in text_string_to_metric_families(
        Path(mreport.textfile).read_text())}
    resolved = {s.labels["how"]: s.value for s in families["drift_auditor_drifts_resolved"].samples
                if s.name.endswith("_total")}
    assert resolved["fixed-live"] == 1
    delivered = families["drift_auditor_alerts_delivered"].samples[0].value
    assert delivered == len(slack_server.delivered())


def web_ts(server: SlackServer, original: Any) -> str:
    """The ts the recording server gave ``original`` (its 1-based position)."""
    return f"1700000000.{server.requests.index(original) + 1:06d}"


def test_a_partial_run_names_the_kinds_not_audited_once_then_their_return(
        setup: dict[str, Any], sandbox: Any, slack_server: SlackServer) -> None:
    cycle(setup)
    assert len(slack_server.requests) == 1  # the first summary
    sandbox.faults.add(method="GET", path_regex=r"^/apis/apps/v1/deployments$", status=403)
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/namespaces$", status=500)
    report, _ = cycle(setup)
    assert report.delivered == 1, report.errors
    partial = slack_server.requests[-1]
    assert partial.body["text"].startswith(
        "Partial run: 2 kinds not audited (Deployment.apps, Namespace) · cluster e2e · run 2")
    blocks = partial.body["attachments"][0]["blocks"]
    listing = blocks[1]["text"]["text"]
    assert "*Deployment.apps*: " in listing and "forbidden" in listing
    assert "*Namespace*: " in listing and "500" in listing
    assert "none of their objects was compared" in blocks[0]["text"]["text"]

    # The same kinds missing again: said already, not repeated every run.
    report, _ = cycle(setup)
    assert report.queued == 0 and len(slack_server.requests) == 2
    # One more kind missing: a new message naming all three.
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/secrets$", status=403)
    cycle(setup)
    assert "3 kinds not audited (Deployment.apps, Namespace, Secret)" in \
        slack_server.requests[-1].body["text"]

    sandbox.faults.clear()
    report, _ = cycle(setup)
    assert report.delivered == 1
    back = slack_server.requests[-1].body["text"]
    assert back.startswith("Every kind audited again (Deployment.apps, Namespace, Secret)")
    report, _ = cycle(setup)
    assert report.queued == 0
