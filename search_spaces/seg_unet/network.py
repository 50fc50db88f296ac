"""The network ``seg-unet`` builds: encoder, context, decoder, 1x1 head, optional cascade branches.

``forward`` maps ``[N, C, H, W]`` to ``[N, num_classes, H, W]`` logits. With deep supervision the
network in training mode returns ``(main, *aux)``: one auxiliary logit map per decoder level below
the top (the bottom included) and, with cascade branches, each cascade fusion's label-guidance
logits, all upsampled bilinearly to the input size. In eval mode it returns ``main`` alone.

Cascade (ICNet): with ``cascade = k`` branches the encoder-decoder sees the input downsampled by
``2**(k-1)`` (2x2 average pooling per halving, the bilinear 0.5x of ICNet); each finer branch
(two 3x3 conv-BN-ReLU on the input at its scale) is fused with the coarser result by the
catalogue's cascade feature fusion (CFF), the last at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces.blocks import create_block
from search_spaces.layers import ConvNormAct
from search_spaces.seg_unet.context import Context
from search_spaces.seg_unet.decoder import make_decoder
from search_spaces.seg_unet.encoder import Encoder


@dataclass(frozen=True)
class Layout:
    """What a network is made of: the architecture with the unused decisions dropped."""

    widths: tuple[int, ...]
    blocks: tuple[str, ...]
    skips: tuple[str, ...]
    context: str
    aggregation: str
    coord: bool
    cascade: int
    deep_supervision: bool


def to_size(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinear resampling of logits to ``size`` (a no-op at that size)."""
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class CascadeBranch(nn.Module):
    """One finer ICNet input branch fused with the coarser result by CFF (aux logits in training)."""

    def __init__(self, in_channels: int, width: int, num_classes: int, aux: bool) -> None:
        super().__init__()
        self.light = nn.Sequential(ConvNormAct(in_channels, width, 3), ConvNormAct(width, width, 3))
        self.fuse = create_block("cascade_feature_fusion", width, width, num_classes=num_classes, aux=aux)

    def forward(self, coarse: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.fuse(coarse, self.light(image))
        if isinstance(out, tuple):
            return out[0], out[1]
        return out, None


class SegUNet(nn.Module):
    """The built network of :class:`~search_spaces.seg_unet.SegUNetSpace` (no search machinery)."""

    def __init__(self, in_channels: int, num_classes: int, layout: Layout) -> None:
        super().__init__()
        widths = list(layout.widths)
        self.encoder = Encoder(in_channels, widths, list(layout.blocks), layout.coord)
        self.context = Context(layout.context, widths[-1], widths[-2])
        self.decoder = make_decoder(list(layout.skips), layout.aggregation, widths)
        self.branches = nn.ModuleList(
            CascadeBranch(in_channels, widths[0], num_classes, layout.deep_supervision)
            for _ in range(layout.cascade - 1)
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        aux = self.decoder.out_channels[:-1] if layout.deep_supervision else []
        self.aux_heads = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in aux)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        size = x.shape[-2:]
        images = [x]
        for _ in self.branches:
            images.append(F.avg_pool2d(images[-1], 2, ceil_mode=True))
        feats = self.encoder(images[-1])
        outs = self.decoder(feats, self.context(feats[-2], feats[-1]))
        y = outs[-1]
        cascade_aux: list[torch.Tensor] = []
        for k, branch in enumerate(self.branches):
            y, aux = branch(y, images[len(self.branches) - 1 - k])
            if aux is not None:
                cascade_aux.append(aux)
        logits = to_size(self.head(y), size)
        if not (self.training and len(self.aux_heads) > 0):
            return logits
        aux_logits = [to_size(head(f), size) for head, f in zip(self.aux_heads, outs[:-1])]
        return (logits, *aux_logits, *(to_size(a, size) for a in cascade_aux))
