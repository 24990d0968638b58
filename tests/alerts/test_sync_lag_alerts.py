"""Slack news when a GitOps controller source falls behind Git (sources from Argo CD / Flux):
one line per source that is behind now and was not in the run before, naming the owner, the
commits behind and since when — never repeated while it stays behind, again once it fell
behind anew, nothing in quiet mode, and never the repository URL (credentials in it). Over
real ledgers, the real slack-sdk webhook client and the local recording Slack server."""

from __future__ import annotations

from pathlib import Path

from auditor.outputs import alerts, slack

from .conftest import SlackServer
from .gitopsledgers import SHOP, WEB, lag, record_gitops, view
from .ledgers import webhook_config


def _env(server: SlackServer) -> dict[str, str]:
    return {"SLACK_WEBHOOK": server.hook()}


def _lag_messages(server: SlackServer) -> list[str]:
    return [r.body["text"] for r in server.requests if "Git ahead of the cluster" in
            r.body.get("text", "")]


def test_a_source_newly_behind_is_told_once(tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    cfg, env = webhook_config(), _env(slack_server)

    def cycle(hours: float, gitops: dict[str, object] | None) -> alerts.AlertReport:
        run_id = record_gitops(db, hours, gitops)
        report = alerts.after_run(cfg, db, run_id, env=env)
        assert not report.errors, report.errors
        return report

    cycle(0, view())  # in sync: the first summary only
    assert _lag_messages(slack_server) == []

    cycle(1, view([lag(WEB, 2, 0.5)]))
    [text] = _lag_messages(slack_server)
    assert text == ("Git ahead of the cluster: 1 GitOps source fell behind · cluster prod-eu "
                    f"· run 2: {WEB}")
    body = slack_server.requests[-1].body
    section = body["attachments"][0]["blocks"][0]["text"]["text"]
    assert f"• *{WEB}*: Git is 2 commits ahead on `main` since <!date^" in section
    assert "|2026-11-20T09:30:00+00:00>" in section

    # Still behind (further, even): no noise.
    report = cycle(2, view([lag(WEB, 3, 0.5)]))
    assert report.queued == 0 and len(_lag_messages(slack_server)) == 1

    # Another source diverges: only it is named.
    cycle(3, view([lag(WEB, 3, 0.5), lag(SHOP, -1, None)]))
    assert len(_lag_messages(slack_server)) == 2
    section = slack_server.requests[-1].body["attachments"][0]["blocks"][0]["text"]["text"]
    assert SHOP in section and WEB not in section
    assert "not in the history of `main`" in section

    # Applied, then behind again: a new lag, told again.
    assert cycle(4, view()).queued == 0
    cycle(5, view([lag(WEB, 1, 4.5)]))
    assert len(_lag_messages(slack_server)) == 3
    assert "1 commit ahead" in slack_server.requests[-1].text()

    # A failed run in between is not "the run before": still behind, nothing new.
    record_gitops(db, 6, None, status="failed")
    assert cycle(7, view([lag(WEB, 1, 4.5)])).queued == 0

    for request in slack_server.requests:
        assert "s3cr3t" not in request.text() and "git.example.com" not in request.text()


def test_lag_before_alerts_saw_any_run_and_quiet_mode(tmp_path: Path,
                                                       slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    # Runs before the controllers were read: the first run reading them, already behind,
    # is news.
    record_gitops(db, 0, None)
    run_id = record_gitops(db, 1, view([lag(SHOP, 4, 0.0)]))
    alerts.after_run(webhook_config(), db, run_id, env=_env(slack_server))
    assert len(_lag_messages(slack_server)) == 1
    # Quiet mode: a new lag is counted as suppressed, nothing posted, not replayed later.
    run_id = record_gitops(db, 2, view([lag(SHOP, 4, 0.0), lag(WEB, 1, 1.5)]))
    quiet = alerts.after_run(webhook_config(quiet=True), db, run_id, env=_env(slack_server))
    assert quiet.suppressed == 1 and quiet.queued == 0
    run_id = record_gitops(db, 3, view([lag(SHOP, 4, 0.0), lag(WEB, 1, 1.5)]))
    assert alerts.after_run(webhook_config(), db, run_id, env=_env(slack_server)).queued == 0
    assert len(_lag_messages(slack_server)) == 1


def test_many_sources_make_one_bounded_message() -> None:
    lags = [{"owner": f"Application argocd/app-{i:02d}", "ref": "main", "behind": i + 1,
             "since": "2026-11-20T09:00:00Z"} for i in range(30)]
    msg = slack.sync_lag_message(lags, cluster="<prod>", run_id=9)
    section = msg["attachments"][0]["blocks"][0]["text"]["text"]
    assert "app-19" in section and "app-20" not in section and "… and 10 more" in section
    assert "&lt;prod&gt;" in section and len(section) <= 3000
    assert msg["text"].endswith("; …")
