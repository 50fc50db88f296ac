"""A DAG of nodes fed by mixed edges: the body shared by the DARTS and NAS-Bench-201 search cells.

Node ``i`` (``i = 0 .. steps-1``) sums one :class:`~search_spaces.supernet.mixed.MixedEdge` per
earlier state: the ``inputs`` cell inputs and the nodes before it. Edges leaving a cell input of
a reduction cell have stride 2. With ``partial`` = K > 1 (PC-DARTS) an edge's mixed ops see the
first ``C/K`` channels of its state; the other channels bypass them (2x2 max-pooled on strided
edges, ``ceil_mode`` so odd sizes work) and the node is channel-shuffled with K groups. The
shuffle is applied once to the node (the sum of its edges) rather than to every edge: it is a
fixed permutation, so the result is the same tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.supernet.mixed import EdgeInput, MixedEdge, OpFactory, channels_last_grad
from search_spaces.supernet.relax import Mix, channel_shuffle


class MixedNodes(nn.Module):
    """``forward(states, mix)`` appends ``steps`` nodes to ``states`` (a list) and returns it."""

    def __init__(
        self,
        ops: Sequence[str],
        channels: int,
        steps: int,
        inputs: int,
        factory: OpFactory,
        *,
        reduction: bool = False,
        partial: int = 1,
    ) -> None:
        super().__init__()
        if partial < 1 or channels % partial:
            raise ValueError(f"partial_channels must divide the cell width {channels}, got {partial}")
        self.steps, self.inputs, self.partial, self.reduction = steps, inputs, partial, reduction
        self.mixed_channels = channels // partial
        self.edges = nn.ModuleList(
            MixedEdge(ops, self.mixed_channels, 2 if reduction and j < inputs else 1, factory)
            for i in range(steps)
            for j in range(inputs + i)
        )

    def _edge_input(self, state: torch.Tensor) -> EdgeInput:
        return EdgeInput(state if self.partial == 1 else state[:, : self.mixed_channels])

    def _bypass(self, state: torch.Tensor, stride: int, weight: torch.Tensor | None) -> torch.Tensor:
        rest = state[:, self.mixed_channels :]
        if stride == 2:
            rest = F.max_pool2d(rest, 2, 2, ceil_mode=True)
        return rest if weight is None else rest * weight

    def forward(self, states: list[torch.Tensor], mix: Mix) -> list[torch.Tensor]:
        inputs = [self._edge_input(s) for s in states]
        e = 0
        for i in range(self.steps):
            acc: torch.Tensor | None = None
            bypass: torch.Tensor | None = None
            for j in range(self.inputs + i):
                edge = self.edges[e]
                acc = edge(inputs[j], mix.scales[e], acc, None if mix.index is None else mix.index[e])
                if self.partial > 1:
                    b = self._bypass(states[j], edge.stride, None if mix.edge is None else mix.edge[e])
                    bypass = b if bypass is None else bypass + b
                e += 1
            if acc is None:  # GDAS drew 'none' on every edge of the node: a zero node
                stride = 2 if self.reduction else 1
                acc = torch.zeros_like(inputs[self.inputs - 1].x[..., ::stride, ::stride])
            if mix.rest is not None:
                acc = acc.add_(mix.rest[i])
            node = acc if bypass is None else channel_shuffle(torch.cat([acc, bypass], 1), self.partial)
            node = channels_last_grad(node)
            states.append(node)
            inputs.append(self._edge_input(node))
        return states
