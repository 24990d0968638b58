"""Changes made with kubectl 1.35 by different people, attributed by user from the API server's
own audit log (``drift-auditor run --audit-log FILE``, the file the sandbox writes as
kube-apiserver's ``--audit-log-path``): alice with a static token, a CI ServiceAccount with a
token from ``kubectl create token``, and ops-lead acting ``--as=bob``. The users reach the
ledger (``history -o json``), the report (``report --format json``) and Slack.

The product has no receiver for the audit *webhook* backend yet (a later ``watch`` mode adds
one): here the webhook is covered only by checking that the events the sandbox POSTs name the
same users as the file the run reads.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.alerts.conftest import SlackServer, slack_server  # noqa: F401 (a fixture)
from tests.rbac import kit
from tests.sandbox.authkit import ReceiverServer, audit_receiver, read_events

pytestmark = pytest.mark.kubectl

ALICE, OPS, BOB = "alice", "ops-lead", "bob"
CI = "system:serviceaccount:ci:deployer"

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
        - {name: web, image: "shop/web:1.0.0"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
    - {port: 80, targetPort: 8080}
"""

# Who may do what: alice, bob and the CI account edit shop; ops-lead may act as bob only.
PEOPLE = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: ci}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: deployer, namespace: ci}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: editors, namespace: shop}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects:
  - {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {ALICE}}}
  - {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {BOB}}}
  - {{kind: ServiceAccount, name: deployer, namespace: ci}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: impersonate-bob}}
rules:
  - {{apiGroups: [""], resources: [users], verbs: [impersonate], resourceNames: [{BOB}]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: ops-lead-impersonates-bob}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-bob}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {OPS}}}]
