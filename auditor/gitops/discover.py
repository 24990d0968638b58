"""The controllers' objects read from the cluster (or a snapshot), their credentials chosen,
and the sources derived from them: :func:`derive_all`.

A controller kind the cluster does not serve contributes nothing (a cluster without Flux
has no Kustomizations); a kind that cannot be listed (403, 5xx) raises, since auditing
without the sources it declares would report false orphans and false fixes.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.config import Config, ControllerSource, Credentials
from auditor.errors import ClusterError

from . import argocd, flux
from .records import Derivation, Derived, Skipped

if TYPE_CHECKING:
    from auditor.live.client import APIResource, Cluster

# (group, kind) each controller's sources are read from.
CONTROLLER_KINDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "argocd": (("argoproj.io", "Application"),),
    "flux": (("source.toolkit.fluxcd.io", "GitRepository"),
             ("kustomize.toolkit.fluxcd.io", "Kustomization"),
             ("helm.toolkit.fluxcd.io", "HelmRelease")),
}
# Argo CD's repository Secrets: labelled so, in the Applications' namespace.
ARGOCD_SECRET_LABEL = "argocd.argoproj.io/secret-type"

Objects = Mapping[tuple[str, str], list[dict[str, Any]]]


def controller_objects(cluster: Cluster, resources: Iterable[APIResource],
                       controllers: Iterable[ControllerSource]) -> dict[tuple[str, str],
                                                                          list[dict[str, Any]]]:
    """Every object of the controllers' kinds, by ``(group, kind)``, from the namespaces
    each controller source names (all when none)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for controller in controllers:
        for gk in CONTROLLER_KINDS[controller.controller]:
            wanted.setdefault(gk, set()).update(controller.namespaces or ("",))
    served = {(r.group, r.kind): r for r in resources}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for gk, namespaces in sorted(wanted.items()):
        resource = served.get(gk)
        if resource is None:
            continue
        items: list[dict[str, Any]] = []
        for ns in sorted(("",) if "" in namespaces else namespaces):
            for page in cluster.list_pages(resource, namespace=ns):
                items.extend(page.items)
        out[gk] = items
    return out


def from_snapshot(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str],
                                                              list[dict[str, Any]]]:
    """The controllers' objects among a snapshot's objects."""
    kinds = {gk for gks in CONTROLLER_KINDS.values() for gk in gks}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for obj in objects:
        group = str(obj.get("apiVersion") or "").rpartition("/")[0]
        gk = (group, str(obj.get("kind") or ""))
        if gk in kinds:
            out.setdefault(gk, []).append(obj)
    return out


