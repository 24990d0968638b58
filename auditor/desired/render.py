"""Rendering manifests into Kubernetes objects: plain YAML/JSON, kustomize and ``helm template``.

This module owns everything between files on disk and object dicts: YAML/JSON parsing with
error positions, ``List`` flattening, the checks that make a document an object, finding and
running the external renderers, and mapping every rendered object back to the file it came
from (for attribution). It knows nothing about Git; paths are relative to a ``root`` folder.

Errors are :class:`~auditor.errors.ManifestError` naming the file, the 1-based document index
and the line. They are collected per file so one bad file never hides the others. Messages
never quote document content, so a Secret's values cannot leak through them. Input is read
within the bounds of :mod:`auditor.support.yamlsafe` (file and document size, nesting, what
YAML aliases expand to) and a renderer's output within MAX_TOOL_OUTPUT_BYTES: past one, the
file is such an error, naming the limit.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any, Literal, NamedTuple

import orjson

from auditor.config import KustomizeSource
from auditor.desired.parsecache import ParseCache
from auditor.errors import ManifestError, ToolMissingError
from auditor.support import packed, parallel, yamlfast, yamlsafe

RenderMode = Literal["auto", "plain", "kustomize", "helm"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
TOOL_TIMEOUT_SECONDS = 300.0
# One kustomize build or helm template: the largest charts render to a few MiB.
MAX_TOOL_OUTPUT_BYTES = 128 * yamlsafe.MiB
_WRAP_DEPTH = 24

# YAML as Kubernetes reads it (timestamps and ``=`` stay strings), on the C parser, within
# the bounds of :mod:`auditor.support.yamlsafe`.
_MANIFEST = yamlsafe.MANIFEST

# Manifest documents load through yamlfast first (rapidyaml's C++ parser, orjson's objects),
# and with the loader above whenever it cannot vouch for building exactly the same: anchors,
# tags, YAML 1.1 scalars, errors (see auditor/support/yamlfast.py). bench/synth.py's
# objects(10000) as 500 files (5 MiB), one process, best of interleaved rounds: load_file
# 1.50 s → 0.50 s (×3.0), the document loads alone 1.05 s → 0.30 s (×3.5; PyYAML was over
# half of a 2.4 s ``diff``; the CronJobs, 10 %, fall back). False: PyYAML alone (tests).
FAST_YAML = True

# A document marker is ``---`` at column 0 followed by whitespace or the end of the line;
# YAML forbids it inside any scalar, so splitting on it is exact.
_DOC_MARKER = re.compile(r"^---(?=[ \t\r]|$)", re.MULTILINE)
_HELM_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.MULTILINE)


class RenderedObject(NamedTuple):
    """One object with the file it came from (relative to the render root, POSIX form).

    ``related`` lists other files whose change can change this object (an overlay's patches,
    a chart's values), so attribution can pick the newest commit among all of them.

    The object is kept packed (:mod:`auditor.support.packed`), with the four fields that name it at
    hand: a render of 100,000 objects holds bytes, not dicts. ``obj`` decodes a fresh copy.
    A named tuple: a steady run makes one per object from the parse cache, cheaply.
    """

    raw: bytes
    file: str
    document: int = 0
    related: tuple[str, ...] = ()
    api_version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""

    @classmethod
    def of(cls, obj: dict[str, Any], file: str, document: int = 0,
           related: tuple[str, ...] = ()) -> RenderedObject:
        """Pack a checked object (see :func:`_check_object`)."""
        meta = obj["metadata"]
        # apiVersion, kind and namespace repeat across thousands of objects: share them.
        return cls(packed.pack(obj), file, document, related, intern(obj["apiVersion"]),
                   intern(obj["kind"]), meta["name"], intern(meta.get("namespace") or ""))

    @property
    def obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = packed.unpack(self.raw)
        return obj


@dataclass(frozen=True, slots=True)
class RenderResult:
    """The objects of one render, and the per-file errors met on the way."""

    objects: tuple[RenderedObject, ...] = ()
    errors: tuple[ManifestError, ...] = ()


@dataclass(slots=True)
class _Collector:
    objects: list[RenderedObject] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)

    def add(self, result: RenderResult) -> None:
        self.objects.extend(result.objects)
        self.errors.extend(result.errors)

    def result(self) -> RenderResult:
        return RenderResult(tuple(self.objects), tuple(self.errors))


# --------------------------------------------------------------------------- parsing


def _error(file: str, document: int | None, line: int | None, what: str) -> ManifestError:
    where = file
    if document:
        where += f": document {document}"
    if line:
        where += f", line {line}" if document else f": line {line}"
    return ManifestError(f"{where}: {what}", file=file, document=document, line=line)


def _split_documents(text: str) -> Iterator[tuple[int, int, str]]:
    """``(document index, first line, text)`` for each YAML document, 1-based.

    Text before the first ``---`` is a document only when it holds more than comments and
    directives; directives are carried into the document they introduce.
    """
    starts = [m.start() for m in _DOC_MARKER.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(text))
    index = 0
    carry = ""
    line, counted = 1, 0  # lines are counted on from the last document, not from the top
    for begin, end in itertools.pairwise(starts):
        chunk = text[begin:end]
        if begin == 0 and not chunk.startswith("---"):
            content = [ln for ln in chunk.splitlines()
                       if ln.strip() and not ln.lstrip().startswith("#")]
            if not content:
                continue
            if all(ln.startswith("%") for ln in content) and end < len(text):
                carry = chunk
                continue
        index += 1
        line += text.count("\n", counted, begin)
        counted = begin
        first = line
        if carry:
            first -= carry.count("\n")
            chunk, carry = carry + chunk, ""
        yield index, first, chunk


def _yaml_problem(exc: yamlsafe.YAMLError, first_line: int = 1) -> tuple[int | None, str]:
    """``(line, message)`` of a YAML error, lines counted from ``first_line``.

    Only the problem and context phrases: the snippet PyYAML can append quotes the source.
    A document past a bound of the loader is valid YAML: its message names the limit.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if isinstance(exc, yamlsafe.LimitError):
        return (first_line + mark.line if mark is not None else None), str(exc)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        context = f"{context} (line {first_line + context_mark.line})"
    text = f"{context}: {problem}" if context else str(problem)
    return (first_line + mark.line if mark is not None else None), f"invalid YAML ({text})"


def _describe(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind")
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    label = str(kind) if isinstance(kind, str) and kind else "object"
    return f"{label} {name!r}" if isinstance(name, str) and name else label


def _check_object(obj: Any) -> str | None:
    """Why ``obj`` is not a Kubernetes object, or None when it is one."""
    if not isinstance(obj, dict):
        return f"expected a Kubernetes object (a mapping), got {type(obj).__name__}"
    missing = [f for f in ("apiVersion", "kind") if not isinstance(obj.get(f), str) or not obj[f]]
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        missing.append("metadata.name")
    elif meta.get("namespace") is not None and not isinstance(meta["namespace"], str):
        return f"{_describe(obj)}: metadata.namespace must be a string"
    if missing:
        return f"{_describe(obj)} has no {' and no '.join(missing)}"
    return None


def _flatten(doc: Any, file: str, index: int, line: int | Callable[[], int] | None,
             out: list[RenderedObject], errors: list[ManifestError]) -> None:
    """Check and pack the object(s) of one document. ``line`` (where its content starts,
    for errors) may be a function: then it is worked out only for a document in error."""
    if doc is None:
        return

    def error(what: str) -> ManifestError:
        return _error(file, index, line() if callable(line) else line, what)

    kind = doc.get("kind") if isinstance(doc, dict) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for n, item in enumerate(doc["items"], 1):
            why = _check_object(item)
            if why is not None:
                errors.append(error(f"{kind} item {n}: {why}"))
            elif isinstance(item, dict):
                out.append(RenderedObject.of(item, file, index))
        return
    why = _check_object(doc)
    if why is not None:
        errors.append(error(why))
    else:
        out.append(RenderedObject.of(doc, file, index))


def parse_manifests(text: str, file: str,
                    documents: Container[int] | None = None) -> RenderResult:
    """Objects in a YAML or JSON text; ``file`` names it in errors and in the objects.

    Multi-document YAML, ``List`` kinds flattened, empty documents skipped. A bad document
    becomes an error and the other documents of the file are still returned. ``documents``
    (1-based indexes) parses only those.
    """
    objects: list[RenderedObject] = []
    errors: list[ManifestError] = []
    if file.endswith(".json"):
        try:
            doc = orjson.loads(text)
            yamlsafe.check_depth(doc)
        except orjson.JSONDecodeError as exc:
            errors.append(_error(file, 1, exc.lineno, f"invalid JSON ({exc.msg})"))
        except yamlsafe.LimitError as exc:
            errors.append(_error(file, 1, None, str(exc)))
        else:
            _flatten(doc, file, 1, 1, objects, errors)
        return RenderResult(tuple(objects), tuple(errors))
    budget = yamlsafe.Budget()  # what aliases may add, for the whole file
    with yamlfast.quiet() if FAST_YAML else contextlib.nullcontext():
        for index, first_line, chunk in _split_documents(text):
            if documents is not None and index not in documents:
                continue
            try:
                doc = _load_document(chunk, budget)
            except yamlsafe.YAMLError as exc:
                line, what = _yaml_problem(exc, first_line)
                errors.append(_error(file, index, line or first_line, what))
                continue
            _flatten(doc, file, index, functools.partial(_content_line, chunk, first_line),
                     objects, errors)
    return RenderResult(tuple(objects), tuple(errors))


def _load_document(chunk: str, budget: yamlsafe.Budget) -> Any:
    if FAST_YAML:
        with contextlib.suppress(yamlfast.Fallback):
            return yamlfast.load(chunk)
    return yamlsafe.load(chunk, _MANIFEST, budget=budget)


def _content_line(chunk: str, first_line: int) -> int:
    """The line where a document's content starts (past its marker and comments)."""
    start = 0
    for offset in range(20):  # scanned line by line: documents can be megabytes long
        end = chunk.find("\n", start)
        stripped = chunk[start:end if end >= 0 else len(chunk)].strip()
        if stripped and stripped != "---" and not stripped.startswith(("#", "%")):
            return first_line + offset
        if end < 0:
            break
        start = end + 1
    return first_line


def _document_of(item: RenderedObject) -> int:
    return item.document


def load_file(root: Path, rel: str, cache: ParseCache | None = None, *,
              documents: Container[int] | None = None) -> RenderResult:
    """Parse one plain manifest file ``root/rel`` (through ``cache`` when given), or only
    some of its ``documents`` (1-based indexes, as :attr:`RenderedObject.document`), afresh."""
    if documents is not None:
        cache = None
    path = root / rel
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        # A repository must not make the auditor read its own files (tokens, keys).
        return RenderResult(errors=(_error(rel, None, None,
                                           "symlink to a file outside the repository"),))
    try:
        data = yamlsafe.read_limited(path)
    except yamlsafe.LimitError as exc:
        return RenderResult(errors=(_error(rel, None, None, str(exc)),))
    except OSError as exc:
        return RenderResult(errors=(_error(rel, None, None, f"cannot read ({exc.strerror})"),))
    hit = cache.lookup(data) if cache is not None else None
    if hit is not None and not hit[1]:
        return RenderResult(tuple(
            RenderedObject(raw, rel, index, (), api_version, kind, name, namespace)
            for index, (api_version, kind, name, namespace), raw in hit[0]))
    try:
        text = data.decode("utf-8-sig")  # editors on Windows add a BOM
    except UnicodeDecodeError:
        return RenderResult(errors=(_error(rel, None, None, "not UTF-8 text"),))
    if hit is not None:
        # The documents the cache withholds (they declare a Secret), parsed again; merged
        # in document order with the stored ones.
        entries, withheld = hit
        again = parse_manifests(text, rel, withheld)
        if not again.errors:
            stored = [RenderedObject(raw, rel, index, (), api_version, kind, name, namespace)
                      for index, (api_version, kind, name, namespace), raw in entries]
            return RenderResult(tuple(sorted([*stored, *again.objects],
                                             key=_document_of)))
    result = parse_manifests(text, rel, documents)
    if cache is not None and not result.errors:
        cache.store(data, [(o.document, (o.api_version, o.kind, o.name, o.namespace), o.raw)
                           for o in result.objects])
    return result


# --------------------------------------------------------------------------- discovery


def kustomization_file(folder: Path) -> Path | None:
    """The kustomization file of ``folder``, if it has one."""
    for name in KUSTOMIZATION_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def is_chart(folder: Path) -> bool:
    return (folder / "Chart.yaml").is_file()


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


def _kustomize_references(kfile: Path) -> set[Path]:
    """Folders a kustomization pulls in, so they are not also rendered on their own."""
    try:
        data = yamlsafe.load(yamlsafe.read_text(kfile), _MANIFEST)
    except (OSError, UnicodeDecodeError, yamlsafe.YAMLError):
        return set()
    if not isinstance(data, dict):
        return set()
    refs: set[Path] = set()
    for key in ("resources", "bases", "components"):
        entries = data.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, str) and "://" not in entry:
                target = (kfile.parent / entry).resolve()
                if target.is_dir():
                    refs.add(target)
    return refs


@dataclass(frozen=True, slots=True)
class Plan:
    """What a path renders as: plain files, kustomization folders and chart folders."""

    files: tuple[str, ...] = ()
    kustomizations: tuple[str, ...] = ()
    charts: tuple[str, ...] = ()


def plan(root: Path, rel: str = ".", mode: RenderMode = "auto", recurse: bool = True) -> Plan:
    """Decide how to render ``root/rel`` (a file or a folder), sorted for determinism.

    ``auto`` looks at each folder: a kustomization file makes it one kustomize build, a
    ``Chart.yaml`` one Helm chart, otherwise its ``*.yaml|*.yml|*.json`` files are plain
    manifests and its subfolders are searched the same way (not with ``recurse`` false, as
    Argo CD reads a directory). Hidden folders are skipped, and so are kustomizations that
    another kustomization found here already includes.
    """
    start = (root / rel).resolve() if rel not in ("", ".") else root.resolve()
    root = root.resolve()
    if not start.exists():
        raise ManifestError(f"{rel}: no such file or folder", file=rel)
    if start.is_file():
        return Plan(files=(_rel(root, start),))
    if mode == "kustomize":
        return Plan(kustomizations=(_rel(root, start),))
    if mode == "helm":
        return Plan(charts=(_rel(root, start),))
    files: list[str] = []
    kustomizations: dict[Path, Path] = {}
    charts: list[str] = []
    for folder, dirnames, filenames in os.walk(start):
        here = Path(folder)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recurse else []
        if mode == "auto":
            kfile = kustomization_file(here)
            if kfile is not None:
                kustomizations[here] = kfile
                dirnames[:] = []
                continue
            if is_chart(here):
                charts.append(_rel(root, here))
                dirnames[:] = []
                continue
        # One relative path per folder, not per file: pathlib costs ~10 µs a call.
        base = _rel(root, here)
        prefix = "" if base == "." else base + "/"
        files.extend(prefix + f for f in filenames
                     if f.endswith(MANIFEST_SUFFIXES) and not f.startswith("."))
    included: set[Path] = set()
    for kfile in kustomizations.values():
        included |= _kustomize_references(kfile)
    kust = [_rel(root, d) for d in kustomizations if d not in included]
    return Plan(tuple(sorted(files)), tuple(sorted(kust)), tuple(sorted(charts)))


# Files parsed in forked workers from this many on (support.parallel): below, a fork and
# the pickled results cost more than they save.
PARALLEL_FILES = 64


def load_plain(root: Path, files: Iterable[str], cache: ParseCache | None = None) -> RenderResult:
    """Parse plain manifest files (paths relative to ``root``), split over the cores when
    there are many; the result is the same either way, in file order."""
    files = list(files)
    chunks = parallel.split(files, parallel.workers() if len(files) >= PARALLEL_FILES else 1)

    def part(index: int) -> RenderResult:
        out = _Collector()
        for rel in chunks[index]:
            out.add(load_file(root, rel, cache))
        return out.result()

    out = _Collector()
    for result in parallel.fork_map(part, len(chunks)):
        out.add(result)
    return out.result()


# --------------------------------------------------------------------------- tools


def find_tool(name: str, tools_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The path of executable ``name``: first in ``tools_dir``, then on ``PATH``."""
    if tools_dir:
        candidate = Path(tools_dir) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def _run(argv: Sequence[str], what: str, file: str, cwd: Path | None = None) -> str:
    """What ``argv`` writes to stdout, as ``subprocess.run(text=True)`` decodes it; a
    :class:`ManifestError` when it cannot start, fails, runs past TOOL_TIMEOUT_SECONDS or
    writes more than MAX_TOOL_OUTPUT_BYTES (a template loop must not fill the memory)."""
    try:
        with tempfile.TemporaryFile() as err:
            with subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err,
                                  cwd=cwd) as proc:
                out, why = _bounded_output(proc)
            # The renderers' own error lines name the file and field; the tail is enough.
            err.seek(max(0, err.seek(0, os.SEEK_END) - 16384))
            stderr = err.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ManifestError(f"{file}: cannot run {argv[0]} ({exc.strerror})", file=file) from None
    if why == "timeout":
        raise ManifestError(f"{file}: {what} timed out after {TOOL_TIMEOUT_SECONDS:.0f} s",
                            file=file)
    if why == "large":
        raise ManifestError(f"{file}: {what} wrote more than "
                            f"{MAX_TOOL_OUTPUT_BYTES // yamlsafe.MiB} MiB, the limit for one "
                            "render", file=file)
    if proc.returncode != 0:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        detail = " | ".join(lines[-5:]) or f"exit status {proc.returncode}"
        raise ManifestError(f"{file}: {what} failed: {detail}", file=file)
    return io.TextIOWrapper(io.BytesIO(out)).read()  # the locale's encoding, newlines as \n


def _bounded_output(proc: subprocess.Popen[bytes]) -> tuple[bytes, str]:
    """``proc``'s stdout up to MAX_TOOL_OUTPUT_BYTES, and why it stopped early, if it did:
    ``timeout`` or ``large`` (the process is killed then)."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(TOOL_TIMEOUT_SECONDS, expire)
    timer.daemon = True
    timer.start()
    chunks: list[bytes] = []
    total = 0
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 16):
            total += len(chunk)
            if total > MAX_TOOL_OUTPUT_BYTES:
                proc.kill()
                proc.wait()
                return b"", "large"
            chunks.append(chunk)
        proc.wait()
    finally:
        timer.cancel()
    return b"".join(chunks), "timeout" if expired.is_set() else ""


def _split_rendered(stdout: str, what: str, file: str) -> list[tuple[int, dict[str, Any], str]]:
    """Objects of a rendered stream with their document index and the text of their document."""
    out: list[tuple[int, dict[str, Any], str]] = []
    budget = yamlsafe.Budget()
    for index, _line, chunk in _split_documents(stdout):
        try:
            doc = yamlsafe.load(chunk, _MANIFEST, budget=budget)
        except yamlsafe.YAMLError as exc:
            _rel_line, problem = _yaml_problem(exc)
            raise ManifestError(f"{file}: {what} output document {index}: {problem}",
                                file=file, document=index) from None
        docs = doc["items"] if isinstance(doc, dict) and str(doc.get("kind", "")).endswith(
            "List") and isinstance(doc.get("items"), list) else [doc]
        for item in docs:
            if item is None:
                continue
            why = _check_object(item)
            if why is not None:
                raise ManifestError(f"{file}: {what} output document {index}: {why}",
                                    file=file, document=index)
            out.append((index, item, chunk))
    return out


def _folder_files(root: Path, folder: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(_rel(root, p) for p in folder.iterdir()
                            if p.is_file() and not p.name.startswith(".")))
    except OSError:
        return ()


# --------------------------------------------------------------------------- kustomize


def _kustomize_argv(tools_dir: str | os.PathLike[str] | None, target: str,
                    *flags: str) -> list[str]:
    kustomize = find_tool("kustomize", tools_dir)
    if kustomize:
        return [kustomize, "build", target, *flags]
    kubectl = find_tool("kubectl", tools_dir)
    if kubectl:
        return [kubectl, "kustomize", target, *flags]
    raise ToolMissingError(
        "rendering a kustomization needs the `kustomize` binary or `kubectl` (which embeds "
        "it) on PATH or in $DRIFT_AUDITOR_TOOLS; install kustomize "
        "(https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl")


def _image_override(spec: str) -> dict[str, str]:
    """A ``kustomize edit set image`` argument as a kustomization ``images`` entry:
    ``name=newName:newTag``, ``name=newName@digest``, ``name:newTag``, ``name@digest``."""
    name, eq, rest = spec.partition("=")
    out: dict[str, str] = {}
    target = rest if eq else spec
    if "@" in target:
        target, _, digest = target.partition("@")
        out["digest"] = digest
    elif ":" in target.rpartition("/")[2]:
        target, _, tag = target.rpartition(":")
        out["newTag"] = tag
    if eq:
        out["name"] = name
        if target:
            out["newName"] = target
    else:
        out["name"] = target
    return out


def overlay(resources: Sequence[str], overrides: KustomizeSource | None) -> dict[str, Any]:
    """The wrapper kustomization around ``resources``: origin annotations on, and the
    settings an Argo CD Application or a Flux Kustomization applies on top of the path."""
    out: dict[str, Any] = {"resources": list(resources),
                           "buildMetadata": ["originAnnotations"]}
    if not overrides:
        return out
    if overrides.images:
        out["images"] = [_image_override(i) for i in overrides.images]
    if overrides.name_prefix:
        out["namePrefix"] = overrides.name_prefix
    if overrides.name_suffix:
        out["nameSuffix"] = overrides.name_suffix
    if overrides.namespace:
        out["namespace"] = overrides.namespace
    if overrides.labels:
        out["commonLabels"] = dict(i.split("=", 1) for i in overrides.labels)
    if overrides.annotations:
        out["commonAnnotations"] = dict(i.split("=", 1) for i in overrides.annotations)
    if overrides.patches:
        out["patches"] = [orjson.loads(p) for p in overrides.patches]
    return out


def render_kustomize(root: Path, rel: str,
                     tools_dir: str | os.PathLike[str] | None = None,
                     overrides: KustomizeSource | None = None) -> RenderResult:
    """``kustomize build`` (or ``kubectl kustomize``) of the folder ``root/rel``.

    Built through a throw-away wrapper kustomization that turns on ``originAnnotations``, so
    each object names the file it came from; the annotation is removed afterwards unless
    the user's kustomization asked for it. Objects map to the kustomization file when no
    origin file is known (generators, remote bases), and list the folder's files as related.
    ``overrides`` (images, name prefix, namespace, labels, patches) are applied by the
    wrapper, as an overlay; with ``overrides.generate`` a folder without a kustomization is
    built from every manifest file under it, as Flux does.
    """
    root = root.resolve()
    folder = (root / rel).resolve()
    kfile = kustomization_file(folder)
    shown = _rel(root, kfile) if kfile else rel
    generated: tuple[str, ...] = ()
    if kfile is None:
        if not (overrides is not None and overrides.generate):
            return RenderResult(errors=(ManifestError(f"{rel}: no kustomization.yaml here",
                                                      file=rel),))
        try:
            generated = plan(root, rel, "plain").files
        except ManifestError as exc:
            return RenderResult(errors=(exc,))
        keep_origin = False
    else:
        try:
            keep_origin = "originAnnotations" in yamlsafe.read_limited(kfile).decode(
                "utf-8", errors="replace")
        except yamlsafe.LimitError as exc:
            return RenderResult(errors=(ManifestError(f"{shown}: {exc}", file=shown),))
        except OSError as exc:
            return RenderResult(errors=(ManifestError(f"{shown}: cannot read ({exc.strerror})",
                                                      file=shown),))
    related = _folder_files(root, folder)
    try:
        with tempfile.TemporaryDirectory(prefix="drift-auditor-kustomize-") as tmp:
            # The wrapper links to the target instead of sitting in the user's tree. Kustomize
            # cleans origin paths lexically (``link/../x`` → ``x``), so the link sits under
            # _WRAP_DEPTH dummy folders: ``..`` steps out of the target then stay readable.
            link = Path(tmp, *(["d"] * _WRAP_DEPTH), "target")
            link.parent.mkdir(parents=True)
            os.symlink(folder, link)
            target = link.relative_to(tmp).as_posix()
            inside = [os.path.relpath(root / f, folder) for f in generated]
            resources = [f"{target}/{f}" for f in inside] if generated else [target]
            (Path(tmp) / "kustomization.yaml").write_bytes(
                orjson.dumps(overlay(resources, overrides)))
            # A generated kustomization names the folder's files through the link: kustomize
            # resolves the link and would refuse files outside the wrapper's folder.
            flags = ("--load-restrictor", "LoadRestrictionsNone") if generated else ()
            try:
                stdout = _run(_kustomize_argv(tools_dir, tmp, *flags), "kustomize build", shown)
                wrapped: Path | None = link
            except ManifestError:
                if overrides or generated:
                    raise  # the settings live in the wrapper: no build without it
                stdout = _run(_kustomize_argv(tools_dir, str(folder)), "kustomize build", shown)
                wrapped = None
            docs = _split_rendered(stdout, "kustomize build", shown)
            objects = []
            for index, obj, _chunk in docs:
                file = _origin_file(root, folder, wrapped, obj, keep_origin) or shown
                objects.append(RenderedObject.of(obj, file, index, related))
    except ManifestError as exc:
        return RenderResult(errors=(exc,))
    return RenderResult(tuple(objects))


def _origin_file(root: Path, folder: Path, link: Path | None, obj: dict[str, Any],
                 keep: bool) -> str | None:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict) or ORIGIN_ANNOTATION not in annotations:
        return None
    raw = annotations[ORIGIN_ANNOTATION] if keep else annotations.pop(ORIGIN_ANNOTATION)
    if not keep and not annotations and isinstance(meta, dict):
        del meta["annotations"]
    try:
        origin = yamlsafe.load(str(raw), _MANIFEST)
    except yamlsafe.YAMLError:
        return None
    if not isinstance(origin, dict):
        return None
    path = origin.get("path") or origin.get("configuredIn")
    if not isinstance(path, str) or "repo" in origin:
        return None
    if link is None:
        return None
    # ``path`` is relative to the wrapper root (link's top folder): re-anchor it on ``folder``.
    wrapper = link.parents[_WRAP_DEPTH]
    from_target = os.path.relpath(os.path.normpath(wrapper / path), link)
    target = Path(os.path.normpath(folder / from_target))
    try:
        return target.relative_to(root).as_posix() if target.is_file() else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- helm


