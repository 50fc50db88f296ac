"""The encoder of ``seg-unet``: a stem, then one block per level, a 2x2 max-pool between levels.

Every level block maps ``[N, c_in, H, W]`` to ``[N, c_out, H, W]`` (stride 1; the pool before it
halves the resolution, ``ceil_mode`` so odd sizes work). Choices (:data:`ENCODER_BLOCKS`):

* ``conv3``: U-Net's 3x3 conv-BN-ReLU (:class:`ConvNormAct`), the unit of the ``unet`` preset;
* ``residual``: the ResNet basic block (two 3x3 convs, projection shortcut when widening);
* ``octave_conv``: two octave convolutions (alpha 0.5) with one-tensor IO, see :class:`OctaveUnit`;
* ``deform_conv``, ``fickle_conv``, ``shift_conv``, ``ternary_conv``: the catalogue's conv-layer
  replacements followed by BN and ReLU (they have none of their own);
* every other value: the catalogue block of that name (``create_block(name, c_in, c_out)``).
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.blocks import create_block
from search_spaces.blocks._multiscale_ops import BasicBlock
from search_spaces.layers import ConvNormAct, create_act, create_norm

ENCODER_BLOCKS: tuple[str, ...] = (
    "conv3", "conv", "sep_conv", "dil_conv", "factorized_conv", "inception", "residual", "dense_block",
    "hda", "octave_conv", "deform_conv", "blaze", "double_blaze", "gated_residual", "fickle_conv",
    "shift_conv", "ternary_conv",
)
CONV_LAYERS: frozenset[str] = frozenset({"deform_conv", "fickle_conv", "shift_conv", "ternary_conv"})


class OctaveUnit(nn.Module):
    """Octave convolution with one tensor in and out (OctConv, Chen et al. 2019).

    A first octave conv splits the features into high and low frequency (``alpha_in=0``,
    ``alpha_out=alpha``, as the paper's first layer), each part gets BN and ReLU, and a second
    one merges them back (``alpha_in=alpha``, ``alpha_out=0``, as its last layer), then BN-ReLU.
    """

    def __init__(self, c_in: int, c_out: int, alpha: float = 0.5) -> None:
        super().__init__()
        self.split = create_block("octave_conv", c_in, c_out, alpha_in=0.0, alpha_out=alpha)
        c_low = int(alpha * c_out)
        self.high = nn.Sequential(create_norm("bn", c_out - c_low), create_act("relu"))
        self.low = nn.Sequential(create_norm("bn", c_low), create_act("relu"))
        self.merge = create_block("octave_conv", c_out, c_out, alpha_in=alpha, alpha_out=0.0)
        self.out = nn.Sequential(create_norm("bn", c_out), create_act("relu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high, low = self.split(x)
        y, _ = self.merge(self.high(high), None if low is None else self.low(low))
        return self.out(y)


def level_block(name: str, c_in: int, c_out: int) -> nn.Module:
    """The block ``name`` of :data:`ENCODER_BLOCKS` from ``c_in`` to ``c_out`` channels, stride 1."""
    if name == "conv3":
        return ConvNormAct(c_in, c_out, 3)
    if name == "residual":
        return BasicBlock(c_in, c_out)
    if name == "octave_conv":
        return OctaveUnit(c_in, c_out)
    if name in CONV_LAYERS:
        return ConvNormAct(c_in, c_out, conv=create_block(name, c_in, c_out))
    if name in ENCODER_BLOCKS:
        return create_block(name, c_in, c_out)
    raise ValueError(f"unknown encoder block {name!r}; accepted: {', '.join(ENCODER_BLOCKS)}")


class Encoder(nn.Module):
    """Stem (3x3 conv-BN-ReLU, or CoordConv-style with ``coord``), then the level blocks;
    ``forward`` returns every level's output, finest first."""

    def __init__(self, in_channels: int, widths: list[int], blocks: list[str], coord: bool) -> None:
        super().__init__()
        stem_conv = create_block("coord_channels", in_channels, widths[0], kernel_size=3) if coord else None
        self.stem = ConvNormAct(in_channels, widths[0], 3, conv=stem_conv)
        self.levels = nn.ModuleList(
            level_block(block, widths[max(i - 1, 0)], widths[i]) for i, block in enumerate(blocks)
        )
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats: list[torch.Tensor] = []
        for i, level in enumerate(self.levels):
            if i > 0:
                x = self.pool(x)
            x = level(x)
            feats.append(x)
        return feats
