"""The demo's evidence: its git host answers the way the GitHub client reads it (one pull
request authorized, one an SoD exception), and `make demo` end to end leaves a report whose
Approvals section carries both verdicts and whose ledger head is a signed checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditor.demo.__main__ import GITHUB_REPO, make_repo, merge_changes
from auditor.demo.githost import DemoGitHub
from auditor.githost import HostSettings, sod
from auditor.githost.collect import client_for, host_for
from auditor.githost.http import Denied
from auditor.githost.model import Change

TOKEN = "demo-t0ken"


def test_demo_host_judges_one_authorized_and_one_exception(tmp_path: Path) -> None:
    repo = tmp_path / "gitops"
    pulls = make_repo(repo)
    pulls += merge_changes(repo)
    assert [p.number for p in pulls] == [42, 43, 44]
    with DemoGitHub(GITHUB_REPO, pulls, token=TOKEN) as github:
        settings = HostSettings("github", github.url, GITHUB_REPO, "main", TOKEN)
        host = host_for(settings, client_for(settings))
        verdicts = {}
        for pr in pulls[1:]:
            evidence = host.evidence(pr.merge_sha, "2026-12-01T00:00:00Z", ("test",))
            assert evidence.pr == pr.number and evidence.head == pr.head
            verdicts[pr.number] = sod.judge(Change("shop", str(repo), pr.merge_sha), evidence)
        protection = host.protection("main", "2026-12-01T00:00:00Z")
        # Without the token: 401, as GitHub answers bad credentials.
        anonymous = HostSettings("github", github.url, GITHUB_REPO, "main", "")
        assert github.answer(f"/repos/{GITHUB_REPO}/pulls/43")[0] == 200
        with pytest.raises(Denied):
            host_for(anonymous, client_for(anonymous)).evidence(pulls[1].merge_sha, "x")
    assert verdicts[43].verdict == "authorized" and verdicts[43].approvers == ("dana",)
    assert verdicts[44].verdict == "exception"
    assert "own author" in verdicts[44].reason and "sam" in verdicts[44].reason
    assert protection.state == "protected" and protection.required_checks == ("test",)


@pytest.mark.kubectl
def test_make_demo_report_shows_approvals_and_signed_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditor.demo.__main__ import main

    monkeypatch.chdir(tmp_path)
    assert main() == 0
    out = capsys.readouterr().out
    assert "checkpoints signed with demo-out/drift-auditor.signing-key" in out
    assert re.search(r"PR #43 \w+: authorized — approved by dana", out)
    assert re.search(r"PR #44 \w+: exception — approved by its own author: sam", out)
    assert "signatures valid" in out
    assert (tmp_path / "demo-out" / "drift-auditor.signing-key").exists()

    html = (tmp_path / "reports" / "demo.html").read_text()
    section = html[html.index('id="approvals"'):]
    section = section[:section.index("</section>")]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section))
    assert re.search(r"#43 authorized approved by dana on the head commit", text), text[:2000]
    assert re.search(r"#44 exception approved by its own author: sam", text), text[:2000]
    assert "git host (github)" in text
    checkpoint = html[html.index("Checkpoint</dt>"):]
    checkpoint = checkpoint[:checkpoint.index("</dd>")]
    assert "signed" in checkpoint
