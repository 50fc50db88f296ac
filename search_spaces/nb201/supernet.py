"""The NAS-Bench-201 search network: DARTS / GDAS / PC-DARTS over the 6-edge cell.

Layout of AutoDL-Projects ``TinyNetworkDarts`` / ``TinyNetworkGDAS``: stem conv 3x3 + BN,
three stages of ``cells_per_stage`` search cells at C, 2C, 4C separated by the residual
reduction blocks of :mod:`search_spaces.nb201.network`, BN + ReLU, global average pooling,
linear classifier. One α ``[6, 5]`` (``alphas``, initialised ``1e-3 · N(0, 1)``) is shared by
every cell; edge ``e`` follows ``EDGES`` (``op_e01, op_e02, op_e12, op_e03, op_e13, op_e23``),
columns follow ``OPS``. Inside the cells every BN is affine=False (NB201 search setting); the
mixed ops are those of :mod:`search_spaces.supernet.mixed` (no compute for 'none', shared ReLU,
mixing weight folded into the final BN). NB201 pools have no BN.

Options as :class:`~search_spaces.darts.supernet.DartsSupernet`: ``sampling`` ("softmax" |
"gumbel", with :meth:`set_temperature`), ``partial_channels`` (PC-DARTS; cells have no
reduction, so the bypass is never pooled), ``edge_norm`` (β ``[6]``, softmax over each node's
incoming edges). Sizes default to the space's ``channels`` and ``cells_per_stage``.

``derive()`` follows DARTS-on-NAS-Bench-201 practice (AutoDL ``genotype()``): each edge takes
the argmax of α over all five ops, 'none' included (NB201 archs may contain 'none'; every
edge is kept, so β does not change the result).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from automl.types import Arch, Task
from search_spaces.base import SearchSpace
from search_spaces.supernet.mixed import ScaledOp, SearchConv, channels_last_grad
from search_spaces.supernet.nodes import MixedNodes
from search_spaces.supernet.decode import k_best
from search_spaces.supernet.relax import make_mix, node_slices, node_softmax
from search_spaces.nb201.network import EDGES, OPS, ResidualReduction
from search_spaces.supernet.contract import Supernet


def nb201_search_op(name: str, channels: int, stride: int) -> nn.Module | None:
    """Search-time module of an NB201 op (BN affine=False); ``None`` for 'none'."""
    if name == "none":
        return None
    if name == "skip_connect":
        return ScaledOp(nn.Identity())
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        return SearchConv(channels, channels, stride, kernel_size=int(name[-1]), affine=False)
    if name == "avg_pool_3x3":
        return ScaledOp(nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}; known: {list(OPS)}")


class NB201Supernet(Supernet):
    """Weight-sharing NB201 network; ``forward(x) -> logits``. See the module docstring."""

    def __init__(
        self,
        space: SearchSpace,
        task: Task,
        *,
        channels: int | None = None,
        cells_per_stage: int | None = None,
        sampling: str = "softmax",
        tau: float = 10.0,
        partial_channels: int = 1,
        edge_norm: bool = False,
    ) -> None:
        super().__init__()
        if sampling not in ("softmax", "gumbel"):
            raise ValueError(f"nb201 supernet: sampling must be 'softmax' or 'gumbel', got {sampling!r}")
        c = channels if channels is not None else getattr(space, "channels", 16)
        n = cells_per_stage if cells_per_stage is not None else getattr(space, "cells_per_stage", 5)
        for name, value in (("channels", c), ("cells_per_stage", n), ("partial_channels", partial_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"nb201 supernet: {name} must be an integer >= 1, got {value!r}")
        if c % partial_channels:
            raise ValueError(f"nb201 supernet: partial_channels must divide channels={c}, got {partial_channels}")
        self.space, self.task = space, task
        self.sampling, self.tau = sampling, float(tau)
        self.nodes = node_slices(3, first_inputs=1)
        self.stem = nn.Sequential(nn.Conv2d(task.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(
                MixedNodes(OPS, c, 3, 1, nb201_search_op, partial=partial_channels) for _ in range(n)
            )
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, task.num_classes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))
        self.betas = nn.Parameter(1e-3 * torch.randn(len(EDGES))) if edge_norm else None
        self.to(memory_format=torch.channels_last)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas] if self.betas is None else [self.alphas, self.betas]

    def set_temperature(self, tau: float) -> None:
        if tau <= 0:
            raise ValueError(f"temperature must be positive, got {tau}")
        self.tau = float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = make_mix(self.alphas, self.betas, self.nodes, self.sampling, self.tau)
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        for cell in self.cells:
            x = channels_last_grad(cell([x], mix)[-1] if isinstance(cell, MixedNodes) else cell(x))
        return self.classifier(torch.flatten(self.global_pooling(self.lastact(x)), 1))

    def derive(self) -> Arch:
        """Per edge the argmax of α over all ops ('none' included), as DARTS on NAS-Bench-201."""
        best = self.alphas.detach().argmax(-1).tolist()
        return {e: OPS[k] for e, k in zip(EDGES, best, strict=True)}

    def decoded_skips(self) -> int:
        """Edges of the derived cell that are skip connections."""
        return sum(op == "skip_connect" for op in self.derive().values())

    def candidates(self, k: int = 1) -> list[Arch]:
        """The ``k`` best distinct cells by Σ log softmax(α) over the edges (best first)."""
        logp = F.log_softmax(self.alphas.detach().float(), dim=-1)
        order = torch.sort(logp, dim=-1, descending=True, stable=True).indices.tolist()
        scores = [[float(logp[e, i]) for i in row] for e, row in enumerate(order)]
        return [
            {e: OPS[order[n][i]] for n, (e, i) in enumerate(zip(EDGES, combo, strict=True))}
            for combo in k_best(scores, k)
        ]

    def arch_distributions(self) -> Mapping[str, torch.Tensor]:
        """``cell``: softmax(α) ``[6, 5]``; with edge_norm also ``edges``: softmax(β) per node."""
        with torch.no_grad():
            out: dict[str, Any] = {"cell": F.softmax(self.alphas, dim=-1).cpu()}
            if self.betas is not None:
                out["edges"] = node_softmax(self.betas, self.nodes).cpu()
        return out
