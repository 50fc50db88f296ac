"""Pictures of architectures: any space's ``graph(arch)`` drawn as a layered DAG (matplotlib)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import networkx as nx

from search_spaces.base import SearchSpace


def _layers(g: nx.DiGraph) -> dict[Any, int]:
    if nx.is_directed_acyclic_graph(g):
        return {n: i for i, gen in enumerate(nx.topological_generations(g)) for n in gen}
    return {n: i for i, n in enumerate(g.nodes)}


def draw_graph(g: nx.DiGraph, out: Path, title: str = "") -> Path:
    """Layered drawing: nodes left to right by topological generation, edges labelled by ``op``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layer = _layers(g)
    for n, i in layer.items():
        g.nodes[n]["_layer"] = i
    pos = nx.multipartite_layout(g, subset_key="_layer")
    width = max(6.0, 1.8 * (max(layer.values(), default=0) + 1))
    height = max(3.5, 0.9 * max((list(layer.values()).count(i) for i in set(layer.values())), default=1) + 1.5)
    fig, ax = plt.subplots(figsize=(min(width, 30), min(height, 20)))
    labels = {n: str(g.nodes[n].get("label", n)) for n in g.nodes}
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="#deebf7", edgecolors="#3182bd", node_size=900)
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=8)
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, node_size=900, connectionstyle="arc3,rad=0.08")
    edge_labels = {(u, v): str(d.get("op", d.get("label", ""))) for u, v, d in g.edges(data=True)}
    nx.draw_networkx_edge_labels(g, pos, edge_labels=edge_labels, ax=ax, font_size=7, label_pos=0.5)
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    for n in g.nodes:
        g.nodes[n].pop("_layer", None)
    return out


def draw_arch(space: SearchSpace, arch: Any, out: Path, title: str = "") -> Path | None:
    """Draw ``space.graph(arch)``; ``None`` when the space offers no graph."""
    if "graph" not in space.offers:
        return None
    return draw_graph(space.graph(arch), Path(out), title or space.describe(arch))
