"""The ``video`` space's network: a 3D stem, three stages of catalogue video blocks, a head;
or SlowFast's two pathways joined by the catalogue ``slowfast`` block's laterals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks import create_block
from search_spaces.layers import ConvNormAct
from search_spaces.video.folding import FoldTime
from search_spaces.video.heads import make_head

STAGE_BLOCKS = ("inflated_conv3d", "r2plus1d", "mict", "fast3d", "cost", "gst", "temporal_bilinear",
                "temporal_transition", "st_attention", "conv_lstm")
INSERTS = ("none", "non_local", "gc")
PATHWAYS = ("single", "slowfast")
STAGES = 3
INSERT_FROM = 1  # non_local / gc may follow stages 2 and 3 (at stage 1 a non-local map is T·H·W² = 2k² per clip)


@dataclass(frozen=True)
class VideoArch:
    """A decoded architecture: per stage ``blocks``, ``tstrides``, ``inserts``; ``head``; ``pathway``
    with SlowFast's ``alpha`` (frame ratio) and ``beta`` (channel ratio)."""

    blocks: tuple[str, ...]
    tstrides: tuple[int, ...]
    inserts: tuple[str, ...]
    head: str
    pathway: str
    alpha: int
    beta: float


def _insert(name: str, channels: int) -> nn.Module:
    return nn.Identity() if name == "none" else FoldTime(create_block(name, channels, channels))


def _temporal_pool(tstride: int) -> nn.Module:
    """I3D's temporal max-pooling (3 frames, stride 2) after a stage, or nothing."""
    return nn.MaxPool3d((3, 1, 1), (2, 1, 1), (1, 0, 0)) if tstride == 2 else nn.Identity()


class VideoNet(nn.Module):
    """Single pathway: stem (3×5×5 conv, spatial stride 2) -> per stage the chosen block (spatial
    stride 2 from stage 2), the insert, the temporal pooling -> head. Widths ``width·(1, 2, 4)``."""

    def __init__(self, arch: VideoArch, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(STAGES)]
        self.stem = ConvNormAct(in_channels, width, (3, 5, 5), (1, 2, 2), dims=3)
        stages, c = [], width
        for i, (block, tstride, insert) in enumerate(zip(arch.blocks, arch.tstrides, arch.inserts, strict=True)):
            stages.append(nn.Sequential(create_block(block, c, widths[i], stride=1 if i == 0 else 2),
                                        _insert(insert, widths[i]), _temporal_pool(tstride)))
            c = widths[i]
        self.stages = nn.Sequential(*stages)
        self.head = make_head(arch.head, c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class SlowFastNet(nn.Module):
    """SlowFast: the slow pathway sees every ``alpha``-th frame with ``width·(1, 2, 4)`` channels, the
    fast one every frame with ``beta`` of them; each stage is the catalogue ``slowfast`` block
    (time-strided lateral fast -> slow, then one unit per pathway; slow temporal kernel 1 in stages
    1-2, 3 in stage 3, as the paper's res2-3 / res4-5), inserts follow the slow pathway (SlowFast +
    NL). The head sees the slow features concatenated with the fast ones averaged over each
    ``alpha`` frames (global pooling of this equals the paper's pooled-and-concatenated pathways)."""

    def __init__(self, arch: VideoArch, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.alpha = arch.alpha
        widths = [width * 2**i for i in range(STAGES)]
        fast = [max(1, round(w * arch.beta)) for w in widths]
        self.slow_stem = ConvNormAct(in_channels, width, (1, 5, 5), (1, 2, 2), dims=3)
        self.fast_stem = ConvNormAct(in_channels, fast[0], (5, 5, 5), (1, 2, 2), dims=3)
        blocks, inserts, c = [], [], width
        for i, insert in enumerate(arch.inserts):
            blocks.append(create_block("slowfast", c, widths[i], stride=1 if i == 0 else 2, alpha=arch.alpha,
                                       beta=arch.beta, slow_time_kernel=1 if i < 2 else 3))
            inserts.append(_insert(insert, widths[i]))
            c = widths[i]
        self.stages = nn.ModuleList(blocks)
        self.inserts = nn.ModuleList(inserts)
        self.head = make_head(arch.head, c + fast[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.alpha * (x.shape[2] // self.alpha)
        fast_in = x[:, :, :frames]
        slow, fast = self.slow_stem(fast_in[:, :, :: self.alpha]), self.fast_stem(fast_in)
        for block, insert in zip(self.stages, self.inserts, strict=True):
            slow, fast = block(slow, fast)
            slow = insert(slow)
        fused = torch.cat([slow, F.avg_pool3d(fast, (self.alpha, 1, 1))], dim=1)
        return self.head(fused)


def build_network(arch: VideoArch, in_channels: int, num_classes: int, input_size: Sequence[int], width: int) -> nn.Module:
    """The network of ``arch`` for clips ``[N, in_channels, *input_size]`` (``input_size`` = T, H, W)."""
    if len(input_size) != 3:
        raise ValueError(f"video: the task's input_size must be (T, H, W), got {tuple(input_size)}")
    if arch.pathway == "slowfast" and input_size[0] < arch.alpha:
        raise ValueError(f"video: slowfast with alpha={arch.alpha} needs at least {arch.alpha} frames, "
                         f"the task has {input_size[0]}")
    net = SlowFastNet if arch.pathway == "slowfast" else VideoNet
    return net(arch, in_channels, num_classes, width)
