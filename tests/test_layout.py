"""The design as the folder tree shows it: no import cycles, arrows one way, a run loop that names
no concrete component, safe checkpoint loading, and a wheel without the benchmarks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("automl", "controllers", "evaluators", "search_spaces")
LEAVES = {"automl.types", "automl.pareto", "automl.metrics", "automl.augment", "automl.batching", "automl.launch"}  # imported by every package; import nothing of the project


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``path`` imports anywhere in it (lazy imports included, TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    for name, path in known.items():
        g.add_node(name)
        for target in imports(path, known):
            # "from pkg import sub" names pkg too; the package's own __init__ is not an edge to itself
            if target != name and not name.startswith(target + "."):
                g.add_edge(name, target)
    return g


def test_no_import_cycles(graph):
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_arrows_point_one_way(graph):
    def top(m: str) -> str:
        return m.split(".")[0]

    bad = []
    for a, b in graph.edges:
        if b in LEAVES or top(a) == top(b):
            continue
        allowed = {"automl": {"controllers", "evaluators", "search_spaces"}, "controllers": {"search_spaces"},
                   "evaluators": {"search_spaces"}, "search_spaces": set()}[top(a)]
        if top(b) not in allowed:
            bad.append((a, b))
    assert not bad, f"imports against the arrows: {bad}"
    for leaf in LEAVES:
        assert not [b for b in graph.successors(leaf) if b not in LEAVES], f"{leaf} must import nothing of the project"


def test_nb201_does_not_import_darts(graph):
    nb201 = [m for m in graph if m.startswith("search_spaces.nb201")]
    reach = set().union(*(nx.descendants(graph, m) for m in nb201))
    assert not [m for m in reach if m.startswith("search_spaces.darts")]


def test_the_run_loop_names_no_concrete_component(graph):
    generic = {"controllers", "controllers.base", "evaluators", "evaluators.base", "search_spaces", "search_spaces.base"}
    for loop in ("automl.run", "automl.engine", "automl.trial", "automl.executors.local", "automl.executors.ray_tune",
                 "automl.config"):
        named = {b for b in graph.successors(loop) if b.split(".")[0] in ("controllers", "evaluators", "search_spaces")}
        named -= generic
        named = {b for b in named if not b.startswith("evaluators.data")}  # the dataset facility, not an evaluator
        assert not named, f"{loop} imports concrete components: {named}"


def test_every_torch_load_is_weights_only():
    calls = []
    for path in list(modules().values()) + list((REPO / "benchmarks").rglob("*.py")):
        for m in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text()):
            calls.append((path.name, m.group(1)))
    assert calls and all("weights_only=True" in args for _, args in calls), calls


def test_no_docstring_points_outside_the_repository():
    offenders = [str(p.relative_to(REPO)) for p in modules().values() if "shared/design" in p.read_text()
                 or "ALGORITHMS.md" in p.read_text() or "BLOCKS.md" in p.read_text()]
    assert not offenders


def test_benchmarks_are_not_installed_as_a_package():
    text = (REPO / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^\]]*)\]", text).group(1)
    assert "benchmarks" not in include and all(p in include for p in PACKAGES)
