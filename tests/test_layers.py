"""The layers, checked by reading every module's imports (lazy and TYPE_CHECKING ones too).

    cli        divert/cli.py, chargers/*/cli.py      may import anything
    daemon     divert/daemon/                         not the simulator, not numpy
    config     divert/config.py                       core, netconf, drivers
    drivers    chargers/ (but cli.py)                 core types, netconf
    sim        divert/sim/                            core, policies (numpy allowed)
    policies   divert/policies/                       core, standard library only
    core       divert/core/                           standard library only
    netconf    divert/netconf.py                      a leaf: no other layer
    textfile   divert/textfile.py                     a leaf: reading files users name

Nothing imports the daemon or the CLI but the CLI, and no module imports itself back
through any chain of imports.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# layer -> the project layers it may import (itself always allowed)
ALLOWED = {
    "root": set(),
    "netconf": set(),
    "textfile": set(),
    "core": set(),
    "policies": {"core", "textfile"},
    "sim": {"core", "policies", "textfile"},
    "drivers": {"core", "netconf"},
    "config": {"core", "netconf", "drivers", "textfile"},
    "daemon": {"core", "policies", "netconf", "drivers", "config", "root", "textfile"},
    "cli": {"core", "policies", "sim", "netconf", "drivers", "config", "daemon", "root",
            "textfile"},
}
STDLIB_ONLY = {"core", "policies", "textfile"}
FORBIDDEN_THIRD_PARTY = {"daemon": {"numpy", "matplotlib"}}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module == "divert":
        return "root"
    if parts[0] == "chargers":
        return "cli" if parts[-1] == "cli" else "drivers"
    return {"core": "core", "policies": "policies", "sim": "sim", "daemon": "daemon",
            "cli": "cli", "config": "config", "netconf": "netconf",
            "textfile": "textfile"}[parts[1]]


def modules(root: Path) -> dict[str, Path]:
    """Every module of divert/ and chargers/ under `root`, by dotted name."""
    found = {}
    for package in ("divert", "chargers"):
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, module: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import in the file, wherever it stands. Project
    imports resolve to the module imported (`from divert.sim import plot` → divert.sim.plot)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def violations(root: Path) -> list[str]:
    mods = modules(root)
    known = set(mods)
    problems = []
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        layer = layer_of(module)
        for name, line in imports(path, module, known):
            where = f"{path.relative_to(root)}:{line}"
            top = name.split(".")[0]
            if top in ("divert", "chargers"):
                target = name if name in known else max(
                    (m for m in known if name.startswith(m + ".")), key=len, default=name)
                graph[module].add(target)
                other = layer_of(target)
                if other != layer and other not in ALLOWED[layer]:
                    problems.append(f"{where}: {layer} module {module} imports {other} "
                                    f"module {target}")
            elif layer in STDLIB_ONLY and top not in sys.stdlib_module_names:
                problems.append(f"{where}: {layer} module {module} imports {top} "
                                "(standard library only)")
            elif top in FORBIDDEN_THIRD_PARTY.get(layer, set()):
                problems.append(f"{where}: {layer} module {module} imports {top}")
    problems.extend(f"import cycle: {' -> '.join(c)}" for c in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                ring = sorted(component)
                found.append([*ring, ring[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_tree_keeps_its_layers() -> None:
    assert violations(REPO) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


BASE = {"divert/__init__.py": "", "divert/core/__init__.py": "",
        "divert/core/guard.py": "import math\n", "divert/daemon/__init__.py": "",
        "divert/daemon/service.py": "from divert.core import guard\n",
        "chargers/__init__.py": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("import numpy\n", "core module divert.core.guard imports numpy"),
    ("def f():\n    from pydantic import BaseModel\n", "imports pydantic"),
    ("from divert.daemon import service\n", "core module divert.core.guard imports daemon"),
])
def test_a_core_module_that_reaches_out_is_caught(tmp_path: Path, text: str,
                                                   expected: str) -> None:
    root = _tree(tmp_path, {**BASE, "divert/core/guard.py": text})
    assert any(expected in p for p in violations(root)), violations(root)


def test_a_lazy_import_cycle_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**BASE, "chargers/a.py": "def f():\n    import chargers.b\n",
                            "chargers/b.py": "from chargers import a\n"})
    assert violations(root) == ["import cycle: chargers.a -> chargers.b -> chargers.a"]
