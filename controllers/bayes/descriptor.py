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
from itertools import pairwise
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
        nodes = sorted(part, key=order.__getitem__)
        ins = [n for n in nodes if n in inputs] if inputs else [n for n in nodes if graph.in_degree(n) == 0]
        outs = [n for n in nodes if n in outputs] if outputs else [n for n in nodes if graph.out_degree(n) == 0]
        if not ins or not outs:
            continue  # a part cut off from the declared input or output computes nothing
        part_layers, part_skips = _part(_LayerGraph(graph, nodes, ins, outs))
        offset = len(layers)
        layers.extend(part_layers)
        skips.extend(Skip(s.u + offset, s.v + offset, s.kind) for s in part_skips)
    return Descriptor(tuple(layers), tuple(skips))


class _LayerGraph:
    """One part as a layer graph on integers: node 0 the root (feeding the inputs), then the
    tensors, then one node per layer, and last the sink (fed by the outputs); ``layer[i]`` is
    the layer of node ``i`` (None for tensors), ``merge[i]`` how a tensor merges its inputs."""

    def __init__(self, graph: nx.DiGraph, nodes: list[Any], inputs: list[Any], outputs: list[Any]) -> None:
        index = {n: i + 1 for i, n in enumerate(nodes)}
        self.layer: list[Layer | None] = [None] * (len(nodes) + 1)
        self.merge = ["add"] + [str(graph.nodes[n].get("merge", "add")) for n in nodes]
        self.succ: list[list[int]] = [[index[n] for n in inputs]] + [[] for _ in nodes]
        for u in nodes:
            for v, data in graph.succ[u].items():
                for branch in edge_branches(data):
                    prev = index[u]
                    for spec in branch:
                        self.layer.append(layer_of(spec))
                        self.merge.append("add")
                        self.succ.append([])
                        self.succ[prev].append(len(self.layer) - 1)
                        prev = len(self.layer) - 1
                    self.succ[prev].append(index[v])
        self.sink = len(self.layer)
        self.layer.append(None)
        self.merge.append("add")
        self.succ.append([])
        for n in outputs:
            self.succ[index[n]].append(self.sink)

    def live_order(self) -> list[int]:
        """Topological order of the nodes on some root-to-sink path (Kahn, lowest index first)."""
        size = len(self.succ)
        pred: list[list[int]] = [[] for _ in range(size)]
        for u, vs in enumerate(self.succ):
            for v in vs:
                pred[v].append(u)
        ahead, behind = _reach(self.succ, 0), _reach(pred, self.sink)
        live = [ahead[i] and behind[i] for i in range(size)]
        degree = [sum(1 for p in pred[i] if live[p]) for i in range(size)]
        ready, order = [0] if live[0] else [], []
        while ready:
            ready.sort(reverse=True)
            u = ready.pop()
            order.append(u)
            for v in self.succ[u]:
                if live[v]:
                    degree[v] -= 1
                    if degree[v] == 0:
                        ready.append(v)
        return order


def _reach(edges: list[list[int]], start: int) -> list[bool]:
    seen = [False] * len(edges)
    seen[start], stack = True, [start]
    while stack:
        for v in edges[stack.pop()]:
            if not seen[v]:
                seen[v] = True
                stack.append(v)
    return seen


def _part(g: _LayerGraph) -> tuple[list[Layer], list[Skip]]:
    order = g.live_order()
    if not order or order[-1] != g.sink:
        return [], []
    live = set(order)
    weight = [0 if x is None else 1 for x in g.layer]
    best: dict[int, tuple[int, int | None]] = {0: (0, None)}
    for u in order:  # longest path: the first predecessor (in topological order) with the most layers
        here = best[u][0]
        for v in g.succ[u]:
            if v in live and (v not in best or here + weight[v] > best[v][0]):
                best[v] = (here + weight[v], u)
    chain, node = [], g.sink
    while node is not None:
        chain.append(node)
        node = best[node][1]
    chain.reverse()
    position, count = {}, 0
    for n in chain:
        count += weight[n]
        position[n] = count
    layers = [g.layer[n] for n in chain if weight[n]]
    nxt = dict(pairwise(chain))
    skips: list[Skip] = []
    for a in chain:
        stack = [(s, ()) for s in g.succ[a] if s in live and s != nxt.get(a)]
        while stack and len(skips) < MAX_SKIP_PATHS:
            n, labels = stack.pop()
            if n in position:
                kind = g.merge[n] + (":" + "-".join(labels) if labels else "")
                skips.append(Skip(position[a], position[n], kind))
                continue
            here = (*labels, label(g.layer[n])) if weight[n] else labels  # type: ignore[arg-type]
            stack.extend((s, here) for s in g.succ[n] if s in live)
    skips.sort(key=lambda s: (s.u, s.v, s.kind))
    return layers, skips  # type: ignore[return-value]
