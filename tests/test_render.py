"""Rendering: plain YAML/JSON parsing and errors, folder detection, real kustomize and helm,
and hostile input (alias bombs, nesting, sizes) as named problems."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from faults.hostile import (
    big_scalar_manifest,
    bomb_manifest,
    configmap_text,
    deep_manifest,
    recursive_manifest,
)
from gitfixtures import TOOLS, configmap, deployment, tool

from auditor.desired.render import (
    RenderResult,
    parse_manifests,
    plan,
    render_helm,
    render_kustomize,
    render_path,
)
from auditor.errors import ManifestError, ToolMissingError


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


# --------------------------------------------------------------------------- plain


def test_multi_document_lists_and_empty_documents() -> None:
    text = textwrap.dedent("""\
        # leading comment, not a document
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: one}
        ---
        ---
        # only a comment
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: two}
        - apiVersion: v1
          kind: Service
          metadata: {name: three}
        ---
        apiVersion: apps/v1
        kind: DeploymentList
        items:
        - {apiVersion: apps/v1, kind: Deployment, metadata: {name: four}}
        """)
    result = parse_manifests(text, "apps/all.yaml")
    assert result.errors == ()
    got = [(o.document, o.obj["kind"], o.obj["metadata"]["name"]) for o in result.objects]
    assert got == [(1, "ConfigMap", "one"), (4, "ConfigMap", "two"), (4, "Service", "three"),
                   (5, "Deployment", "four")]
    assert all(o.file == "apps/all.yaml" for o in result.objects)


def test_yaml_syntax_error_names_file_document_and_line_and_keeps_the_rest() -> None:
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: good}
        ---
        apiVersion: v1
        kind: Secret
        metadata:
          name: creds
        stringData:
          password: hunter2-very-secret
            broken: indentation
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: after}
        """)
    result = parse_manifests(text, "secrets.yaml")
    assert [o.obj["metadata"]["name"] for o in result.objects] == ["good", "after"]
    (err,) = result.errors
    assert (err.file, err.document, err.line) == ("secrets.yaml", 2, 11)
    assert str(err).startswith("secrets.yaml: document 2, line 11: invalid YAML")
    assert "hunter2" not in str(err)


def test_objects_without_identity_are_rejected_by_name() -> None:
    text = textwrap.dedent("""\
        kind: Deployment
        metadata: {name: web}
        ---
        apiVersion: v1
        metadata: {name: lonely}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {labels: {a: b}}
        data: {token: c2VjcmV0}
        ---
        - just
        - a list
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: fine}
        """)
    result = parse_manifests(text, "bad.yaml")
    assert [o.obj["metadata"]["name"] for o in result.objects] == ["fine"]
    messages = [str(e) for e in result.errors]
    assert messages == [
        "bad.yaml: document 1, line 1: Deployment 'web' has no apiVersion",
        "bad.yaml: document 2, line 4: object 'lonely' has no kind",
        "bad.yaml: document 3, line 7: Secret has no metadata.name",
        "bad.yaml: document 4, line 12: expected a Kubernetes object (a mapping), got list",
    ]
    assert not any("c2VjcmV0" in m for m in messages)


def test_list_item_errors_name_the_item() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n"
    (err,) = parse_manifests(text, "list.yaml").errors
    assert str(err) == "list.yaml: document 1, line 1: List item 1: ConfigMap has no metadata.name"


def test_json_manifests() -> None:
    ok = parse_manifests('{"apiVersion": "v1", "kind": "List", "items": ['
                         '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}]}',
                         "x.json")
    assert [o.obj["metadata"]["name"] for o in ok.objects] == ["j"]
    (err,) = parse_manifests('{\n  "apiVersion": "v1",\n  "kind": \n}\n', "bad.json").errors
    assert (err.file, err.document, err.line) == ("bad.json", 1, 4)
    assert "invalid JSON" in str(err)


def test_scalars_read_like_kubernetes_reads_them() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            "data: {date: 2024-01-01, eq: =, num: '8080'}\n")
    (obj,) = parse_manifests(text, "c.yaml").objects
    assert obj.obj["data"] == {"date": "2024-01-01", "eq": "=", "num": "8080"}


# --------------------------------------------------------------------------- planning


