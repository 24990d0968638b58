"""Per-run news in Slack: compliance results that started failing, and auto-revert (failed,
capped, dry-run, reverted) — from real runs (``run_once`` against the sandbox API server,
changed with the real kubectl 1.35, recorded in a real SQLite ledger) to the recording Slack
server, through ``alerts.after_run`` / ``alerts.send`` exactly as the ``run`` command does.
The last tests write the ledger through its APIs (policy runs with the shipped policies,
revert rows) for what real runs make slow or awkward: old ledgers, failed delivery, routes
across namespaces, webhooks, many results."""

from __future__ import annotations

import base64
import copy
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitopsfixtures import sync_from_git

from auditor.config import (
    ClusterConfig,
    Config,
    LedgerConfig,
    PoliciesConfig,
    RevertConfig,
    SlackConfig,
    SlackRoute,
)
from auditor.engine.records import ResourceKey
from auditor.ledger import Ledger, reading
from auditor.ledger import reverts as ledger_reverts
from auditor.ledger.lifecycle import items_of
from auditor.outputs import alerts
from auditor.pipeline import RunOutcome, run_once
from auditor.policies.hook import PolicyRun
from auditor.sandbox import Sandbox
from tests.policies.examples import deployment, namespace, network_policy

from .conftest import Recorded, SlackServer
from .ledgers import IMAGE, T0, bot_config, drifted, in_sync, key, record

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
    sync_from_git(kubectl, apps, SHOP)
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


@pytest.mark.kubectl
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


@pytest.mark.kubectl
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


@pytest.mark.kubectl
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


@pytest.mark.kubectl
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


@pytest.mark.kubectl
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


@pytest.mark.kubectl
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


@pytest.mark.kubectl
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


# ------------------------------------------------- through the ledger APIs (no cluster)


def ledger_run(db: Path, *, hours: float = 0, objects: Sequence[dict[str, Any]] = (),
               reverts: Sequence[dict[str, Any]] = (),
               capped: tuple[ResourceKey, ...] = (), cap: int = 0) -> int:
    """One complete run: policy results of ``objects`` (shipped policies), then revert rows
    and an optional cap event, as ``run_once`` writes them."""
    cfg = Config(ledger=LedgerConfig(path=str(db)),
                 policies=PoliciesConfig(directory=str(POLICIES)))
    with Ledger.open(db) as ledger:
        policy_run = PolicyRun.start(cfg, ledger) if objects else None
        run = ledger.begin_run(cluster="prod-eu", started_at=T0 + timedelta(hours=hours))
        for obj in objects:
            assert policy_run is not None
            policy_run.add(copy.deepcopy(obj))
        for row in reverts:
            fields = {k: v for k, v in row.items() if k != "key"}
            ledger_reverts.record(run, row["key"], **{
                "action": "apply", "mode": "enforce", "reason": "drifted: human change",
                **fields})
        if capped:
            ledger_reverts.record_capped(run, mode="enforce", planned=capped, cap=cap)
        if policy_run is not None:
            policy_run.finish(run)
        return run.finish("complete", counts={"in-sync": 1}).run_id


def webhook(server: SlackServer, **slack: Any) -> tuple[Config, dict[str, str]]:
    cfg = Config(slack=SlackConfig(webhook_url_env="SLACK_WEBHOOK", backoff_seconds=0.01,
                                   budget_seconds=5, max_retries=0, **slack))
    return cfg, {"SLACK_WEBHOOK": server.hook()}


def failure(name: str, ns: str = "shop", error: str = "forbidden") -> dict[str, Any]:
    return {"key": ResourceKey("apps", "Deployment", ns, name), "result": "failed",
            "error": f"{error}: cannot patch deployments.apps {name} in namespace {ns}",
            "items": [{"path": IMAGE, "op": "changed", "desired": "shop/web:1.0.0",
                       "live": "shop/web:6.6.6", "manager": "kubectl-set",
                       "category": "human"}]}


def test_critical_results_count_as_high_for_routes_and_come_first(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db, objects=[namespace(), network_policy(), deployment()])
    privileged = deployment()
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "privileged"] = True
    privileged["spec"]["template"]["spec"]["hostPID"] = True
    cfg = bot_config(slack_server.api, routes=[
        {"channel": "#sec", "severities": ["high"]}])
    alerts.send(cfg, db, env=ENV)  # the first pass: the (empty) drift summary
    rid = ledger_run(db, hours=1, objects=[namespace(), network_policy(), privileged])
    start = len(slack_server.requests)
    report = alerts.after_run(cfg, db, rid, env=ENV)
    assert not report.errors
    [msg] = slack_server.requests[start:]
    assert msg.body["channel"] == "#sec"
    assert msg.body["text"].startswith("2 compliance checks started failing")
    assert "(1 critical, 1 high)" in msg.body["text"]
    assert msg.body["attachments"][0]["color"] == "#7A271A"  # critical tone
    sections = [b["text"]["text"] for b in msg.body["attachments"][0]["blocks"]
                if b["type"] == "section"]
    # the critical policy's section comes before the high one's
    assert "disallow-privileged" in sections[1] and "critical" in sections[1]
    assert "disallow-host-pid" in sections[2] and "high" in sections[2]


