"""``macro``: Zoph & Le's (2017) CIFAR macro space — a stack of conv layers whose skip
connections are chosen by anchor points.

Per layer ``i`` (0-based, ``layers`` of them, 6 by default as the paper's curriculum starts):
``L{i}.fh`` / ``L{i}.fw`` filter height and width in {1, 3, 5, 7}, ``L{i}.filters`` in {24, 36,
48, 64}, with ``strides=True`` also ``L{i}.stride`` in {1, 2, 3}; then, for every earlier layer
``j < i``, ``L{i}.in{j}`` (no/yes): whether layer ``j``'s output feeds layer ``i`` — an anchor set
(:attr:`automl.types.Decision.anchor`), drawn by the ``rl`` controller with attention.

The paper's build rules make every sample a working network: a layer takes the concatenation
(along depth) of the layers it chose, zero-padded to the largest spatial size among them; a
layer that chose none takes the image; every output no later layer consumed is concatenated
(padded the same way) before the classifier (global average pooling + a linear layer). Each
layer is conv (``same`` padding, its stride) + BatchNorm + ReLU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import networkx as nx
import torch
from torch import nn
from torch.nn import functional as F

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace
from search_spaces.layers import ConvNormAct

FILTER_SIZES = (1, 3, 5, 7)
FILTERS = (24, 36, 48, 64)
STRIDES = (1, 2, 3)


class MacroSpace(SearchSpace):
    """Zoph & Le's conv-layer stack with anchor-point skip connections."""

    name: ClassVar[str] = "macro"
    description: ClassVar[str] = "Zoph & Le 2017 CIFAR macro space: conv layers, filter sizes, anchor-point skips"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "graph"})
    default_task: ClassVar[Task] = Task("classification", 3, (32, 32), 10)

    def __init__(self, layers: int = 6, strides: bool = False) -> None:
        super().__init__()
        if not 1 <= layers <= 30:
            raise ValueError(f"macro: layers must be in 1..30, got {layers}")
        self.layers, self.strides = int(layers), bool(strides)

    def decisions(self) -> tuple[Decision, ...]:
        out: list[Decision] = []
        for i in range(self.layers):
            out += [Decision(f"L{i}.fh", FILTER_SIZES), Decision(f"L{i}.fw", FILTER_SIZES),
                    Decision(f"L{i}.filters", FILTERS)]
            if self.strides:
                out.append(Decision(f"L{i}.stride", STRIDES))
            out += [Decision(f"L{i}.in{j}", (0, 1), anchor=(i, j)) for j in range(i)]
        return tuple(out)

    def inputs(self, arch: Arch) -> list[list[int]]:
        """Per layer, the earlier layers it reads (empty: the image)."""
        return [[j for j in range(i) if arch[f"L{i}.in{j}"]] for i in range(self.layers)]

    def outputs(self, arch: Arch) -> list[int]:
        """The layers whose output no later layer reads: they feed the classifier."""
        used = {j for ins in self.inputs(arch) for j in ins}
        return [i for i in range(self.layers) if i not in used]

    def build(self, arch: Arch, task: Task | None = None) -> nn.Module:
        task = task or self.default_task
        if task.kind != "classification":
            raise ValueError(f"macro builds classification networks, not {task.kind!r}")
        arch = self.validate(arch)
        return MacroNetwork(self, arch, task)

    def graph(self, arch: Arch) -> nx.DiGraph:
        """Tensors ``input``, ``L0``.. (layer outputs) and ``output``; a layer with several inputs
        reads their concatenation (node ``L<i>:in``, ``merge="concat"``); edges are the convolutions
        (``op`` e.g. ``conv3x5x36``, with ``layers``), the concatenation wires and the classifier."""
        arch = self.validate(arch)
        g = nx.DiGraph(inputs=["input"], outputs=["output"])
        g.add_node("input")

        def merged(sources: list[str], name: str) -> str:
            if len(sources) == 1:
                return sources[0]
            g.add_node(name, merge="concat")
            for src in sources:
                g.add_edge(src, name, op="concat")
            return name

        for i, ins in enumerate(self.inputs(arch)):
            fh, fw, filters = arch[f"L{i}.fh"], arch[f"L{i}.fw"], arch[f"L{i}.filters"]
            stride = arch.get(f"L{i}.stride", 1)
            src = merged([f"L{j}" for j in ins] or ["input"], f"L{i}:in")
            layer = {"type": "conv", "filters": filters, "kernel": (fh + fw) / 2, "stride": stride}
            g.add_node(f"L{i}", label=f"L{i}", stride=stride)
            g.add_edge(src, f"L{i}", op=f"conv{fh}x{fw}x{filters}" + (f"/{stride}" if stride != 1 else ""),
                       layers=[layer])
        src = merged([f"L{i}" for i in self.outputs(arch)], "output:in")
        g.add_edge(src, "output", op="classifier", layers=[{"type": "dense"}])
        return g

    def describe(self, arch: Arch) -> str:
        arch = self.validate(arch)
        parts = []
        for i, ins in enumerate(self.inputs(arch)):
            stride = f"/s{arch[f'L{i}.stride']}" if self.strides else ""
            src = ",".join(map(str, ins)) if ins else "img"
            parts.append(f"{arch[f'L{i}.fh']}x{arch[f'L{i}.fw']}x{arch[f'L{i}.filters']}{stride}<{src}")
        return " ".join(parts)

    def parse(self, text: str) -> dict[str, Any]:
        return parse_layers(self, text) if "<" in text else super().parse(text)


