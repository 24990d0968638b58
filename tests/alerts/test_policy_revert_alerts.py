"""Per-run news in Slack: compliance results that started failing, and auto-revert (failed,
capped, dry-run, reverted) — from real runs (``run_once`` against the sandbox API server,
changed with the real kubectl 1.35, recorded in a real SQLite ledger) to the recording Slack
server, through ``alerts.after_run`` / ``alerts.send`` exactly as the ``run`` command does."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditor import alerts
from auditor.config import (
    ClusterConfig,
    Config,
    LedgerConfig,
    PoliciesConfig,
    RevertConfig,
    SlackConfig,
    SlackRoute,
)
from auditor.ledger import reading
from auditor.pipeline import RunOutcome, run_once
from auditor.sandbox import Sandbox

from .conftest import Recorded, SlackServer

pytestmark = pytest.mark.kubectl

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ENV = {"SLACK_TOKEN": "xoxb-news"}
SECRET_VALUE = "s3cr3t-value-never-shown"
HUMAN_SECRET = "hum4n-added-s3cret"
LITERAL_TOKEN = "literal-t0ken-in-git"

SHOP = f"""\
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
          env:
            - {{name: API_TOKEN, value: {LITERAL_TOKEN}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: shop}}
data: {{MODE: prod}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: shop}}
stringData: {{token: {SECRET_VALUE}}}
"""


@pytest.fixture
def shop(tmp_path: Path, kubeconfig: Path, kubectl: Any, slack_server: SlackServer
         ) -> dict[str, Any]:
    apps = tmp_path / "git"
    apps.mkdir()
    (apps / "shop.yaml").write_text(SHOP)
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f",
            str(apps / "shop.yaml"))
    cfg = Config(
        cluster=ClusterConfig(name="news", kubeconfig=str(kubeconfig), retries=1),
        ledger=LedgerConfig(path=str(tmp_path / "ledger.db")),
        policies=PoliciesConfig(directory=str(tmp_path / "no-policies")),
        slack=SlackConfig(token_env="SLACK_TOKEN", channel="#drift", base_url=slack_server.api,
                          backoff_seconds=0.05, budget_seconds=10))
    return {"cfg": cfg, "apps": str(apps), "ledger": tmp_path / "ledger.db"}


def cycle(shop: dict[str, Any], cfg: Config | None = None, **revert: Any
          ) -> tuple[RunOutcome, alerts.AlertReport]:
    """One `drift-auditor run`: the audit (revert settings as given), then its alerts."""
    cfg = cfg or shop["cfg"]
    if revert:
        cfg = replace(cfg, revert=RevertConfig(**{"mode": "enforce", "max_objects": 10,
                                                  **revert}))
    outcome = run_once(cfg, desired_path=shop["apps"])
    return outcome, alerts.after_run(cfg, cfg.ledger.path, outcome.run_id, env=ENV)


def kinds_posted(server: SlackServer, start: int = 0) -> list[str]:
    """The first word(s) of each posted message's text, to tell message kinds apart."""
    return [r.body.get("text", "") for r in server.requests[start:]
            if r.method == "chat.postMessage"]


def posts(server: SlackServer, start: int, needle: str) -> list[Recorded]:
    return [r for r in server.requests[start:] if r.method == "chat.postMessage"
            and needle in r.body.get("text", "")]


def assert_no_secret(server: SlackServer, *values: str) -> None:
    assert server.requests
    for request in server.requests:
        raw = request.text()
        for value in values:
            assert value not in raw
            assert base64.b64encode(value.encode()).decode() not in raw


def outbox_kinds(ledger: Path) -> list[str]:
    with reading(ledger) as conn:
        return [str(k) for (k,) in conn.execute("SELECT kind FROM alert_outbox ORDER BY id")]


# ------------------------------------------------------------------ compliance policies


