"""The import graph of src/hlplay has no cycles between packages (docs/architecture.md).

Every module is parsed with :mod:`ast` and every ``import`` / ``from … import``
in it counts: at module level, inside functions (a lazy import is still a
dependency, it only runs later) and under ``if TYPE_CHECKING:``. Type-only
imports count too, by choice: a module that needs another's types to be
written is coupled to it, and the cycles cut in engine/ and nix/ were partly
type-only. Not seen: ``importlib.import_module("…")`` with a computed name
(the transport factory, the module registry, the CLI's lazy commands), which
is how a lower layer may pick an upper one by name on purpose.

A *package* is the first name below ``hlplay``: ``hlplay.engine.runner`` is in
``engine``, ``hlplay.proc`` is ``proc``, ``hlplay/__init__.py`` is ``hlplay``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = SRC / "hlplay"

# Package cycle edges that remain, each (importer, imported). None are left; a
# new cycle fails the first test, and an entry added here that no longer lies
# on a cycle fails the second.
KNOWN: frozenset[tuple[str, str]] = frozenset()

# Packages whose modules, among themselves, must have no cycle (cut by hand).
ACYCLIC_MODULES = {
    "engine": lambda m: m.startswith("hlplay.engine."),
    "inventory": lambda m: m.startswith("hlplay.inventory."),
    "nix.diff/render": lambda m: m in ("hlplay.nix.diff", "hlplay.nix.render"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(
    importer: str, is_package: bool, node: ast.ImportFrom, known: Iterable[str]
) -> list[str]:
    """The hlplay modules a ``from … import …`` names (a submodule or its package)."""
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, *([node.module] if node.module else [])])
    else:
        prefix = node.module or ""
    known_set = set(known)
    out = []
    for alias in node.names:
        sub = f"{prefix}.{alias.name}"
        out.append(sub if sub in known_set else prefix)
    return out


def _targets(
    name: str, node: ast.Import | ast.ImportFrom, modules: Mapping[str, Path]
) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        names = _resolve(name, modules[name].name == "__init__.py", node, modules)
    found = []
    for target in names:
        # ``import hlplay.a.b`` names hlplay.a.b; an attribute such as ``hlplay.a.X``
        # is in module hlplay.a: take the longest hlplay module that prefixes it.
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.append(target)
    return found


def module_graph() -> dict[str, set[str]]:
    """Module -> the hlplay modules it imports (anywhere in the file)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[name].update(_targets(name, node, modules))
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: Mapping[str, set[str]]) -> dict[str, dict[str, set[tuple[str, str]]]]:
    """Package -> imported package -> the (importer, imported) module pairs behind it."""
    out: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for src, targets in graph.items():
        a = package_of(src)
        out.setdefault(a, {})
        for dst in targets:
            b = package_of(dst)
            if a != b:
                out[a].setdefault(b, set()).add((src, dst))
    return out


def components(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_edges(graph: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """The edges that lie on some cycle: both ends in one strongly connected component."""
    where = {v: i for i, comp in enumerate(components(graph)) for v in comp}
    return {
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if a in where and where.get(b) == where[a]
    }


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph()


def test_the_parser_sees_the_imports(graph: dict[str, set[str]]) -> None:
    # a lazy import inside a function, a TYPE_CHECKING one and a plain one
    assert "hlplay.inventory.patterns" in graph["hlplay.engine.runner"]
    assert "hlplay.engine.services" in graph["hlplay.engine.executor"]
    assert "hlplay.proc" in graph["hlplay.transports.base"]
    assert len(graph) > 100


def test_no_new_cycles_between_packages(graph: dict[str, set[str]]) -> None:
    packages = package_graph(graph)
    edges = cycle_edges({a: set(bs) for a, bs in packages.items()})
    new = sorted(edges - KNOWN)
    detail = [f"{a} -> {b}: {sorted(packages[a][b])}" for a, b in new]
    assert not new, "new import cycles between packages:\n" + "\n".join(detail)


def test_known_package_cycles_still_exist(graph: dict[str, set[str]]) -> None:
    packages = package_graph(graph)
    edges = cycle_edges({a: set(bs) for a, bs in packages.items()})
    fixed = sorted(KNOWN - edges)
    assert not fixed, f"no longer on a cycle, remove from KNOWN: {fixed}"


@pytest.mark.parametrize("scope", sorted(ACYCLIC_MODULES))
def test_no_cycles_between_modules(graph: dict[str, set[str]], scope: str) -> None:
    keep = ACYCLIC_MODULES[scope]
    sub = {m: {t for t in ts if keep(t)} for m, ts in graph.items() if keep(m)}
    assert sub, scope
    cycles = [sorted(c) for c in components(sub)]
    assert not cycles, f"import cycles among {scope} modules: {cycles}"


def test_proc_is_at_the_bottom(graph: dict[str, set[str]]) -> None:
    # CommandResult and CommandRunner live in proc so every layer can use them
    assert graph["hlplay.proc"] == set()