_LAYER = re.compile(r"^(\d+)x(\d+)x(\d+)(?:/s(\d+))?<(img|\d+(?:,\d+)*)$")


def parse_layers(space: MacroSpace, text: str) -> dict[str, Any]:
    """The arch of :meth:`MacroSpace.describe`'s text (``FHxFWxF[/sS]<img|j,k`` per layer)."""
    parts = text.split()
    if len(parts) != space.layers:
        raise ValueError(f"macro: expected {space.layers} layers, got {len(parts)} in {text!r}")
    arch: dict[str, Any] = {}
    for i, part in enumerate(parts):
        m = _LAYER.match(part)
        if m is None:
            raise ValueError(f"macro: layer {i} {part!r} is not FHxFWxF[/sS]<img|j,k")
        arch.update({f"L{i}.fh": int(m[1]), f"L{i}.fw": int(m[2]), f"L{i}.filters": int(m[3])})
        if space.strides:
            arch[f"L{i}.stride"] = int(m[4] or 1)
        sources = set() if m[5] == "img" else {int(j) for j in m[5].split(",")}
        arch.update({f"L{i}.in{j}": int(j in sources) for j in range(i)})
    return space.validate(arch)


def pad_concat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate along channels, zero-padding each map to the largest height and width."""
    h = max(t.shape[-2] for t in tensors)
    w = max(t.shape[-1] for t in tensors)
    return torch.cat([F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2])) for t in tensors], dim=1)


class MacroNetwork(nn.Module):
    """A sampled macro architecture as a plain module (see the module docstring)."""

    def __init__(self, space: MacroSpace, arch: dict[str, Any], task: Task) -> None:
        super().__init__()
        self.inputs = space.inputs(arch)
        self.outputs = space.outputs(arch)
        width = [int(arch[f"L{i}.filters"]) for i in range(space.layers)]
        self.layers = nn.ModuleList()
        for i, ins in enumerate(self.inputs):
            c_in = sum(width[j] for j in ins) if ins else task.in_channels
            kh, kw = int(arch[f"L{i}.fh"]), int(arch[f"L{i}.fw"])
            stride = int(arch.get(f"L{i}.stride", 1))
            self.layers.append(ConvNormAct(c_in, width[i], (kh, kw), stride))
        self.classifier = nn.Linear(sum(width[i] for i in self.outputs), task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for layer, ins in zip(self.layers, self.inputs, strict=True):
            outs.append(layer(pad_concat([outs[j] for j in ins]) if ins else x))
        features = pad_concat([outs[i] for i in self.outputs])
        return self.classifier(F.adaptive_avg_pool2d(features, 1).flatten(1))