def test_alerts_switched_on_for_an_old_ledger_start_from_its_newest_run(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db, reverts=[failure("old")])
    newest = ledger_run(db, hours=1, reverts=[failure("new")])
    cfg, env = webhook(slack_server)
    report = alerts.send(cfg, db, env=env)
    assert report.first_run and not report.errors
    texts = [r.body["text"] for r in slack_server.requests]
    assert any(t.startswith("Revert failed: Deployment.apps shop/new") for t in texts)
    assert not any("shop/old" in r.text() for r in slack_server.requests)
    with reading(db) as conn:
        assert conn.execute("SELECT value FROM alert_meta WHERE key = 'news_from_run'"
                            ).fetchone()[0] == str(newest)
    # A later run is considered even when `alerts send` runs without a run id.
    ledger_run(db, hours=2, reverts=[failure("later")])
    alerts.send(cfg, db, env=env)
    assert slack_server.requests[-1].body["text"].startswith(
        "Revert failed: Deployment.apps shop/later")


def test_undelivered_news_stays_queued_and_is_sent_once(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    cfg, env = webhook(slack_server)
    ledger_run(db)
    alerts.send(cfg, db, env=env)  # first pass
    rid = ledger_run(db, hours=1, reverts=[failure("web")])
    slack_server.answer(500)
    report = alerts.after_run(cfg, db, rid, env=env)
    assert (report.queued, report.delivered, report.pending) == (1, 0, 1)
    again = alerts.send(cfg, db, env=env, run_id=rid)
    assert (again.queued, again.delivered, again.pending) == (0, 1, 0)
    failed = [r for r in slack_server.requests if "Revert failed" in r.body["text"]]
    assert [r.status for r in failed] == [500, 200]
    assert alerts.send(cfg, db, env=env).queued == 0


def test_news_routes_by_namespace_and_a_cap_reaches_every_namespace_it_touched(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db)
    cfg = bot_config(slack_server.api, routes=[
        {"channel": "#shop", "namespaces": ["shop"]},
        {"channel": "#dev", "namespaces": ["dev-*"]}])
    alerts.send(cfg, db, env=ENV)
    rid = ledger_run(db, hours=1, reverts=[failure("web"), failure("api", ns="dev-1")],
                     capped=(ResourceKey("apps", "Deployment", "shop", "web"),
                             ResourceKey("", "ConfigMap", "dev-2", "settings"),
                             ResourceKey("", "Namespace", "", "dev-3")), cap=2)
    start = len(slack_server.requests)
    alerts.after_run(cfg, db, rid, env=ENV)
    sent = {(r.body["channel"], r.body["text"].split(":")[0])
            for r in slack_server.requests[start:]}
    assert sent == {("#shop", "Revert failed"), ("#dev", "Revert failed"),
                    ("#shop", "Revert capped"), ("#dev", "Revert capped")}
    dev_failed = next(r for r in slack_server.requests[start:]
                      if r.body["channel"] == "#dev" and "failed" in r.body["text"])
    assert "dev-1/api" in dev_failed.text()
    assert "Deployment.apps shop/web" not in dev_failed.text()


def test_many_failures_make_one_bounded_message_and_quiet_mode_suppresses_them(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db)
    cfg, env = webhook(slack_server)
    alerts.send(cfg, db, env=env)
    rid = ledger_run(db, hours=1, reverts=[failure(f"web-{i:02d}") for i in range(25)])
    quiet, _ = webhook(slack_server, quiet=True)
    report = alerts.after_run(quiet, db, rid, env=env)
    assert (report.queued, report.suppressed) == (0, 25)
    assert alerts.send(cfg, db, env=env).queued == 0  # quiet lifted: no stale replay

    rid = ledger_run(db, hours=2, reverts=[failure(f"api-{i:02d}") for i in range(25)])
    start = len(slack_server.requests)
    alerts.after_run(cfg, db, rid, env=env)
    [msg] = slack_server.requests[start:]
    assert msg.body["text"].startswith("25 reverts failed")
    blocks = msg.body["attachments"][0]["blocks"]
    assert len(blocks) <= 50  # Slack's limit per message
    assert "… and 15 more" in msg.text()
    assert "shop/api-00" in msg.text() and "shop/api-24" not in msg.text()


def test_secret_revert_shows_key_names_and_hashes_only(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db)
    cfg, env = webhook(slack_server)
    alerts.send(cfg, db, env=env)
    secret = ResourceKey("", "Secret", "shop", "token")
    value = "pl4in-s3cret-value"
    rid = ledger_run(db, hours=1, reverts=[
        {"key": secret, "result": "failed", "mode": "enforce",
         "error": f'Secret "token" is invalid: data[extra]: Invalid value: "{value}"',
         "items": [{"path": "data.extra", "op": "added", "desired": None, "live": value,
                    "manager": "kubectl-patch", "category": "human"}]},
        {"key": ResourceKey("", "Secret", "shop", "other"), "result": "dry-run",
         "mode": "dry-run", "items": [{"path": "data.token", "op": "changed",
                                       "desired": "git-" + value, "live": value,
                                       "manager": "kubectl-edit", "category": "human"}]}])
    alerts.after_run(cfg, db, rid, env=env)
    texts = [r.text() for r in slack_server.requests]
    assert any("Revert failed: Secret shop/token" in t and "data.extra" in t for t in texts)
    assert any("would revert 1 object" in t and "data.token" in t for t in texts)
    assert_no_secret(slack_server, value, "git-" + value)


def test_an_outbox_made_before_alert_runs_gets_the_table_on_first_use(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db)
    cfg, env = webhook(slack_server)
    alerts.send(cfg, db, env=env)
    with sqlite3.connect(db) as conn:  # as a ledger from before this table existed
        conn.execute("DROP TABLE alert_runs")
        conn.execute("DELETE FROM alert_meta WHERE key = 'news_from_run'")
    rid = ledger_run(db, hours=1, reverts=[failure("web")])
    report = alerts.after_run(cfg, db, rid, env=env)
    assert (report.queued, report.delivered) == (1, 1) and not report.errors
    with reading(db) as conn:
        assert conn.execute("SELECT run_id FROM alert_runs").fetchall() == [(rid,)]


def revert_run(db: Path, hours: float, keys: Sequence[ResourceKey]) -> int:
    """A run that sees ``keys`` drifted and reverts them (as ``run_once`` in enforce mode)."""
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=T0 + timedelta(hours=hours))
        for k in keys:
            result = drifted(k, (IMAGE, "shop/web:1.0.0", "shop/web:6.6.6"))
            run.record(result)
            ledger_reverts.record(run, k, action="apply", mode="enforce", result="reverted",
                                  reason="drifted: human change", items=items_of(result))
            run.reverted(k)
        return run.finish("complete", counts={"in-sync": 1}).run_id


