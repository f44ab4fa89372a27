"""The package's shape: no import cycles, imports only go down the documented layers, small modules.

The layer order is read from ``docs/architecture.md`` (the block after ``<!-- layers -->``), so the
page and this test cannot disagree. Every import counts: module level, inside functions, and under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "posetransfer"
ARCHITECTURE = REPO / "docs" / "architecture.md"
MAX_LINES = 400


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` (dotted module names) at ``line`` of ``source``'s file."""

    source: str
    target: str
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.Name`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_edges(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every posetransfer import in ``path``; ``from pkg import sub`` points at ``pkg.sub``."""
    is_package = path.name == "__init__.py"
    edges = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            resolved = _resolve(target, modules) if target.startswith("posetransfer") else None
            if resolved is not None and resolved != module:
                edges.append(Edge(module, resolved, node.lineno))
    return edges


def graph() -> list[Edge]:
    modules = all_modules()
    return [edge for m, p in modules.items() for edge in import_edges(m, p, modules)]


def read_layers(text: str) -> list[list[str]]:
    """The layer lines of ``docs/architecture.md``: lowest first, names separated by spaces."""
    match = re.search(r"<!-- layers -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"{ARCHITECTURE}: no ```-block after <!-- layers -->"
    layers = []
    for line in match.group(1).splitlines():
        names = line.split("#")[0].split()
        if names:
            layers.append([name.removesuffix("/").removesuffix(".py") for name in names])
    return layers


def layer_of(module: str, rank: dict[str, int]) -> int | None:
    """The layer of ``posetransfer.<top>...``; the root package itself is below everything."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    return rank.get(parts[1])


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    succ: dict[str, set[str]] = {}
    for e in edges:
        succ.setdefault(e.source, set()).add(e.target)
        succ.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(succ):
        if root in index:
            continue
        work = [(root, iter(sorted(succ[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(succ[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


# ------------------------------------------------------------------------------- the checker


def test_resolve_from_import_of_a_submodule_points_at_it(tmp_path: Path) -> None:
    modules = {"posetransfer.data": Path(), "posetransfer.data.formats": Path()}
    code = "from posetransfer.data import formats\nfrom posetransfer.data.formats import X\n"
    (tmp_path / "m.py").write_text(code)
    edges = import_edges("posetransfer.eval.m", tmp_path / "m.py", modules)
    assert [e.target for e in edges] == ["posetransfer.data.formats"] * 2


def test_relative_imports_resolve(tmp_path: Path) -> None:
    modules = {"posetransfer.a": Path(), "posetransfer.a.b": Path(), "posetransfer.a.c": Path()}
    (tmp_path / "c.py").write_text("from . import b\nfrom .b import thing\n")
    edges = import_edges("posetransfer.a.c", tmp_path / "c.py", modules)
    assert [e.target for e in edges] == ["posetransfer.a.b"] * 2


def test_find_cycles_reports_a_cycle_and_ignores_a_dag() -> None:
    dag = [Edge("a", "b", 1), Edge("b", "c", 1), Edge("a", "c", 1)]
    assert find_cycles(dag) == []
    cyclic = [*dag, Edge("c", "a", 1), Edge("c", "d", 1)]
    assert find_cycles(cyclic) == [["a", "b", "c"]]


def test_read_layers_parses_the_block() -> None:
    text = "x\n<!-- layers -->\n```text\nconventions io.py  # base\nmodels/ losses/\n```\n"
    assert read_layers(text) == [["conventions", "io"], ["models", "losses"]]


# ------------------------------------------------------------------------------- the package


def test_no_import_cycles() -> None:
    cycles = find_cycles(graph())
    assert not cycles, "import cycles between modules: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_every_top_level_module_and_package_has_a_layer() -> None:
    ranked = {name for layer in read_layers(ARCHITECTURE.read_text()) for name in layer}
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    tops = {t for t in tops if not t.startswith("__") and not t.endswith(".egg-info")}
    assert tops <= ranked, f"not placed in a layer in {ARCHITECTURE.name}: {sorted(tops - ranked)}"


def test_imports_only_go_down_the_layers() -> None:
    layers = read_layers(ARCHITECTURE.read_text())
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    upward = []
    for e in graph():
        src, dst = layer_of(e.source, rank), layer_of(e.target, rank)
        if src is not None and dst is not None and dst > src:
            upward.append(f"{e.source}:{e.line} imports {e.target}")
    assert not upward, "imports that go up the layer order:\n" + "\n".join(upward)


def test_nothing_imports_the_command_line() -> None:
    offenders = [
        f"{e.source}:{e.line}"
        for e in graph()
        if e.target.startswith("posetransfer.cli")
        and not e.source.startswith("posetransfer.cli")
        and e.source != "posetransfer.__main__"
    ]
    assert not offenders, f"library modules importing posetransfer.cli: {offenders}"


@pytest.mark.parametrize("name", sorted(all_modules()))
def test_module_is_small(name: str) -> None:
    lines = len(all_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"


def test_command_code_lives_in_cli() -> None:
    """Argument parsing and the Command record appear only under posetransfer/cli/."""
    offenders = []
    for name, path in all_modules().items():
        if name.startswith("posetransfer.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                offenders.append(f"{name}:{node.lineno} imports argparse")
            if isinstance(node, ast.ImportFrom) and node.module == "argparse":
                offenders.append(f"{name}:{node.lineno} imports from argparse")
    assert not offenders, "\n".join(offenders)
