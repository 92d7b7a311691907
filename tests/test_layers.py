"""The package's import graph: no circle, and each layer imports only the layers below it.

Three layers, read from the bottom up:

* **base** - ``checks``, ``files``, ``env``: argument checks, atomic files, where the course runs;
* **lessons** - what the notebooks build: ``networks``, ``data``, the losses, the weight map,
  metrics, instances, prediction, training... (every module outside the other two layers);
* **course** - ``unet_lesson.course``: the run folder, the command line (and
  ``python -m unet_lesson``), comparisons, downloads, ``torchrun``, the notebooks' setup cell.

Every ``import`` counts, at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "unet_lesson"
BASE = {"unet_lesson.checks", "unet_lesson.files", "unet_lesson.env"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The package's modules an ``import from`` statement names (relative or absolute)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    names = [f"{target}.{alias.name}" for alias in node.names]
    return [target] + names  # "from .x import y": x, and x.y where y is a module


def import_graph() -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (only modules that exist)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets.update(_resolve(module, is_package, node))
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[module] = {t for t in targets if t in paths and t != module}
    return graph


def layer(module: str) -> int:
    if module in BASE:
        return 0
    if module.startswith(("unet_lesson.course.", "unet_lesson.__main__")) \
            or module == "unet_lesson.course":
        return 2  # python -m unet_lesson is the command line
    return 1


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, or None (a depth-first search; package ``__init__`` modules
    that only re-export their own submodules are part of the graph like any other)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _without_parent_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop the arrows from a module to the packages that contain it: Python imports
    ``unet_lesson/__init__.py`` before any of its submodules anyway, and a package's
    ``__init__`` that re-exports its submodules is not a circle of ideas."""
    return {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"unet_lesson.networks.unet", "unet_lesson.train", "unet_lesson.course.run",
            "unet_lesson.env"} <= set(graph)
    assert "unet_lesson.networks.blocks" in graph["unet_lesson.networks.unet"]
    assert "unet_lesson.train" in graph["unet_lesson.course.run"]


def test_no_circle_of_imports():
    cycle = _cycle(_without_parent_packages(import_graph()))
    assert cycle is None, "a circle of imports: " + " -> ".join(cycle)


def test_each_layer_imports_only_the_layers_below():
    upward = sorted(f"{m} ({layer(m)}) -> {t} ({layer(t)})"
                    for m, targets in import_graph().items() for t in targets
                    if layer(t) > layer(m) and t != "unet_lesson")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_a_circle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