def test_a_drift_suppressed_in_quiet_mode_then_reverted_is_still_told(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    web = key("web")
    record(db, 0, [drifted(web, (IMAGE, "shop/web:1.0.0", "shop/web:6.6.6"))])
    cfg, env = webhook(slack_server)
    quiet, _ = webhook(slack_server, quiet=True)
    assert alerts.send(quiet, db, env=env).suppressed == 1
    rid = revert_run(db, 1, [web])
    report = alerts.after_run(cfg, db, rid, env=env)
    assert report.queued == 1 and not report.errors
    [msg] = slack_server.requests
    assert msg.body["text"].startswith("Reverted by drift-auditor: 1 object")
    assert "Deployment.apps shop/web" in msg.text()
    assert "`" + IMAGE + "` live `shop/web:6.6.6` → Git `shop/web:1.0.0`" in \
        msg.body["attachments"][0]["blocks"][1]["text"]["text"]


def test_many_announced_drifts_reverted_at_once_say_who_reverted_them(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    record(db, 0, [in_sync(key("web"))])
    cfg, env = webhook(slack_server, group_threshold=1)
    alerts.send(cfg, db, env=env)
    keys = [key("web"), key("api")]
    record(db, 1, [drifted(k, (IMAGE, "shop/web:1.0.0", "shop/web:6.6.6")) for k in keys])
    alerts.send(cfg, db, env=env)
    assert slack_server.requests[-1].body["text"].startswith("2 new drifts")
    rid = revert_run(db, 2, keys)
    report = alerts.after_run(cfg, db, rid, env=env)
    assert report.queued == 1  # the grouped follow-up; no separate "reverted" news
    assert slack_server.requests[-1].body["text"].startswith(
        "2 drifts resolved (reverted by drift-auditor)")


def test_a_cap_refusing_the_same_objects_run_after_run_is_posted_once(
        tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    ledger_run(db)
    cfg, env = webhook(slack_server)
    alerts.send(cfg, db, env=env)
    planned = tuple(ResourceKey("apps", "Deployment", "shop", f"web-{i}") for i in range(3))
    for hours in (1, 2):
        rid = ledger_run(db, hours=hours, capped=planned, cap=2)
        alerts.after_run(cfg, db, rid, env=env)
    capped = [r for r in slack_server.requests if r.body["text"].startswith("Revert capped")]
    assert len(capped) == 1
    # One more object to revert is a different plan: said again.
    rid = ledger_run(db, hours=3, capped=(*planned, key("api")), cap=2)
    alerts.after_run(cfg, db, rid, env=env)
    assert slack_server.requests[-1].body["text"].startswith(
        "Revert capped: 4 objects would have been reverted, the cap is 2")
    # A run that was not capped in between: the same cap later is news again.
    ledger_run(db, hours=4)
    rid = ledger_run(db, hours=5, capped=planned, cap=2)
    alerts.after_run(cfg, db, rid, env=env)
    assert len([r for r in slack_server.requests
                if r.body["text"].startswith("Revert capped")]) == 3
