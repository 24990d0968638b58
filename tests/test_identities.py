"""GitOps writes recognised by the authenticated user, not by the field-manager name.

A field manager is whatever name a client sends: real kubectl 1.35 applies to the sandbox
with ``--field-manager=argocd-controller``, and the API-server audit events of those very
requests (method, URI with its query, times; :mod:`auditfixtures`) say who sent them. The
same apply is a human's spoofed write when the log says alice made it, and a GitOps sync
when it says Argo CD's ServiceAccount did.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from auditfixtures import ARGOCD_GROUPS, ARGOCD_SA, PERSON_GROUPS, as_user, write_log
from gitopsfixtures import GITOPS_MANAGER, config_file

from auditor import config as config_mod
from auditor.engine.records import DriftItem, ObjectResult
from auditor.errors import ConfigError
from auditor.ledger import drifts, reading
from auditor.outputs import slack
from auditor.pipeline import audit, run_once
from auditor.report import export, html, period
from auditor.web import serve

pytestmark = pytest.mark.kubectl

ALICE = "alice@example.com"
AUDITOR_SA = "system:serviceaccount:drift-auditor:drift-auditor"
AUDITOR_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:drift-auditor",
                  "system:authenticated")

APPS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
"""

# Git's manifests, edited by hand: a key Git does not declare, and another image.
SPOOF = APPS.replace("data: {MODE: prod}", 'data: {MODE: prod, DEBUG: "true"}').replace(
    "shop/web:1.0.0", "shop/web:1.0.1-debug")

IDENTITIES = f"compare: {{gitops-identities: [{ARGOCD_SA}]}}\n"


