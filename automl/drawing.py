"""Pictures of architectures: a space's ``graph(arch)`` drawn as a layered DAG (matplotlib).

Nodes are placed left to right by topological generation; nodes with a ``stride`` attribute
(a network path such as Auto-DeepLab's) are placed at a height given by their stride, so the
path over resolutions is visible. When the graph falls into parts whose nodes are named
``"<part>:<node>"`` (the DARTS normal and reduction cells), each part gets its own panel named
by the prefix, which the node labels then drop; a sub-graph in ``graph.graph["cell"]`` (the searched cell) is drawn
in a further panel. Edges are labelled by their ``op`` (or ``resample``) attribute; ``concat``
edges into a cell's output are drawn dashed and unlabelled.
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
    tallest = max(rows.values(), default=1)
    return {n: (x, y - (tallest - rows[int(x)]) / 2) for n, (x, y) in pos.items()}  # columns centred


def _prefix(g: nx.DiGraph) -> str | None:
    """The ``"<part>"`` of node names ``"<part>:<node>"`` when every node of ``g`` shares it."""
    parts = {str(n).split(":", 1)[0] for n in g.nodes if ":" in str(n)}
    return parts.pop() if len(parts) == 1 and all(":" in str(n) for n in g.nodes) else None


def panels(g: nx.DiGraph, title: str = "") -> list[tuple[nx.DiGraph, str]]:
    """(graph, panel title) to draw: one per weakly connected part, then ``g.graph["cell"]``."""
    order = {n: i for i, n in enumerate(g.nodes)}
    parts = sorted(nx.weakly_connected_components(g), key=lambda c: min(order[n] for n in c))
    out: list[tuple[nx.DiGraph, str]] = []
    subs = [g.subgraph(sorted(part, key=order.__getitem__)).copy() for part in parts]
    names = [_prefix(sub) for sub in subs]
    if len(subs) > 1 and all(names) and len(set(names)) == len(names):  # e.g. the DARTS cell types
        out.extend((sub, f"{ {'reduce': 'reduction'}.get(name, name)} cell") for sub, name in zip(subs, names))
    else:  # one graph, even where a node has no edge left (NB201's 'none')
        out.append((g, title))
    cell = g.graph.get("cell")
    if isinstance(cell, nx.DiGraph):
        out.append((cell, "cell"))
    return out


def _label(node: Any, data: dict[str, Any], prefix: str | None) -> str:
    text = str(data.get("label", node))
    if prefix and text.startswith(prefix + ":"):
        text = text[len(prefix) + 1 :]
    if text.startswith("c_{") and text.endswith("}"):
        text = f"${text}$"  # c_{k-2} as mathtext
    return text + (f"\n/{data['stride']}" if "stride" in data else "")


NODE_RADIUS_IN = 0.23  # node_size 1100 pt^2: a disc of about 33 pt across
PANEL_HEIGHT_IN = 4.5


def _bend(pos: dict[Any, tuple[float, float]], u: Any, v: Any, scale: tuple[float, float] = (1.0, 1.0)) -> float:
    """Arc (matplotlib ``arc3`` rad) of an edge: a slight one between neighbouring columns; for one
    that skips a column (a cell's input from two layers back) the first of ±0.3, ±0.5, ±0.7 whose
    curve keeps clear of every other node, so that it and its label pass around the nodes between.
    ``scale`` is inches per layout unit in x and y (the curve is an arc on the page, not in the layout)."""
    if abs(pos[v][0] - pos[u][0]) <= 1:
        return 0.12
    (x1, y1), (x2, y2) = ((pos[n][0] * scale[0], pos[n][1] * scale[1]) for n in (u, v))
    others = [(x * scale[0], y * scale[1]) for n, (x, y) in pos.items() if n not in (u, v)]
    t = [i / 20 for i in range(2, 19)]

    def clearance(rad: float) -> float:
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)  # arc3's control point
        curve = [((1 - s) ** 2 * x1 + 2 * s * (1 - s) * cx + s * s * x2,
                  (1 - s) ** 2 * y1 + 2 * s * (1 - s) * cy + s * s * y2) for s in t]
        return min((math.dist(p, o) for p in curve for o in others), default=math.inf)

    candidates = (0.3, -0.3, 0.5, -0.5, 0.7, -0.7)
    clear = [r for r in candidates if clearance(r) > 1.5 * NODE_RADIUS_IN]
    return clear[0] if clear else max(candidates, key=clearance)


def _scale(pos: dict[Any, tuple[float, float]], width_in: float) -> tuple[float, float]:
    """Inches per layout unit of a panel ``width_in`` wide (about 80 % of it is the plot's area)."""
    xs, ys = [x for x, _ in pos.values()], [y for _, y in pos.values()]
    return 0.8 * width_in / max(max(xs) - min(xs), 1.0), 0.7 * PANEL_HEIGHT_IN / max(max(ys) - min(ys), 1.0)


def _draw(ax: Any, g: nx.DiGraph, title: str, width_in: float) -> None:
    pos = _positions(g)
    scale = _scale(pos, width_in)
    bends = {(u, v): _bend(pos, u, v, scale) for u, v in g.edges}
    prefix = _prefix(g)
    labels = {n: _label(n, d, prefix) for n, d in g.nodes(data=True)}
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="#deebf7", edgecolors="#3182bd", node_size=1100)
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    concat = {(u, v) for u, v, d in g.edges(data=True) if d.get("op") == "concat"}
    for rad in sorted(set(bends.values())):
        edges = [e for e, bend in bends.items() if bend == rad]
        other = [e for e in edges if e not in concat]
        style = {"ax": ax, "arrows": True, "arrowsize": 10, "node_size": 1100, "connectionstyle": f"arc3,rad={rad}"}
        nx.draw_networkx_edges(g, pos, edgelist=other, **style)
        nx.draw_networkx_edges(g, pos, edgelist=[e for e in edges if e in concat], style="dashed",
                               edge_color="#969696", **style)
        edge_labels = {(u, v): str(g.edges[u, v].get("op", g.edges[u, v].get("resample", ""))) for u, v in other}
        nx.draw_networkx_edge_labels(g, pos, edge_labels=edge_labels, ax=ax, font_size=6, label_pos=0.4,
                                     connectionstyle=f"arc3,rad={rad}",
                                     bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=8)
    ax.axis("off")


def draw_graph(g: nx.DiGraph, out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = panels(g, title)
    split = len(drawn) > 1 and drawn[0][0] is not g
    columns = max(len({x for x, _ in _positions(p).values()}) for p, _ in drawn)
    width = min(30.0, max(7.0, 1.2 * columns + 2))
    fig, axes = plt.subplots(len(drawn), 1, figsize=(width, PANEL_HEIGHT_IN * len(drawn)), squeeze=False)
    for ax, (graph, name) in zip(axes[:, 0], drawn, strict=True):
        _draw(ax, graph, name, width)
    if split and title:
        fig.suptitle("\n".join(textwrap.wrap(title, 120)), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_arch(space: SearchSpace, arch: Any, out: Path, title: str = "") -> Path | None:
    """Draw ``space.graph(arch)``; ``None`` when the space offers no graph."""
    if "graph" not in space.offers:
        return None
    return draw_graph(space.graph(arch), Path(out), title or space.describe(arch))