def render_helm(root: Path, rel: str, *, release: str, namespace: str,
                values: Sequence[str] = (), set_values: Sequence[str] = (),
                tools_dir: str | os.PathLike[str] | None = None,
                values_yaml: str = "") -> RenderResult:
    """``helm template RELEASE CHART -f VALUES… --set … --namespace NS`` of ``root/rel``,
    with the chart's CRDs and without its hooks.

    ``values`` are paths relative to ``root`` (else to the chart); ``values_yaml`` inline
    values applied after them. Each object maps to the template named by the ``# Source:``
    comment helm writes before it, and lists the chart's ``Chart.yaml``, ``values.yaml`` and
    the values files as related.
    """
    root = root.resolve()
    chart = (root / rel).resolve()
    shown = _rel(root, chart)
    helm = find_tool("helm", tools_dir)
    if helm is None:
        raise ToolMissingError(
            "rendering a Helm chart needs the `helm` binary (v3 or later) on PATH or in "
            "$DRIFT_AUDITOR_TOOLS; install it from https://helm.sh/docs/intro/install/")
    # As an install leaves them: CRDs from crds/ included, hooks (jobs and test pods that
    # run and go) left out, since Helm does not keep them as part of the release.
    argv = [helm, "template", release, str(chart), "--namespace", namespace, "--include-crds",
            "--no-hooks"]
    related = [p for p in (f"{shown}/Chart.yaml", f"{shown}/values.yaml")
               if (root / p).is_file()]
    for value in values:
        path = root / value if (root / value).is_file() else chart / value
        if not path.is_file():
            return RenderResult(errors=(ManifestError(
                f"{shown}: values file {value!r} not found (relative to the repository or the "
                "chart)", file=value),))
        argv += ["-f", str(path)]
        with contextlib.suppress(ValueError):
            related.append(_rel(root, path.resolve()))
    for item in set_values:
        argv += ["--set", item]
    try:
        with tempfile.TemporaryDirectory(prefix="drift-auditor-values-") as tmp:
            if values_yaml:
                inline = Path(tmp) / "values.yaml"
                inline.write_text(values_yaml, encoding="utf-8")
                argv += ["-f", str(inline)]
            stdout = _run(argv, "helm template", shown)
        docs = _split_rendered(stdout, "helm template", shown)
    except ManifestError as exc:
        return RenderResult(errors=(exc,))
    chart_name = _chart_name(chart)
    objects = []
    for index, obj, chunk in docs:
        objects.append(RenderedObject.of(
            obj, _helm_source(root, chart, chart_name, chunk) or shown, index,
            tuple(sorted(set(related)))))
    return RenderResult(tuple(objects))


