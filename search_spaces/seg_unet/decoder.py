"""The decoder of ``seg-unet``: from the bottom up, one step per level merges the level below with
that level's skip (:mod:`.skips`), or the catalogue's FPN replaces the steps.

Aggregations (:data:`AGGREGATIONS`) of a step at level ``i`` (``c`` = the level's width):

* ``concat``: U-Net's step: 1x1 reduce of the level below to ``c``, nearest upsampling to the
  skip's size, concatenation with the skip, 3x3 conv-BN-ReLU (the ``unet`` preset's decoder);
* ``sum``: FPN's merge: the reduced, upsampled level below plus a 1x1 lateral of the skip, then a
  3x3 conv-BN-ReLU;
* ``ida``: Deep Layer Aggregation's iterative aggregation node (catalogue ``ida``: projections,
  bilinear upsampling, ``N(below, skip)`` = ReLU(BN(1x1 conv of the concat)));
* ``hda``: the concatenation merged by a hierarchical aggregation tree (catalogue ``hda``,
  one level: two basic blocks and an aggregation root);
* ``fpn``: Panoptic FPN's semantic branch over all levels (catalogue ``fpn``: lateral 1x1s,
  top-down sums, 3x3 outputs of ``2 * width`` channels, the semantic head's upsampling stages
  summed at level 0 with ``width`` channels); the skip types are then unused (FPN's laterals are
  its skips).

A ``gau`` skip is the whole step at its level (PAN's decoder), whatever the aggregation.
Decoders return their outputs deepest first; the last (level 0, ``width`` channels) feeds the head,
the others the deep-supervision heads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces.blocks import create_block
from search_spaces.layers import ConvNormAct
from search_spaces.seg_unet.skips import Skip

AGGREGATIONS: tuple[str, ...] = ("concat", "sum", "ida", "hda", "fpn")


def upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to ``like``'s exact H x W."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class Merge(nn.Module):
    """Aggregation ``kind`` of the level below (``c_below``) and a skip (``c_skip``, 0: none)."""

    def __init__(self, kind: str, c_skip: int, c_below: int, c_out: int) -> None:
        super().__init__()
        if kind not in AGGREGATIONS or kind == "fpn":
            raise ValueError(f"unknown decoder step {kind!r}; accepted: concat, sum, ida, hda")
        self.kind = kind
        if kind == "ida":
            channels = [c_skip, c_below] if c_skip else [c_below]
            self.block = create_block("ida", c_out, c_out, in_channels=channels, num_levels=len(channels))
            return
        self.reduce = nn.Conv2d(c_below, c_out, 1, bias=False)
        self.lateral = nn.Conv2d(c_skip, c_out, 1) if kind == "sum" and c_skip else None
        c_in = c_out if kind == "sum" else c_out + c_skip
        self.block = ConvNormAct(c_in, c_out, 3) if kind != "hda" else create_block("hda", c_in, c_out, levels=1)

    def forward(self, skip: torch.Tensor | None, below: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.kind == "ida":
            return self.block(skip, below) if skip is not None else self.block(upsample(below, like))
        x = upsample(self.reduce(below), like)
        if skip is None:
            return self.block(x)
        if self.lateral is not None:
            return self.block(x + self.lateral(skip))
        return self.block(torch.cat([x, skip], dim=1))


class Step(nn.Module):
    """One decoder level: its skip, then the merge (or PAN's GAU for a ``gau`` skip)."""

    def __init__(self, level: int, skip: str, aggregation: str, channels: list[int]) -> None:
        super().__init__()
        self.level, self.gau = level, skip == "gau"
        c, c_below = channels[level], channels[level + 1]
        if self.gau:
            self.block: nn.Module = create_block("gau", c, c, high_channels=c_below)
        else:
            self.skip = Skip(skip, level, channels, c_below)
            self.block = Merge(aggregation, self.skip.out_channels, c_below, c)

    def forward(self, feats: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        if self.gau:
            return self.block(feats[self.level], below)
        return self.block(self.skip(feats, below), below, feats[self.level])


class UDecoder(nn.Module):
    """The U-shaped decoder: steps from level D-2 up to level 0."""

    def __init__(self, skips: list[str], aggregation: str, channels: list[int]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(
            Step(level, skips[level], aggregation, channels) for level in range(len(channels) - 2, -1, -1)
        )
        self.out_channels = channels[::-1]

    def forward(self, feats: list[torch.Tensor], bottom: torch.Tensor) -> list[torch.Tensor]:
        outs = [bottom]
        for step in self.steps:
            outs.append(step(feats, outs[-1]))
        return outs


class FpnDecoder(nn.Module):
    """Panoptic FPN's semantic branch: pyramid levels D-1..1 (deep supervision), then the semantic map."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        width = channels[0]
        self.fpn = create_block(
            "fpn", width, 2 * width, in_channels=channels, num_levels=len(channels), semantic_channels=width
        )
        self.out_channels = [2 * width] * (len(channels) - 1) + [width]

    def forward(self, feats: list[torch.Tensor], bottom: torch.Tensor) -> list[torch.Tensor]:
        levels, semantic = self.fpn(*feats[:-1], bottom)  # FPN resamples to exact sizes (CEM's too)
        return [*levels[:0:-1], semantic]


def make_decoder(skips: list[str], aggregation: str, channels: list[int]) -> nn.Module:
    """The decoder for ``aggregation`` over encoder levels of ``channels`` (finest first)."""
    if aggregation == "fpn":
        return FpnDecoder(channels)
    return UDecoder(skips, aggregation, channels)
