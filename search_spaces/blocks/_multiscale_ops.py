"""Helpers shared by the blocks of ``multiscale.py`` (not registered blocks themselves).

Exact-size resampling, an export-friendly adaptive average pooling, the ResNet basic block and
the Deep Layer Aggregation node; the conv-norm-act unit is :class:`search_spaces.layers.ConvNormAct`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.layers import ConvNormAct, same_padding


def resize(
    x: torch.Tensor, size: Sequence[int], mode: str = "bilinear", align_corners: bool = False
) -> torch.Tensor:
    """Resample ``x`` to exactly ``size`` (H, W); a no-op when it already has that size."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


def ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def _pool_matrix(n: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """[bins, n] averaging matrix with torch's adaptive-pool windows [floor(i n/b), ceil((i+1) n/b))."""
    i = torch.arange(bins, device=like.device).unsqueeze(1)
    j = torch.arange(n, device=like.device).unsqueeze(0)
    start = torch.div(i * n, bins, rounding_mode="floor")
    end = torch.div((i + 1) * n + bins - 1, bins, rounding_mode="floor")
    inside = ((j >= start) & (j < end)).to(like.dtype)
    return inside / (end - start).to(like.dtype)


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` as two matrix products (same windows, any H and W).

    Export-friendly: ONNX has no adaptive pooling, and the exporter's decomposition of a window
    size that does not divide H or W unrolls into hundreds of Gather/Add nodes; this form is two
    MatMuls per call with constant averaging matrices.
    """
    ph = _pool_matrix(x.shape[-2], bins, x)
    pw = _pool_matrix(x.shape[-1], bins, x)
    return torch.matmul(torch.matmul(ph, x), pw.transpose(0, 1))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus residual, ReLU.

    ``forward(x, residual=None)``: the residual defaults to ``x`` (through a 1x1 strided
    projection when the shape changes); Deep Layer Aggregation passes its own residual and
    builds the block with ``shortcut=False``.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1, shortcut: bool = True
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(c_in, c_out, 3, stride=stride, dilation=dilation),
            ConvNormAct(c_out, c_out, 3, dilation=dilation, act=None),
        )
        self.shortcut: nn.Module = nn.Identity()
        if shortcut and (stride != 1 or c_in != c_out):
            self.shortcut = ConvNormAct(c_in, c_out, 1, stride=stride, act=None)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is None:
            residual = self.shortcut(x)
        return F.relu(self.body(x) + residual)


class AggregationNode(nn.Module):
    """Deep Layer Aggregation node: ``ReLU(BN(conv(concat(inputs))) [+ inputs[0]])``.

    The paper's N(x1..xn) = sigma(BN(sum_i W_i x_i + b) [+ x_n]); as in the DLA code (``Root``) the
    residual adds the first input, which callers pass as the deepest one. ``kernel_size`` is 1 in
    the paper; the conv has no bias because BN follows.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, residual: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=same_padding(kernel_size), bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.residual = residual

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(torch.cat(inputs, dim=1)))
        if self.residual:
            y = y + inputs[0]
        return F.relu(y)


def features_arg(features: tuple, expected: int, name: str) -> list[torch.Tensor]:
    """Accept ``block(f0, f1, ...)`` or ``block([f0, f1, ...])``; check the count."""
    if len(features) == 1 and isinstance(features[0], (list, tuple)):
        features = tuple(features[0])
    if len(features) != expected:
        raise ValueError(f"{name} expects {expected} feature maps (finest first), got {len(features)}")
    return list(features)


def pyramid_channels(c_in: int, levels: int, in_channels: Sequence[int] | None) -> list[int]:
    """Channels of an input pyramid: ``in_channels`` or, by default, c_in doubling per level."""
    if in_channels is None:
        return [c_in * 2**i for i in range(levels)]
    if len(in_channels) != levels:
        raise ValueError(f"in_channels has {len(in_channels)} entries for {levels} levels")
    return [int(c) for c in in_channels]


def pyramid_example(levels: int):
    """Example factory: a pyramid finest first, channels c_in * 2**i at ceil(H / 2**i)."""

    def example(c_in: int, batch: int, height: int, width: int, frames: int) -> tuple[torch.Tensor, ...]:
        return tuple(
            torch.randn(batch, c_in * 2**i, ceil_div(height, 2**i), ceil_div(width, 2**i))
            for i in range(levels)
        )

    return example


def only_unit(name: str, stride: int, dilation: int | None = 1) -> None:
    """Raise for a stride (or dilation, unless ``None``) that the block has no use for."""
    if stride != 1:
        raise ValueError(f"{name} has no stride (got stride={stride})")
    if dilation is not None and dilation != 1:
        raise ValueError(f"{name} has no dilation (got dilation={dilation})")
