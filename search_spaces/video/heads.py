"""Clip classification heads: ``[N, C, T, H, W]`` features -> ``[N, num_classes]`` logits."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.blocks import create_block
from search_spaces.video.folding import FoldTime

HEADS = ("pool", "attention_cluster", "attentional_pool")
CLUSTER_HEADS = 8  # attention units of the attention_cluster head (the catalogue block's default)


class PoolHead(nn.Module):
    """Global average pooling over T, H, W and a linear classifier (I3D, SlowFast)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3, 4)))


class ClusterHead(nn.Module):
    """The catalogue ``attention_cluster`` (attention units pooling the frame features) + linear."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.cluster = create_block("attention_cluster", channels, channels, heads=CLUSTER_HEADS)
        self.fc = nn.Linear(CLUSTER_HEADS * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cluster(x))


def make_head(name: str, channels: int, num_classes: int) -> nn.Module:
    """``pool``, ``attention_cluster`` or ``attentional_pool`` (the catalogue block's class scores
    over all T·H·W features, :class:`FoldTime`)."""
    if name == "pool":
        return PoolHead(channels, num_classes)
    if name == "attention_cluster":
        return ClusterHead(channels, num_classes)
    if name == "attentional_pool":
        return FoldTime(create_block("attentional_pool", channels, num_classes))
    raise ValueError(f"video: head must be one of {', '.join(HEADS)}, got {name!r}")
