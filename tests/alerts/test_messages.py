"""Block Kit message building: severity, Slack's size limits, escaping, Secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from auditor.outputs import slack


def drift(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 3, "object": "Deployment.apps shop/web", "api_group": "apps", "kind": "Deployment",
        "namespace": "shop", "name": "web", "status": "drifted", "category": "human",
        "manager": "kubectl-set", "source_file": "apps/web.yaml",
        "source_commit": "3f2c9d0e1a2b3c4d", "commit_subject": "Add web (#42)",
        "commit_author": "Lee Dev", "commit_pr": 42, "opened_at": "2026-11-20T10:00:00Z",
        "items": [{"path": "spec.replicas", "op": "changed", "desired": 3, "live": 5,
                   "manager": "kubectl", "operation": "Update", "category": "human",
                   "time": "2026-11-20T09:58:00Z"}]}
    base.update(over)
    return base


def item(path: str, category: str = "human", **kw: Any) -> dict[str, Any]:
    return {"path": path, "op": "changed", "desired": "a", "live": "b", "manager": "m",
            "category": category, **kw}


@pytest.mark.parametrize(("case", "expected"), [
    (drift(items=[item("spec.template.spec.containers[name=web].image")]), "high"),
    (drift(items=[item("spec.template.spec.containers[name=web].image", "controller")]), "low"),
    (drift(items=[item("spec.replicas")]), "medium"),
    (drift(items=[item("spec.replicas", "unknown")]), "medium"),
    (drift(items=[item("spec.replicas", "gitops")]), "low"),
    (drift(items=[item("spec.template.spec.securityContext.runAsUser")]), "high"),
    (drift(kind="ClusterRole", api_group="rbac.authorization.k8s.io",
           items=[item("rules")]), "high"),
    (drift(kind="Secret", api_group="", items=[item("data.token", "unknown")]), "high"),
    (drift(kind="Secret", api_group="", status="orphan", items=[]), "high"),
    (drift(kind="ConfigMap", api_group="", status="orphan", items=[]), "low"),
    (drift(status="missing", items=[], category="unknown"), "medium"),
])
def test_severity(case: dict[str, Any], expected: str) -> None:
    assert slack.severity(case) == expected


def test_one_drift_message_names_everything_a_reader_needs() -> None:
    msg = slack.drift_message(drift(), cluster="prod")
    text = slack.plain_text(msg)
    for expected in ("Deployment.apps shop/web", "*Namespace*: shop", "`spec.replicas` changed",
                     "desired `3` → live `5`", "by kubectl (human) · Update",
                     "`apps/web.yaml`", "`3f2c9d0e1a` Add web (#42) — Lee Dev (PR #42)",
                     "drift-auditor ack 3 --by"):
        assert expected in text, expected
    assert msg["attachments"][0]["color"] == slack.COLOURS["medium"]
    assert "2026-11-20T10:00:00Z" in text  # the fallback of Slack's date token


def _check_limits(msg: dict[str, Any]) -> None:
    blocks = msg["attachments"][0]["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for field in block.get("fields", ()):
            assert len(field["text"]) <= 2000
        assert len(block.get("fields", ())) <= 10
    assert len(orjson.dumps(msg)) < 40_000


def test_large_drifts_stay_within_slack_limits() -> None:
    huge = drift(items=[item(f"data.key{i}", desired="x" * 5000, live="y" * 5000)
                        for i in range(40)])
    msg = slack.drift_message(huge, cluster="prod")
    _check_limits(msg)
    assert "… and 30 more drifted paths" in slack.plain_text(msg)
    many = [drift(id=i, object=f"Deployment.apps ns{i}/app-{i}", name=f"app-{i}")
            for i in range(120)]
    summary = slack.summary_message(many, cluster="prod", title="120 new drifts",
                                    now=datetime(2026, 11, 21, tzinfo=UTC))
    _check_limits(summary)
    text = slack.plain_text(summary)
    assert "app-39" in text and "app-40" not in text and "… and 80 more" in text
    assert "OPEN FOR" in text and "14h" in text


def test_mrkdwn_is_escaped() -> None:
    msg = slack.drift_message(drift(items=[item("metadata.annotations[\"a<b>&c\"]",
                                                desired="<!channel>", live="`rm -rf`")]),
                              cluster="<prod>")
    raw = orjson.dumps(msg).decode()
    assert "<!channel>" not in raw and "&lt;!channel&gt;" in raw
    assert "&lt;prod&gt;" in raw and "`rm -rf`" not in raw


def test_secret_values_are_never_shown() -> None:
    secret = drift(kind="Secret", api_group="", object="Secret shop/token", items=[
        item("data.token", desired="hmac-sha256:0123456789abcdef", live="hunter2"),
        item("data", desired={"a": "hmac-sha256:ffff0000aaaa"}, live={"a": "plain-text!"}),
        item("stringData.password", desired="p@ssw0rd", live=None),
        item('metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]',
             desired='{"stringData":{"password":"p@ssw0rd"}}', live="<redacted>")])
    raw = orjson.dumps(slack.drift_message(secret, cluster="prod")).decode()
    for leaked in ("hunter2", "plain-text!", "p@ssw0rd"):
        assert leaked not in raw
    assert "hash 0123456789ab" in raw and "(value hidden)" in raw and "{a: hash ffff0000aaaa" in raw
    assert "data.token" in raw and "stringData.password" in raw  # key names are fine


def test_follow_up_and_reminder_texts() -> None:
    resolved = drift(state="resolved", state_since="2026-11-20T12:30:00Z",
                     resolved_how="fixed-live")
    assert slack.follow_up_message(resolved, cluster="p")["text"].startswith(
        "Resolved (fixed-live): Deployment.apps shop/web (drift 3)")
    assert "after 2h 30m" in slack.plain_text(slack.follow_up_message(resolved, cluster="p"))
    accepted = drift(state="accepted", accepted_by="dana", accepted_reason="load test",
                     accepted_until=None, state_since="2026-11-20T11:00:00Z")
    text = slack.plain_text(slack.follow_up_message(accepted, cluster="p"))
    assert "by dana until it changes" in text and "load test" in text
    reminder = slack.reminder_message(drift(), cluster="p",
                                      now=datetime(2026, 11, 22, 11, 0, tzinfo=UTC))
    assert "Still open after 2d 1h" in slack.plain_text(reminder)
    assert slack.duration(59) == "59s" and slack.duration(3600 * 26 + 61) == "1d 2h"
