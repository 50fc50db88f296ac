"""Skip connections of ``seg-unet``: what level ``i``'s encoder features become before merging.

Skip types (:data:`SKIPS`), for level ``i`` of a network of depth ``D`` (levels 0..D-1):

* ``none``: no skip (the decoder step sees only the level below);
* ``concat``: the encoder features as they are (U-Net);
* ``nested``: UNet++'s nested nodes X(i,0..d-1), d = D-1-i, from the catalogue's ``nested_skip``
  over encoder levels i..D-2, concatenated (the decoder step is then UNet++'s X(i,d));
* ``attention_gate``: Attention U-Net's gate, the level below gating the skip;
* ``gau``: PAN's global attention upsample; it *is* the decoder step (no aggregation);
* ``gated_shape_stream``: Gated-SCNN's shape stream on level i gated by levels i+1..D-1; its
  shape features and edge map are concatenated (GSCNN fuses the edge map into the decoder).
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.blocks import create_block

SKIPS: tuple[str, ...] = ("none", "concat", "nested", "attention_gate", "gau", "gated_shape_stream")


class NestedPath(nn.Module):
    """UNet++ nested skip of one level: X(i,0..d-1) from encoder levels i..i+d-1 (``channels``)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.nested = create_block("nested_skip", channels[0], 1, depth=len(channels) - 1, in_channels=channels)
        self.nested.heads = nn.ModuleDict()  # the network's decoder and heads follow
        self.out_channels = channels[0] * len(channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.nested.nodes(*feats)
        return torch.cat([x[(0, j)] for j in range(len(feats))], dim=1)


class ShapeStream(nn.Module):
    """Gated-SCNN shape stream of one level: level i gated by the deeper ``channels[1:]`` levels.

    Widths halve from ``channels[0] / 2`` per gate (GSCNN: 64 -> 32, 16, 8)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        gates = len(channels) - 1
        width = max(1, channels[0] // 2**gates)
        self.stream = create_block("gated_shape_stream", channels[0], width, in_channels=channels, num_gates=gates)
        self.out_channels = width + 1

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        shape, edge = self.stream(*feats)
        return torch.cat([shape, edge], dim=1)


class Skip(nn.Module):
    """Skip type ``kind`` of ``level``: ``forward(feats, below)`` gives the features the decoder step
    merges (None for ``none``); ``out_channels`` their channels. ``gau`` is built by the step."""

    def __init__(self, kind: str, level: int, channels: list[int], c_below: int) -> None:
        super().__init__()
        if kind not in SKIPS or kind == "gau":
            raise ValueError(f"unknown skip {kind!r}; accepted: {', '.join(s for s in SKIPS if s != 'gau')}")
        self.kind, self.level = kind, level
        c = channels[level]
        self.block: nn.Module = nn.Identity()
        self.out_channels = 0 if kind == "none" else c
        if kind == "nested":
            self.block = NestedPath(channels[level:-1])
            self.out_channels = self.block.out_channels
        elif kind == "gated_shape_stream":
            self.block = ShapeStream(channels[level:])
            self.out_channels = self.block.out_channels
        elif kind == "attention_gate":
            self.block = create_block("attention_gate", c, c, gating_channels=c_below)

    def forward(self, feats: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor | None:
        if self.kind == "none":
            return None
        if self.kind == "nested":
            return self.block(feats[self.level : len(feats) - 1])
        if self.kind == "gated_shape_stream":
            return self.block(feats[self.level :])
        if self.kind == "attention_gate":
            return self.block(feats[self.level], below)
        return feats[self.level]
