"""Pictures of architectures: a space's ``graph(arch)`` drawn as a layered DAG (matplotlib).

Nodes are placed left to right by topological generation; nodes with a ``stride`` attribute
(a network path such as Auto-DeepLab's) are placed at a height given by their stride, so the
path over resolutions is visible. A sub-graph in ``graph.graph["cell"]`` (the searched cell) is
drawn in a second panel. Edges are labelled by their ``op`` (or ``resample``) attribute.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import networkx as nx

from search_spaces.base import SearchSpace


def _positions(g: nx.DiGraph) -> dict[Any, tuple[float, float]]:
    if nx.is_directed_acyclic_graph(g):
        layer = {n: i for i, gen in enumerate(nx.topological_generations(g)) for n in gen}
    else:
        layer = {n: i for i, n in enumerate(g.nodes)}
    if all("stride" in g.nodes[n] for n in g.nodes if str(n).startswith(("cell", "stem"))) and any(
        "stride" in d for _, d in g.nodes(data=True)
    ):
        order = {n: i for i, n in enumerate(nx.topological_sort(g))} if nx.is_directed_acyclic_graph(g) else layer
        return {n: (order[n], -math.log2(g.nodes[n]["stride"]) if "stride" in g.nodes[n] else -1.0) for n in g.nodes}
    rows: dict[int, int] = {}
    pos = {}
    for n in g.nodes:
        i = layer[n]
        pos[n] = (float(i), -float(rows.get(i, 0)))
        rows[i] = rows.get(i, 0) + 1
    return pos


def _draw(ax: Any, g: nx.DiGraph, title: str) -> None:
    pos = _positions(g)
    labels = {}
    for n, d in g.nodes(data=True):
        extra = f"\n/{d['stride']}" if "stride" in d else ""
        labels[n] = f"{d.get('label', n)}{extra}"
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="#deebf7", edgecolors="#3182bd", node_size=1100)
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=10, node_size=1100, connectionstyle="arc3,rad=0.12")
    edge_labels = {(u, v): str(d.get("op", d.get("resample", ""))) for u, v, d in g.edges(data=True)}
    nx.draw_networkx_edge_labels(g, pos, edge_labels=edge_labels, ax=ax, font_size=6, label_pos=0.5)
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=8)
    ax.axis("off")


def draw_graph(g: nx.DiGraph, out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cell = g.graph.get("cell")
    panels = [(g, title)] + ([(cell, "cell")] if isinstance(cell, nx.DiGraph) else [])
    width = min(30.0, max(7.0, 0.9 * g.number_of_nodes()))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 4.5 * len(panels)), squeeze=False)
    for ax, (graph, name) in zip(axes[:, 0], panels, strict=True):
        _draw(ax, graph, name)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_arch(space: SearchSpace, arch: Any, out: Path, title: str = "") -> Path | None:
    """Draw ``space.graph(arch)``; ``None`` when the space offers no graph."""
    if "graph" not in space.offers:
        return None
    return draw_graph(space.graph(arch), Path(out), title or space.describe(arch))
