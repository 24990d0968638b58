"""Adopting drift into Git: write the live values of drifted paths back into the files they
came from, changing only those values.

The input is a fresh comparison (:class:`~auditor.engine.records.ObjectResult` items carry the live
values) and a work tree of the audited commit. For each drifted path this module decides
which file and which YAML document to edit, edits it, and proves the edit did what it should
by rendering the source again: the rendered objects after the edit must equal the rendered
objects before it with exactly the adopted values changed, every other object and field
untouched. An edit that does not pass is undone and the next candidate file is tried; when
none passes, the path is refused with a message naming the file to edit by hand. That check
is what makes kustomize overlays and Helm charts safe: a value set by an ``images:`` or
``replicas:`` transformer, a JSON 6902 patch, a base shared by another overlay or a template
expression simply fails it, instead of the tool guessing.

Edits go through ruamel.yaml's round-trip loader and dumper. ruamel re-renders a few
constructs differently from how they were written (``[{a: 1}]`` becomes ``[a: 1]``, document
markers, some comment placements), so the file is dumped twice, once unedited and once edited,
and only the difference between those two dumps is merged into the original text (a three-way
line merge). The result is re-parsed with PyYAML (YAML 1.1, as Kubernetes reads it) and must
equal the original documents with the edit applied.

Where the value goes: a plain manifest's own document; for a kustomization, the strategic-
merge patches that target the object (outermost overlay first), then the resource file it
came from (kustomize's origin annotation) unless another kustomization in the repository
also builds from that file; for a Helm chart, a values-file leaf equal to the desired value
(or to the part of it the live value changes, an image tag), ``-f`` files before the chart's
``values.yaml``. All paths of an object are first tried together and proved by one render;
on any doubt, path by path. Server defaults inside an added item (a container's
``terminationMessagePath``, a port's ``protocol: TCP``) are dropped before writing.

Never adopted: Secrets (their values must not be written anywhere), drifts whose category is
``controller`` or ``gitops`` (controller-owned fields; server defaults are not drift at all),
missing and orphan objects, JSON manifests and objects inside ``List`` documents.
"""
