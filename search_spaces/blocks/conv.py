"""Blocks of the 'Convolutions and cell operations' table of docs/algorithms.md Block notes.

This module holds the cell operations (``conv``, ``dil_conv``, ``sep_conv``,
``factorized_conv``), the multi-branch and residual units (``inception``, ``blaze``,
``double_blaze``) and ``coord_channels``. The convolution-layer replacements (``octave_conv``,
``deform_conv``, ``shift_conv``, ``ternary_conv``, ``fickle_conv``) live in ``_conv_layers`` and
the composite blocks (``gated_residual``, ``dense_block``, ``conv_lstm``) in ``_conv_composite``;
both are imported here so that importing this module registers the whole table.

Dilation convention: every block takes the catalogue's ``dilation`` argument and applies it to
its spatial (k > 1) convolutions. ``dil_conv`` is the exception that has an intrinsic rate
(DARTS / Auto-DeepLab use rate 2): its effective dilation is ``rate * dilation``, because the
registry always forwards ``dilation`` (default 1) and could otherwise not express the DARTS op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# The helper modules register the rest of the table when this module is imported.
from search_spaces.blocks import _conv_composite  # noqa: F401
from search_spaces.blocks._conv_layers import check_odd
from search_spaces.blocks.ops import ReLUConvBN
from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct, create_act, create_norm, same_padding

# ---------------------------------------------------------------------------------------------
# DARTS / NAS-Bench-201 / Auto-DeepLab cell operations
# ---------------------------------------------------------------------------------------------


@register_block(
    "conv",
    kind="conv",
    paper="DARTS (Liu et al. 2019); NAS-Bench-201 nor_conv; NASNet",
)
class Conv(ReLUConvBN):
    """ReLU -> Conv(k x k) -> BN, the DARTS / NAS-Bench-201 ``nor_conv_kxk`` cell op.

    Exactly :class:`~search_spaces.blocks.ops.ReLUConvBN` (same module layout and state-dict
    keys ``1.weight``, ``2.*``) with the catalogue signature. ``affine=False`` gives the BN used
    during DARTS search. Receptive field of the output: ``(kernel_size - 1) * dilation + 1``.
    No ``act=`` / ``norm=`` options: the DARTS op fixes ReLU -> conv -> BN (as ``dil_conv`` and
    ``sep_conv`` do).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        affine: bool = True,
    ) -> None:
        super().__init__(c_in, c_out, check_odd(kernel_size), stride, dilation, affine)


class DepthwisePointwise(nn.Sequential):
    """ReLU -> depthwise (dilated) k x k conv -> pointwise 1x1 conv -> BN (DARTS ``DilConv`` body).

    ``dilation`` here is absolute. Used once by ``dil_conv`` and twice by ``sep_conv``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        dilation: int,
        affine: bool,
    ) -> None:
        super().__init__(nn.ReLU(inplace=False), *blaze_unit(c_in, c_out, stride, dilation, kernel_size, affine))


@register_block(
    "dil_conv",
    kind="conv",
    paper="DARTS (Liu et al. 2019) DilConv; Auto-DeepLab atrous conv",
)
class DilConv(DepthwisePointwise):
    """DARTS ``dil_conv_kxk``: ReLU -> depthwise dilated k x k -> pointwise 1x1 -> BN.

    The effective dilation is ``rate * dilation``: ``rate`` (default 2) is the op's own atrous
    rate (DARTS ``dil_conv_3x3``/``dil_conv_5x5`` and Auto-DeepLab's atrous ops use 2) and
    ``dilation`` the catalogue's network-level multiplier (1 unless a backbone dilates its late
    stages). Receptive field: ``(kernel_size - 1) * rate * dilation + 1``. No ``act=`` / ``norm=``:
    DARTS fixes the op's ReLU and BN.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        rate: int = 2,
        affine: bool = True,
    ) -> None:
        super().__init__(c_in, c_out, kernel_size, stride, rate * dilation, affine)


