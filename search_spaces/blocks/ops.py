"""Primitive operations shared by blocks, cells and macro networks.

These are the small pieces every NAS paper reuses (DARTS ``operations.py`` vocabulary):
ReLU-Conv-BN, the zero op, factorised reduction. They are plain ``nn.Module`` s with no
search machinery so that a built network exports cleanly.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.layers import create_act, create_norm, same_padding

__all__ = ["FactorizedReduce", "ReLUConvBN", "Zero", "same_padding"]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BatchNorm, the DARTS / NAS-Bench-201 ``nor_conv`` unit.

    Pre-activation order (act -> conv -> norm), so not a :class:`~search_spaces.layers.ConvNormAct`.
    ``act`` / ``norm`` (names for ``create_act`` / ``create_norm``) swap the two layers in place for
    blocks that expose those options; the DARTS cell ops keep the paper's ReLU and BN.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        affine: bool = True,
        groups: int = 1,
        *,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__(
            create_act(act),
            nn.Conv2d(
                c_in,
                c_out,
                kernel_size,
                stride=stride,
                padding=same_padding(kernel_size, dilation),
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            create_norm(norm, c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` / ``zero`` op: an all-zero output of the right shape."""

    def __init__(self, c_out: int | None = None, stride: int = 1) -> None:
        super().__init__()
        self.c_out = c_out
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[..., :: self.stride, :: self.stride]
        if self.c_out is not None and self.c_out != x.shape[1]:
            shape = list(x.shape)
            shape[1] = self.c_out
            return x.new_zeros(shape)
        return x.mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve H and W with two offset stride-2 1x1 convs concatenated (DARTS skip at stride 2).

    Odd sizes are handled by padding the shifted path so both halves have ``ceil(H/2)`` rows.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even c_out, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