def _chart_name(chart: Path) -> str:
    try:
        data = yamlsafe.load(yamlsafe.read_text(chart / "Chart.yaml"), _MANIFEST)
    except (OSError, UnicodeDecodeError, yamlsafe.YAMLError):
        return chart.name
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else chart.name


def _helm_source(root: Path, chart: Path, chart_name: str, chunk: str) -> str | None:
    match = _HELM_SOURCE.search(chunk)
    if match is None:
        return None
    # ``# Source: <chart name>/templates/x.yaml``; subcharts add ``/charts/<sub>/``.
    first, _, rest = match.group(1).partition("/")
    if first != chart_name or not rest:
        return None
    target = chart / rest
    try:
        return target.resolve().relative_to(root).as_posix() if target.is_file() else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- entry point


def render_path(root: Path, rel: str = ".", *, mode: RenderMode = "auto",
                namespace: str = "default", release: str = "",
                values: Sequence[str] = (), set_values: Sequence[str] = (),
                tools_dir: str | os.PathLike[str] | None = None,
                cache: ParseCache | None = None, recurse: bool = True,
                values_yaml: str = "",
                kustomize: KustomizeSource | None = None) -> RenderResult:
    """Render ``root/rel`` as :func:`plan` decides; errors are collected, not raised.

    With ``kustomize`` settings, a path that is a kustomization (or any folder, with
    ``kustomize.generate``) is one kustomize build with the settings applied on top.
    :class:`ToolMissingError` is raised: without the binary nothing of that kind renders,
    and the caller should say what to install once rather than once per folder.
    """
    target = root / rel
    if kustomize is not None and (kustomize or kustomize.generate) and target.is_dir() and (
            kustomize.generate or kustomization_file(target) is not None):
        return render_kustomize(root, rel, tools_dir, overrides=kustomize)
    try:
        todo = plan(root, rel, mode, recurse)
    except ManifestError as exc:
        return RenderResult(errors=(exc,))
    out = _Collector()
    # Helm values files often sit among manifests; they are inputs, not objects.
    skip = {Path(os.path.normpath(root / v)).resolve() for v in values}
    # Resolving every file costs ~50 µs each: only worth it when there is a values file.
    files = [f for f in todo.files if (root / f).resolve() not in skip] if skip else todo.files
    out.add(load_plain(root, files, cache))
    for folder in todo.kustomizations:
        out.add(render_kustomize(root, folder, tools_dir))
    for chart in todo.charts:
        name = release or Path(chart).resolve().name
        out.add(render_helm(root, chart, release=name, namespace=namespace, values=values,
                            set_values=set_values, tools_dir=tools_dir,
                            values_yaml=values_yaml))
    return out.result()