@register_block(
    "sep_conv",
    kind="conv",
    paper="DARTS (Liu et al. 2019) SepConv; NASNet; Auto-DeepLab",
)
class SepConv(nn.Sequential):
    """DARTS ``sep_conv_kxk``: the depthwise-separable unit applied twice, stride on the first.

    (ReLU -> depthwise k x k -> 1x1 -> BN) x 2; the first unit keeps ``c_in`` channels and
    carries the stride, the second maps to ``c_out``, exactly as DARTS ``SepConv``. Both
    depthwise convs use ``dilation`` (1 in DARTS), so the receptive field is
    ``2 * (kernel_size - 1) * dilation + 1``. No ``act=`` / ``norm=``: DARTS fixes the op's ReLU
    and BN.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        affine: bool = True,
    ) -> None:
        super().__init__(
            DepthwisePointwise(c_in, c_in, kernel_size, stride, dilation, affine),
            DepthwisePointwise(c_in, c_out, kernel_size, 1, dilation, affine),
        )


@register_block(
    "factorized_conv",
    kind="conv",
    paper="Rethinking the Inception Architecture (Inception v2/v3, Szegedy et al. 2016); NASNet",
)
class FactorizedConv(nn.Sequential):
    """Factorised k x k convolution: a 1 x k conv followed by a k x 1 conv (Inception v2/v3).

    ReLU -> Conv(1 x k, stride (1, s)) [-> BN -> ReLU] -> Conv(k x 1, stride (s, 1)) -> BN.
    Inception v3 (Sec. 3.2) found BN + ReLU between the two factors better than a linear
    intermediate, so ``mid_bn_relu=True`` is the default; ``mid_bn_relu=False`` is exactly the
    NASNet / DARTS ``conv_7x1_1x7`` op. The ReLU-Conv-BN ordering follows the cell-op convention
    of this catalogue (Inception itself orders Conv-BN-ReLU). The intermediate width is
    ``c_out``. Parameters: ``k * c_out * (c_in + c_out)`` versus ``k^2 * c_in * c_out``.
    ``act`` / ``norm`` name every activation / normalisation of the block (``create_act`` /
    ``create_norm``); the order stays as above.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        mid_bn_relu: bool = True,
        affine: bool = True,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        k, pad = check_odd(kernel_size), same_padding(kernel_size, dilation)
        layers: list[nn.Module] = [
            create_act(act),
            nn.Conv2d(
                c_in,
                c_out,
                (1, k),
                stride=(1, stride),
                padding=(0, pad),
                dilation=dilation,
                bias=False,
            ),
        ]
        if mid_bn_relu:
            layers += [create_norm(norm, c_out, affine=affine), create_act(act)]
        layers += [
            nn.Conv2d(
                c_out,
                c_out,
                (k, 1),
                stride=(stride, 1),
                padding=(pad, 0),
                dilation=dilation,
                bias=False,
            ),
            create_norm(norm, c_out, affine=affine),
        ]
        super().__init__(*layers)


# ---------------------------------------------------------------------------------------------
# Multi-branch and residual units
# ---------------------------------------------------------------------------------------------


