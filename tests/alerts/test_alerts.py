"""The alerting policy end to end over real ledgers and real slack-sdk clients talking to a
local recording Slack server: first-run summary, one message per new drift, dedup of
still-open drifts, grouping, follow-ups in threads, reminders, routing, quiet mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.ledger import Ledger
from auditor.outputs import alerts

from .conftest import SlackServer
from .ledgers import (
    IMAGE,
    at,
    bot_config,
    drifted,
    in_sync,
    key,
    record,
    webhook_config,
)

WEB, API, CFG = key("web"), key("api", ns="billing"), key("settings", kind="ConfigMap", group="")
WEB_DRIFT = drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0-rc1"),
                    ("spec.replicas", 3, 5))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    record(path, 0, [in_sync(WEB), in_sync(API), in_sync(CFG)])
    return path


def hook_env(server: SlackServer) -> dict[str, str]:
    return {"SLACK_WEBHOOK": server.hook()}


def bot_env() -> dict[str, str]:
    return {"SLACK_TOKEN": "xoxb-test-token"}


def test_first_pass_posts_one_summary_for_all_open_drifts(tmp_path: Path,
                                                          slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    run_id = record(db, 0, [WEB_DRIFT, drifted(API, ("spec.replicas", 2, 4)),
                            drifted(CFG, ("data.MODE", "prod", "debug"))])
    cfg = webhook_config(group_threshold=1)
    report = alerts.after_run(cfg, db, run_id, env=hook_env(slack_server))
    assert report.first_run and report.delivered == 1 and report.pending == 0
    [req] = slack_server.requests
    assert req.path == "/hooks/T000/B000/XXXX"
    assert "watching this cluster: 3 open drifts" in req.body["text"]
    table = req.text()
    for name in ("shop/web", "billing/api", "shop/settings"):
        assert name in table
    # The same drifts, still open: nothing more is posted.
    run_id = record(db, 1, [WEB_DRIFT, drifted(API, ("spec.replicas", 2, 4)),
                            drifted(CFG, ("data.MODE", "prod", "debug"))])
    again = alerts.after_run(cfg, db, run_id, env=hook_env(slack_server))
    assert again.queued == 0 and len(slack_server.requests) == 1


def test_new_drift_is_one_block_kit_message_and_never_reposted(
        db: Path, slack_server: SlackServer) -> None:
    cfg = webhook_config()
    env = hook_env(slack_server)
    alerts.send(cfg, db, env=env)  # first pass: the "watching" summary
    assert "everything matches Git" in slack_server.requests[0].body["text"]

    run_id = record(db, 1, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    report = alerts.after_run(cfg, db, run_id, env=env)
    assert (report.queued, report.delivered, report.pending) == (1, 1, 0)
    msg = slack_server.requests[-1].body
    [attachment] = msg["attachments"]
    assert attachment["color"] == "#D92D20"  # a human changed a workload image: high
    text = slack_server.requests[-1].text()
    for expected in ("Deployment.apps shop/web", "shop", IMAGE, "shop/web:1.4.2",
                     "shop/web:1.5.0-rc1", "spec.replicas", "kubectl-set (human)",
                     "apps/web.yaml", "c0ffee1234", "drift-auditor ack 1 --by",
                     "2026-11-20T10:00:00Z"):
        assert expected in text, expected
    kinds = [b["type"] for b in attachment["blocks"]]
    assert kinds[:2] == ["section", "section"] and "divider" in kinds and kinds[-1] == "context"

    for hours in (2, 3):
        run_id = record(db, hours, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
        assert alerts.after_run(cfg, db, run_id, env=env).queued == 0
    assert len(slack_server.requests) == 2

    # The same object drifting differently is a new drift (new fingerprint): announced.
    changed = drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.6.0"))
    run_id = record(db, 4, [changed, in_sync(API), in_sync(CFG)])
    report = alerts.after_run(cfg, db, run_id, env=env)
    texts = [r.body["text"] for r in slack_server.requests[2:]]
    assert any("shop/web:1.6.0" in r.text() for r in slack_server.requests[2:])
    assert any(t.startswith("Resolved (superseded)") for t in texts)


def test_many_new_drifts_become_one_grouped_message(db: Path, slack_server: SlackServer) -> None:
    cfg = webhook_config(group_threshold=2)
    env = hook_env(slack_server)
    alerts.send(cfg, db, env=env)
    run_id = record(db, 1, [WEB_DRIFT, drifted(API, ("spec.replicas", 2, 4)),
                            drifted(CFG, ("data.MODE", "prod", "debug"))])
    report = alerts.after_run(cfg, db, run_id, env=env)
    assert report.queued == 1
    msg = slack_server.requests[-1]
    assert msg.body["text"].startswith("3 new drifts")
    assert "1 high, 2 medium" in msg.body["text"]
    table = msg.body["attachments"][0]["blocks"][1]["text"]["text"]
    assert table.startswith("```SEV") and table.count("\n") == 3


def test_bot_token_updates_the_original_and_replies_in_its_thread(
        db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api)
    alerts.send(cfg, db, env=bot_env())
    record(db, 1, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    alerts.send(cfg, db, env=bot_env())
    original = slack_server.requests[-1]
    assert original.method == "chat.postMessage" and original.body["channel"] == "#drift"
    assert original.headers["Authorization"] == "Bearer xoxb-test-token"
    ts = f"1700000000.{len(slack_server.requests):06d}"

    record(db, 2, [in_sync(WEB), in_sync(API), in_sync(CFG)])
    report = alerts.send(cfg, db, env=bot_env())
    assert report.delivered == 2 and report.pending == 0
    update, reply = slack_server.requests[-2:]
    assert update.method == "chat.update"
    assert (update.body["channel"], update.body["ts"]) == ("CDRIFT", ts)
    assert update.body["attachments"][0]["color"] == "#12B76A"
    assert "~High-severity drift~ *resolved*" in update.text()
    assert reply.method == "chat.postMessage" and reply.body["thread_ts"] == ts
    assert reply.body["text"].startswith("Resolved (")
    assert "drift 1" in reply.body["text"]


def test_webhook_resolution_posts_a_short_message(db: Path, slack_server: SlackServer) -> None:
    cfg = webhook_config()
    env = hook_env(slack_server)
    alerts.send(cfg, db, env=env)
    record(db, 1, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    alerts.send(cfg, db, env=env)
    record(db, 2, [in_sync(WEB), in_sync(API), in_sync(CFG)])
    report = alerts.send(cfg, db, env=env)
    assert report.queued == 1
    last = slack_server.requests[-1].body
    assert last["text"].startswith("Resolved (") and "shop/web" in last["text"]
    assert len(last["attachments"][0]["blocks"]) == 1
    assert "after 1h" in slack_server.requests[-1].text()


def test_acknowledged_drift_is_followed_up_once(db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api)
    alerts.send(cfg, db, env=bot_env())
    record(db, 1, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    alerts.send(cfg, db, env=bot_env())
    with Ledger.open(db) as ledger:
        ledger.ack(1, by="dana", reason="hotfix rollout", at=at(1.5))
    alerts.send(cfg, db, env=bot_env())
    update, reply = slack_server.requests[-2:]
    assert update.method == "chat.update" and "*accepted*" in update.text()
    assert "Accepted" in reply.text() and "dana" in reply.text() and "hotfix rollout" in reply.text()
    before = len(slack_server.requests)
    record(db, 2, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    assert alerts.send(cfg, db, env=bot_env()).queued == 0
    assert len(slack_server.requests) == before


def test_reminders_after_the_interval_in_the_thread(db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api, reminder_hours=4)
    alerts.send(cfg, db, env=bot_env(), now=at(0.5))
    record(db, 1, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    alerts.send(cfg, db, env=bot_env(), now=at(1))
    thread = slack_server.requests[-1]
    ts = f"1700000000.{len(slack_server.requests):06d}"
    assert alerts.send(cfg, db, env=bot_env(), now=at(3)).queued == 0  # not yet due
    report = alerts.send(cfg, db, env=bot_env(), now=at(5.5))
    assert report.queued == 1
    reminder = slack_server.requests[-1]
    assert reminder.body["thread_ts"] == ts and reminder.body["channel"] == "CDRIFT"
    assert "Still open after" in reminder.text() and thread is not reminder
    assert alerts.send(cfg, db, env=bot_env(), now=at(6)).queued == 0  # clock restarted
    assert alerts.send(cfg, db, env=bot_env(), now=at(10)).queued == 1


def test_routing_by_namespace_and_severity(db: Path, slack_server: SlackServer) -> None:
    cfg = bot_config(slack_server.api, routes=[
        {"channel": "#billing", "namespaces": ("billing*",)},
        {"channel": "#security", "severities": ("high",)}])
    alerts.send(cfg, db, env=bot_env())
    record(db, 1, [WEB_DRIFT, drifted(API, ("spec.replicas", 2, 4)),
                   drifted(CFG, ("data.MODE", "prod", "debug"))])
    alerts.send(cfg, db, env=bot_env())
    posted = {(r.body["channel"], r.body["text"].split(" ")[1]) for r in slack_server.requests[1:]}
    assert posted == {("#security", "Deployment.apps"), ("#billing", "Deployment.apps"),
                      ("#drift", "ConfigMap")}
    by_channel = {r.body["channel"]: r.body["text"] for r in slack_server.requests[1:]}
    assert "shop/web" in by_channel["#security"] and "billing/api" in by_channel["#billing"]


def test_quiet_mode_posts_nothing_and_does_not_flood_afterwards(
        db: Path, slack_server: SlackServer) -> None:
    env = hook_env(slack_server)
    alerts.send(webhook_config(), db, env=env)
    record(db, 1, [WEB_DRIFT, in_sync(API), in_sync(CFG)])
    report = alerts.send(webhook_config(quiet=True), db, env=env)
    assert (report.queued, report.suppressed) == (0, 1)
    assert len(slack_server.requests) == 1
    # Quiet lifted: the suppressed drift is not posted late; a new one is.
    record(db, 2, [WEB_DRIFT, drifted(API, ("spec.replicas", 2, 4)), in_sync(CFG)])
    report = alerts.send(webhook_config(), db, env=env)
    assert report.queued == 1
    assert "billing/api" in slack_server.requests[-1].body["text"]


def test_not_configured_is_a_no_op(db: Path) -> None:
    from auditor.config import Config

    report = alerts.after_run(Config(), db, 1, env={})
    assert not report.enabled and report.line() == "alerts: Slack not configured"


def test_report_as_json_and_line(db: Path, slack_server: SlackServer) -> None:
    import orjson

    report = alerts.send(webhook_config(), db, env=hook_env(slack_server))
    doc = orjson.loads(orjson.dumps(report.to_dict()))
    assert doc["first_run"] and doc["delivered"] == 1 and doc["errors"] == []
    assert report.line() == "alerts (webhook): 1 queued, 1 delivered, 0 pending"


def test_old_delivered_messages_are_pruned_unless_their_drift_is_open(
        db: Path, slack_server: SlackServer) -> None:
    from auditor.ledger.outbox import Outbox

    cfg = webhook_config(outbox_retention_days=30)
    env = hook_env(slack_server)
    alerts.send(cfg, db, env=env, now=at(0.5))
    record(db, 1, [WEB_DRIFT, drifted(API, ("spec.replicas", 2, 4)), in_sync(CFG)])
    alerts.send(cfg, db, env=env, now=at(1))
    record(db, 2, [WEB_DRIFT, in_sync(API), in_sync(CFG)])  # api resolved
    alerts.send(cfg, db, env=env, now=at(2))
    with Outbox.open(db) as box:
        assert box.counts()["delivered"] == 4  # summary, web, api, api resolved
    alerts.send(cfg, db, env=env, now=at(24 * 40))
    with Outbox.open(db) as box:
        kept = [box.get(i) for i in range(1, 5)]
    # Messages: 1 the summary, 2 billing/api (drift ids follow key order), 3 shop/web, 4 the
    # resolution of billing/api. Only the still-open drift's announcement stays.
    assert [m.kind if m else None for m in kept] == [None, None, "drift", None]
    assert kept[2] is not None and "shop/web" in kept[2].payload["text"]


def failed_revert_run(db: Path, hours: float, name: str) -> int:
    """A complete run at ``T0 + hours`` whose revert of ``name`` failed: per-run news."""
    from auditor.ledger import reverts

    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(hours))
        run.record(in_sync(WEB))
        reverts.record(run, key(name), action="apply", mode="enforce", result="failed",
                       reason="drifted: human change", error=f"forbidden: {name}")
        return run.finish("complete", counts={"in-sync": 1}).run_id


def test_old_news_marks_are_pruned_and_their_runs_are_never_announced_again(
        tmp_path: Path, slack_server: SlackServer) -> None:
    from auditor.ledger import reading, times
    from auditor.ledger.outbox import Outbox

    def news_state() -> tuple[list[int], str]:
        with reading(db) as conn:
            marks = [r for (r,) in conn.execute("SELECT run_id FROM alert_runs ORDER BY 1")]
            floor = conn.execute("SELECT value FROM alert_meta WHERE key = 'news_from_run'"
                                 ).fetchone()[0]
        return marks, floor

    def failed_posts() -> list[str]:
        return [r.body["text"].partition(" · ")[0] for r in slack_server.requests
                if r.body["text"].startswith("Revert failed")]

    db = tmp_path / "ledger.db"
    cfg = webhook_config(outbox_retention_days=30)
    env = hook_env(slack_server)
    first = record(db, 0, [in_sync(WEB)])
    alerts.send(cfg, db, env=env, run_id=first, now=at(0.5))  # summary; news from `first` on
    old = [failed_revert_run(db, h, f"old{h}") for h in (1, 2)]
    alerts.send(cfg, db, env=env, now=at(2.5))
    assert len(failed_posts()) == 2
    assert news_state() == ([first, *old], str(first))
    # 40 days on: this pass queues the new run's news, then prunes with a 30-day cut, which
    # drops the three old marks and moves the news floor past them.
    recent = failed_revert_run(db, 24 * 40, "recent")
    report = alerts.send(cfg, db, env=env, now=at(24 * 40 + 0.5))
    assert report.queued == 1 and not report.errors
    assert news_state() == ([recent], str(recent))
    # The next pass re-announces none of the runs whose marks went.
    sent = len(slack_server.requests)
    again = alerts.send(cfg, db, env=env, now=at(24 * 40 + 1))
    assert again.queued == 0 and len(slack_server.requests) == sent
    assert failed_posts() == [f"Revert failed: Deployment.apps shop/{n}"
                              for n in ("old1", "old2", "recent")]
    # A cut past every mark still keeps the newest: the floor always names a real run.
    with Outbox.open(db) as box:
        box.prune(times.stamp(at(24 * 400)))
    assert news_state() == ([recent], str(recent))
    with Ledger.open(db) as ledger:  # the alert tables are outside the chain
        result = ledger.verify()
        assert result.ok, result.message
    # A later run is still news.
    failed_revert_run(db, 24 * 41, "later")
    assert alerts.send(cfg, db, env=env, now=at(24 * 41 + 0.5)).queued == 1
    assert failed_posts()[-1] == "Revert failed: Deployment.apps shop/later"
