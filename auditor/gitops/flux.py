"""Flux ``Kustomization`` (kustomize.toolkit.fluxcd.io/v1) and ``HelmRelease``
(helm.toolkit.fluxcd.io/v2) objects, with the ``GitRepository`` they read
(source.toolkit.fluxcd.io/v1), turned into Git sources.

Flux's rules followed (kustomize-controller, helm-controller, source-controller):
- the GitRepository's ``ref`` picks the revision: ``commit``, else ``name``, else ``tag``,
  else ``branch``; none means ``master``. ``semver`` ranges are not resolved here (skipped).
- a Kustomization builds ``spec.path`` (default the repository root) as kustomize does, and
  generates a kustomization from every manifest under a folder that has none;
  ``targetNamespace``, ``namePrefix``/``nameSuffix``, ``images``, ``commonMetadata`` and
  ``patches`` are applied on top. ``status.lastAppliedRevision`` (``main@sha1:<sha>``) is the
  commit last applied. ``postBuild`` variable substitution and non-Git sources (OCI,
  buckets) are skipped with the reason.
- a HelmRelease whose chart comes from a GitRepository renders ``spec.chart.spec.chart`` (a
  path in the repository) with ``values`` and the chart's ``valuesFiles``; the release name
  is ``releaseName``, else ``<targetNamespace>-<name>`` with a target namespace, else the
  name. Charts from Helm or OCI repositories, ``chartRef`` and ``valuesFrom`` are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from auditor.config import Credentials, HelmSource, KustomizeSource, Source

from .records import Derived, Skipped

CONTROLLER = "flux"
DEFAULT_BRANCH = "master"

CredentialsFor = Callable[[str, Mapping[str, Any]], Credentials]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = _dict(obj.get("metadata"))
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def revision_sha(revision: Any) -> str:
    """The commit of a Flux revision string (``main@sha1:<sha>``, ``sha1:<sha>``, or the
    older ``main/<sha>``)."""
    if not isinstance(revision, str):
        return ""
    tail = revision.rpartition("sha1:")[2] if "sha1:" in revision else revision.rpartition("/")[2]
    return tail if len(tail) == 40 and all(c in "0123456789abcdef" for c in tail) else ""


def git_ref(repo: Mapping[str, Any]) -> str | None:
    """The revision a GitRepository follows, or None for a semver range."""
    ref = _dict(_dict(repo.get("spec")).get("ref"))
    if ref.get("commit"):
        return str(ref["commit"])
    if ref.get("name"):
        return str(ref["name"])
    if ref.get("semver"):
        return None
    if ref.get("tag"):
        return str(ref["tag"])
    return str(ref.get("branch") or DEFAULT_BRANCH)


def _git_source(owner: str, ref: Mapping[str, Any], namespace: str,
                repos: Mapping[tuple[str, str], Mapping[str, Any]]
                ) -> tuple[Mapping[str, Any], str, str] | Skipped:
    """The GitRepository a ``sourceRef`` names, the revision it follows and its URL."""
    kind = str(ref.get("kind") or "")
    ns = str(ref.get("namespace") or namespace)
    name = str(ref.get("name") or "")
    if kind != "GitRepository":
        return Skipped(CONTROLLER, owner, f"source {kind or '?'} {ns}/{name} is not a "
                       "GitRepository (OCI and bucket sources are not audited)")
    repo = repos.get((ns, name))
    if repo is None:
        return Skipped(CONTROLLER, owner, f"GitRepository {ns}/{name} not found")
    followed = git_ref(repo)
    if followed is None:
        return Skipped(CONTROLLER, owner, "its GitRepository follows a semver range")
    return repo, followed, str(_dict(repo.get("spec")).get("url") or "")


def derive_kustomization(ks: Mapping[str, Any],
                         repos: Mapping[tuple[str, str], Mapping[str, Any]],
                         credentials_for: CredentialsFor, depth: int = 0
                         ) -> Derived | Skipped:
    namespace, name = _name(ks)
    owner = f"Kustomization {namespace}/{name}"
    spec = _dict(ks.get("spec"))
    if spec.get("suspend"):
        return Skipped(CONTROLLER, owner, "suspended")
    post = _dict(spec.get("postBuild"))
    if post.get("substitute") or post.get("substituteFrom"):
        return Skipped(CONTROLLER, owner, "postBuild variable substitution is not supported")
    found = _git_source(owner, _dict(spec.get("sourceRef")), namespace, repos)
    if isinstance(found, Skipped):
        return found
    repo, ref, url = found
    target = str(spec.get("targetNamespace") or "")
    images = []
    for image in spec.get("images") or ():
        if not isinstance(image, dict) or not image.get("name"):
            continue
        if image.get("digest"):
            images.append(f"{image['name']}={image.get('newName') or image['name']}"
                          f"@{image['digest']}")
        elif image.get("newName") or image.get("newTag"):
            new = str(image.get("newName") or image["name"])
            tag = f":{image['newTag']}" if image.get("newTag") else ""
            images.append(f"{image['name']}={new}{tag}")
    meta = _dict(spec.get("commonMetadata"))
    patches = tuple(json.dumps(p, sort_keys=True) for p in spec.get("patches") or ()
                    if isinstance(p, dict))
    applied = revision_sha(_dict(ks.get("status")).get("lastAppliedRevision"))
    path = str(spec.get("path") or ".").removeprefix("./") or "."
    source = Source(
        url=url, name=f"flux:{namespace}/{name}", revision=applied or ref, paths=(path,),
        namespace=target or "default",
        kustomize=KustomizeSource(
            images=tuple(images), name_prefix=str(spec.get("namePrefix") or ""),
            name_suffix=str(spec.get("nameSuffix") or ""), namespace=target,
            labels=tuple(f"{k}={v}" for k, v in sorted(_dict(meta.get("labels")).items())),
            annotations=tuple(f"{k}={v}" for k, v in
                              sorted(_dict(meta.get("annotations")).items())),
            patches=patches, generate=True),
        credentials=credentials_for(url, repo), depth=depth)
    return Derived(CONTROLLER, owner, source, ref, applied=applied, namespace=target)


def derive_helmrelease(hr: Mapping[str, Any],
                       repos: Mapping[tuple[str, str], Mapping[str, Any]],
                       credentials_for: CredentialsFor, depth: int = 0
                       ) -> Derived | Skipped:
    namespace, name = _name(hr)
    owner = f"HelmRelease {namespace}/{name}"
    spec = _dict(hr.get("spec"))
    if spec.get("suspend"):
        return Skipped(CONTROLLER, owner, "suspended")
    if spec.get("chartRef"):
        ref_kind = _dict(spec["chartRef"]).get("kind", "?")
        return Skipped(CONTROLLER, owner, f"chart from a {ref_kind} (chartRef): not a Git "
                       "source")
    if spec.get("valuesFrom"):
        return Skipped(CONTROLLER, owner, "values from ConfigMaps or Secrets (valuesFrom) "
                       "are not supported")
    chart = _dict(_dict(spec.get("chart")).get("spec"))
    found = _git_source(owner, _dict(chart.get("sourceRef")), namespace, repos)
    if isinstance(found, Skipped):
        return found
    repo, ref, url = found
    target = str(spec.get("targetNamespace") or "")
    release = str(spec.get("releaseName") or (f"{target}-{name}" if target else name))
    values = spec.get("values")
    values_files = tuple(str(v) for v in chart.get("valuesFiles") or () if isinstance(v, str))
    # What helm-controller last applied is recorded per chart version, not per commit: the
    # chart is read at the commit its GitRepository last fetched.
    fetched = revision_sha(_dict(_dict(repo.get("status")).get("artifact")).get("revision"))
    path = str(chart.get("chart") or ".").removeprefix("./") or "."
    source = Source(
        url=url, name=f"flux:{namespace}/{name}", revision=fetched or ref, paths=(path,),
        namespace=target or namespace, render="helm",
        helm=HelmSource(release=release, values=values_files,
                        values_yaml=json.dumps(values, sort_keys=True)
                        if isinstance(values, dict) and values else ""),
        credentials=credentials_for(url, repo), depth=depth)
    return Derived(CONTROLLER, owner, source, ref, applied=fetched, namespace=target or namespace)