def split_channels(total: int, parts: int) -> tuple[int, ...]:
    """Split ``total`` channels into ``parts`` near-equal widths (remainder to the first ones)."""
    if total < parts:
        raise ValueError(f"cannot split {total} channels into {parts} non-empty branches")
    return tuple(total // parts + (1 if i < total % parts else 0) for i in range(parts))


@register_block(
    "inception",
    kind="conv",
    paper="Going Deeper with Convolutions (Inception v1); Inception v2-v4 (Szegedy et al.)",
)
class Inception(nn.Module):
    """Inception module: parallel 1x1, 3x3, 5x5 and pooling branches concatenated on channels.

    Branches (GoogLeNet Fig. 2b): 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3 pool -> 1x1
    projection. Every conv is a :class:`ConvNormAct` (Conv-BN-ReLU, BN as from Inception v2;
    ``norm`` / ``act`` name other layers for create_norm / create_act). ``factorize_5x5=True``
    replaces the 5x5 by two 3x3 convs (Inception v2/v3). ``branch_channels`` gives the four
    output widths (default: ``c_out`` split evenly); the output has ``sum(branch_channels)``
    channels, in branch order. ``reduce_channels`` is the width of both 1x1 reductions (default
    ``max(1, c_in // 2)``; GoogLeNet tunes it per module). Deviation: the stride is applied by
    the last layer of every branch (and the pooling) so the module can also reduce resolution;
    Inception v4 uses dedicated reduction modules for that.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        branch_channels: Sequence[int] | None = None,
        reduce_channels: int | None = None,
        factorize_5x5: bool = False,
        pool: Literal["max", "avg"] = "max",
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()

        def unit(ci: int, co: int, k: int = 1, s: int = 1, d: int = 1) -> ConvNormAct:
            return ConvNormAct(ci, co, k, s, d, norm=norm, act=act)

        widths = tuple(branch_channels) if branch_channels is not None else split_channels(c_out, 4)
        if len(widths) != 4 or sum(widths) != c_out:
            raise ValueError(f"branch_channels {widths} must be 4 widths summing to c_out={c_out}")
        red = reduce_channels or max(1, c_in // 2)
        b1, b3, b5, bp = widths
        if factorize_5x5:
            five: list[nn.Module] = [
                unit(red, b5, 3, 1, dilation),
                unit(b5, b5, 3, stride, dilation),
            ]
        else:
            five = [unit(red, b5, 5, stride, dilation)]
        pool_cls = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        pool_kw = {} if pool == "max" else {"count_include_pad": False}
        self.branches = nn.ModuleList(
            [
                unit(c_in, b1, 1, stride),
                nn.Sequential(
                    unit(c_in, red, 1), unit(red, b3, 3, stride, dilation)
                ),
                nn.Sequential(unit(c_in, red, 1), *five),
                nn.Sequential(
                    pool_cls(3, stride=stride, padding=1, **pool_kw), unit(c_in, bp, 1)
                ),
            ]
        )
        self.branch_channels = widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class BlazeShortcut(nn.Module):
    """BlazeFace residual path: 2x2 max-pool when strided, zero channel padding when widening.

    Identity when ``stride == 1`` and ``c_in == c_out``. Deviation: BlazeFace only widens; a
    narrowing block (``c_out < c_in``) projects with a 1x1 conv + norm instead.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str = "bn") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"BlazeFace blocks support stride 1 or 2, got {stride}")
        self.stride, self.pad = stride, max(0, c_out - c_in)
        self.project = ConvNormAct(c_in, c_out, 1, norm=norm, act=None) if c_out < c_in else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:  # ceil_mode keeps ceil(H/2) rows for odd sizes
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        if self.project is not None:
            return self.project(x)
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x


def blaze_unit(
    c_in: int,
    c_out: int,
    stride: int,
    dilation: int,
    kernel_size: int,
    affine: bool = True,
    norm: str = "bn",
) -> list[nn.Module]:
    """Depthwise k x k (stride) -> pointwise 1x1 -> norm: the body of a BlazeBlock and of DARTS' DilConv."""
    return [
        nn.Conv2d(
            c_in,
            c_in,
            check_odd(kernel_size),
            stride=stride,
            padding=same_padding(kernel_size, dilation),
            dilation=dilation,
            groups=c_in,
            bias=False,
        ),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        create_norm(norm, c_out, affine=affine),
    ]


class _BlazeBase(nn.Module):
    """``act(body(x) + shortcut(x))``; subclasses build ``body``, ``shortcut`` and ``act``."""

    body: nn.Sequential
    shortcut: BlazeShortcut
    act: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


