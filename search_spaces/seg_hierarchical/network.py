"""The standalone Auto-DeepLab segmentation network of one discrete architecture.

Retrain layout (docs/algorithms.md §5, TF ``nas_network.hnasnet``): a stem of three 3x3 convs
(strides 2, 1, 2; 64/64/128 filters by default) to stride 4 (``stem_stride`` 2 or 1 drops the
last or both strides, for small images; levels then run at ``stem_stride`` x 1..8), then one cell per layer at the
path's level (block channels ``F * s / 4``, cell output = concat of the B blocks), a 5-branch
ASPP (1x1, rates ``aspp_rates`` x 16/s, image pooling; see ``blocks.multiscale.aspp_rates_at``
for inputs smaller than DeepLab's 513-pixel crops) on the last cell, and optionally a
DeepLabv3+ decoder: the last stride-4 feature of the path (the last level-0 cell, else the
stem; TF uses ``Cell_2`` for the published path) -> 1x1 conv to 48, concatenated with the
upsampled ASPP output, two 3x3 convs. A 1x1 classifier and a bilinear resize give logits at
the input size. Cells receive H(l-1) and H(l-2) through :class:`~.ops.Preprocess` (layer 0:
H(l-2) is the stem's stride-2 feature, as in TF).

Deviations from TF, to build exactly the ops the supernet searched: atrous ops are rate-2
depthwise-separable convs (TF: full atrous convs; at F = 20 the published architecture has
6.4M parameters here against Auto-DeepLab-S's 10.15M), and moving to a coarser level is a
3x3 stride-2 conv before the cell (TF strides the cell's ops).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks.multiscale import ASPP
from search_spaces.layers import ConvNormAct
from search_spaces.seg_hierarchical.genotype import Block
from search_spaces.seg_hierarchical.ops import Preprocess, level_sizes, make_op, stem_strides


class Cell(nn.Module):
    """B blocks, each op(input) + op(input); output = concat of the blocks."""

    def __init__(self, cell: Sequence[Block], channels: int, c_prev: int, c_prev_prev: int, prev_kind: str) -> None:
        super().__init__()
        self.pre_prev = Preprocess(c_prev, channels, prev_kind)
        self.pre_prev_prev = Preprocess(c_prev_prev, channels, "1x1")
        self.inputs = [(i, j) for (_, i), (_, j) in cell]
        self.ops = nn.ModuleList(make_op(op, channels) for block in cell for op, _ in block)

    def forward(self, prev_prev: torch.Tensor, prev: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        states = [self.pre_prev_prev(prev_prev, size), self.pre_prev(prev, size)]
        for k, (i, j) in enumerate(self.inputs):
            states.append(self.ops[2 * k](states[i]) + self.ops[2 * k + 1](states[j]))
        return torch.cat(states[2:], dim=1)


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabv3+ decoder: 1x1 low-level projection (48), concat with upsampled high, two 3x3 convs."""

    def __init__(self, c_high: int, c_low: int, c_out: int = 256, c_low_proj: int = 48) -> None:
        super().__init__()
        self.low = ConvNormAct(c_low, c_low_proj, 1)
        self.fuse = nn.Sequential(ConvNormAct(c_high + c_low_proj, c_out, 3), ConvNormAct(c_out, c_out, 3))

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([high, self.low(low)], dim=1))


class SegHierarchicalNet(nn.Module):
    """A discrete Auto-DeepLab network: ``[N, C, H, W] -> [N, num_classes, H, W]`` for any H, W.

    ``input_size`` (the H, W it is built for; optional) only sets the ASPP rates of small inputs.
    """

    def __init__(
        self,
        cell: Sequence[Block],
        path: Sequence[int],
        in_channels: int = 3,
        num_classes: int = 19,
        filter_multiplier: int = 20,
        stem_channels: Sequence[int] = (64, 64, 128),
        aspp_rates: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
        decoder: bool = True,
        stem_stride: int = 4,
        input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        c0, c1, c2 = stem_channels
        s0, s2 = stem_strides(stem_stride)
        blocks = len(cell)
        self.path = [int(p) for p in path]
        self.stem0 = ConvNormAct(in_channels, c0, 3, s0)
        self.stem1 = ConvNormAct(c0, c1, 3, act=None)
        self.stem2 = nn.Sequential(nn.ReLU(inplace=False), ConvNormAct(c1, c2, 3, s2, act=None))
        widths = [c1, c2]  # channels of H(l-2), H(l-1) before layer 0
        prev_level = 0
        cells = []
        for level in self.path:
            kind = "stride2" if level == prev_level + 1 else "1x1"
            channels = filter_multiplier * 2**level
            cells.append(Cell(cell, channels, widths[-1], widths[-2], kind))
            widths.append(blocks * channels)
            prev_level = level
        self.cells = nn.ModuleList(cells)
        last = self.path[-1]
        self.aspp = ASPP.deeplab_v3(widths[-1], aspp_channels, stem_stride * 2**last, rates=aspp_rates,
                                     input_size=input_size)
        self.low_index = max((l for l, s in enumerate(self.path) if s == 0), default=-1)
        c_low = widths[2 + self.low_index] if self.low_index >= 0 else c2
        self.decoder = DeepLabV3PlusDecoder(aspp_channels, c_low, aspp_channels) if decoder else None
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        prev_prev = self.stem1(self.stem0(x))
        prev = self.stem2(prev_prev)
        sizes = level_sizes(prev.shape[-2:])
        low = prev
        for l, (cell, level) in enumerate(zip(self.cells, self.path)):
            prev_prev, prev = prev, cell(prev_prev, prev, sizes[level])
            if l == self.low_index:
                low = prev
        y = self.aspp(prev)
        if self.decoder is not None:
            y = self.decoder(y, low)
        return F.interpolate(self.classifier(y), size=size, mode="bilinear", align_corners=False)
