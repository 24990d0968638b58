"""Argo CD ``Application`` objects (argoproj.io/v1alpha1) turned into Git sources.

Only what Argo CD itself would render from Git is audited: a source with ``chart`` (a Helm
repository), a config-management plugin, a directory with include/exclude globs or jsonnet,
or a destination in another cluster is skipped with the reason. A multi-source Application
gives one source per ``spec.sources`` entry that has a ``path``; entries that only provide
``$ref`` value files are not rendered on their own.

Argo CD's rules followed (``reposerver/repository`` and ``util/app/path``): the destination
namespace is the default namespace of namespaced manifests and Helm's ``--namespace``
(``helm.namespace`` overrides it); the Helm release is ``helm.releaseName`` or the
Application's name; value files are relative to the chart's folder; a directory source is
read without subfolders unless ``directory.recurse``; ``targetRevision`` empty means
``HEAD``. ``status.sync.revision`` (``revisions[i]`` for several sources) is the commit last
applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from auditor.config import Credentials, HelmSource, KustomizeSource, Source
from auditor.support import yamlsafe

from .records import Derived, Skipped

IN_CLUSTER_SERVERS = frozenset({"https://kubernetes.default.svc",
                                "https://kubernetes.default.svc/",
                                "https://kubernetes.default.svc.cluster.local"})
IN_CLUSTER_NAME = "in-cluster"
CONTROLLER = "argocd"

CredentialsFor = Callable[[str], Credentials]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def owner_of(app: Mapping[str, Any]) -> str:
    meta = _dict(app.get("metadata"))
    return f"Application {meta.get('namespace', '')}/{meta.get('name', '')}"


def generated_by(app: Mapping[str, Any]) -> str:
    meta = _dict(app.get("metadata"))
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("kind") == "ApplicationSet":
            return f"ApplicationSet {meta.get('namespace', '')}/{ref.get('name', '')}"
    return ""


def derive(app: Mapping[str, Any], credentials_for: CredentialsFor,
           depth: int = 0) -> tuple[list[Derived], list[Skipped]]:
    """The Git sources one Application renders, and its parts that are not audited."""
    meta = _dict(app.get("metadata"))
    spec = _dict(app.get("spec"))
    status = _dict(app.get("status"))
    owner = owner_of(app)
    name = str(meta.get("name") or "")
    dest = _dict(spec.get("destination"))
    server, cluster_name = str(dest.get("server") or ""), str(dest.get("name") or "")
    if (server and server not in IN_CLUSTER_SERVERS) or (cluster_name and
                                                         cluster_name != IN_CLUSTER_NAME):
        return [], [Skipped(CONTROLLER, owner, f"deploys to another cluster "
                            f"({server or cluster_name}), not this one")]
    namespace = str(dest.get("namespace") or "")
    sync = _dict(status.get("sync"))
    sources: list[tuple[dict[str, Any], str]] = []
    if isinstance(spec.get("sources"), list) and spec["sources"]:
        found = sync.get("revisions")
        revisions: list[Any] = found if isinstance(found, list) else []
        for i, src in enumerate(spec["sources"]):
            applied = revisions[i] if i < len(revisions) else ""
            sources.append((_dict(src), str(applied or "")))
    elif isinstance(spec.get("source"), dict):
        sources.append((spec["source"], str(sync.get("revision") or "")))
    else:
        return [], [Skipped(CONTROLLER, owner, "no spec.source or spec.sources")]
    derived: list[Derived] = []
    skipped: list[Skipped] = []
    several = len(sources) > 1
    for i, (src, applied) in enumerate(sources):
        where = f"{owner} source {i}" if several else owner
        source_name = f"argocd:{meta.get('namespace', '')}/{name}" + (f"#{i}" if several else "")
        result = _one(src, where=where, name=source_name, app_name=name, namespace=namespace,
                      applied=applied, credentials_for=credentials_for, depth=depth,
                      several=several)
        if isinstance(result, Skipped):
            skipped.append(result)
        elif result is not None:
            derived.append(Derived(CONTROLLER, where, result[0], result[1],
                                   applied=_sha(applied), namespace=namespace,
                                   via=generated_by(app)))
    return derived, skipped


def _sha(revision: str) -> str:
    return revision if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision) \
        else ""


def _one(src: Mapping[str, Any], *, where: str, name: str, app_name: str, namespace: str,
         applied: str, credentials_for: CredentialsFor, depth: int,
         several: bool) -> tuple[Source, str] | Skipped | None:
    url = str(src.get("repoURL") or "")
    if not url:
        return Skipped(CONTROLLER, where, "no repoURL")
    if src.get("chart"):
        return Skipped(CONTROLLER, where, f"Helm chart {src['chart']!r} from a Helm repository "
                       f"({url}): not a Git source")
    if src.get("plugin"):
        return Skipped(CONTROLLER, where, "rendered by a config management plugin")
    if "path" not in src or src.get("path") is None:
        if several and src.get("ref"):
            return None  # a `$ref` source: value files for the others, nothing to render
        return Skipped(CONTROLLER, where, "no path in the repository")
    directory = _dict(src.get("directory"))
    if directory.get("include") or directory.get("exclude"):
        return Skipped(CONTROLLER, where, "directory.include/exclude globs are not supported")
    if _dict(directory.get("jsonnet")):
        return Skipped(CONTROLLER, where, "jsonnet is not supported")
    ref = str(src.get("targetRevision") or "HEAD")
    helm = _dict(src.get("helm"))
    for value_file in helm.get("valueFiles") or ():
        if isinstance(value_file, str) and value_file.startswith("$"):
            return Skipped(CONTROLLER, where, f"value file {value_file!r} from another source "
                           "($ref) is not supported")
    values_yaml = ""
    if isinstance(helm.get("valuesObject"), dict):
        values_yaml = json.dumps(helm["valuesObject"], sort_keys=True)
    elif isinstance(helm.get("values"), str) and helm["values"].strip():
        values_yaml = helm["values"]
    elif isinstance(helm.get("values"), dict):
        values_yaml = json.dumps(helm["values"], sort_keys=True)
    if values_yaml:
        try:
            yamlsafe.load(values_yaml, yamlsafe.PLAIN)
        except yamlsafe.YAMLError:
            return Skipped(CONTROLLER, where, "helm.values is not valid YAML")
    params = []
    for p in helm.get("parameters") or ():
        if isinstance(p, dict) and p.get("name"):
            params.append(f"{p['name']}={p.get('value', '')}")
    kustomize = _dict(src.get("kustomize"))
    images = tuple(str(i) for i in kustomize.get("images") or () if isinstance(i, str))
    labels = tuple(f"{k}={v}" for k, v in sorted(_dict(kustomize.get("commonLabels")).items()))
    annotations = tuple(f"{k}={v}" for k, v in
                        sorted(_dict(kustomize.get("commonAnnotations")).items()))
    source = Source(
        url=url, name=name, revision=_sha(applied) or ref, paths=(str(src["path"]) or ".",),
        namespace=str(helm.get("namespace") or namespace or "default"),
        recurse=bool(directory.get("recurse", False)),
        helm=HelmSource(release=str(helm.get("releaseName") or app_name),
                        values=tuple(str(v) for v in helm.get("valueFiles") or ()),
                        set=tuple(params), values_yaml=values_yaml),
        kustomize=KustomizeSource(images=images, name_prefix=str(kustomize.get("namePrefix")
                                                                 or ""),
                                  name_suffix=str(kustomize.get("nameSuffix") or ""),
                                  namespace=str(kustomize.get("namespace") or ""),
                                  labels=labels, annotations=annotations),
        credentials=credentials_for(url), depth=depth)
    return source, ref