def test_plan_detects_each_folder_kind(tmp_path: Path) -> None:
    _write(tmp_path, "plain/a.yaml", configmap("a"))
    _write(tmp_path, "plain/sub/b.yml", configmap("b"))
    _write(tmp_path, "plain/c.json", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}')
    _write(tmp_path, "plain/README.md", "not a manifest")
    _write(tmp_path, "plain/.hidden/x.yaml", configmap("hidden"))
    _write(tmp_path, "kust/base/kustomization.yaml", "resources: [deploy.yaml]\n")
    _write(tmp_path, "kust/base/deploy.yaml", deployment("web"))
    _write(tmp_path, "kust/overlays/prod/kustomization.yaml", "resources: [../../base]\n")
    _write(tmp_path, "charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    _write(tmp_path, "charts/web/templates/cm.yaml", "{{ not yaml }}\n")
    todo = plan(tmp_path)
    assert todo.files == ("plain/a.yaml", "plain/c.json", "plain/sub/b.yml")
    # The base is included by the overlay, so only the overlay is built on its own.
    assert todo.kustomizations == ("kust/overlays/prod",)
    assert todo.charts == ("charts/web",)
    assert plan(tmp_path, "kust/base").kustomizations == ("kust/base",)
    assert plan(tmp_path, "plain/a.yaml").files == ("plain/a.yaml",)
    assert plan(tmp_path, "kust/base", "plain").files == ("kust/base/deploy.yaml",
                                                         "kust/base/kustomization.yaml")
    with pytest.raises(ManifestError, match="nope: no such file or folder"):
        plan(tmp_path, "nope")


# --------------------------------------------------------------------------- kustomize


def _kustomize_tree(root: Path) -> None:
    _write(root, "base/kustomization.yaml", """
        resources:
        - deploy.yaml
        configMapGenerator:
        - name: settings
          literals: [mode=base]
        """)
    _write(root, "base/deploy.yaml", deployment("web"))
    _write(root, "overlays/prod/kustomization.yaml", """
        namespace: prod
        resources:
        - ../../base
        - extra.yaml
        patches:
        - path: replicas.yaml
        """)
    _write(root, "overlays/prod/replicas.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec: {replicas: 5}
        """)
    _write(root, "overlays/prod/extra.yaml", configmap("extra"))


def test_kustomize_overlay_with_real_kubectl(tmp_path: Path) -> None:
    tool("kubectl")
    _kustomize_tree(tmp_path)
    result = render_kustomize(tmp_path, "overlays/prod", TOOLS)
    assert result.errors == ()
    by_name = {o.obj["metadata"]["name"]: o for o in result.objects}
    web = by_name["web"]
    assert web.obj["spec"]["replicas"] == 5
    assert web.obj["metadata"]["namespace"] == "prod"
    # The origin annotation used for attribution does not leak into the desired object.
    assert "annotations" not in web.obj["metadata"]
    assert web.file == "base/deploy.yaml"
    assert "overlays/prod/replicas.yaml" in web.related
    assert by_name["extra"].file == "overlays/prod/extra.yaml"
    (generated,) = [o for n, o in by_name.items() if n.startswith("settings-")]
    assert generated.file == "base/kustomization.yaml"
    assert generated.obj["data"] == {"mode": "base"}


def test_kustomize_keeps_origin_annotations_the_user_asked_for(tmp_path: Path) -> None:
    tool("kubectl")
    _write(tmp_path, "k/kustomization.yaml",
           "resources: [cm.yaml]\nbuildMetadata: [originAnnotations]\n")
    _write(tmp_path, "k/cm.yaml", configmap("c"))
    (obj,) = render_kustomize(tmp_path, "k", TOOLS).objects
    assert obj.file == "k/cm.yaml"
    assert "config.kubernetes.io/origin" in obj.obj["metadata"]["annotations"]


def test_kustomize_failure_is_an_error_naming_the_kustomization(tmp_path: Path) -> None:
    tool("kubectl")
    _write(tmp_path, "k/kustomization.yaml", "resources: [missing.yaml]\n")
    result = render_kustomize(tmp_path, "k", TOOLS)
    (err,) = result.errors
    assert result.objects == ()
    assert str(err).startswith("k/kustomization.yaml: kustomize build failed: ")
    assert "missing.yaml" in str(err)


def test_missing_binaries_say_what_to_install(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _kustomize_tree(tmp_path)
    _write(tmp_path, "chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolMissingError, match="`kustomize` binary or `kubectl`"):
        render_path(tmp_path, "overlays/prod", tools_dir=empty)
    with pytest.raises(ToolMissingError, match="`helm` binary"):
        render_path(tmp_path, "chart", tools_dir=empty)


# --------------------------------------------------------------------------- helm


def _chart(root: Path) -> None:
    _write(root, "charts/shop/Chart.yaml", "apiVersion: v2\nname: shop-chart\nversion: 1.0.0\n")
    _write(root, "charts/shop/values.yaml", "replicas: 1\nimage: shop:1.0\n")
    _write(root, "charts/shop/templates/_helpers.tpl", '{{- define "shop.name" -}}shop{{- end }}\n')
    _write(root, "charts/shop/templates/app.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}-{{ include "shop.name" . }}
        spec:
          replicas: {{ .Values.replicas }}
          template:
            spec:
              containers:
              - name: app
                image: {{ .Values.image }}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
        """)
    _write(root, "charts/shop/templates/ns.yaml", """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: {{ .Release.Namespace }}
        """)
    _write(root, "charts/shop/templates/hooks.yaml", """
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: migrate
          annotations: {"helm.sh/hook": pre-install}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: test-connection
          annotations: {"helm.sh/hook": test}
        """)
    _write(root, "charts/shop/crds/widgets.yaml", """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {kind: Widget, plural: widgets}
          versions: [{name: v1, served: true, storage: true}]
        """)
    _write(root, "env/prod.yaml", "replicas: 4\n")


def test_helm_template_with_values_and_sources(tmp_path: Path) -> None:
    tool("helm")
    _chart(tmp_path)
    result = render_helm(tmp_path, "charts/shop", release="web", namespace="shop",
                         values=["env/prod.yaml"], set_values=["image=shop:2.0"],
                         tools_dir=TOOLS)
    assert result.errors == ()
    by_kind = {o.obj["kind"]: o for o in result.objects}
    deploy = by_kind["Deployment"]
    assert deploy.obj["metadata"]["name"] == "web-shop"
    assert deploy.obj["spec"]["replicas"] == 4
    assert deploy.obj["spec"]["template"]["spec"]["containers"][0]["image"] == "shop:2.0"
    # helm's "# Source: shop-chart/templates/app.yaml" maps back into the chart folder.
    assert deploy.file == "charts/shop/templates/app.yaml"
    assert by_kind["Service"].file == "charts/shop/templates/app.yaml"
    assert by_kind["Service"].obj["metadata"]["namespace"] == "shop"
    assert by_kind["Namespace"].file == "charts/shop/templates/ns.yaml"
    # As installed: CRDs included, hooks (run-and-go jobs, test pods) not part of the state.
    assert sorted(by_kind) == ["CustomResourceDefinition", "Deployment", "Namespace", "Service"]
    assert by_kind["CustomResourceDefinition"].file == "charts/shop/crds/widgets.yaml"
    assert deploy.related == ("charts/shop/Chart.yaml", "charts/shop/values.yaml",
                              "env/prod.yaml")


def test_helm_errors_are_collected(tmp_path: Path) -> None:
    tool("helm")
    _chart(tmp_path)
    missing = render_helm(tmp_path, "charts/shop", release="web", namespace="shop",
                          values=["env/nope.yaml"], tools_dir=TOOLS)
    assert [str(e) for e in missing.errors] == [
        "charts/shop: values file 'env/nope.yaml' not found (relative to the repository or "
        "the chart)"]
    _write(tmp_path, "charts/shop/templates/bad.yaml", "{{ .Values.nope.deeper }}\n")
    broken = render_helm(tmp_path, "charts/shop", release="web", namespace="shop",
                         tools_dir=TOOLS)
    (err,) = broken.errors
    assert str(err).startswith("charts/shop: helm template failed: ")
    assert "bad.yaml" in str(err)


def test_render_path_combines_everything(tmp_path: Path) -> None:
    tool("helm")
    tool("kubectl")
    _kustomize_tree(tmp_path / "k")
    _chart(tmp_path)
    _write(tmp_path, "plain/cm.yaml", configmap("plain"))
    _write(tmp_path, "plain/broken.yaml", "a: [\n")
    result = render_path(tmp_path, ".", namespace="shop", release="web",
                         values=["env/prod.yaml"], tools_dir=TOOLS)
    files = sorted({o.file for o in result.objects})
    assert files == ["charts/shop/crds/widgets.yaml", "charts/shop/templates/app.yaml",
                     "charts/shop/templates/ns.yaml",
                     "k/base/deploy.yaml", "k/base/kustomization.yaml",
                     "k/overlays/prod/extra.yaml", "plain/cm.yaml"]
    # The values file is not read as a manifest; the broken file is reported, alone.
    assert [e.file for e in result.errors] == ["plain/broken.yaml"]


def test_bom_and_crlf_files(tmp_path: Path) -> None:
    (tmp_path / "win.yaml").write_bytes(
        b"\xef\xbb\xbfapiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: a}\r\n---\r\n"
        b"apiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: b}\r\n")
    result = render_path(tmp_path, "win.yaml")
    assert result.errors == ()
    assert [(o.document, o.obj["metadata"]["name"]) for o in result.objects] == [(1, "a"), (2, "b")]


def test_symlinks_out_of_the_tree_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(configmap("stolen"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "inside.yaml").write_text(configmap("inside"))
    (repo / "link-in.yaml").symlink_to(repo / "inside.yaml")
    (repo / "link-out.yaml").symlink_to(outside)
    result = render_path(repo, ".")
    assert [str(e) for e in result.errors] == [
        "link-out.yaml: symlink to a file outside the repository"]
    assert [o.file for o in result.objects] == ["inside.yaml", "link-in.yaml"]


def test_a_kustomize_binary_is_preferred_over_kubectl(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    calls = tmp_path / "calls"
    for name in ("kustomize", "kubectl"):
        script = tools / name
        script.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {calls}\n"
                          "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: c}\\n'\n")
        script.chmod(0o755)
    _write(tmp_path, "k/kustomization.yaml", "resources: []\n")
    (obj,) = render_kustomize(tmp_path, "k", tools).objects
    assert obj.obj["metadata"]["name"] == "c"
    assert calls.read_text().startswith("kustomize build /")
    assert "kubectl" not in calls.read_text()


# --------------------------------------------------------------------------- hostile input
# Bombs here are kept small (9 wide, 6 deep: 531,441 strings), past the loader's limit yet
# harmless should the limit ever go: the full-size ones run in a child process with a memory
# ceiling, in tests/faults.


def _doc(name: str) -> str:
    return configmap_text(name)


def _loaded(result: RenderResult) -> list[str]:
    return [o.name for o in result.objects]


@pytest.mark.parametrize("merge", [False, True], ids=["aliases", "merge-keys"])
def test_an_alias_bomb_is_a_named_problem_and_the_other_documents_load(merge: bool) -> None:
    text = _doc("before") + "---\n" + bomb_manifest(levels=6, merge=merge) + "---\n" + \
        _doc("after")
    result = parse_manifests(text, "apps/lol.yaml")
    assert _loaded(result) == ["before", "after"]
    (err,) = result.errors
    # The smallest anchor that expands past the limit on its own: l5 (9**6) or m5, on the
    # tenth line of the document, which starts at line 6.
    line = 15
    assert (err.file, err.document, err.line) == ("apps/lol.yaml", 2, line)
    assert str(err) == (f"apps/lol.yaml: document 2, line {line}: aliases expand to more than "
                        "100,000 added nodes, the limit for one file")


def test_the_alias_limit_holds_for_a_whole_file_and_anchors_in_use_still_load() -> None:
    shared = ("  base: &base {app: web, tier: front}\n  a: *base\n  b: {<<: *base, c: 1}\n")
    text = _doc("small") + "x:\n" + shared
    # Each document adds 9**5 = 59,049 nodes: two of them pass the per-file limit.
    for name in ("first", "second"):
        text += "---\n" + bomb_manifest(name, levels=5)
    result = parse_manifests(text, "apps/x.yaml")
    assert _loaded(result) == ["small", "first"]
    assert [(e.document, "limit for one file" in str(e)) for e in result.errors] == [(3, True)]
    x = result.objects[0].obj["x"]
    assert x["a"] == x["base"] == {"app": "web", "tier": "front"}
    assert x["b"] == {"app": "web", "tier": "front", "c": 1}


def test_an_alias_inside_its_own_anchor_nesting_and_size_are_named_problems() -> None:
    from auditor.support import yamlsafe

    deepest = deep_manifest(yamlsafe.MAX_DEPTH - 3)  # within: the object, x, the lists
    cases = {
        "loop.yaml": (recursive_manifest(), "an alias refers to a node that contains it"),
        "deep.yaml": (deep_manifest(yamlsafe.MAX_DEPTH + 1),
                      f"nested more than {yamlsafe.MAX_DEPTH} levels deep"),
        "deeper.yaml": (deep_manifest(5000), "exceeded maximum nesting depth"),
        "big.yaml": (big_scalar_manifest(3 * 1024 * 1024),
                     "a document larger than 3 MiB, the limit for one document"),
    }
    for file, (text, message) in cases.items():
        result = parse_manifests(_doc("ok") + "---\n" + text, file)
        assert _loaded(result) == ["ok"], file
        (err,) = result.errors
        assert err.document == 2 and message in str(err), (file, str(err))
        assert len(str(err)) < 200
    assert _loaded(parse_manifests(deepest, "deepest.yaml")) == ["deep"]


def test_a_json_manifest_nested_too_deep_is_a_named_problem() -> None:
    from auditor.support import yamlsafe

    text = ('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "x": '
            + "[" * yamlsafe.MAX_DEPTH + "]" * yamlsafe.MAX_DEPTH + "}")
    (err,) = parse_manifests(text, "j.json").errors
    assert str(err) == (f"j.json: document 1: nested more than {yamlsafe.MAX_DEPTH} levels "
                        "deep, the limit for a document")


def test_a_file_past_the_size_limit_is_a_named_problem_and_never_read_whole(
        tmp_path: Path) -> None:
    from auditor.support import yamlsafe

    (tmp_path / "ok.yaml").write_text(_doc("ok"))
    with (tmp_path / "huge.yaml").open("w") as fh:
        fh.write(_doc("huge") + "data:\n")
        fh.truncate(yamlsafe.MAX_FILE_BYTES + 1)  # sparse: the size is all that matters
    result = render_path(tmp_path, ".")
    assert _loaded(result) == ["ok"]
    assert [str(e) for e in result.errors] == ["huge.yaml: larger than 64 MiB, the limit for "
                                               "one file"]


def test_a_renderer_writing_without_end_is_stopped_at_the_output_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.desired import render

    tools = tmp_path / "tools"
    tools.mkdir()
    helm = tools / "helm"
    helm.write_text("#!/bin/sh\nexec yes 'a: b'\n")
    helm.chmod(0o755)
    _write(tmp_path, "chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
    monkeypatch.setattr(render, "MAX_TOOL_OUTPUT_BYTES", 4 * 1024 * 1024)
    result = render_helm(tmp_path, "chart", release="r", namespace="shop", tools_dir=tools)
    assert [str(e) for e in result.errors] == [
        "chart: helm template wrote more than 4 MiB, the limit for one render"]


def test_the_bounded_loaders_build_exactly_what_pyyaml_builds() -> None:
    """The loader's fast path for strings must not change a value: every YAML file of the
    test data and a document of every scalar kind, each loader against PyYAML's own."""
    import datetime

    import yaml

    from auditor.support import yamlsafe

    class Reference(yaml.CSafeLoader):  # render's loader as it was: timestamps, `=` as text
        pass

    Reference.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers
                if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()}
    every_kind = textwrap.dedent("""\
        str: text
        quoted: "2024-01-01"
        date: 2024-01-01
        stamp: 2024-01-01T10:00:00Z
        eq: =
        ints: [1, 0x1f, 0o17, 1_000, -3, 0b101, 190:20:30]
        floats: [1.5, 1e3, .inf, -.inf, 6.8523015e+5]
        bools: [yes, no, on, off, true, False, y, n]
        nulls: [~, null, ]
        keys: {1: one, 2.5: two, true: three, null: four}
        binary: !!binary aGVsbG8=
        set: !!set {a, b}
        omap: !!omap [{a: 1}, {b: 2}]
        pairs: !!pairs [{a: 1}, {a: 2}]
        tagged: !!str 42
        multi: |
          line one
          line two
        folded: >-
          folded
          text
        anchors: {base: &b {k: v, n: [1, 2]}, copy: *b, merged: {<<: *b, k: w}}
        merged_list: {<<: [{a: 1}, {a: 2, b: 2}], c: 3}
        dup: {k: 1, k: 2}
        """)
    texts = [every_kind] + [p.read_text() for p in sorted(Path(__file__).parent.glob(
        "data/**/*.y*ml"))]
    pairs = [(yamlsafe.MANIFEST, Reference), (yamlsafe.FAST, yaml.CSafeLoader),
             (yamlsafe.PLAIN, yaml.SafeLoader)]

    def outcome(load: Callable[[], Iterable[Any]]) -> str:
        try:
            return repr(list(load()))
        except yaml.YAMLError as exc:  # `=` is PyYAML's unconstructable value tag
            return f"{type(exc).__name__}: {exc}"

    for text in texts:
        for ours, theirs in pairs:
            assert outcome(lambda: yamlsafe.load_all(text, ours)) == outcome(  # noqa: B023
                lambda: yaml.load_all(text, Loader=theirs)), ours  # noqa: B023
    loaded = yamlsafe.load(every_kind, yamlsafe.MANIFEST)
    assert (loaded["date"], loaded["eq"], loaded["binary"]) == ("2024-01-01", "=", b"hello")
    assert yamlsafe.load("date: 2024-01-01", yamlsafe.FAST)["date"] == datetime.date(2024, 1, 1)
