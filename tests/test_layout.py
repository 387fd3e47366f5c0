"""The package's layout: the import directions docs/design.md draws, checked over the source.

The library's sub-packages form layers; a module may import its own layer, the layers below it
and the top-level modules (the method and metric author's API and the shared utilities), never
a layer above. So the command line (`mubench.cli`) and the development benchmarks
(`mubench.bench`) are imported by nothing else, and there is no import circle between modules.
Imports are read with `ast`, including those inside functions and under `TYPE_CHECKING`, so a
circle cannot hide in a deferred import.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mubench"
LAYERS = ["data", "tasks", "toolkit", "metrics", "harness", "continual", "results", "orchestration", "board",
          "bench", "cli"]
TOP_LEVEL_MAY_IMPORT = {"tasks"}  # methods.py names TaskSpec in a type hint; nothing above harness


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (a name imported from a module counts as the
    module; `from pkg import submodule` counts as the submodule)."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return {name: graph[name] for name in modules}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan 1972), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(module: str) -> str | None:
    """The sub-package a module belongs to, or None for a top-level module (mubench.methods ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def test_the_graph_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "mubench"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from . import b\n")
    (package / "inner" / "b.py").write_text("def f():\n    from mubench import a\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mubench.inner.b import f\n")
    graph = import_graph(package)
    assert graph["mubench.inner"] == {"mubench.inner.b"}
    assert graph["mubench.inner.b"] == {"mubench.a"}
    assert circles(graph) == [["mubench.a", "mubench.inner.b"]]


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_every_sub_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS)


@pytest.mark.parametrize("module", sorted(import_graph()))
def test_imports_point_down_the_layers(module: str) -> None:
    own = layer(module)
    allowed = set(LAYERS[: LAYERS.index(own) + 1]) if own else TOP_LEVEL_MAY_IMPORT
    upward = sorted(target for target in import_graph()[module] if layer(target) not in allowed | {None})
    assert upward == [], f"{module} ({own or 'top level'}) imports a layer above it: {upward}"


def test_the_library_never_imports_the_command_line() -> None:
    graph = import_graph()
    offenders = sorted(m for m, targets in graph.items() if layer(m) != "cli"
                       and any(layer(t) == "cli" for t in targets))
    assert offenders == []


def test_the_library_never_imports_the_baselines_or_the_app() -> None:
    """Methods are found through the `mubench.methods` entry point group, and the Streamlit app
    sits on top of the library: `mubench` imports neither `baselines` nor `leaderboard`."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(PACKAGE.parent)}: {name}" for name in names
                          if name.split(".")[0] in {"baselines", "leaderboard"}]
    assert offenders == []
