"""The NAS-Bench-201 macro network for one cell genotype.

Stem conv 3x3 (16) + BN, three stages of N=5 cells at C = 16, 32, 64 separated by residual
reduction blocks, BN + ReLU, global average pool, linear classifier — the ``TinyNetwork`` /
``InferCell`` skeleton of NAS-Bench-201, whose parameter and FLOP counts the published table
uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.blocks.ops import ReLUConvBN, Zero

# Edge order of the official arch string: (0->1), (0->2), (1->2), (0->3), (1->3), (2->3).
EDGE_LIST: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Decision names follow the op_eIJ columns of the NB201 tables: edge from node I to node J.
EDGES: tuple[str, ...] = tuple(f"op_e{i}{j}" for i, j in EDGE_LIST)


def make_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 candidate op at stride 1 with ``channels`` in and out."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}")


class NB201Cell(nn.Module):
    """A 4-node DAG cell: node j = sum over i < j of op_(i->j)(node i); output = node 3."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = EDGE_LIST
        self.ops = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            acc = None
            for (src, dst), op in zip(self.edges, self.ops, strict=True):
                if dst == j:
                    out = op(nodes[src])
                    acc = out if acc is None else acc + out
            nodes.append(acc)
        return nodes[3]


class ResidualReduction(nn.Module):
    """NAS-Bench-201 ``ResNetBasicblock`` at stride 2: two ReLU-Conv-BN + avgpool/1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """NAS-Bench-201 ``TinyNetwork`` with a fixed cell: ``[N, C, H, W] -> [N, num_classes]``.

    ``ops`` is the cell's six edge ops; a list of three such lists gives each stage its own
    cell (used to measure ops in context for latency look-up tables).
    """

    def __init__(
        self,
        ops: Sequence[str] | Sequence[Sequence[str]],
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        cells_per_stage: int = 5,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        per_stage = [list(ops)] * 3 if isinstance(ops[0], str) else [list(o) for o in ops]
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(NB201Cell(per_stage[stage], c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))
