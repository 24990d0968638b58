"""Linking live changes to approvals in the report: by object, to the newest merge judged no
later than the run that saw the change; trailer approvers labelled where nothing links."""

from __future__ import annotations

from auditor.report import approvals
from auditor.report.model import ApprovalItem, ChangeItem


def _change(run_id: int, name: str = "web", authorization: str = "authorized",
            approvers: list[str] | None = None) -> ChangeItem:
    return ChangeItem(
        id=run_id, seq=run_id, run_id=run_id, detected_at="", change_time="", cluster="c",
        api_group="apps", kind="Deployment", namespace="shop", name=name,
        object=f"Deployment.apps shop/{name}", change="updated", fields=[], manager="argocd",
        user="", identity_source="managedFields", category="gitops", git_repo="",
        git_commit="head", pr=None, approvers=approvers or [], authorization=authorization,
        drift_id=None, remediation="", remediated_at="", time_to_remediate_s=None,
        time_to_detect_s=None)


def _item(sha: str, run: int, verdict: str) -> ApprovalItem:
    return ApprovalItem(
        anchor=f"appr-{sha[:12]}", source="shop", repo="r", sha=sha, subject="", commit_author="",
        pr=run, evidence="git host (github)", verdict=verdict, reason="why", author="a",
        last_pusher="a", merged_by="m", approvers=["bob"] if verdict == "authorized" else [],
        reviews=[], checks=[], head="", fetched_at="", cached=False, first_run_id=run,
        run_id=run, objects=[])


def test_a_change_links_to_the_newest_merge_judged_by_its_run() -> None:
    section = approvals.Section()
    early, late = _item("a" * 40, 2, "authorized"), _item("b" * 40, 5, "exception")
    section.items = [late]  # the period holds run 5 only
    section.by_object[("apps", "Deployment", "shop", "web")] = [(2, early), (5, late)]
    linked = approvals.link([_change(1), _change(3), _change(6),
                             _change(6, authorization="unauthorized"),
                             _change(6, name="other", approvers=["Dana <d@x>"])], section)
    assert linked[0].git_commit == "head" and linked[0].approval == ""  # before any merge
    assert (linked[1].git_commit, linked[1].approval, linked[1].approvers) == \
        ("a" * 40, "authorized", ["bob"])
    assert linked[1].approval_anchor == ""  # judged in an earlier period: no row to link to
    assert (linked[2].git_commit, linked[2].approval) == ("b" * 40, "exception")
    assert linked[2].approval_anchor == f"appr-{'b' * 12}"
    assert linked[3].approval == "" and linked[3].git_commit == "head"  # unauthorized
    assert linked[4].approval == "" and linked[4].approval_source == \
        "trailer (typed in the commit message, not verified)"
