"""The context module of ``seg-unet``: one catalogue block on the deepest encoder features.

Every choice keeps the bottom's channels. ``context_enhancement`` (ThunderNet's CEM) takes two
levels, C4 = the level above the bottom and C5 = the bottom, and returns C4's resolution, so the
decoder's deepest step then merges at an unchanged size. ``mhsa`` and ``self_attention`` are the
attention sublayers alone, so they are added to their input (the Transformer's and SAN's
residual); SAN's 7x7 footprint is 3x3 here (7x7 costs 15x more on a 16 px bottom). ASPP's rates are DeepLab's 6/12/18 scaled to the 4-16 px bottoms of 32 px inputs;
its and PPM's pooled branches use GroupNorm so that batch-1 training works.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.blocks import create_block

CONTEXTS: tuple[str, ...] = (
    "none", "aspp", "ppm", "fpa", "gc", "non_local", "context_enhancement", "mhsa", "self_attention", "se",
    "spatial_attention_module",
)
ASPP_RATES = (2, 4, 6)
SAN_FOOTPRINT = 3


class Residual(nn.Module):
    """``x + block(x)``."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def context_block(name: str, channels: int, above: int) -> nn.Module:
    """The context module ``name`` for a bottom of ``channels`` (``above``: the level above's)."""
    if name == "none":
        return nn.Identity()
    if name == "aspp":
        return create_block("aspp", channels, channels, rates=ASPP_RATES, pool_norm="gn")
    if name == "ppm":
        return create_block("ppm", channels, channels, pool_norm="gn")
    if name == "context_enhancement":
        return create_block(name, above, channels, c5_channels=channels)
    if name == "self_attention":
        return Residual(create_block(name, channels, channels, kernel_size=SAN_FOOTPRINT))
    if name == "mhsa":
        return Residual(create_block(name, channels, channels))
    if name in CONTEXTS:
        return create_block(name, channels, channels)
    raise ValueError(f"unknown context module {name!r}; accepted: {', '.join(CONTEXTS)}")


class Context(nn.Module):
    """``forward(above, bottom)``: the new bottom (at ``above``'s size for the two-level CEM)."""

    def __init__(self, name: str, channels: int, above: int) -> None:
        super().__init__()
        self.two_levels = name == "context_enhancement"
        self.block = context_block(name, channels, above)

    def forward(self, above: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        if self.two_levels:
            return self.block(above, bottom)
        return self.block(bottom)
