"""The package's layers (docs/architecture.md): imports run downward only, siblings of one
layer stay independent, no module imports itself back through others, and each
third-party library is imported by its one home module.

Every import counts: module level, inside functions (deferred for start-up time) and under
``TYPE_CHECKING`` (a type from a higher layer couples as much as a call does).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import auditor

ROOT = Path(auditor.__file__).parent

# Highest first. A package may import only packages of lower layers; the packages of one
# layer do not import each other. Below the engine: the configuration records, the runtime
# helpers with no knowledge of Kubernetes (config files are read with them), then the error
# hierarchy and the version.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "demo"),
    ("watch", "schedule"),
    ("pipeline", "web"),
    ("adopt", "gitops", "outputs", "policies", "report", "revert"),
    ("desired", "githost", "ledger", "live", "sandbox"),
    ("engine",),
    ("config",),
    ("support",),
    ("errors", "__init__"),
)

# Third-party libraries with one home in the package (a module, or a package for click).
HOMES: dict[str, tuple[str, ...]] = {
    "kubernetes": ("auditor.live.client",),
    "git": ("auditor.desired.gitrepo",),
    "deepdiff": ("auditor.engine.deltas",),
    "ruamel": ("auditor.adopt.yamledit",),
    "slack_sdk": ("auditor.outputs.slack",),
    "sqlite_utils": ("auditor.ledger.schema",),
    # The fleet store's driver: one module, imported only for a postgresql:// ledger.
    "psycopg": ("auditor.ledger.pgconn",),
    "celpy": ("auditor.policies.engine", "auditor.policies.celext"),
    "cel": ("auditor.policies.engine", "auditor.policies.celext"),
    "click": ("auditor.cli",),
    # Untrusted YAML is loaded, bounded, in one place. Besides it: the sandbox (a test API
    # server sharing no code with the tool) and adopt's read-back of what ruamel wrote, as
    # YAML 1.1 (yamledit, the home of YAML editing).
    "yaml": ("auditor.support.yamlsafe", "auditor.sandbox", "auditor.adopt.yamledit"),
    # rapidyaml: the fast path for manifest YAML, checked against yamlsafe's loader.
    "ryml": ("auditor.support.yamlfast",),
}

MAX_TOP_LEVEL_MODULES = 10


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["auditor", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """``(line, imported name)`` for every import in the module, wherever it is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                yield node.lineno, full if full in MODULES else module


def _own(target: str) -> str | None:
    """The module of this package that ``target`` names (a module, or a name in one)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, dict[str, int]]:
    """module → {imported module of this package: line}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges: dict[str, int] = {}
        for line, target in _imports(name, path):
            own = _own(target) if target.startswith("auditor") else None
            if own and own != name:
                edges.setdefault(own, line)
        graph[name] = edges
    return graph


GRAPH = _graph()


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer_of() -> dict[str, int]:
    return {c: n for n, layer in enumerate(LAYERS) for c in layer}


def test_every_package_and_top_level_module_has_a_layer() -> None:
    layers = _layer_of()
    unplaced = sorted({_component(m) for m in MODULES} - set(layers))
    assert not unplaced, f"place these in LAYERS and docs/architecture.md: {unplaced}"


def test_imports_run_downward_only() -> None:
    layers = _layer_of()
    wrong = []
    for module, edges in GRAPH.items():
        here = _component(module)
        for target, line in edges.items():
            there = _component(target)
            if here != there and layers[there] <= layers[here]:
                why = "a sibling of the same layer" if layers[there] == layers[here] else "upward"
                wrong.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports "
                             f"{target} ({why})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_top_of_the_package_holds_entry_points_only() -> None:
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("library", sorted(HOMES))
def test_a_library_has_one_home(library: str) -> None:
    homes = HOMES[library]
    users = sorted(module for module, path in MODULES.items()
                   if any(target == library or target.startswith(library + ".")
                          for _line, target in _imports(module, path)))
    strays = [u for u in users if not any(u == h or u.startswith(h + ".") for h in homes)]
    assert not strays, f"{library} is imported outside {homes}: {strays}"


def test_every_module_says_what_it_owns() -> None:
    silent = [str(path.relative_to(ROOT.parent)) for path in MODULES.values()
              if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))]
    assert not silent, f"modules without a docstring: {silent}"


def test_the_checks_see_a_real_upward_import(tmp_path: Path) -> None:
    # The graph is built from the source: an engine module importing the ledger shows up.
    edges = {t for _line, t in _imports("auditor.engine.x", _write(
        tmp_path / "x.py", "from auditor.ledger import store\n"
                           "def f():\n    from auditor.pipeline import audit\n"))}
    assert {_own(t) for t in edges} == {"auditor.ledger.store", "auditor.pipeline"}
    layers = _layer_of()
    assert layers["ledger"] < layers["engine"] and layers["pipeline"] < layers["engine"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