@register_block("blaze", kind="conv", paper="BlazeFace (Bazarevsky et al. 2019)")
class BlazeBlock(_BlazeBase):
    """Single BlazeBlock: 5x5 depthwise -> 1x1 conv -> BN, plus residual, then ReLU.

    The residual is the identity at stride 1 with ``c_in == c_out``; otherwise a 2x2 max-pool
    (stride 2) and zero channel padding (``c_out > c_in``), as in BlazeFace. BN after the
    pointwise conv is the training-time form of the released (BN-folded) model. ``norm`` /
    ``act`` name the normalisations and the final activation (create_norm / create_act).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 5,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(*blaze_unit(c_in, c_out, stride, dilation, kernel_size, norm=norm))
        self.shortcut = BlazeShortcut(c_in, c_out, stride, norm)
        self.act = create_act(act)


@register_block("double_blaze", kind="conv", paper="BlazeFace (Bazarevsky et al. 2019)")
class DoubleBlazeBlock(_BlazeBase):
    """Double BlazeBlock: two depthwise 5x5 + 1x1 units (project, then expand), residual, ReLU.

    Body: 5x5 dw -> 1x1 project -> BN -> ReLU -> 5x5 dw -> 1x1 expand -> BN.

    The bottleneck width ``mid_channels`` defaults to ``max(1, c_out // 4)`` (BlazeFace: 24 for
    96 output channels). The stride sits on the first depthwise conv; the residual is as in
    ``blaze``. ``norm`` / ``act`` name every normalisation / activation (create_norm / create_act).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 5,
        mid_channels: int | None = None,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        mid = mid_channels or max(1, c_out // 4)
        self.body = nn.Sequential(
            *blaze_unit(c_in, mid, stride, dilation, kernel_size, norm=norm),
            create_act(act),
            *blaze_unit(mid, c_out, 1, dilation, kernel_size, norm=norm),
        )
        self.shortcut = BlazeShortcut(c_in, c_out, stride, norm)
        self.act = create_act(act)


# ---------------------------------------------------------------------------------------------
# Position channels
# ---------------------------------------------------------------------------------------------


def _unit_range(size: int, like: torch.Tensor) -> torch.Tensor:
    """``size`` evenly spaced values from -1 to 1 (exact endpoints; 0 when ``size == 1``)."""
    steps = torch.arange(size, dtype=like.dtype, device=like.device)
    return (2 * steps - (size - 1)) / max(size - 1, 1)


def coordinate_channels(x: torch.Tensor) -> torch.Tensor:
    """Append normalised x (left -1 .. right +1) and y (top -1 .. bottom +1) channels to ``x``."""
    n, _, h, w = x.shape
    xs, ys = _unit_range(w, x), _unit_range(h, x)
    grid = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])
    return torch.cat([x, grid.unsqueeze(0).expand(n, 2, h, w)], dim=1)


@register_block(
    "coord_channels",
    kind="conv",
    paper="Automatic Portrait Segmentation for Image Stylization (PortraitFCN+, Shen et al. 2016)",
)
class CoordChannels(nn.Module):
    """Append normalised x/y position channels in [-1, 1], then a k x k conv to ``c_out``.

    PortraitFCN+ feeds position channels to the network; there they are relative to a detected
    face (centred on it, scaled by its size). Deviation: with no face detector in a generic
    block, the coordinates are relative to the image (x = -1 at the left column, +1 at the
    right; y likewise top to bottom), i.e. CoordConv-style. ``add_coords`` is the coordinate
    step (``c_in + 2`` channels); the conv (``kernel_size``, default 1) maps them to ``c_out`` at
    the given stride. ``norm`` / ``act`` (default ``"none"``: a plain conv with bias) turn it into
    a conv-norm-act unit, the conv keeping its bias only without a norm.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 1,
        act: str = "none",
        norm: str = "none",
    ) -> None:
        super().__init__()
        # the unit's layers as attributes, not a Sequential: the keys stay conv.weight / conv.bias
        conv, norm_layer, *act_layer = ConvNormAct(
            c_in + 2, c_out, check_odd(kernel_size), stride, dilation, norm=norm, act=act
        )
        self.conv, self.norm = conv, norm_layer
        self.act = act_layer[0] if act_layer else nn.Identity()

    @staticmethod
    def add_coords(x: torch.Tensor) -> torch.Tensor:
        return coordinate_channels(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(coordinate_channels(x))))