@pytest.fixture
def synced(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    """Git synced by Argo CD's ServiceAccount (as argocd-controller), then alice's apply of
    an edited copy under the same manager name; the audit events of every request."""
    apps = tmp_path / "git" / "apps"
    apps.mkdir(parents=True)
    (apps / "shop.yaml").write_text(APPS)
    sync = as_user(kubectl, ARGOCD_SA, ARGOCD_GROUPS, "apply", "--server-side",
                   f"--field-manager={GITOPS_MANAGER}", "-f", str(apps / "shop.yaml"))
    spoof_file = tmp_path / "edited.yaml"
    spoof_file.write_text(SPOOF)
    spoof = as_user(kubectl, ALICE, PERSON_GROUPS, "apply", "--server-side",
                    f"--field-manager={GITOPS_MANAGER}", "-f", str(spoof_file))
    assert {e["objectRef"]["name"] for e in spoof} == {"shop", "web", "settings"}
    assert all("fieldManager=argocd-controller" in e["requestURI"] for e in spoof)
    return {"apps": apps, "sync": sync, "spoof": spoof, "tmp": tmp_path,
            "kubeconfig": kubeconfig, "kubectl": kubectl}


def _cfg(setup: dict[str, Any], extra: str = IDENTITIES) -> config_mod.Config:
    return config_mod.load(config_file(setup["tmp"], setup["kubeconfig"], extra=extra))


def _diff(setup: dict[str, Any], events: list[dict[str, Any]] | None,
          extra: str = IDENTITIES) -> dict[str, ObjectResult]:
    log = None
    if events is not None:
        log = str(write_log(setup["tmp"] / "audit.jsonl", events))
    result = audit(_cfg(setup, extra), desired_path=str(setup["apps"]), audit_log=log)
    return {r.key.name: r for r in result.results}


def _item(result: ObjectResult, path: str) -> DriftItem:
    return next(d for d in result.drifts if d.path == path)


def test_spoofed_gitops_manager_is_a_humans_drift_when_the_log_says_alice(
        synced: dict[str, Any]) -> None:
    # Without an audit source the name is all there is: the added key is owned by a GitOps
    # manager and is no drift; the changed image is put down to GitOps.
    blind = _diff(synced, None)
    assert blind["settings"].status == "in-sync"
    image = "spec.template.spec.containers[name=web].image"
    assert _item(blind["web"], image).category == "gitops"
    assert not _item(blind["web"], image).spoofed and not _item(blind["web"], image).user

    seen = _diff(synced, synced["sync"] + synced["spoof"])
    added = _item(seen["settings"], "data.DEBUG")
    assert (added.op, added.live, added.manager, added.operation) == (
        "added", "true", GITOPS_MANAGER, "Apply")
    assert (added.category, added.user, added.spoofed) == ("human", ALICE, True)
    changed = _item(seen["web"], image)
    assert (changed.category, changed.user, changed.spoofed) == ("human", ALICE, True)
    assert changed.live == "shop/web:1.0.1-debug"


def test_the_same_apply_by_the_argocd_service_account_is_gitops(synced: dict[str, Any]) -> None:
    # The very same requests, logged as made by Argo CD's ServiceAccount.
    as_argocd = [{**e, "user": {"username": ARGOCD_SA, "groups": list(ARGOCD_GROUPS)}}
                 for e in synced["spoof"]]
    seen = _diff(synced, synced["sync"] + as_argocd)
    assert seen["settings"].status == "in-sync"
    changed = _item(seen["web"], "spec.template.spec.containers[name=web].image")
    assert (changed.category, changed.user, changed.spoofed) == ("gitops", ARGOCD_SA, False)


def test_impersonating_the_service_account_is_still_alice(synced: dict[str, Any]) -> None:
    # `kubectl --as=system:serviceaccount:argocd:…`: the API server authenticated alice; she
    # acted as the ServiceAccount. The person who asked is who made the change.
    impersonating = [{**e, "impersonatedUser": {"username": ARGOCD_SA,
                                                "groups": list(ARGOCD_GROUPS)}}
                     for e in synced["spoof"]]
    seen = _diff(synced, synced["sync"] + impersonating)
    added = _item(seen["settings"], "data.DEBUG")
    assert (added.category, added.user, added.spoofed) == ("human", ALICE, True)


def test_without_gitops_identities_the_log_names_users_but_names_decide(
        synced: dict[str, Any]) -> None:
    # No identity is configured as GitOps: flagging every GitOps write would be noise.
    seen = _diff(synced, synced["sync"] + synced["spoof"], extra="")
    assert seen["settings"].status == "in-sync"
    changed = _item(seen["web"], "spec.template.spec.containers[name=web].image")
    assert (changed.category, changed.user, changed.spoofed) == ("gitops", ALICE, False)


def test_a_gitops_identity_is_gitops_whatever_manager_name_it_used(
        synced: dict[str, Any], kubectl: Any) -> None:
    # Argo CD's ServiceAccount labels the ConfigMap with kubectl (manager kubectl-label, a
    # human-type name): by name an undeclared field a human owns, by identity a GitOps write.
    label = as_user(kubectl, ARGOCD_SA, ARGOCD_GROUPS, "-n", "shop", "label", "configmap",
                    "settings", "team=payments")
    blind = _diff(synced, None)
    owned = _item(blind["settings"], 'metadata.labels.team')
    assert (owned.manager, owned.category) == ("kubectl-label", "human")
    seen = _diff(synced, synced["sync"] + synced["spoof"] + label)
    assert not any(d.path == "metadata.labels.team" for d in seen["settings"].drifts)
    # alice's key is still hers.
    assert _item(seen["settings"], "data.DEBUG").spoofed


def test_gitops_identities_are_validated(tmp_path: Path) -> None:
    for bad, why in (('[""]', "is not a user name"), ('["argo cd"]', "is not a user name"),
                     ('["system:serviceaccount:argocd"]', "system:serviceaccount:<namespace>")):
        path = tmp_path / "c.yaml"
        path.write_text(f"compare: {{gitops-identities: {bad}}}\n")
        with pytest.raises(ConfigError, match=r"compare\.gitops-identities\[0\]: .*" + why):
            config_mod.load(path)
    path = tmp_path / "c.yaml"
    path.write_text("compare: {gitops-identities: [system:serviceaccount:flux-system:*]}\n")
    assert config_mod.load(path).compare.gitops_identities == (
        "system:serviceaccount:flux-system:*",)


# ------------------------------------------------------------------ run, ledger and outputs


def _cli(setup: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config",
                           str(setup["config"]), *args],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


@pytest.fixture
def recorded(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    """`drift-auditor run --audit-log` before and after alice's spoofed apply."""
    apps = tmp_path / "git" / "apps"
    apps.mkdir(parents=True)
    (apps / "shop.yaml").write_text(APPS)
    sync = as_user(kubectl, ARGOCD_SA, ARGOCD_GROUPS, "apply", "--server-side",
                   f"--field-manager={GITOPS_MANAGER}", "-f", str(apps / "shop.yaml"))
    setup = {"apps": apps, "config": config_file(tmp_path, kubeconfig, extra=IDENTITIES),
             "ledger": tmp_path / "ledger.db", "log": tmp_path / "audit.jsonl"}
    write_log(setup["log"], sync)
    first = _cli(setup, "run", "--desired", str(apps), "--audit-log", str(setup["log"]))
    assert first.returncode == 0, first.stderr
    edited = tmp_path / "edited.yaml"
    edited.write_text(SPOOF)
    spoof = as_user(kubectl, ALICE, PERSON_GROUPS, "apply", "--server-side",
                    f"--field-manager={GITOPS_MANAGER}", "-f", str(edited))
    write_log(setup["log"], sync + spoof)
    second = _cli(setup, "run", "--desired", str(apps), "--audit-log", str(setup["log"]),
                  "--output", "json")
    assert second.returncode == 1, second.stderr
    setup["json"] = orjson.loads(second.stdout)
    return setup


def test_run_records_the_spoofed_change_and_its_drift(recorded: dict[str, Any]) -> None:
    doc = recorded["json"]
    assert doc["run"]["actors"] == "audit-log"
    by_name = {r["name"]: r for r in doc["resources"]}
    [added] = by_name["settings"]["drifts"]
    assert {k: added[k] for k in ("path", "manager", "category", "user", "spoofed")} == {
        "path": "data.DEBUG", "manager": GITOPS_MANAGER, "category": "human", "user": ALICE,
        "spoofed": True}
    # The keys are there only when they carry something: an in-sync object has no drift,
    # and a drift without an audit-log user has neither key (the diff contract).
    assert by_name["shop"]["status"] == "in-sync"

    with reading(recorded["ledger"]) as conn:
        changes = conn.execute(
            "SELECT o.name, c.manager, c.category, c.user, c.user_source, c.authorized "
            "FROM changes c JOIN objects o ON o.id = c.object_id WHERE c.run_id = 2 "
            "ORDER BY o.name").fetchall()
        open_drifts = {d["name"]: d for d in drifts(conn)}
    assert ("settings", GITOPS_MANAGER, "human", ALICE, "audit-log/spoofed-manager", 0) in changes
    assert ("web", GITOPS_MANAGER, "human", ALICE, "audit-log/spoofed-manager", 0) in changes
    item = open_drifts["settings"]["items"][0]
    assert (item["user"], item["spoofed"], open_drifts["settings"]["category"]) == (
        ALICE, True, "human")
    verify = _cli(recorded, "verify")
    assert verify.returncode == 0 and "ledger OK" in verify.stdout

    # Slack: high severity, the user and the flag in the message.
    message = slack.drift_message({**open_drifts["settings"], "object": "ConfigMap shop/settings"},
                                  cluster="test")
    text = orjson.dumps(message).decode()
    assert slack.severity(open_drifts["settings"]) == "high"
    assert ALICE in text and "spoofed" in text

    # The report (HTML and JSON): the change and the drift carry the user and the flag, and
    # no sentence about declared names (every run had an audit source).
    cfg = config_mod.load(recorded["config"])
    start = datetime.now(UTC) - timedelta(hours=1)
    report = period.build(recorded["ledger"], start, start + timedelta(hours=2), cfg)
    spoofed = [c for c in report.changes if c.spoofed]
    assert {(c.name, c.user, c.category, c.identity_source, c.authorization) for c in spoofed} \
        == {("settings", ALICE, "human", "audit-log", "unauthorized"),
            ("web", ALICE, "human", "audit-log", "unauthorized")}
    episode = next(d for d in report.drifts if d.name == "settings")
    assert (episode.user, episode.spoofed) == (ALICE, True)
    page = html.render_html(report)
    assert "spoofed manager" in page and ALICE in page and 'id="actors-note"' not in page
    data = orjson.loads(export.to_json(report))
    assert any(c["spoofed"] and c["user"] == ALICE for c in data["changes"])
    import csv
    import io

    table = list(csv.DictReader(io.StringIO(export.changes_csv(report.changes))))
    assert any(r["spoofed_manager"] == "yes" and r["actor_user"] == ALICE for r in table), table

    # The web UI's open-drift table names the user and the flag too.
    server = serve.make_server(cfg, port=0, ledger_path=recorded["ledger"])
    serve.start(server)
    try:
        host, port = server.server_address[:2]
        with urllib.request.urlopen(f"http://{host!s}:{port}/", timeout=30) as resp:
            page = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert ALICE in page and "spoofed manager" in page


def test_without_an_audit_source_the_summary_and_report_say_actors_are_names(
        tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    apps = tmp_path / "git" / "apps"
    apps.mkdir(parents=True)
    (apps / "shop.yaml").write_text(APPS)
    kubectl("apply", "--server-side", f"--field-manager={GITOPS_MANAGER}", "-f",
            str(apps / "shop.yaml"))
    setup = {"config": config_file(tmp_path, kubeconfig), "ledger": tmp_path / "ledger.db"}
    proc = _cli(setup, "run", "--desired", str(apps))
    assert proc.returncode == 0, proc.stderr
    assert ("note: actors are field-manager names as clients declare them, not authenticated "
            "identities (no --audit-log)") in proc.stdout
    doc = orjson.loads(_cli(setup, "run", "--desired", str(apps), "-o", "json").stdout)
    assert doc["run"]["actors"] == "field-managers"
    cfg = config_mod.load(setup["config"])
    start = datetime.now(UTC) - timedelta(hours=1)
    report = period.build(setup["ledger"], start, start + timedelta(hours=2), cfg)
    sentence = ("Actors are field managers, the names clients declare, not authenticated "
                "identities: the runs of this period had no API-server audit log to name the users.")
    assert report.header.actors_note == sentence
    assert sentence in html.render_html(report)
    assert orjson.loads(export.to_json(report))["header"]["actors_note"] == sentence


def test_a_write_the_log_does_not_reach_yet_is_judged_again_next_run(
        synced: dict[str, Any]) -> None:
    # The log shipped to the first run ends before alice's apply: her write is judged by its
    # name then, and that verdict is not reused — the next run, with the whole log, sees it.
    cfg = _cfg(synced)
    log = synced["tmp"] / "shipped.jsonl"
    write_log(log, synced["sync"])
    first = run_once(cfg, desired_path=str(synced["apps"]), audit_log=str(log))
    assert {r.key.name: r.status for r in first.audit.results}["settings"] == "in-sync"
    write_log(log, synced["sync"] + synced["spoof"])
    second = run_once(cfg, desired_path=str(synced["apps"]), audit_log=str(log))
    settings = {r.key.name: r for r in second.audit.results}["settings"]
    assert settings.status == "drifted" and _item(settings, "data.DEBUG").spoofed
    # Once the log reaches past that second (here: a later read of the ConfigMaps, logged as
    # the reader's) the verdict made with it is kept like any other: the run after reuses it.
    time.sleep(1.05)
    reads = as_user(synced["kubectl"], AUDITOR_SA, AUDITOR_GROUPS, "-n", "shop", "get",
                    "configmaps", reads=True)
    assert [e["verb"] for e in reads] == ["list"]
    write_log(log, synced["sync"] + synced["spoof"] + reads)
    run_once(cfg, desired_path=str(synced["apps"]), audit_log=str(log))
    fourth = run_once(cfg, desired_path=str(synced["apps"]), audit_log=str(log))
    assert fourth.counters["reused_verdicts"] == 3
    assert {r.key.name: r for r in fourth.audit.results}["settings"].drifts == settings.drifts


def test_a_dry_run_is_no_write_and_a_scale_is_joined_by_its_user_agent(
        tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    apps = tmp_path / "git" / "apps"
    apps.mkdir(parents=True)
    (apps / "shop.yaml").write_text(APPS)
    # The sync and the dry run below in one second (managedFields times are whole seconds),
    # where only the dry run's being no write tells them apart.
    time.sleep(1.02 - time.time() % 1.0)
    sync = as_user(kubectl, ARGOCD_SA, ARGOCD_GROUPS, "apply", "--server-side",
                   f"--field-manager={GITOPS_MANAGER}", "-f", str(apps / "shop.yaml"))
    # alice tries her edit as a server dry run first: the API server logs a successful
    # request (dryRun=All in its URI) that changed nothing, so it is nobody's write.
    edited = tmp_path / "edited.yaml"
    edited.write_text(SPOOF)
    dry = as_user(kubectl, ALICE, PERSON_GROUPS, "apply", "--server-side", "--dry-run=server",
                  f"--field-manager={GITOPS_MANAGER}", "-f", str(edited))
    assert all("dryRun=All" in e["requestURI"] and e["responseStatus"]["code"] < 400
               for e in dry)
    assert dry[-1]["stageTimestamp"][:19] == sync[0]["requestReceivedTimestamp"][:19]
    # kubectl scale sends no fieldManager: the API server records the User-Agent's prefix
    # (`kubectl`) on the scale subresource.
    scale = as_user(kubectl, ALICE, PERSON_GROUPS, "-n", "shop", "scale", "deployment/web",
                    "--replicas=3")
    assert [e["objectRef"].get("subresource") for e in scale] == ["scale"]
    assert "fieldManager" not in scale[0]["requestURI"]
    # Git moves on (a new image, not synced yet): the live image is Argo CD's, whose write
    # shares its second with alice's dry run.
    (apps / "shop.yaml").write_text(APPS.replace("shop/web:1.0.0", "shop/web:1.0.2"))
    setup = {"tmp": tmp_path, "kubeconfig": kubeconfig, "apps": apps}
    seen = _diff(setup, sync + dry + scale)
    assert seen["settings"].status == "in-sync"
    image = _item(seen["web"], "spec.template.spec.containers[name=web].image")
    assert (image.live, image.category, image.user, image.spoofed) == (
        "shop/web:1.0.0", "gitops", ARGOCD_SA, False)
    replicas = _item(seen["web"], "spec.replicas")
    assert (replicas.manager, replicas.category, replicas.user, replicas.spoofed) == (
        "kubectl", "human", ALICE, False)


def test_attribution_rules() -> None:
    from auditor.engine.managers import Classifier
    from auditor.ledger.authorize import verdict

    flux = Classifier(("argocd-controller", "kustomize-controller"),
                      ("system:serviceaccount:flux-system:*",))
    sa = "system:serviceaccount:flux-system:kustomize-controller"
    assert flux.attribute("kustomize-controller", sa) == ("gitops", False)
    assert flux.attribute("kubectl-edit", sa) == ("gitops", False), "identity over name"
    assert flux.attribute("kustomize-controller", ALICE) == ("human", True)
    assert flux.attribute("kubectl-edit", ALICE) == ("human", False)
    assert flux.attribute("kube-controller-manager", "system:kube-controller-manager") == (
        "controller", False)
    assert flux.attribute("kustomize-controller", "") == ("gitops", False), "no user: the name"
    # No identity configured: users are named, names decide.
    assert Classifier(("argocd-controller",)).attribute("argocd-controller", ALICE) == (
        "gitops", False)
    # A spoofed change is out-of-band even when the object matches Git afterwards.
    assert verdict(declared=None, manager="argocd-controller", category="human",
                   status="in-sync", spoofed=True) is False
    assert verdict(declared=None, manager="argocd-controller", category="human",
                   status="in-sync") is True
