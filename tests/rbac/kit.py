"""What the RBAC proofs share: an RBAC-enforcing sandbox with an audit log, the shipped files
applied to it by kubectl 1.35, ``drift-auditor`` run as the auditor's ServiceAccount the way
the CronJob's pod runs it, and what the audit log says each identity asked for.

In a pod the ``kubernetes`` client's in-cluster loader
(``kubernetes.config.incluster_config``) reads fixed paths: the token and the CA under
``/var/run/secrets/kubernetes.io/serviceaccount`` and the API server's address from
``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``. :func:`Cluster.pod_run` gives a child
process exactly that, without touching the machine: the child gets a user and mount namespace
of its own (``unshare --user --map-root-user --mount``; the mounts are private to it and gone
with it) in which a test folder holding ``secrets/kubernetes.io/serviceaccount/{token,ca.crt,
namespace}`` is bind-mounted over ``/var/run``. The product needs no setting for it.
"""

from __future__ import annotations

import copy
import functools
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from auditor.sandbox import AuditConfig, AuthConfig, Sandbox
from tests.sandbox.authkit import Kubectl, kubectl_for, read_events

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRONJOB = ROOT / "cronjob.yaml"
REVERT_RBAC = ROOT / "cronjob-revert-rbac.yaml"
NAMESPACED_RBAC = ROOT / "deploy" / "rbac" / "namespaced.yaml"
SECRETS_RBAC = ROOT / "deploy" / "rbac" / "audit-secrets.yaml"

SA_NAMESPACE = "drift-auditor"
SA_NAME = "drift-auditor"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
GITOPS_MANAGER = "argocd-controller"
# The default pack the image carries at /usr/share/drift-auditor/policies.
POLICIES = ROOT / "policies"

Doc = dict[str, Any]


def yaml_docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def yaml_dump(docs: Iterable[Doc]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def documents(path: pathlib.Path) -> list[Doc]:
    return yaml_docs(path.read_text())


def one(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def shipped_config() -> dict[str, Any]:
    """The drift-auditor.yaml the CronJob's ConfigMap carries."""
    data: dict[str, Any] = yaml.safe_load(one(documents(CRONJOB), "ConfigMap")["data"][
        "drift-auditor.yaml"])
    return data


def cronjob_args() -> list[str]:
    """The audit's command line: the ``audit`` job the shipped pod's scheduler runs (the
    CronJob runner renders the same args)."""
    [job] = [j for j in shipped_config()["schedule"]["jobs"] if j["name"] == "audit"]
    return list(job["args"])


def grants(role: Doc) -> set[tuple[str, str, str]]:
    """``(verb, apiGroup, resource)`` of every permission a Role or ClusterRole grants (these
    roles name no resourceNames, no wildcards and no non-resource URLs)."""
    out: set[tuple[str, str, str]] = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for verb in rule["verbs"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    assert "*" not in (verb, group, resource), rule
                    out.add((verb, group, resource))
    return out


def without(role: Doc, group: str, resource: str) -> Doc:
    """``role`` with ``resource`` of ``group`` taken out of every rule (empty rules dropped)."""
    out = copy.deepcopy(role)
    rules = []
    for rule in out["rules"]:
        if group in rule["apiGroups"]:
            rule["resources"] = [r for r in rule["resources"] if r != resource]
        if rule["resources"]:
            rules.append(rule)
    out["rules"] = rules
    return out


def forbidden_message(verb: str, group: str, resource: str, namespace: str, name: str = "",
                      user: str = SA_USER) -> str:
    """The 403 ``Status.message`` kube-apiserver writes, built here from Kubernetes' sources
    rather than from the sandbox: ``apimachinery/pkg/api/errors.NewForbidden`` (``<resource>.
    <group> "<name>" is forbidden: <reason>``) around ``forbiddenMessage`` in
    ``apiserver/pkg/endpoints/handlers/responsewriters/errors.go``."""
    what = f"{resource}.{group}" if group else resource
    subject = f'{what} "{name}"' if name else what
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in '
            f'API group "{group}" {scope}')


# --------------------------------------------------------------------------- Git


def git(repo: pathlib.Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(repo.parent),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL":
           "dev@example.com", "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def git_repo(path: pathlib.Path, files: Mapping[str, str]) -> pathlib.Path:
    """A repository on branch ``main`` (the shipped source's revision) holding ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "platform: initial manifests")
    return path


# ----------------------------------------------------------------------- cluster


@functools.cache
def can_unshare() -> str:
    """Empty when this machine lets a process have its own user and mount namespace, else
    why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                          capture_output=True, text=True, timeout=30)
    return "" if proc.returncode == 0 else f"unshare --user --mount failed: {proc.stderr.strip()}"


class Cluster:
    """An RBAC-enforcing sandbox (TLS, static tokens, ServiceAccount tokens, impersonation)
    writing an ``audit.k8s.io/v1`` log of every request at Metadata level."""

    def __init__(self, tmp: pathlib.Path, users: Mapping[str, list[str]] | None = None,
                 webhook_config: pathlib.Path | None = None) -> None:
        self.tmp = tmp
        self.log = tmp / "kube-apiserver-audit.log"
        self.sb = Sandbox(auth=AuthConfig(
            users=dict(users or {}), rbac=True,
            audit=AuditConfig(log_path=self.log, webhook_config=webhook_config)))
        self.sb.start()
        self.admin = kubectl_for(self.sb, tmp)

    def stop(self) -> None:
        self.sb.stop()

    def kubectl(self, user: str | None = None, token: str | None = None,
                name: str | None = None) -> Kubectl:
        return kubectl_for(self.sb, self.tmp, user=user, token=token, name=name)

    def apply(self, *paths: pathlib.Path, namespace: str = "", selector: str = "",
              server_side_as: str = "") -> str:
        """``kubectl apply -f`` as the administrator (``server_side_as``: server-side, under
        that field manager, as a GitOps controller syncs)."""
        args = ["apply"]
        if server_side_as:
            args += ["--server-side", f"--field-manager={server_side_as}"]
        for path in paths:
            args += ["-f", str(path)]
        if namespace:
            args = ["-n", namespace, *args]
        if selector:
            args += ["-l", selector]
        return self.admin(*args).stdout

    def write(self, name: str, docs: Iterable[Doc]) -> pathlib.Path:
        path = self.tmp / name
        path.write_text(yaml_dump(docs))
        return path

    # -- the audit log ---------------------------------------------------------------------

    def mark(self) -> int:
        """How many events the log holds now (what follows is what happens next)."""
        return len(read_events(self.log))

    def requests(self, since: int = 0, user: str | None = SA_USER) -> list[Doc]:
        """The completed requests after ``since``, of ``user`` (None: everyone's)."""
        return [e for e in read_events(self.log)[since:] if e["stage"] == "ResponseComplete"
                and (user is None or e["user"]["username"] == user)]

    # -- a pod of the CronJob ----------------------------------------------------------------

    def pod_run(self, *args: str, config: pathlib.Path, env: Mapping[str, str] | None = None,
                token: str | None = None) -> subprocess.CompletedProcess[str]:
        """``drift-auditor ARGS`` as the CronJob's container runs it: the ServiceAccount's token
        and the cluster CA at /var/run/secrets/kubernetes.io/serviceaccount, the API server in
        ``KUBERNETES_SERVICE_HOST``/``_PORT``, the config named by ``DRIFT_AUDITOR_CONFIG``."""
        reason = can_unshare()
        if reason:
            pytest.skip(f"cannot give the pod's files their in-cluster paths: {reason}")
        run_dir = self.tmp / "pod" / "run"  # what the pod sees at /var/run
        account = run_dir / "secrets" / "kubernetes.io" / "serviceaccount"
        account.mkdir(parents=True, exist_ok=True)
        ca = self.sb.ca_pem
        assert ca is not None
        # kubelet projects a fresh token, the CA and the namespace into every pod.
        (account / "token").write_text(
            token or self.sb.service_account_token(SA_NAMESPACE, SA_NAME))
        (account / "ca.crt").write_bytes(ca)
        (account / "namespace").write_text(SA_NAMESPACE)
        home = self.tmp / "pod" / "tmp"  # the CronJob sets HOME=/tmp (an emptyDir)
        home.mkdir(parents=True, exist_ok=True)
        pod_env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1",
                   "DRIFT_AUDITOR_CONFIG": str(config),
                   "KUBERNETES_SERVICE_HOST": self.sb.host,
                   "KUBERNETES_SERVICE_PORT": str(self.sb.port), **(env or {})}
        script = 'mount --bind "$0" /var/run && exec "$@"'
        return subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script,
             str(run_dir), sys.executable, "-m", "auditor.cli", *args],
            capture_output=True, text=True, env=pod_env, cwd=home, timeout=120)


