"""``r2plus1d``: the (2+1)D factorisation of a 3D convolution (R(2+1)D), on ``[N, C, T, H, W]``."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct


def r2plus1d_mid_channels(c_in: int, c_out: int, kernel_size: int = 3, time_kernel: int = 3) -> int:
    """Tran et al.'s ``M_i = floor(t d² N_{i-1} N_i / (d² N_{i-1} + t N_i))``: the intermediate width
    that gives the (2+1)D pair about the weights of one ``t×d×d`` 3D conv (at least 1)."""
    d2, t = kernel_size * kernel_size, time_kernel
    return max(1, (t * d2 * c_in * c_out) // (d2 * c_in + t * c_out))


@register_block(
    "r2plus1d",
    kind="video",
    video=True,
    paper="Tran et al., A Closer Look at Spatiotemporal Convolutions for Action Recognition (R(2+1)D), CVPR 2018",
)
class R2Plus1D(nn.Module):
    """(2+1)D conv: a 1×k×k spatial conv to ``M`` channels, BN-ReLU, a kt×1×1 temporal conv, BN-ReLU.

    The t×d×d 3D conv is split into a spatial and a temporal conv with an extra nonlinearity
    between them; ``M`` defaults to :func:`r2plus1d_mid_channels`, so the pair has (up to the
    floor) the weights of the 3D conv it replaces. The spatial conv carries the stride and
    dilation; ``time_stride`` strides the temporal conv (``ceil(T / time_stride)`` frames; the
    default 1 keeps T like every standard video block).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        time_kernel: int = 3,
        time_stride: int = 1,
        mid_channels: int | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or time_kernel % 2 == 0:
            raise ValueError(f"r2plus1d: kernel_size and time_kernel must be odd, got {kernel_size}, {time_kernel}")
        mid = mid_channels or r2plus1d_mid_channels(c_in, c_out, kernel_size, time_kernel)
        self.mid_channels = mid
        self.spatial = ConvNormAct(
            c_in, mid, (1, kernel_size, kernel_size), (1, stride, stride), (1, dilation, dilation), dims=3
        )
        self.temporal = ConvNormAct(mid, c_out, (time_kernel, 1, 1), (time_stride, 1, 1), dims=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(x))
