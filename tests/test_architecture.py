"""The import-layer contract of ``otarena/`` (README, "Architecture"): the import graph,
built from the source's AST (imports inside functions count too), has no circle, and no
module imports from a layer above its own. A new module must be given a layer here.

``python -m tests.test_architecture`` prints the graph's numbers.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

# Bottom to top. A module may import modules of its own layer and of the layers below.
# An entry ending in "." is a package and everything in it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("otarena", "otarena.compilation", "otarena.errors", "otarena.provenance",
                    "otarena.matrix", "otarena.gaussian", "otarena.plugins")),
    ("infrastructure", ("otarena.budgets", "otarena.store", "otarena.runtime", "otarena.data",
                        "otarena.torch_io", "otarena.task")),
    ("networks", ("otarena.models", "otarena.models.", "otarena.conjugate")),
    ("problems", ("otarena.pairs", "otarena.metrics", "otarena.solver", "otarena.sinkhorn",
                  "otarena.sinkhorn.family", "otarena.sinkhorn.config")),
    ("methods", ("otarena.dual", "otarena.dual.", "otarena.image_pairs", "otarena.image_recipe",
                 "otarena.sinkhorn.metaot", "otarena.sinkhorn.artifacts",
                 "otarena.sinkhorn.initializers", "otarena.sinkhorn.solve",
                 "otarena.sinkhorn.timing")),
    ("tasks", ("otarena.map_task", "otarena.sinkhorn.task", "otarena.tasks")),
    ("suites", ("otarena.suites",)),
    ("running", ("otarena.runner", "otarena.executors")),
    ("reporting", ("otarena.reporting", "otarena.reporting.", "otarena.verify")),
    ("interface", ("otarena.cli", "otarena.cli.")),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "otarena").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _resolve(name: str, known: dict) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    """module -> the otarena modules it imports (``from pkg import sub`` is the submodule)."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                found = _resolve(target, known) if target.startswith("otarena") else None
                if found and found != name:
                    edges[name].add(found)
    return edges


def layer_of(module: str) -> int | None:
    for i, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or (member.endswith(".") and module.startswith(member)):
                return i
    return None


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
            for m, targets in sorted(edges.items()) for t in sorted(targets)
            if layer_of(m) is not None and layer_of(t) is not None and layer_of(t) > layer_of(m)]


def longest_chain(edges: dict[str, set[str]]) -> int:
    """Modules on the longest import chain (the graph has no circle)."""
    depth: dict[str, int] = {}

    def of(m: str) -> int:
        if m not in depth:
            depth[m] = 1 + max((of(t) for t in edges[m]), default=0)
        return depth[m]

    return max(of(m) for m in edges)


def test_every_module_has_a_layer():
    missing = sorted(m for m in graph() if layer_of(m) is None)
    assert not missing, f"give these modules a layer in tests/test_architecture.py: {missing}"


def test_no_import_circles():
    assert circles(graph()) == []


def test_no_import_runs_up_against_the_layers():
    assert upward(graph()) == []


def test_at_most_ten_layers():
    assert len(LAYERS) <= 10


def test_no_file_over_400_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these files (at most {MAX_LINES} lines): {long}"



def _ruff() -> list[str] | None:
    beside = Path(sys.executable).with_name("ruff")  # the test environment's own
    found = str(beside) if beside.exists() else shutil.which("ruff")
    return [found] if found else None


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed (pip install -e .[test])")
def test_ruff_passes():
    done = subprocess.run([*_ruff(), "check", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


if __name__ == "__main__":
    edges = graph()
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    print(f"{len(edges)} modules, {sum(sizes.values())} lines, {len(circles(edges))} circles, "
          f"{len(upward(edges))} upward imports, {len(LAYERS)} layers, longest import chain "
          f"{longest_chain(edges)} modules, largest file {max(sizes.values())} lines "
          f"({max(sizes, key=sizes.get)})")
    for name, members in LAYERS:
        print(f"  {name:<15} {', '.join(m.removeprefix('otarena.') or 'otarena' for m in members)}")
