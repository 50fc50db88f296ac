"""Cell operations and the resampling preprocessors shared by the supernet and the built network.

A cell at stride s works with ``C = F * s / 4`` channels per block. Each of its inputs is first
brought to ``C`` channels and the cell's spatial size by a :class:`Preprocess`:

* ``"stride2"`` — from the finer level: ReLU -> 3x3 conv, stride 2 -> BN (Auto-DeepLab: "downsample
  with a stride-2 conv"; the official TF retrain net instead strides the cell's ops);
* ``"1x1"`` — the same level, the coarser level or H(l-2) at any level: ReLU -> 1x1 conv ->
  bilinear resize to the cell's size when it differs -> BN (the paper's "bilinear + 1x1 conv";
  the 1x1 conv runs before the resize, which is exact since both are linear, and costs 4x less).

The built network ends each preprocessor with ordinary BatchNorm; the search supernet builds
them with ``norm=False`` and applies its search BN (batch statistics, no affine, per transition)
after stacking a node's inputs, see :func:`.mixed.search_bn`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks.registry import create_block


class Preprocess(nn.Module):
    """ReLU -> conv (1x1, or 3x3 stride 2) -> resize to ``size`` if needed -> BN (if ``norm``)."""

    def __init__(self, c_in: int, c_out: int, kind: str = "1x1", norm: bool = True) -> None:
        super().__init__()
        if kind not in ("1x1", "stride2"):
            raise ValueError(f"preprocess kind must be '1x1' or 'stride2', got {kind!r}")
        self.kind = kind
        if kind == "stride2":
            self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.conv(F.relu(x))
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.bn(y)


def make_op(name: str, channels: int, affine: bool = True) -> nn.Module:
    """One discrete cell op at stride 1 (``zero`` is not a discrete op)."""
    if name == "sep_conv_3x3":
        return create_block("sep_conv", channels, channels, kernel_size=3, affine=affine)
    if name == "sep_conv_5x5":
        return create_block("sep_conv", channels, channels, kernel_size=5, affine=affine)
    if name == "atrous_conv_3x3":
        return create_block("dil_conv", channels, channels, kernel_size=3, rate=2, affine=affine)
    if name == "atrous_conv_5x5":
        return create_block("dil_conv", channels, channels, kernel_size=5, rate=2, affine=affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name == "skip_connect":
        return nn.Identity()
    raise ValueError(f"unknown seg-hierarchical cell op {name!r}")


STEM_STRIDES = (4, 2, 1)


def stem_strides(stem_stride: int) -> tuple[int, int]:
    """Strides of the stem's two strided convs for an overall ``stem_stride`` (4: Auto-DeepLab's
    2, 2; 2: 2, 1; 1: 1, 1)."""
    return {4: (2, 2), 2: (2, 1), 1: (1, 1)}[stem_stride]


def level_sizes(size: tuple[int, int] | torch.Size, levels: int = 4) -> list[tuple[int, int]]:
    """Spatial sizes of levels 0..levels-1 from the level-0 size (ceil halving, as stride-2 convs)."""
    h, w = int(size[0]), int(size[1])
    out = [(h, w)]
    for _ in range(levels - 1):
        h, w = -(-h // 2), -(-w // 2)
        out.append((h, w))
    return out
