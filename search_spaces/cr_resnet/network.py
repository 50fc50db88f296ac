"""The ResNet backbone and heads of the ``cr-resnet`` space.

Width rule: stage s in 1..4 has inner width ``width * 2**(s-1)`` (a bottleneck block outputs 4x
that, a basic block exactly that) and stages 2-4 halve the resolution in their first block
(stride 2 on the 3x3 conv). Channels double while the area quarters, so every block after a
stage's first costs the same FLOPs in every stage, and moving blocks between stages (CR-NAS)
keeps the total FLOPs about constant.

Module names: ``stem``, ``stages.<s>.<i>`` (s = 0..3, block i of the stage), ``head``. A
supernet holding more blocks per stage has the same names, so the network of an allocation is
the supernet with some blocks left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks._multiscale_ops import BasicBlock, resize
from search_spaces.blocks.multiscale import ASPP, FPN
from search_spaces.layers import ConvNormAct

BLOCKS = ("bottleneck", "basic")
HEADS = ("fpn", "aspp")
STEM_STRIDES = (1, 2, 4)
EXPANSION = {"bottleneck": 4, "basic": 1}


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce -> 3x3 (stride, dilation d, padding d) -> 1x1 expand x4.

    BN after every conv, ReLU after the first two and after the residual sum; the shortcut is a
    strided 1x1 projection + BN when the shape changes, else the identity.
    """

    def __init__(
        self, c_in: int, inner: int, stride: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        c_out = EXPANSION["bottleneck"] * inner
        self.body = nn.Sequential(
            ConvNormAct(c_in, inner, 1),
            ConvNormAct(inner, inner, 3, stride=stride, dilation=dilation),
            ConvNormAct(inner, c_out, 1, act=None),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = ConvNormAct(c_in, c_out, 1, stride=stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def make_block(kind: str, c_in: int, inner: int, stride: int) -> nn.Module:
    """A ``bottleneck`` or ``basic`` block (catalogue :class:`BasicBlock`) at dilation 1.

    The basic block dilates both of its 3x3 convs (the catalogue block's choice, as DeepLab's
    dilated ResNets): a block's dilation then widens its whole receptive field, as in a
    bottleneck, whose only 3x3 conv is dilated.
    """
    if kind == "bottleneck":
        return Bottleneck(c_in, inner, stride)
    if kind == "basic":
        return BasicBlock(c_in, inner, stride)
    raise ValueError(
        f"cr-resnet: block must be one of {', '.join(BLOCKS)}, got {kind!r}"
    )


def set_dilation(block: nn.Module, dilation: int) -> None:
    """Dilate every 3x3 conv of ``block`` (padding = dilation keeps the size); weights unchanged."""
    for unit in block.body:
        conv = unit.conv
        if conv.kernel_size == (3, 3):
            conv.dilation = (dilation, dilation)
            conv.padding = (dilation, dilation)


def make_stem(in_channels: int, width: int, stem_stride: int) -> nn.Sequential:
    """4: ResNet's 7x7 stride-2 conv + 3x3 stride-2 max-pool; 2: a 3x3 stride-2 conv; 1: a 3x3 conv."""
    if stem_stride == 4:
        return nn.Sequential(
            ConvNormAct(in_channels, width, 7, stride=2),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    if stem_stride in (1, 2):
        return nn.Sequential(ConvNormAct(in_channels, width, 3, stride=stem_stride))
    raise ValueError(
        f"cr-resnet: stem_stride must be one of {STEM_STRIDES}, got {stem_stride!r}"
    )


def stage_channels(block: str, width: int) -> list[int]:
    """Output channels of the four stages."""
    return [EXPANSION[block] * width * 2**s for s in range(4)]


class ClassifierHead(nn.Module):
    """Global average pooling of the last stage + a linear classifier."""

    def __init__(self, channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(
        self, features: list[torch.Tensor], size: Sequence[int]
    ) -> torch.Tensor:
        return self.fc(features[-1].mean(dim=(2, 3)))


class FPNHead(nn.Module):
    """Catalogue FPN over the four stage outputs with Panoptic FPN's semantic head, resized to ``size``."""

    def __init__(
        self, channels: Sequence[int], num_classes: int, head_channels: int
    ) -> None:
        super().__init__()
        self.fpn = FPN(
            channels[0],
            head_channels,
            in_channels=channels,
            semantic_channels=head_channels,
            num_classes=num_classes,
        )

    def forward(
        self, features: list[torch.Tensor], size: Sequence[int]
    ) -> torch.Tensor:
        _, logits = self.fpn(features)
        return resize(logits, size)


class ASPPHead(nn.Module):
    """Catalogue ASPP on the last stage (DeepLab rates 6/12/18 scaled to its output stride and,
    below DeepLab's 513-pixel crops, to ``input_size``: ``ASPP.deeplab_v3``), 1x1 classifier,
    bilinear resize to ``size``."""

    def __init__(
        self,
        channels: Sequence[int],
        num_classes: int,
        head_channels: int,
        output_stride: int,
        input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.aspp = ASPP.deeplab_v3(
            channels[-1], head_channels, output_stride, input_size=input_size
        )
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(
        self, features: list[torch.Tensor], size: Sequence[int]
    ) -> torch.Tensor:
        return resize(self.classifier(self.aspp(features[-1])), size)


def make_head(
    kind: str,
    head: str,
    channels: Sequence[int],
    num_classes: int,
    head_channels: int,
    stem_stride: int,
    input_size: Sequence[int] | None = None,
) -> nn.Module:
    """The head of a ``classification`` or ``segmentation`` task (``fpn`` or ``aspp``)."""
    if kind == "classification":
        return ClassifierHead(channels, num_classes)
    if kind != "segmentation":
        raise ValueError(
            f"cr-resnet: builds classification and segmentation networks, not {kind!r}"
        )
    if head == "fpn":
        return FPNHead(channels, num_classes, head_channels)
    if head == "aspp":
        return ASPPHead(
            channels,
            num_classes,
            head_channels,
            output_stride=8 * stem_stride,
            input_size=input_size,
        )
    raise ValueError(f"cr-resnet: head must be one of {', '.join(HEADS)}, got {head!r}")


class CRResNet(nn.Module):
    """A ResNet of ``depths[s]`` blocks per stage, block k (in stage order) dilated by ``dilations[k]``.

    ``forward``: ``[N, C, H, W]`` -> logits ``[N, num_classes]`` (classification) or
    ``[N, num_classes, H, W]`` (segmentation). Each stage runs its first ``active[s]`` blocks
    (all of them here; a supernet runs fewer).
    """

    def __init__(
        self,
        depths: Sequence[int],
        dilations: Sequence[int],
        *,
        kind: str,
        in_channels: int,
        num_classes: int,
        block: str,
        width: int,
        stem_stride: int,
        head: str,
        head_channels: int,
        input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if len(dilations) != sum(depths):
            raise ValueError(
                f"cr-resnet: {len(dilations)} dilations for {sum(depths)} blocks"
            )
        channels = stage_channels(block, width)
        self.stem = make_stem(in_channels, width, stem_stride)
        self.stages = nn.ModuleList()
        c_in = width
        for s, depth in enumerate(depths):
            stride = 1 if s == 0 else 2
            stage = [
                make_block(
                    block,
                    c_in if i == 0 else channels[s],
                    width * 2**s,
                    stride if i == 0 else 1,
                )
                for i in range(depth)
            ]
            self.stages.append(nn.Sequential(*stage))
            c_in = channels[s]
        self.head = make_head(
            kind, head, channels, num_classes, head_channels, stem_stride, input_size
        )
        self.active = [int(d) for d in depths]
        self.set_dilations(dilations)

    def set_dilations(self, dilations: Sequence[int]) -> None:
        """Dilate the active blocks, ``dilations[k]`` for block k in stage order."""
        k = 0
        for stage, depth in zip(self.stages, self.active, strict=True):
            for block in islice(stage, depth):
                set_dilation(block, int(dilations[k]))
                k += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        features = []
        for stage, depth in zip(self.stages, self.active, strict=True):
            for block in islice(stage, depth):
                x = block(x)
            features.append(x)
        return self.head(features, size)
