"""``seg-unet``: a small U-Net-like encoder-decoder space for testing segmentation search.

U-Net (Ronneberger et al., 2015) shape: a stem, ``depth`` encoder stages (each after the
first halves the resolution with a 2x2 max-pool, ``ceil_mode`` so odd sizes work) that double
the width, then a decoder that upsamples to each skip's exact size (bilinear), optionally
concatenates the skip, and fuses with a 3x3 conv. Decisions:

* ``depth`` {1, 2, 3}: encoder stages; ``width`` {8, 16, 24}: channels of the first stage;
* ``block1..block3`` {conv3, sep3, dil3}: each stage's block (plain 3x3, depthwise-separable
  3x3 as in MobileNet, 3x3 with dilation 2 as in DeepLab); stages beyond ``depth`` are unused;
* ``skip`` {on, off}: U-Net skip connections from encoder to decoder.

``build`` returns a plain ``nn.Module`` mapping ``[N, C, H, W]`` to ``[N, num_classes, H, W]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace

MAX_DEPTH = 3
BLOCKS = ("conv3", "sep3", "dil3")


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int = 3, dilation: int = 1, groups: int = 1) -> list[nn.Module]:
    padding = dilation * (kernel_size - 1) // 2
    return [
        nn.Conv2d(c_in, c_out, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


def make_block(name: str, c_in: int, c_out: int) -> nn.Sequential:
    """One stage block: ``conv3``, ``sep3`` (depthwise 3x3 + pointwise 1x1) or ``dil3``."""
    if name == "conv3":
        return nn.Sequential(*conv_bn_relu(c_in, c_out))
    if name == "sep3":
        return nn.Sequential(*conv_bn_relu(c_in, c_in, groups=c_in), *conv_bn_relu(c_in, c_out, 1))
    if name == "dil3":
        return nn.Sequential(*conv_bn_relu(c_in, c_out, dilation=2))
    raise ValueError(f"unknown block {name!r}; accepted: {BLOCKS}")


class Up(nn.Module):
    """Decoder step: 1x1 reduce, nearest upsampling to the skip's size, concat (optional), 3x3 fuse."""

    def __init__(self, c_in: int, c_out: int, skip: bool) -> None:
        super().__init__()
        self.skip = skip
        self.reduce = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.fuse = nn.Sequential(*conv_bn_relu(c_out * (2 if skip else 1), c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="nearest")
        return self.fuse(torch.cat([x, skip], 1) if self.skip else x)


class SegUNet(nn.Module):
    """The built network of :class:`SegUNetSpace` (no search machinery inside)."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, width: int, blocks: list[str], skip: bool) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth)]
        self.stem = nn.Sequential(*conv_bn_relu(in_channels, width))
        self.encoder = nn.ModuleList(make_block(blocks[i], widths[max(i - 1, 0)], widths[i]) for i in range(depth))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.decoder = nn.ModuleList(Up(widths[i], widths[i - 1], skip) for i in range(depth - 1, 0, -1))
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        skips: list[torch.Tensor] = []
        for i, stage in enumerate(self.encoder):
            if i > 0:
                skips.append(x)
                x = self.pool(x)
            x = stage(x)
        for i, up in enumerate(self.decoder):
            x = up(x, skips[len(skips) - 1 - i])
        x = self.head(x)
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


class SegUNetSpace(SearchSpace):
    """Small U-Net-like segmentation space (486 architectures) for tests and examples."""

    name: ClassVar[str] = "seg-unet"
    description: ClassVar[str] = "small U-Net-like encoder-decoder: depth, width, block per stage, skips"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions"})
    default_task: ClassVar[Task] = Task(kind="segmentation", in_channels=3, input_size=(32, 32), num_classes=5)

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """``unet``: the plain U-Net of this space (depth 3, width 24, 3x3 convs, skips) — the
        reference the segmentation searches are measured against."""
        return {"unet": {"depth": 3, "width": 24, "block1": "conv3", "block2": "conv3", "block3": "conv3", "skip": "on"}}

    def decisions(self) -> list[Decision]:
        return [
            Decision("depth", (1, 2, 3)),
            Decision("width", (8, 16, 24)),
            *(Decision(f"block{i + 1}", BLOCKS) for i in range(MAX_DEPTH)),
            Decision("skip", ("on", "off")),
        ]

    def build(self, arch: Arch, task: Task | None = None) -> nn.Module:
        arch = self.validate(arch)
        task = task or self.default_task
        if task.kind != "segmentation" or len(task.input_size) != 2:
            raise ValueError(f"{self.name}: builds 2D segmentation networks, not a {task.kind} task {task.input_size}")
        return SegUNet(
            in_channels=task.in_channels,
            num_classes=task.num_classes,
            depth=int(arch["depth"]),
            width=int(arch["width"]),
            blocks=[str(arch[f"block{i + 1}"]) for i in range(MAX_DEPTH)],
            skip=arch["skip"] == "on",
        )