class _SecretFiles:
    """Credentials read from a controller's Secrets, as files only this process can read
    (git takes a password file, not a value), deleted when the process ends."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    def write(self, name: str, value: bytes) -> str:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="drift-auditor-creds-"))
            os.chmod(self._dir, 0o700)
            atexit.register(shutil.rmtree, self._dir, True)
        path = self._dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(value)
        return str(path)


def _decoded(secret: Mapping[str, Any], key: str) -> bytes | None:
    data = secret.get("data")
    if not isinstance(data, dict) or not isinstance(data.get(key), str):
        return None
    with contextlib.suppress(binascii.Error, ValueError):
        return base64.b64decode(data[key], validate=True)
    return None


def _credentials_from_secret(secret: Mapping[str, Any], files: _SecretFiles,
                             tag: str) -> Credentials:
    user = _decoded(secret, "username")
    password = _decoded(secret, "password")
    key = _decoded(secret, "sshPrivateKey") or _decoded(secret, "identity")
    return Credentials(
        username=user.decode("utf-8", "replace") if user else "",
        password_file=files.write(f"{tag}.password", password) if password else "",
        ssh_key_file=files.write(f"{tag}.key", key) if key else "")


def derive_all(cfg: Config, objects: Objects, *, cluster: Cluster | None = None,
               resources: Iterable[APIResource] = ()) -> Derivation:
    """The sources every configured controller declares in ``objects``. ``cluster`` is
    asked for repository Secrets only for a controller source with
    ``controller-credentials``."""
    by_url = {s.url: s.credentials for s in cfg.sources if s.url}
    files = _SecretFiles()
    secrets = _SecretReader(cluster, list(resources), files)
    derived: list[Derived] = []
    skipped: list[Skipped] = []
    for controller in cfg.controllers:
        def own(url: str, controller: ControllerSource = controller) -> Credentials:
            if controller.credentials != Credentials():
                return controller.credentials
            return by_url.get(url, Credentials())

        def in_scope(obj: Mapping[str, Any], controller: ControllerSource = controller) -> bool:
            ns = str((obj.get("metadata") or {}).get("namespace") or "")
            return not controller.namespaces or ns in controller.namespaces

        if controller.controller == "argocd":
            for app in sorted(objects.get(("argoproj.io", "Application"), ()), key=_sort_key):
                if not in_scope(app):
                    continue
                ns = str((app.get("metadata") or {}).get("namespace") or "")

                def argo_creds(url: str, ns: str = ns,
                               controller: ControllerSource = controller) -> Credentials:
                    found = own(url, controller)
                    if found == Credentials() and controller.controller_credentials:
                        return secrets.argocd(ns, url)
                    return found

                d, s = argocd.derive(app, argo_creds, controller.depth)
                derived.extend(d)
                skipped.extend(s)
        else:
            repos = {(str((r.get("metadata") or {}).get("namespace") or ""),
                      str((r.get("metadata") or {}).get("name") or "")): r
                     for r in objects.get(("source.toolkit.fluxcd.io", "GitRepository"), ())}

            def flux_creds(url: str, repo: Mapping[str, Any],
                           controller: ControllerSource = controller) -> Credentials:
                found = own(url, controller)
                if found == Credentials() and controller.controller_credentials:
                    return secrets.flux(repo)
                return found

            for gk, derive in ((("kustomize.toolkit.fluxcd.io", "Kustomization"),
                                flux.derive_kustomization),
                               (("helm.toolkit.fluxcd.io", "HelmRelease"),
                                flux.derive_helmrelease)):
                for obj in sorted(objects.get(gk, ()), key=_sort_key):
                    if not in_scope(obj):
                        continue
                    result = derive(obj, repos, flux_creds, controller.depth)
                    (skipped if isinstance(result, Skipped) else derived).append(result)  # type: ignore[arg-type]
    return Derivation(tuple(derived), tuple(skipped))


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class _SecretReader:
    """The controllers' repository Secrets, asked only when allowed and only once each."""

    def __init__(self, cluster: Cluster | None, resources: list[APIResource],
                 files: _SecretFiles) -> None:
        self.cluster = cluster
        self.secret = next((r for r in resources if r.group == "" and r.kind == "Secret"), None)
        self.files = files
        self.seen: dict[tuple[str, str], Credentials] = {}

    def _need(self) -> tuple[Cluster, APIResource]:
        if self.cluster is None or self.secret is None:
            raise ClusterError("controller-credentials: the controller's repository Secrets "
                               "can only be read from the cluster")
        return self.cluster, self.secret

    def argocd(self, namespace: str, url: str) -> Credentials:
        key = ("argocd:" + namespace, url)
        if key not in self.seen:
            cluster, secret = self._need()
            doc = cluster.get_json(secret.path(namespace),
                                   [("labelSelector", f"{ARGOCD_SECRET_LABEL} in "
                                                      "(repository,repo-creds)")])
            best: tuple[int, Mapping[str, Any]] | None = None
            for item in doc.get("items") or ():
                found = (_decoded(item, "url") or b"").decode("utf-8", "replace")
                kind = ((item.get("metadata") or {}).get("labels") or {}).get(
                    ARGOCD_SECRET_LABEL)
                # A repository Secret names the URL; repo-creds a prefix, longest wins.
                if (kind == "repository" and found == url) or (
                        kind == "repo-creds" and found and url.startswith(found)):
                    rank = 10_000 if kind == "repository" else len(found)
                    if best is None or rank > best[0]:
                        best = (rank, item)
            self.seen[key] = (_credentials_from_secret(best[1], self.files,
                                                       f"argocd-{len(self.seen)}")
                              if best else Credentials())
        return self.seen[key]

    def flux(self, repo: Mapping[str, Any]) -> Credentials:
        meta = repo.get("metadata") or {}
        ref = ((repo.get("spec") or {}).get("secretRef") or {}).get("name")
        if not ref:
            return Credentials()
        key = ("flux:" + str(meta.get("namespace") or ""), str(ref))
        if key not in self.seen:
            cluster, secret = self._need()
            found = cluster.get_object(secret, str(meta.get("namespace") or ""), str(ref))
            self.seen[key] = (_credentials_from_secret(found, self.files,
                                                       f"flux-{len(self.seen)}")
                              if found else Credentials())
        return self.seen[key]
