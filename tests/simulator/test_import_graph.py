"""The modules of ``simulator/`` import each other without a cycle, function-level imports
included (a cycle hidden in a function body is still two modules that need each other)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "sparse_accel_sim"  # the installed name of the repository's simulator/ folder
ROOT = Path(__file__).resolve().parents[2] / "simulator"


def imported_modules(source: str, modules: set[str]) -> set[str]:
    """The modules of the package that ``source`` imports anywhere (top level or in a body).

    ``from .x import y`` / ``from sparse_accel_sim.x import y`` / ``import sparse_accel_sim.x``
    import ``x``;
    ``from . import y`` imports module ``y`` if there is one, else the package's
    ``__init__``, as ``import sparse_accel_sim`` does.
    """
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level > 1:
                continue  # above the package
            if node.level == 1:
                parts = node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                out.add(parts[0] if parts[0] in modules else "__init__")
            else:
                out.update(a.name if a.name in modules else "__init__" for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    out.add(parts[1] if len(parts) > 1 and parts[1] in modules else "__init__")
    return out


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module name -> the package modules it imports (itself left out)."""
    modules = set(sources)
    return {name: imported_modules(src, modules) - {name} for name, src in sources.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def package_sources() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(ROOT.glob("*.py"))}


def test_simulator_import_graph_is_acyclic():
    graph = import_graph(package_sources())
    assert {"engine", "prepared", "mask_choice", "gemm_engine"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in simulator/: " + " -> ".join(cycle)


def test_engine_and_prepared_share_the_mask_rule_without_importing_each_other():
    graph = import_graph(package_sources())
    assert "prepared" in graph["engine"] and "engine" not in graph["prepared"]
    assert {"mask_choice", "gemm_engine"} <= graph["engine"] & graph["prepared"]


def test_finds_a_cycle_through_a_function_level_import():
    # the shape of the cycle issue 21 removed: engine imports prepared inside a function,
    # prepared imports engine inside a method
    sources = {
        "engine": "from .arch import Arch\n"
                  "def simulate_layers():\n    from .prepared import PreparedWorkload\n",
        "prepared": "class PreparedWorkload:\n    def simulate(self):\n"
                    "        from .engine import simulate_gemm\n",
        "arch": "import math\n",
    }
    assert find_cycle(import_graph(sources)) == ["engine", "prepared", "engine"]
    sources["prepared"] = "import numpy\n"
    assert find_cycle(import_graph(sources)) is None
    # the package itself counts: a module importing `sparse_accel_sim` imports every module
    sources["__init__"] = "from .engine import simulate_layers\n"
    sources["arch"] = "def f():\n    import sparse_accel_sim\n"
    assert find_cycle(import_graph(sources)) == ["__init__", "engine", "arch", "__init__"]
    sources["arch"] = "from sparse_accel_sim import engine\n"
    assert find_cycle(import_graph(sources)) == ["engine", "arch", "engine"]