def test_newly_failing_policies_are_posted_once_grouped_and_routed(
        shop: dict[str, Any], kubectl: Any, slack_server: SlackServer) -> None:
    cfg = replace(shop["cfg"], policies=PoliciesConfig(directory=str(POLICIES)), slack=replace(
        shop["cfg"].slack, routes=(SlackRoute(channel="#shop-sec", namespaces=("shop",),
                                              severities=("high",)),)))
    first, report = cycle(shop, cfg)
    assert first.counters["policy"]["newly_failing"] > 0
    assert not report.errors, report.errors
    # One message per destination: high findings in namespace shop (the Namespace object
    # shop included) go to the route; the rest (Namespace default) to the channel.
    by_channel = {r.body["channel"]: r for r in posts(slack_server, 0, "compliance check")}
    assert set(by_channel) == {"#shop-sec", "#drift"}
    assert "Namespace default" in by_channel["#drift"].text()
    assert "shop" not in by_channel["#drift"].text().replace("#shop-sec", "")
    policy = by_channel["#shop-sec"]
    text = policy.text()
    assert "Namespace shop*: the namespace has no NetworkPolicy" in text
    assert "Credentials as literal env values" in text          # the policy's title
    assert "disallow-credentials-in-env-values" in text and "high" in text
    assert "Deployment.apps shop/web" in text                   # the object
    assert "web/API_TOKEN" in text                              # the message names the var…
    assert LITERAL_TOKEN not in text                            # …never its value
    assert "Store the value in a Secret" in text                # the remediation
    assert policy.body["attachments"][0]["color"] == "#D92D20"
    # medium/low policies are not in Slack (require-liveness-probe is medium)
    assert "require-liveness-probe" not in text
    with reading(shop["ledger"]) as conn:
        [(news_run, count)] = conn.execute("SELECT run_id, messages FROM alert_runs").fetchall()
    assert news_run == first.run_id and count == 2

    # The same run again (`alerts send` by hand): nothing new is queued or posted.
    seen = len(slack_server.requests)
    again = alerts.send(cfg, cfg.ledger.path, env=ENV, run_id=first.run_id)
    assert (again.queued, again.delivered) == (0, 0) and len(slack_server.requests) == seen

    # A result failing on and on is not re-posted; a new failure is, alone.
    cycle(shop, cfg)
    assert not posts(slack_server, seen, "compliance check")
    kubectl("-n", "shop", "patch", "deployment", "web", "--type=merge", "-p",
            '{"spec": {"template": {"spec": {"hostPID": true}}}}')
    mark = len(slack_server.requests)
    cycle(shop, cfg)
    [hostpid] = posts(slack_server, mark, "compliance check")
    assert hostpid.body["text"].startswith("1 compliance check started failing")
    assert "Host PID namespace shared" in hostpid.text()
    assert "hostPID: true" in hostpid.text()
    assert "Credentials as literal env values" not in hostpid.text()
    assert_no_secret(slack_server, SECRET_VALUE, LITERAL_TOKEN)


def test_quiet_mode_suppresses_policy_news_and_lifting_it_replays_nothing(
        shop: dict[str, Any], slack_server: SlackServer) -> None:
    loud = replace(shop["cfg"], policies=PoliciesConfig(directory=str(POLICIES)))
    quiet = replace(loud, slack=replace(loud.slack, quiet=True))
    _, report = cycle(shop, quiet)
    assert report.queued == 0 and report.suppressed > 0 and not slack_server.requests
    _, report = cycle(shop, loud)
    assert not posts(slack_server, 0, "compliance check")
    with reading(shop["ledger"]) as conn:
        assert [q for (q,) in conn.execute("SELECT quiet FROM alert_runs ORDER BY run_id")] \
            == [1, 0]


# ------------------------------------------------------------------------ auto-revert


def human_changes(kubectl: Any) -> None:
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    kubectl("-n", "shop", "label", "configmap/settings", "touched-by=ops")
    kubectl("-n", "shop", "patch", "secret/token", "--type=merge", "-p",
            orjson.dumps({"stringData": {"extra": HUMAN_SECRET}}).decode())


def test_failed_revert_is_alerted_with_the_missing_permission_and_others_as_reverted(
        shop: dict[str, Any], kubectl: Any, sandbox: Sandbox,
        slack_server: SlackServer) -> None:
    cycle(shop)
    start = len(slack_server.requests)
    human_changes(kubectl)
    sandbox.faults.add(method="PATCH", path_regex=r"/deployments/web$", status=403)
    outcome, report = cycle(shop, mode="enforce")
    assert outcome.ledger["drifts_resolved"] == {"reverted": 2}
    assert not report.errors, report.errors
    [failed] = posts(slack_server, start, "Revert failed")
    assert failed.body["text"].startswith("Revert failed: Deployment.apps shop/web")
    assert "cannot patch deployments.apps web in namespace shop" in failed.text()
    assert "RBAC verb 'patch' on resource 'deployments.apps'" in failed.text()
    assert failed.body["attachments"][0]["color"] == "#D92D20"
    # The ConfigMap and Secret drifted and were reverted in this same run: no drift message
    # announced them, so one message says drift-auditor reverted them.
    [reverted] = posts(slack_server, start, "Reverted by drift-auditor")
    assert reverted.body["text"].startswith("Reverted by drift-auditor: 2 objects")
    assert "ConfigMap shop/settings" in reverted.text() and "Secret shop/token" in reverted.text()
    assert "touched-by" in reverted.text()
    # The still-open Deployment drift is announced as usual.
    assert posts(slack_server, start, "Deployment.apps shop/web drifted from Git")
    assert sorted(k for k in outbox_kinds(shop["ledger"]) if k.startswith("revert")) == [
        "revert-failed", "reverted"]

    # Backing off: no attempt, no new failure message; `alerts send` again posts nothing.
    seen = len(slack_server.requests)
    cycle(shop, mode="enforce")
    again = alerts.send(shop["cfg"], shop["ledger"], env=ENV)
    assert again.queued == 0
    assert not posts(slack_server, seen, "Revert failed")
    assert_no_secret(slack_server, SECRET_VALUE, HUMAN_SECRET)


