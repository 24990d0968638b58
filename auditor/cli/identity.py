"""Who is running a command that records a decision (``ack``, ``respond``, ``adopt``), as
far as the tool can authenticate it, recorded beside the free-text ``--by``.

In order of strength: the user name the API server authenticates the kubeconfig's
credentials as (a ``SelfSubjectReview``, as ``kubectl auth whoami``); when the kubeconfig
has no credentials or the server cannot be asked, the kubeconfig context's user *name*,
labelled not verified (anyone can name a kubeconfig user anything); with no kubeconfig at
all, the operating-system user. This is the CLI layer: the environment (``$KUBECONFIG``)
is read here and the result handed down as a plain
:class:`~auditor.ledger.accountability.Identity`.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
from pathlib import Path
from typing import Any

from auditor.config import ClusterConfig
from auditor.errors import AuditorError
from auditor.ledger.accountability import KUBECONFIG, OS_USER, VERIFIED, Identity

# Credentials a kubeconfig user entry may carry; with none there is nothing to authenticate.
_CREDENTIALS = ("token", "tokenFile", "client-certificate", "client-certificate-data",
                "exec", "auth-provider", "username")
# A decision is being recorded: do not wait the audit's full timeout for a dead server.
_TIMEOUT_SECONDS = 10.0
IN_CLUSTER = "in-cluster service account (not verified)"


def _kubeconfig_files(cluster: ClusterConfig) -> list[Path]:
    listed = cluster.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(f).expanduser() for f in listed.split(os.pathsep) if f]


def _load(path: Path) -> dict[str, Any]:
    from auditor.support import yamlsafe

    try:
        doc = yamlsafe.load(yamlsafe.read_text(path))
    except (OSError, UnicodeDecodeError, AuditorError, yamlsafe.YAMLError):
        # An unreadable kubeconfig names nobody: the identity falls back, the command goes on.
        return {}
    return doc if isinstance(doc, dict) else {}


def kubeconfig_user(cluster: ClusterConfig) -> tuple[str, bool] | None:
    """``(user name, has credentials)`` of the context in use (``cluster.context``, else
    the kubeconfig's current context), merged over the files as kubectl does (first one
    wins); None when there is no kubeconfig file at all."""
    docs = [_load(f) for f in _kubeconfig_files(cluster) if f.is_file()]
    if not docs:
        return None
    context = cluster.context or next(
        (str(d["current-context"]) for d in docs if d.get("current-context")), "")
    user = ""
    for doc in docs:
        for entry in doc.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == context:
                user = str((entry.get("context") or {}).get("user") or "")
                break
        if user:
            break
    creds: dict[str, Any] = {}
    for doc in docs:
        for entry in doc.get("users") or []:
            if isinstance(entry, dict) and entry.get("name") == user:
                creds = entry.get("user") or {}
                break
        if creds:
            break
    has = isinstance(creds, dict) and any(creds.get(k) for k in _CREDENTIALS)
    return user, has


def resolve(cluster: ClusterConfig) -> Identity:
    """The identity of whoever runs this command (see the module's docstring)."""
    if cluster.in_cluster:
        name = _whoami(cluster)
        return Identity(name, VERIFIED) if name else Identity("", IN_CLUSTER)
    found = kubeconfig_user(cluster)
    if found is None:
        return Identity(_os_user(), OS_USER)
    user, has_credentials = found
    if has_credentials:
        # The files read above, named explicitly: the client's own default location is
        # fixed when it is first imported, and must not disagree with what named the user.
        files = os.pathsep.join(str(f) for f in _kubeconfig_files(cluster) if f.is_file())
        name = _whoami(dataclasses.replace(cluster, kubeconfig=files))
        if name:
            return Identity(name, VERIFIED)
    return Identity(user, KUBECONFIG)


def _whoami(cluster: ClusterConfig) -> str:
    """The API server's answer, or '' when it gives none (the caller falls back)."""
    from auditor.live.client import Cluster

    short = dataclasses.replace(cluster, timeout_seconds=min(cluster.timeout_seconds,
                                                             _TIMEOUT_SECONDS), retries=0)
    try:
        with Cluster(short) as api:
            return api.whoami()
    except AuditorError:
        return ""


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else ""