@contextmanager
def cluster(tmp: pathlib.Path, **kwargs: Any) -> Iterator[Cluster]:
    c = Cluster(tmp, **kwargs)
    try:
        yield c
    finally:
        c.stop()


def pod_env(tmp: pathlib.Path, repo: pathlib.Path, **extra: str) -> dict[str, str]:
    """The CronJob container's environment, with the paths this machine has: the Git source
    (the shipped config names a remote), the ledger's volume, the policy pack."""
    return {"GIT_TOKEN": "unused-for-a-local-repository",
            "DRIFT_AUDITOR_SOURCE_URL": str(repo),
            "DRIFT_AUDITOR_LEDGER_PATH": str(tmp / "volume" / "ledger.db"),
            "DRIFT_AUDITOR_REPORTS_DIRECTORY": str(tmp / "volume" / "reports"),
            "DRIFT_AUDITOR_POLICIES_DIRECTORY": str(POLICIES), **extra}


def write_config(path: pathlib.Path, data: Mapping[str, Any]) -> pathlib.Path:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


def host_cli(*args: str, config: pathlib.Path, env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """A command that reads only the ledger (history, report, alerts send), run on the host."""
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


# One object of every kind the shipped scope audits, as a platform team keeps them in Git.
SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
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
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: shop}
spec:
  hard: {pods: "20"}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: shop}
spec:
  limits:
    - type: Container
      default: {cpu: 500m}
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
      serviceAccountName: web
      containers:
        - {name: web, image: "shop/web:1.0.0"}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - {name: db, image: "postgres:16"}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
        - {name: agent, image: "shop/agent:1.0.0"}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - {name: migrate, image: "shop/migrate:1.0.0"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {name: report, image: "shop/report:1.0.0"}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
    - host: shop.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: shop}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: web-reads-pods, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
  - {kind: ServiceAccount, name: web, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-viewer}
rules:
  - {apiGroups: [apps], resources: [deployments], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shop-viewer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shop-viewer}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: shop-team}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: example.com/fast
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
"""
