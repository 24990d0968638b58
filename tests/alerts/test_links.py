"""Slack alerts link where a person looks next: the object's page and drift history in
`serve` (``serve.public-url``) and the commit on the Git host, whatever form the source URL
takes (GitHub, GitLab, Bitbucket; HTTPS, SSH, scp-like, self-hosted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.config import Config, ServeConfig, SlackConfig
from auditor.engine.records import SourceInfo
from auditor.errors import ConfigError
from auditor.ledger import Ledger
from auditor.outputs import alerts, links

from .conftest import SlackServer
from .ledgers import IMAGE, at, drifted, in_sync, key

SHA = "c0ffee1234567890"
FULL = "c0ffee1234567890c0ffee1234567890c0ffee12"


@pytest.mark.parametrize(("repo", "want"), [
    ("https://github.com/acme/gitops.git", f"https://github.com/acme/gitops/commit/{FULL}"),
    ("https://github.com/acme/gitops", f"https://github.com/acme/gitops/commit/{FULL}"),
    ("git@github.com:acme/gitops.git", f"https://github.com/acme/gitops/commit/{FULL}"),
    ("ssh://git@github.example.com/acme/gitops.git",
     f"https://github.example.com/acme/gitops/commit/{FULL}"),
    ("https://gitlab.com/acme/platform/gitops.git",
     f"https://gitlab.com/acme/platform/gitops/-/commit/{FULL}"),
    ("ssh://git@gitlab.example.com:2222/acme/gitops.git",
     f"https://gitlab.example.com/acme/gitops/-/commit/{FULL}"),
    ("https://oauth2:token@gitlab.example.com/acme/gitops.git",
     f"https://gitlab.example.com/acme/gitops/-/commit/{FULL}"),
    ("https://bitbucket.org/acme/gitops.git", f"https://bitbucket.org/acme/gitops/commits/{FULL}"),
    ("https://bitbucket.example.com/scm/plat/gitops.git",
     f"https://bitbucket.example.com/plat/gitops/commits/{FULL}"),
    ("https://git.example.com/platform/gitops.git", None),  # unknown host: no guess
    ("/srv/git/gitops", None),
    ("file:///srv/git/gitops", None),
])
def test_commit_urls(repo: str, want: str | None) -> None:
    assert links.commit_url(repo, FULL) == want


def test_no_link_for_a_bad_sha_and_credentials_never_in_a_link() -> None:
    assert links.commit_url("https://github.com/acme/gitops.git", "HEAD") is None
    url = links.commit_url("https://user:s3cret@github.com/acme/gitops.git", FULL)
    assert url is not None and "s3cret" not in url


def test_object_urls() -> None:
    assert links.object_url("https://drift.example.com/", "apps", "Deployment", "shop", "web") \
        == "https://drift.example.com/objects/apps/Deployment/shop/web"
    assert links.object_url("https://d.example.com/ui", "", "Namespace", "", "a b") \
        == "https://d.example.com/ui/objects/_/Namespace/_/a%20b"
    assert links.object_url("https://d", "", "ConfigMap", "x", "y", cluster="prod eu") \
        == "https://d/c/prod%20eu/objects/_/ConfigMap/x/y"


def test_public_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match=r"serve\.public-url"):
        ServeConfig(public_url="drift.example.com")


def test_a_drift_alert_carries_the_buttons(tmp_path: Path, slack_server: SlackServer) -> None:
    db = tmp_path / "ledger.db"
    web = key("web")
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(0))
        run.record(in_sync(web))
        run.finish("complete", counts={"in-sync": 1})
    cfg = Config(slack=SlackConfig(webhook_url_env="SLACK_WEBHOOK", backoff_seconds=0.05,
                                   budget_seconds=20),
                 serve=ServeConfig(public_url="https://drift.example.com"))
    env = {"SLACK_WEBHOOK": slack_server.hook()}
    alerts.send(cfg, db, env=env)  # the first pass's summary
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(1))
        run.record_commits([SourceInfo("apps/web.yaml", repo="git@github.com:acme/gitops.git",
                                       commit=SHA, author="Dev", subject="web: 1.4.2")])
        run.record(drifted(web, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0-rc1"), commit=SHA))
        run_id = run.finish("complete", counts={"drifted": 1}).run_id
    alerts.after_run(cfg, db, run_id, env=env)
    [attachment] = slack_server.requests[-1].body["attachments"]
    [actions] = [b for b in attachment["blocks"] if b["type"] == "actions"]
    buttons = {e["text"]["text"]: e["url"] for e in actions["elements"]}
    page = "https://drift.example.com/objects/apps/Deployment/shop/web"
    assert buttons == {"Diff: Git vs live": page + "/diff?drift=1",
                       "Drift history": page + "#drift-1",
                       "Commit in Git": f"https://github.com/acme/gitops/commit/{SHA}"}


def test_without_public_url_only_the_commit_link(tmp_path: Path) -> None:
    drift = {"id": 3, "api_group": "", "kind": "ConfigMap", "namespace": "x", "name": "y",
             "commit_repo": "https://gitlab.com/a/b.git", "source_commit": SHA}
    assert alerts.drift_links(drift, "") == [
        ("Commit in Git", f"https://gitlab.com/a/b/-/commit/{SHA}")]
    assert alerts.drift_links({**drift, "commit_repo": ""}, "") == []