"""


class Scenario:
    def __init__(self, tmp: pathlib.Path, cluster: kit.Cluster, receiver: ReceiverServer
                 ) -> None:
        self.cluster = cluster
        self.receiver = receiver
        cluster.apply(kit.CRONJOB)
        repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": APPS})
        cluster.apply(repo / "apps" / "shop.yaml", server_side_as=kit.GITOPS_MANAGER)
        cluster.apply(cluster.write("people.yaml", kit.yaml_docs(PEOPLE)))
        self.config = kit.write_config(tmp / "drift-auditor.yaml", kit.shipped_config())
        self.env = kit.pod_env(tmp, repo)
        args = [*kit.cronjob_args(), "--audit-log", str(cluster.log)]
        self.first = cluster.pod_run(*args, config=self.config, env=self.env)

        start = cluster.mark()
        alice = cluster.kubectl(ALICE)
        alice("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.1.0-alice")
        token = cluster.admin("-n", "ci", "create", "token", "deployer").stdout.strip()
        ci = cluster.kubectl(token=token, name="ci-deployer")
        ci("-n", "shop", "patch", "configmap", "settings", "-p", '{"data":{"MODE":"canary"}}')
        ops = cluster.kubectl(OPS)
        ops("--as", BOB, "-n", "shop", "label", "service", "web", "release=hotfix")
        self.changes = [e for e in cluster.requests(start, user=None)
                        if e["verb"] == "patch" and e["responseStatus"]["code"] == 200]

        self.second = cluster.pod_run(*args, "-o", "json", config=self.config, env=self.env)
        cluster.sb.flush_audit()
        self.file_events = read_events(cluster.log)  # all of them posted by now

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return kit.host_cli(*args, config=self.config, env={**self.env, **env})


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("users")
    with audit_receiver() as receiver:
        webhook = receiver.write_kubeconfig(tmp / "audit-webhook.kubeconfig")
        with kit.cluster(tmp, users={ALICE: ["dev"], OPS: ["ops"]},
                         webhook_config=webhook) as cluster:
            yield Scenario(tmp, cluster, receiver)


EXPECTED = {  # object → (the authenticated user, the client's field manager)
    "web@Deployment": (ALICE, "kubectl-set"),
    "settings@ConfigMap": (CI, "kubectl-patch"),
    "web@Service": (OPS, "kubectl-label"),
}


def test_the_audit_log_names_each_person(scenario: Scenario) -> None:
    who = {(e["objectRef"]["name"], e["objectRef"]["resource"]): (
        e["user"]["username"], (e.get("impersonatedUser") or {}).get("username"))
        for e in scenario.changes}
    assert who == {("web", "deployments"): (ALICE, None),
                   ("settings", "configmaps"): (CI, None),
                   ("web", "services"): (OPS, BOB)}
    ci = next(e for e in scenario.changes if e["user"]["username"] == CI)
    # A bound token from the TokenRequest API, as `kubectl create token` issues.
    assert "authentication.kubernetes.io/credential-id" in ci["user"]["extra"]


def test_the_run_attributes_each_drift_to_its_user(scenario: Scenario) -> None:
    assert scenario.first.returncode == 0, scenario.first.stdout + scenario.first.stderr
    assert scenario.second.returncode == 0, scenario.second.stderr
    doc = json.loads(scenario.second.stdout)
    assert doc["run"]["actors"] == "audit-log" and doc["run"]["status"] == "complete"
    drifted = {f"{r['name']}@{r['kind']}": r for r in doc["resources"] if r["status"] == "drifted"}
    assert set(drifted) == set(EXPECTED)
    for key, (user, manager) in EXPECTED.items():
        assert {(d["user"], d["manager"]) for d in drifted[key]["drifts"]} == {(user, manager)}, \
            drifted[key]


def test_history_names_the_users(scenario: Scenario) -> None:
    proc = scenario.cli("history", "--type", "change", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    changed = {f"{e['name']}@{e['kind']}": (e["user"], e["actor"]) for e in entries
               if e["user"]}
    assert changed == EXPECTED
    # --actor finds a person's changes by user.
    mine = json.loads(scenario.cli("history", "--actor", CI, "-o", "json").stdout)
    assert {e["name"] for e in mine} == {"settings"}


def test_the_report_names_the_users(scenario: Scenario, tmp_path: pathlib.Path) -> None:
    now = datetime.now(UTC)
    out = tmp_path / "report.json"
    proc = scenario.cli("report", "--from", (now - timedelta(hours=1)).isoformat(),
                        "--to", (now + timedelta(hours=1)).isoformat(), "--format", "json",
                        "--output-file", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    changes = {f"{c['name']}@{c['kind']}": c for c in report["changes"] if c["user"]}
    assert {k: (c["user"], c["identity_source"]) for k, c in changes.items()} == {
        k: (user, "audit-log") for k, (user, _) in EXPECTED.items()}
    assert "actors_note" not in report["header"] or not report["header"]["actors_note"]


def test_slack_names_the_users(scenario: Scenario, slack_server: SlackServer) -> None:  # noqa: F811
    # The CronJob's runs had no Slack token: their alerts waited in the ledger's outbox,
    # and are delivered now.
    proc = scenario.cli("alerts", "send", SLACK_BOT_TOKEN="xoxb-test",
                        DRIFT_AUDITOR_SLACK_BASE_URL=slack_server.api)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    texts = {r.text() for r in slack_server.delivered()}
    drift = {t for t in texts if "drift" in t.lower()}
    for key, (user, _) in EXPECTED.items():
        name, kind = key.split("@")
        # The message's actor field: the client's name, then the user the API server
        # authenticated (ops-lead, who acted as bob).
        assert any(f"user {user}" in t and f"*{kind}" in t and f" shop/{name}*" in t
                   for t in drift), \
            (key, texts)


def test_the_webhook_carries_the_same_users_as_the_file(scenario: Scenario) -> None:
    by_id = {e["auditID"]: e for e in scenario.receiver.events()
             if e["stage"] == "ResponseComplete"}
    for event in scenario.changes:
        posted = by_id[event["auditID"]]
        assert posted["user"] == event["user"]
        assert posted.get("impersonatedUser") == event.get("impersonatedUser")
        assert posted["objectRef"] == event["objectRef"]
    # And so for every request the file holds: the two backends see one stream.
    file_users = {(e["auditID"], e["user"].get("username")) for e in scenario.file_events
                  if e["stage"] == "ResponseComplete"}
    posted_users = {(i, e["user"].get("username")) for i, e in by_id.items()}
    assert file_users == posted_users
