"""An architecture's Auto-Keras descriptor, read from its graph (the common graph form of
:mod:`search_spaces.base`): the layers of the main chain in order and the skip connections
indexed on it (docs/algorithms.md §3).

Each edge becomes its layers (``layers``, or read from ``op`` by
:func:`search_spaces.op_layers.edge_branches`); the main chain is the longest input-to-output
path counted in layers (ties to the path met first in topological order). A *position* is the
number of chain layers before a tensor. Every path that leaves the chain at position ``u`` and
rejoins it at ``v`` through layers off the chain is one skip ``(u, v, kind)``: ``kind`` is the
merge of the tensor it rejoins (``add`` or ``concat``) followed by the labels of its layers
(``add:conv3``), so that Auto-Keras's plain skips (``add``, ``concat``) and the parallel ops of a
cell (a 3x3 conv beside the chain) are told apart. Deviation: Auto-Keras graphs only hold skip
layers without parameters, so its kinds are just ``add``/``concat``. A graph of several parts
(cells) is read part by part, the layers and positions of later parts following the earlier;
where the graph names its ``inputs`` / ``outputs`` (``graph.graph``), what is cut off from them
is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from controllers.bayes.distance import Descriptor, Layer, Skip
from search_spaces.op_layers import edge_branches

NUMERIC = ("filters", "kernel", "stride", "dilation", "padding", "units")
MAX_SKIP_PATHS = 256  # per part: a guard against graphs with exponentially many side paths


def layer_of(spec: Mapping[str, Any]) -> Layer:
    attrs = {k: float(spec[k]) for k in NUMERIC if k in spec and spec[k] is not None}
    return Layer(str(spec.get("type", "op")), attrs)


def label(layer: Layer) -> str:
    kernel = layer.attrs.get("kernel")
    return layer.type + (f"{kernel:g}" if kernel is not None else "")


def descriptor(graph: nx.DiGraph) -> Descriptor:
    """The descriptor of a graph in the common form (several parts read in node order)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    parts = sorted(nx.weakly_connected_components(graph), key=lambda c: min(order[n] for n in c))
    layers: list[Layer] = []
    skips: list[Skip] = []
    inputs = set(graph.graph.get("inputs", ()))
    outputs = set(graph.graph.get("outputs", ()))
    for part in parts:
        sub = graph.subgraph(sorted(part, key=order.__getitem__))
        ins = [n for n in sub if n in inputs] if inputs else [n for n in sub if sub.in_degree(n) == 0]
        outs = [n for n in sub if n in outputs] if outputs else [n for n in sub if sub.out_degree(n) == 0]
        if not ins or not outs:
            continue  # a part cut off from the declared input or output computes nothing
        part_layers, part_skips = _part(sub, ins, outs)
        offset = len(layers)
        layers.extend(part_layers)
        skips.extend(Skip(s.u + offset, s.v + offset, s.kind) for s in part_skips)
    return Descriptor(tuple(layers), tuple(skips))


def _expand(graph: nx.DiGraph, inputs: list[Any], outputs: list[Any]) -> nx.DiGraph:
    """Layer graph: tensor nodes ``("t", n)``, one node per layer, a root and a sink; only what
    lies on some input-to-output path is kept."""
    g = nx.DiGraph()
    g.add_node("root", merge="add")
    for n, data in graph.nodes(data=True):
        g.add_node(("t", n), merge=data.get("merge", "add"))
    for u, v, data in graph.edges(data=True):
        for b, branch in enumerate(edge_branches(data)):
            prev = ("t", u)
            for i, spec in enumerate(branch):
                node = ("l", u, v, b, i)
                g.add_node(node, layer=layer_of(spec))
                g.add_edge(prev, node)
                prev = node
            g.add_edge(prev, ("t", v))
    g.add_node("sink", merge="add")
    for n in inputs:
        g.add_edge("root", ("t", n))
    for n in outputs:
        g.add_edge(("t", n), "sink")
    live = nx.descendants(g, "root") & nx.ancestors(g, "sink") | {"root", "sink"}
    return g.subgraph([n for n in g if n in live]).copy()


def _part(graph: nx.DiGraph, inputs: list[Any], outputs: list[Any]) -> tuple[list[Layer], list[Skip]]:
    g = _expand(graph, inputs, outputs)
    if not g.has_node("sink") or not nx.has_path(g, "root", "sink"):
        return [], []
    weight = {n: 1 if "layer" in g.nodes[n] else 0 for n in g}
    best: dict[Any, tuple[int, Any]] = {}
    for n in nx.topological_sort(g):  # longest path: first predecessor with the most layers
        preds = [(best[p][0], p) for p in g.predecessors(n) if p in best]
        if n == "root":
            best[n] = (0, None)
        elif preds:
            top = max(c for c, _ in preds)
            best[n] = (top + weight[n], next(p for c, p in preds if c == top))
    chain, node = [], "sink"
    while node is not None:
        chain.append(node)
        node = best[node][1]
    chain.reverse()
    position, count = {}, 0
    for n in chain:
        count += weight[n]
        position[n] = count
    on_chain = set(chain)
    layers = [g.nodes[n]["layer"] for n in chain if weight[n]]
    nxt = {a: b for a, b in zip(chain, chain[1:])}
    skips: list[Skip] = []
    for a in chain:
        stack = [(s, ()) for s in g.successors(a) if s != nxt.get(a)]
        while stack and len(skips) < MAX_SKIP_PATHS:
            n, labels = stack.pop()
            if n in on_chain:
                kind = g.nodes[n].get("merge", "add") + (":" + "-".join(labels) if labels else "")
                skips.append(Skip(position[a], position[n], kind))
                continue
            here = (*labels, label(g.nodes[n]["layer"])) if weight[n] else labels
            stack.extend((s, here) for s in g.successors(n))
    skips.sort(key=lambda s: (s.u, s.v, s.kind))
    return layers, skips
