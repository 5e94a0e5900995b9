"""The package's modules import each other without a cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import ipm_outcomes

PACKAGE = Path(ipm_outcomes.__file__).parent


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its text (top level, functions, TYPE_CHECKING)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = (package.name, *path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                # `from . import bootstrap` imports the submodule, not the package's __init__
                submodules = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
                imported |= submodules or {base}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_known_cycle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_import_graph_sees_lazy_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("def f():\n    from .two import g\n")
    (package / "two.py").write_text("from . import one\n")
    (package / "sub" / "__init__.py").write_text("from .three import h\n")
    (package / "sub" / "three.py").write_text("from .. import one\nfrom . import four\n")
    (package / "sub" / "four.py").write_text("import pkg.two\n")
    graph = import_graph(package)
    assert graph == {
        "pkg": set(),
        "pkg.one": {"pkg.two"},
        "pkg.two": {"pkg.one"},
        "pkg.sub": {"pkg.sub.three"},
        "pkg.sub.three": {"pkg.one", "pkg.sub.four"},
        "pkg.sub.four": {"pkg.two"},
    }
    assert cycles(graph) == [["pkg.one", "pkg.two"]]


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    graph = import_graph(PACKAGE)
    assert "ipm_outcomes.marts" in graph["ipm_outcomes.spec"]  # the graph is read, not empty
    assert cycles(graph) == []
