"""Mobile inverted-residual blocks: MobileNetV2's inverted residual / MnasNet's MBConv."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.blocks.attention import SqueezeExcitation
from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct


def se_width(c_in: int, se_ratio: float) -> int:
    """SE bottleneck width of an MBConv: ``max(1, int(c_in * se_ratio))`` from the block's *input*
    channels, as MnasNet / EfficientNet compute it (not from the expanded width)."""
    return max(1, int(c_in * se_ratio))


@register_block(
    "mbconv",
    kind="conv",
    paper="MobileNetV2 (Sandler et al. 2018) inverted residual; MnasNet (Tan et al. 2019) MBConv",
    test_kwargs={"se_ratio": 0.25},
)
class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> k x k depthwise -> [SE] -> 1x1 linear projection (+ x).

    ``expansion`` t widens to ``t * c_in`` channels (no expand conv when t = 1, as MobileNetV2's
    first block); the depthwise conv carries ``stride`` and ``dilation``; the projection has a
    norm and no activation (the linear bottleneck). ``se_ratio > 0`` puts the catalogue's ``se``
    gate on the expanded features with a bottleneck of ``max(1, int(c_in * se_ratio))``
    channels, computed from the block's *input* channels as in MnasNet / EfficientNet (0.25
    there). The residual is the identity, added when ``stride == 1`` and ``c_in == c_out``.
    ``act`` (``relu6`` as MobileNetV2; MnasNet uses ``relu``, EfficientNet ``silu``) and ``norm``
    are names for :class:`~search_spaces.layers.ConvNormAct`.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        expansion: int = 6,
        se_ratio: float = 0.0,
        act: str = "relu6",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if isinstance(expansion, bool) or not isinstance(expansion, int) or expansion < 1:
            raise ValueError(f"mbconv: expansion must be an integer >= 1, got {expansion!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"mbconv: kernel_size must be odd (3, 5, 7), got {kernel_size!r}")
        if not 0 <= se_ratio <= 1:
            raise ValueError(f"mbconv: se_ratio must lie in [0, 1] (0 = no SE), got {se_ratio!r}")
        hidden = c_in * expansion
        self.expand = ConvNormAct(c_in, hidden, 1, norm=norm, act=act) if expansion != 1 else nn.Identity()
        self.depthwise = ConvNormAct(
            hidden, hidden, kernel_size, stride, dilation, groups=hidden, norm=norm, act=act
        )
        # reduction > hidden makes the catalogue block's width exactly min_hidden = se_width(c_in)
        self.se = (
            SqueezeExcitation(hidden, hidden, reduction=hidden + 1, min_hidden=se_width(c_in, se_ratio))
            if se_ratio > 0
            else nn.Identity()
        )
        self.project = ConvNormAct(hidden, c_out, 1, norm=norm, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y
