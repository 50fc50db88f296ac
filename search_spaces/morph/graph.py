"""A ``morph`` architecture in the common graph form of :mod:`search_spaces.base`.

Nodes are the layers' output tensors, named by layer id (``label``: ``input``, ``output``, the
id, or ``add 14`` on merges, which carry ``merge``); each layer is the edge from its (main)
input to its output, with ``op`` and ``layers``. A merge's main input arrives by a ``wire`` and
its skip by ``skip-add`` / ``skip-concat`` whose layers are the node's 1x1 projection and whose
``pool`` is the skip's max-pooling factor (1: same size; kept out of ``layers`` so that, as in
Auto-Keras, a skip's kind is just add or concat). The source is the input, the sink the head's
output; ``graph["inputs"]`` / ``graph["outputs"]`` name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from automl.types import Task
from search_spaces.morph.arch import MERGES, channels, levels


def edge_of(layer: Mapping[str, Any], num_classes: int) -> tuple[str, list[dict[str, Any]]]:
    """``op`` and ``layers`` of a non-merge layer's edge."""
    kind = layer["type"]
    if kind == "conv":
        k, f = layer["kernel"], layer["filters"]
        return f"conv{k}x{k}x{f}", [{"type": "conv", "filters": f, "kernel": k, "stride": 1}]
    if kind == "pool":
        k = layer["kernel"]
        return f"maxpool{k}", [{"type": "pool", "kernel": k, "stride": k, "padding": 0}]
    if kind == "head":
        return "head", [{"type": "dense", "units": num_classes}]
    return kind, [{"type": kind}]


def to_graph(arch: Mapping[str, Any], task: Task) -> nx.DiGraph:
    """The tensor graph of a canonical architecture (channels counted for ``task``)."""
    ch, level = channels(arch, task.in_channels), levels(arch)
    g = nx.DiGraph()
    first, last = arch["layers"][0]["id"], arch["layers"][-1]["id"]
    for x in arch["layers"]:
        lid, kind = x["id"], x["type"]
        label = {"input": "input", "head": "output"}.get(kind, f"{kind} {lid}" if kind in MERGES else str(lid))
        attrs: dict[str, Any] = {"label": label, "type": kind}
        if kind != "head":
            attrs["channels"] = ch[lid]
        if kind in MERGES:
            attrs["merge"] = kind
        g.add_node(lid, **attrs)
        if kind == "input":
            continue
        main = x["inputs"][0]
        if kind in MERGES:
            skip = x["inputs"][1]
            g.add_edge(main, lid, op="wire")
            g.add_edge(skip, lid, op=f"skip-{kind}", pool=2 ** (level[main] - level[skip]),
                       layers=[{"type": "conv", "filters": ch[main], "kernel": 1, "stride": 1}])
        else:
            op, layers = edge_of(x, task.num_classes)
            g.add_edge(main, lid, op=op, layers=layers)
    g.graph["inputs"], g.graph["outputs"] = [first], [last]
    return g
