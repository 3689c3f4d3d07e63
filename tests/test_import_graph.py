"""The package's modules import one way: no circle among augkd's modules, counting the imports
inside functions too (a lazy import that dodges a circle at import time is still one).

There is none: any circle fails here with the modules that form it. (The last one,
``Augmentation.__str__`` asking the DA factory for its spec, became a writer that
augkd.augment.spec sets in augkd.augment.base when it loads.)
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "augkd"

KNOWN: set[frozenset[str]] = set()  # none left


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the augkd modules it imports anywhere in its file (a parent package it lives
    in is not an edge: importing a module always imports its packages first)."""
    modules = module_names()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_but_the_known_one():
    new = [sorted(c) for c in circles(import_graph()) if c not in KNOWN]
    assert not new, f"import circles: {new}"


def test_the_finder_sees_a_lazy_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        frozenset({"a", "b", "c"})]
    graph = import_graph()
    assert "augkd.augment.base" in graph["augkd.augment.spec"]
    assert "augkd.training" not in graph["augkd.training.trainer"]  # its own package: no edge


#: The command-line modules: thin layers over the library, which never imports them back
#: (a package's ``__init__`` may re-export its own command line's entry points).
CLIS = {"augkd.rank", "augkd.train", "augkd.sweep.cli", "augkd.tune.cli", "augkd.report.cli"}


def test_the_library_imports_no_command_line():
    graph = import_graph()
    facades = {cli.rpartition(".")[0] for cli in CLIS}  # augkd.sweep re-exports sweep.cli
    library = [m for m in module_names() if m not in CLIS | facades
               and not m.endswith("__main__")]
    wrong = {m: sorted(graph[m] & CLIS) for m in library if graph[m] & CLIS}
    assert not wrong, f"library modules importing a command line: {wrong}"
    assert "augkd.ranking.measure" in graph["augkd.sweep.runner"]  # the sweep's unit