def test_announced_drift_reverted_later_gets_a_follow_up_saying_so(
        shop: dict[str, Any], kubectl: Any, slack_server: SlackServer) -> None:
    cycle(shop)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    cycle(shop)  # revert off: the drift is announced
    [original] = posts(slack_server, 0, "drifted from Git")
    start = len(slack_server.requests)
    outcome, _ = cycle(shop, mode="enforce")
    assert outcome.ledger["drifts_resolved"] == {"reverted": 1}
    update, reply = slack_server.requests[start:]
    assert update.method == "chat.update" and reply.body["thread_ts"] == update.body["ts"]
    assert "reverted by drift-auditor" in reply.body["text"]
    assert "reverted by drift-auditor" in update.text()
    assert original.body["channel"] == "#drift"
    # The follow-up told it; no separate "reverted" message for the same revert.
    assert "reverted" not in outbox_kinds(shop["ledger"])


def test_capped_run_says_how_many_the_cap_and_that_nothing_was_reverted(
        shop: dict[str, Any], kubectl: Any, sandbox: Sandbox,
        slack_server: SlackServer) -> None:
    cycle(shop)
    human_changes(kubectl)
    start = len(slack_server.requests)
    outcome, _ = cycle(shop, mode="enforce", max_objects=2)
    assert outcome.ledger["drifts_resolved"] == {}
    [capped] = posts(slack_server, start, "Revert capped")
    assert capped.body["text"].startswith(
        "Revert capped: 3 objects would have been reverted, the cap is 2; nothing was reverted")
    assert "*Nothing was reverted*" in capped.text()
    for obj in ("Deployment.apps shop/web", "ConfigMap shop/settings", "Secret shop/token"):
        assert obj in capped.text()
    assert capped.body["attachments"][0]["color"] == "#F79009"
    again = alerts.send(shop["cfg"], shop["ledger"], env=ENV, run_id=outcome.run_id)
    assert again.queued == 0 and len(posts(slack_server, start, "Revert capped")) == 1
    assert_no_secret(slack_server, SECRET_VALUE, HUMAN_SECRET)


def test_dry_run_would_be_reverts_are_grouped_per_run_and_not_repeated(
        shop: dict[str, Any], kubectl: Any, slack_server: SlackServer) -> None:
    cycle(shop)
    human_changes(kubectl)
    start = len(slack_server.requests)
    cycle(shop, mode="dry-run")
    [dry] = posts(slack_server, start, "Dry-run")
    assert dry.body["text"].startswith("Dry-run: drift-auditor would revert 3 objects")
    text = dry.text()
    assert "Nothing was changed" in text
    assert "shop/web:6.6.6-hotfix" in text and "shop/web:1.0.0" in text  # live → Git
    assert "Secret shop/token" in text and "data.extra" in text
    assert dry.body["attachments"][0]["color"] == "#2E90FA"
    # The same would-be reverts next run: recorded once, so not posted again.
    seen = len(slack_server.requests)
    cycle(shop, mode="dry-run")
    assert not posts(slack_server, seen, "Dry-run")
    assert_no_secret(slack_server, SECRET_VALUE, HUMAN_SECRET)


def test_preview_shows_the_news_and_queues_nothing(shop: dict[str, Any], kubectl: Any,
                                                   slack_server: SlackServer) -> None:
    cycle(shop)
    human_changes(kubectl)
    cfg = replace(shop["cfg"], revert=RevertConfig(mode="dry-run"))
    outcome = run_once(cfg, desired_path=shop["apps"])
    preview = alerts.send(cfg, cfg.ledger.path, env=ENV, run_id=outcome.run_id, dry_run=True)
    assert any("revert-dry-run" in p and "would revert 3 objects" in p
               for p in preview.previews)
    with reading(shop["ledger"]) as conn:
        assert conn.execute("SELECT count(*) FROM alert_runs WHERE run_id = ?",
                            (outcome.run_id,)).fetchone()[0] == 0
    report = alerts.after_run(cfg, cfg.ledger.path, outcome.run_id, env=ENV)
    assert "revert-dry-run" in outbox_kinds(shop["ledger"]) and not report.errors
