"""Blocks of the 'Video' table of docs/algorithms.md Block notes: spatio-temporal operations on ``[N, C, T, H, W]``.

Standard video blocks map ``[N, c_in, T, H, W]`` to ``[N, c_out, T, ceil(H/s), ceil(W/s)]``: the
stride is spatial only and the number of frames is kept (temporal kernels are zero-padded "same",
asymmetrically for even temporal depths). Two blocks have another signature (``standard_io=False``):
``slowfast`` takes and returns the (slow, fast) pathway pair, ``attention_cluster`` pools a clip
into one vector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct, create_act, same_padding

# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _time_padding(time_kernel: int) -> tuple[int, int]:
    """(before, after) frames of padding that keep T for a temporal kernel of this depth."""
    return (time_kernel - 1) // 2, time_kernel // 2


def _split_channels(total: int, parts: int) -> list[int]:
    """Split ``total`` channels into ``parts`` near-equal positive widths (earlier ones larger)."""
    if total < parts:
        raise ValueError(f"cannot split {total} channels into {parts} non-empty branches")
    base, extra = divmod(total, parts)
    return [base + 1] * extra + [base] * (parts - extra)


class _Conv3d(nn.Module):
    """Conv3d that keeps T and gives ``ceil(H/stride)``: spatial stride/dilation, "same" padding.

    Temporal padding is explicit (``_time_padding``), so even temporal depths keep T too;
    ``time_padding`` is ``"zeros"`` (the papers' 'SAME') or ``"replicate"`` (edge frames repeated).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: tuple[int, int, int],
        stride: int = 1,
        dilation: int = 1,
        time_stride: int = 1,
        time_padding: str = "zeros",
        bias: bool = False,
    ) -> None:
        super().__init__()
        kt, kh, kw = kernel
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel sizes must be odd, got {kernel}")
        if time_padding not in ("zeros", "replicate"):
            raise ValueError(f"time_padding must be 'zeros' or 'replicate', got {time_padding!r}")
        self.time_pad = _time_padding(kt)
        self.time_padding = time_padding
        self.conv = nn.Conv3d(
            c_in,
            c_out,
            kernel,
            stride=(time_stride, stride, stride),
            padding=(0, same_padding(kh, dilation), same_padding(kw, dilation)),
            dilation=(1, dilation, dilation),
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.time_pad):
            mode = "constant" if self.time_padding == "zeros" else "replicate"
            x = F.pad(x, (0, 0, 0, 0, *self.time_pad), mode=mode)
        return self.conv(x)


# --------------------------------------------------------------------------------------------
# inflated_conv3d (I3D)
# --------------------------------------------------------------------------------------------


@register_block(
    "inflated_conv3d",
    kind="video",
    video=True,
    paper="Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset (I3D), CVPR 2017",
)
class InflatedConv3d(nn.Module):
    """I3D unit: a k×k 2D convolution inflated to kt×k×k (weights / kt), BatchNorm, ReLU.

    I3D bootstraps 3D filters from an ImageNet 2D network by repeating each 2D kernel ``kt`` times
    along time and dividing by ``kt``, so a "boring video" (one image repeated) gives the same
    activations as the 2D network on the image. :meth:`from_conv2d` does exactly this for an
    ``nn.Conv2d`` (and optionally its ``nn.BatchNorm2d``).

    Deviation: the default ``temporal_padding="replicate"`` repeats the edge frames instead of I3D's
    zero 'SAME' padding, so the boring-video fixed point is exact at the first and last frames
    too; ``temporal_padding="zeros"`` is the paper's padding (exact on interior frames only).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        time_kernel: int = 3,
        temporal_padding: str = "replicate",
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.time_kernel = time_kernel
        self.conv = _Conv3d(
            c_in,
            c_out,
            (time_kernel, kernel_size, kernel_size),
            stride,
            dilation,
            time_padding=temporal_padding,
            bias=bias,
        )
        self.bn = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def inflate_weight(weight: torch.Tensor, time_kernel: int) -> torch.Tensor:
        """``[O, I, k, k]`` -> ``[O, I, kt, k, k]``: the kernel repeated kt times, divided by kt."""
        return weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel

    @classmethod
    def from_conv2d(
        cls,
        conv: nn.Conv2d,
        time_kernel: int = 3,
        bn: nn.BatchNorm2d | None = None,
        temporal_padding: str = "replicate",
    ) -> InflatedConv3d:
        """Inflate a square, 'same'-padded, ungrouped ``nn.Conv2d`` (and its BatchNorm)."""
        k = conv.kernel_size[0]
        d = conv.dilation[0]
        if (
            conv.groups != 1
            or conv.kernel_size != (k, k)
            or conv.dilation != (d, d)
            or conv.stride[0] != conv.stride[1]
            or conv.padding != (same_padding(k, d),) * 2
            or conv.padding_mode != "zeros"
        ):
            raise ValueError(
                f"from_conv2d needs a square, ungrouped, zero 'same'-padded Conv2d, got {conv}"
            )
        block = cls(
            conv.in_channels,
            conv.out_channels,
            stride=conv.stride[0],
            dilation=d,
            kernel_size=k,
            time_kernel=time_kernel,
            temporal_padding=temporal_padding,
            bias=conv.bias is not None,
        )
        with torch.no_grad():
            block.conv.conv.weight.copy_(cls.inflate_weight(conv.weight, time_kernel))
            if conv.bias is not None:
                block.conv.conv.bias.copy_(conv.bias)
        if bn is not None:
            block.bn.load_state_dict(bn.state_dict())
            block.bn.eps, block.bn.momentum = bn.eps, bn.momentum
        return block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


# --------------------------------------------------------------------------------------------
# temporal_transition (T3D)
# --------------------------------------------------------------------------------------------


@register_block(
    "temporal_transition",
    kind="video",
    video=True,
    paper="Temporal 3D ConvNets: New Architecture and Transfer Learning for Video Classification "
    "(T3D), 2017",
)
class TemporalTransition(nn.Module):
    """T3D Temporal Transition Layer: parallel 3D convs of several temporal depths, concatenated.

    As in T3D's TTL (a DenseNet transition layer made multi-scale in time): BN-ReLU, then one
    3D conv per temporal depth in ``depths`` (the depth-1 branch is 1×1×1, the others
    ``d×k×k`` as in the paper's 1×1×1 / 3×3×3 / 3×3×6 kernels), concatenated along channels, then
    average pooling. Output channels = ``sum(branch_channels)`` (default: ``c_out`` split evenly).

    Deviation: the paper's 3D average pooling also halves T; here pooling is spatial only (window
    and stride ``stride``, ceil mode) so the block keeps T like every standard video block.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        depths: Sequence[int] = (1, 3, 6),
        branch_channels: Sequence[int] | None = None,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        widths = list(branch_channels) if branch_channels else _split_channels(c_out, len(depths))
        if len(widths) != len(depths) or sum(widths) != c_out:
            raise ValueError(
                f"branch_channels {widths} must give one width per depth, summing to {c_out}"
            )
        self.branch_channels = widths
        self.pre = nn.Sequential(nn.BatchNorm3d(c_in), nn.ReLU(inplace=False))
        spatial = [1 if d == 1 else kernel_size for d in depths]  # depth-1 branch is 1×1×1
        self.branches = nn.ModuleList(
            _Conv3d(c_in, w, (d, k, k), 1, dilation)
            for d, k, w in zip(depths, spatial, widths, strict=True)
        )
        self.pool: nn.Module = (
            nn.AvgPool3d((1, stride, stride), (1, stride, stride), ceil_mode=True)
            if stride > 1
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.pool(torch.cat([branch(x) for branch in self.branches], dim=1))


# --------------------------------------------------------------------------------------------
# mict (MiCT)
# --------------------------------------------------------------------------------------------


@register_block(
    "mict",
    kind="video",
    video=True,
    paper="MiCT: Mixed 3D/2D Convolutional Tube for Human Action Recognition, CVPR 2018",
)
class MiCTBlock(nn.Module):
    """MiCT tube: a 3D conv plus a cross-domain residual 2D conv, then serial 2D convs.

    ``y = ReLU(BN(Conv3d(x)) + BN(Conv2d(x sampled at the 3D conv's output frames)))`` followed by
    ``depth_2d`` per-frame 2D Conv-BN-ReLU layers (the "concatenated connection" that deepens the
    tube with cheap 2D convs). The 2D residual sees the frames ``x[:, :, ::time_stride]``, which are
    exactly the 3D conv's output positions for any T (padding ``(kt-1)//2`` / ``kt//2``), so the
    two terms always align. With the default ``time_stride=1`` the block is standard (T kept); the
    paper's tubes also stride in time (``time_stride>1`` gives ``ceil(T/time_stride)`` frames).
    The units are 3D :class:`ConvNormAct`; ``act`` / ``norm`` name their activation and
    normalisation (create_act / create_norm).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        time_kernel: int = 3,
        time_stride: int = 1,
        depth_2d: int = 1,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.time_stride = time_stride
        conv3d = _Conv3d(c_in, c_out, (time_kernel, 3, 3), stride, dilation, time_stride=time_stride)
        self.conv3d = ConvNormAct(c_in, c_out, conv=conv3d, dims=3, norm=norm, act=None)
        conv2d = _Conv3d(c_in, c_out, (1, 3, 3), stride, dilation)
        self.conv2d = ConvNormAct(c_in, c_out, conv=conv2d, dims=3, norm=norm, act=None)
        self.act = create_act(act)
        self.serial = nn.Sequential(
            *(
                ConvNormAct(
                    c_out, c_out, conv=_Conv3d(c_out, c_out, (1, 3, 3), 1, dilation), dims=3, norm=norm, act=act
                )
                for _ in range(depth_2d)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x[:, :, :: self.time_stride] if self.time_stride > 1 else x
        return self.serial(self.act(self.conv3d(x) + self.conv2d(frames)))


# --------------------------------------------------------------------------------------------
# fast3d (FAST 3D)
# --------------------------------------------------------------------------------------------


def _fast3d_weights(c_in: int, mid: int, c_out: int, parallel: bool) -> int:
    if parallel:
        return 9 * (c_in * mid + 2 * mid * c_out)
    return 9 * (c_in * mid + mid * mid + mid * c_out)


@register_block(
    "fast3d",
    kind="video",
    video=True,
    paper="Spatio-Temporal FAST 3D Convolutions for Human Action Recognition, ICMLA 2019",
)
class FAST3D(nn.Module):
    """FAST 3D: a 3×3×3 conv factorised into ordered 2D convs on the HW, TW and TH planes.

    Fractioned Adjacent Spatial and Temporal convolutions: a 1×3×3 spatial conv (HW plane), then a
    3×1×3 conv in the horizontal-motion plane (TW) and a 3×3×1 conv in the vertical-motion plane
    (TH), each with BN (ReLU between). ``parallel=True`` is the paper's variant that applies the
    TW and TH convs side by side to the spatial output and sums them.

    The intermediate width (paper: not fixed by the block) defaults, as in R(2+1)D's
    parameter-matching rule, to the largest ``mid`` whose conv weights stay within
    ``param_ratio`` (default 0.5) of a full 3×3×3 conv's, so the block is always lighter than the
    3×3×3 it replaces; ``mid_channels`` overrides it. The units are 3D :class:`ConvNormAct`;
    ``act`` / ``norm`` name their activation and normalisation (create_act / create_norm).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        mid_channels: int | None = None,
        param_ratio: float = 0.5,
        parallel: bool = False,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if mid_channels is None:
            budget = param_ratio * 27 * c_in * c_out
            mid_channels = 1
            while _fast3d_weights(c_in, mid_channels + 1, c_out, parallel) <= budget:
                mid_channels += 1
        self.mid_channels = mid_channels
        self.parallel = parallel
        m, d = mid_channels, dilation
        c_h = c_out if parallel else m
        self.spatial = ConvNormAct(  # HW plane
            c_in, m, conv=_Conv3d(c_in, m, (1, 3, 3), stride, d), dims=3, norm=norm, act=act
        )
        self.horizontal = ConvNormAct(  # TW plane
            m, c_h, conv=_Conv3d(m, c_h, (3, 1, 3), 1, d), dims=3, norm=norm, act=None if parallel else act
        )
        self.vertical = ConvNormAct(  # TH plane
            m, c_out, conv=_Conv3d(m, c_out, (3, 3, 1), 1, d), dims=3, norm=norm, act=None
        )
        self.act = create_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spatial(x)
        if self.parallel:
            return self.act(self.horizontal(s) + self.vertical(s))
        return self.act(self.vertical(self.horizontal(s)))


# --------------------------------------------------------------------------------------------
# cost (CoST)
# --------------------------------------------------------------------------------------------


@register_block(
    "cost",
    kind="video",
    video=True,
    paper="Collaborative Spatiotemporal Feature Learning for Video Action Recognition (CoST), "
    "CVPR 2019",
)
class CoST(nn.Module):
    """CoST: one shared k×k kernel convolved over the HW, TW and TH views, mixed by view weights.

    The same 2D weights ``w`` are used as a 1×k×k (HW), k×1×k (TW) and k×k×1 (TH) 3D kernel; the
    three responses are summed with per-output-channel coefficients that are softmax-normalised
    over the views (they sum to 1), then BN-ReLU. ``attention=True`` is CoST(b): coefficients
    predicted from the globally pooled view responses by an FC layer shared among views;
    ``attention=False`` is CoST(a): coefficients are free parameters. :meth:`view_weights` returns
    them (``[N, 3, c_out]``, order HW, TW, TH).

    Deviation: the CoST(b) FC has no bias (a per-channel bias shared by the views cancels in the
    softmax over views).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        attention: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.stride, self.dilation, self.kernel_size = stride, dilation, kernel_size
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.attention = attention
        if attention:
            self.fc = nn.Linear(c_out, c_out, bias=False)
        else:
            self.view_logits = nn.Parameter(torch.zeros(3, c_out))
        self.bn = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=False)

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """The shared kernel over the three views: ``[N, 3, c_out, T, H', W']`` (HW, TW, TH)."""
        w, s, d = self.weight, self.stride, self.dilation
        p, pt = same_padding(self.kernel_size, d), self.kernel_size // 2
        hw = F.conv3d(x, w.unsqueeze(2), stride=(1, s, s), padding=(0, p, p), dilation=(1, d, d))
        tw = F.conv3d(x, w.unsqueeze(3), stride=(1, s, s), padding=(pt, 0, p), dilation=(1, 1, d))
        th = F.conv3d(x, w.unsqueeze(4), stride=(1, s, s), padding=(pt, p, 0), dilation=(1, d, 1))
        return torch.stack([hw, tw, th], dim=1)

    def _coefficients(self, views: torch.Tensor) -> torch.Tensor:
        if self.attention:
            pooled = views.mean(dim=(3, 4, 5))  # [N, 3, c_out]
            return torch.softmax(self.fc(pooled), dim=1)
        return torch.softmax(self.view_logits, dim=0).unsqueeze(0).expand(views.shape[0], -1, -1)

    def view_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample view coefficients ``[N, 3, c_out]``; they sum to 1 over the views."""
        return self._coefficients(self.views(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = self.views(x)
        alpha = self._coefficients(views)
        y = (views * alpha[:, :, :, None, None, None]).sum(dim=1)
        return self.relu(self.bn(y))


# --------------------------------------------------------------------------------------------
# gst (Grouped Spatial-Temporal aggregation)
# --------------------------------------------------------------------------------------------


@register_block(
    "gst",
    kind="video",
    video=True,
    paper="Grouped Spatial-Temporal Aggregation for Efficient Action Recognition (GST), ICCV 2019",
)
class GSTConv(nn.Module):
    """GST: channels split into a spatial group (1×3×3 conv) and a temporal group (3×3×3 conv).

    GST replaces the 3×3 conv of a bottleneck: the temporal group produces ``c_out // alpha``
    output channels (1/4 by default) with a 3D conv, the spatial group the remaining channels with
    a per-frame 2D conv; the two are concatenated (spatial first), then BN-ReLU. With ``beta=2``
    (the paper's default) the input channels are split too (first ``c_in // 2`` to the spatial
    group, the rest to the temporal group); with ``beta=1`` both groups see all input channels.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        alpha: int = 4,
        beta: int = 2,
    ) -> None:
        super().__init__()
        if beta not in (1, 2):
            raise ValueError(f"beta must be 1 or 2, got {beta}")
        self.c_temporal = max(1, c_out // alpha)
        self.c_spatial = c_out - self.c_temporal
        self.in_spatial = c_in // beta
        in_temporal = c_in - self.in_spatial if beta == 2 else c_in
        if self.c_spatial < 1 or self.in_spatial < 1 or in_temporal < 1:
            raise ValueError(
                f"GST cannot split c_in={c_in}, c_out={c_out} with alpha={alpha}, beta={beta}"
            )
        self.beta = beta
        self.spatial = _Conv3d(self.in_spatial, self.c_spatial, (1, 3, 3), stride, dilation)
        self.temporal = _Conv3d(in_temporal, self.c_temporal, (3, 3, 3), stride, dilation)
        self.bn = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.beta == 2:
            xs, xt = x[:, : self.in_spatial], x[:, self.in_spatial :]
        else:
            xs = xt = x
        return self.relu(self.bn(torch.cat([self.spatial(xs), self.temporal(xt)], dim=1)))


# --------------------------------------------------------------------------------------------
# slowfast
# --------------------------------------------------------------------------------------------


def _fast_channels(channels: int, beta: float) -> int:
    return max(1, round(channels * beta))


def _slowfast_example(
    c_in: int, batch: int, height: int, width: int, frames: int
) -> tuple[torch.Tensor, ...]:
    """A (slow, fast) pair for the default alpha=4, beta=1/8."""
    slow = torch.randn(batch, c_in, frames, height, width)
    fast = torch.randn(batch, _fast_channels(c_in, 1 / 8), 4 * frames, height, width)
    return slow, fast


@register_block(
    "slowfast",
    kind="video",
    video=True,
    standard_io=False,
    example=_slowfast_example,
    signature="(slow [N,C,T,H,W], fast [N,round(beta*C),alpha*T,H,W]) -> "
    "(slow [N,c_out,T,H',W'], fast [N,round(beta*c_out),alpha*T,H',W'])",
    paper="SlowFast Networks for Video Recognition, ICCV 2019",
)
class SlowFastBlock(nn.Module):
    """SlowFast stage: slow and fast pathways with a time-strided lateral fast->slow connection.

    Inputs and outputs are the pathway pair ``(slow, fast)``: the fast pathway has ``alpha``× the
    frames and ``beta``× the channels (rounded, at least 1) of the slow one. The lateral connection
    is the paper's time-strided convolution (5×1×1 kernel, ``2·beta·C`` channels, temporal stride
    ``alpha``) + BN-ReLU, concatenated to the slow input. Each pathway then applies one
    Conv-BN-ReLU unit with the spatial stride: the slow one with temporal kernel
    ``slow_time_kernel`` (1 = the paper's res2-res3 slow stages, 3 for res4-res5), the fast one
    with a temporal kernel of 3 (temporal convs at every fast stage).

    Simplification: one conv unit per pathway stands for a stage's residual bottlenecks. To start
    a network from one clip ``[N,C,αT,H,W]``, feed ``clip[:, :, ::alpha]`` and the clip through
    separate stems, as SlowFast does. The lateral and pathway units are 3D :class:`ConvNormAct`;
    ``act`` / ``norm`` name their activation and normalisation (create_act / create_norm).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        alpha: int = 4,
        beta: float = 1 / 8,
        slow_time_kernel: int = 1,
        fast_time_kernel: int = 3,
        lateral_kernel: int = 5,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.alpha = alpha
        fast_in, fast_out = _fast_channels(c_in, beta), _fast_channels(c_out, beta)
        self.fast_in = fast_in
        lateral = nn.Conv3d(
            fast_in,
            2 * fast_in,
            (lateral_kernel, 1, 1),
            stride=(alpha, 1, 1),
            padding=(lateral_kernel // 2, 0, 0),
            bias=False,
        )
        self.lateral = ConvNormAct(fast_in, 2 * fast_in, conv=lateral, dims=3, norm=norm, act=act)
        c_slow = c_in + 2 * fast_in
        slow = _Conv3d(c_slow, c_out, (slow_time_kernel, 3, 3), stride, dilation)
        self.slow = ConvNormAct(c_slow, c_out, conv=slow, dims=3, norm=norm, act=act)
        fast = _Conv3d(fast_in, fast_out, (fast_time_kernel, 3, 3), stride, dilation)
        self.fast = ConvNormAct(fast_in, fast_out, conv=fast, dims=3, norm=norm, act=act)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fast.shape[1] != self.fast_in or fast.shape[2] != self.alpha * slow.shape[2]:
            raise ValueError(
                f"fast pathway must be [N,{self.fast_in},{self.alpha}*T,H,W] for slow "
                f"{list(slow.shape)}, got {list(fast.shape)}"
            )
        fused = torch.cat([slow, self.lateral(fast)], dim=1)
        return self.slow(fused), self.fast(fast)


# --------------------------------------------------------------------------------------------
# temporal_bilinear (TBN)
# --------------------------------------------------------------------------------------------


@register_block(
    "temporal_bilinear",
    kind="video",
    video=True,
    paper="Temporal Bilinear Networks for Video Action Recognition (TBN), AAAI 2019",
)
class TemporalBilinear(nn.Module):
    """Temporal bilinear (TB) block: factorised bilinear interaction of neighbouring frames.

    For each frame t and position, ``y_t = BN(W [x_t; x_{t+1}] + P((U x_t) ⊙ (V x_{t+1})))``
    then ReLU: the quadratic term ``x_t^T U_c^T diag(P_c) V x_{t+1}`` is the TB model's bilinear
    form factorised to rank ``rank`` (linear cost), ``U``/``V`` are k×k spatial convs (carrying
    the stride) and ``W`` a 2×k×k conv over the frame pair (the linear term of a factorised
    bilinear model; BN's shift is its bias). The last frame's successor is a zero frame, so
    output T = input T.

    Simplification: the paper's TB block wraps this in a 1×1 reduce / expand bottleneck, left to
    the surrounding network; ``rank`` defaults to ``c_out // 2``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        rank: int | None = None,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        rank = rank or max(1, c_out // 2)
        self.rank = rank
        k = kernel_size
        self.u = _Conv3d(c_in, rank, (1, k, k), stride, dilation)
        self.v = _Conv3d(c_in, rank, (1, k, k), stride, dilation)
        self.project = nn.Conv3d(rank, c_out, 1, bias=False)
        # temporal kernel 2 over (t, t+1): _Conv3d pads 0 frames before and 1 after; the bias b
        # of the bilinear model is the BatchNorm shift
        self.linear = _Conv3d(c_in, c_out, (2, k, k), stride, dilation)
        self.bn = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=False)

    def interaction(self, x: torch.Tensor) -> torch.Tensor:
        """The factorised bilinear term ``P((U x_t) ⊙ (V x_{t+1}))``, ``[N, c_out, T, H', W']``."""
        v_next = F.pad(self.v(x)[:, :, 1:], (0, 0, 0, 0, 0, 1))
        return self.project(self.u(x) * v_next)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.linear(x) + self.interaction(x)))


# --------------------------------------------------------------------------------------------
# st_attention (Where and When to Look)
# --------------------------------------------------------------------------------------------


@register_block(
    "st_attention",
    kind="video",
    video=True,
    paper="Where and When to Look? Spatio-temporal Attention for Action Recognition in Videos "
    "(Meng et al., 2018; ICCVW 2019 'Interpretable Spatio-temporal Attention')",
)
class STAttention(nn.Module):
    """Separable spatio-temporal attention: per-frame spatial masks, recurrent temporal weights.

    Spatial: a mask ``M_i = sigmoid(conv(X_i))`` in (0,1) per frame, ``X~_i = X_i ⊙ M_i``.
    Temporal: for each step t a recurrent state ``h_{t-1}`` scores every frame,
    ``w_t = softmax_i(v^T tanh(W_x pool(X~_i) + W_h h_{t-1}))`` (sums to 1 over frames), the step's
    feature is ``Y_t = sum_i w_ti X~_i`` and ``h_t = LSTM(pool(Y_t), h_{t-1})``; the initial state
    comes from the mean pooled masked feature. Output: ``Y`` (T steps) projected by a 1×3×3
    Conv-BN-ReLU with the stride, so the block is standard.

    The paper's regularisers are exposed: :meth:`attend` returns ``(out, masks [N,1,T,H,W],
    weights [N,T,T])`` and :meth:`regularizers` turns masks/weights into the total-variation and
    contrast terms on the masks and the unimodality (log-concavity hinge) term on the temporal
    weights, to be added to the training loss with the user's coefficients.

    Deviation: the paper's ConvLSTM over feature maps is replaced by an LSTM cell over pooled
    features that only drives the temporal attention. ``act`` / ``norm`` name the activation and
    normalisation of the mask's and the projection's 3D :class:`ConvNormAct` units.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        mask_hidden: int | None = None,
        hidden: int | None = None,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        mask_hidden = mask_hidden or max(1, c_in // 2)
        hidden = hidden or c_in
        self.mask = nn.Sequential(
            ConvNormAct(
                c_in, mask_hidden, conv=_Conv3d(c_in, mask_hidden, (1, 3, 3)), dims=3, norm=norm, act=act
            ),
            _Conv3d(mask_hidden, 1, (1, 3, 3), bias=True),
            nn.Sigmoid(),
        )
        self.init_h = nn.Linear(c_in, hidden)
        self.init_c = nn.Linear(c_in, hidden)
        self.key = nn.Linear(c_in, hidden)
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.score = nn.Linear(hidden, 1, bias=False)  # a bias would cancel in the softmax
        self.cell = nn.LSTMCell(c_in, hidden)
        project = _Conv3d(c_in, c_out, (1, 3, 3), stride, dilation)
        self.project = ConvNormAct(c_in, c_out, conv=project, dims=3, norm=norm, act=act)

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(output, spatial masks [N,1,T,H,W], temporal weights [N,T steps,T frames])``."""
        masks = self.mask(x)
        xm = x * masks
        pooled = xm.mean(dim=(3, 4)).transpose(1, 2)  # [N, T, C]
        keys = self.key(pooled)  # [N, T, hidden]
        mean = pooled.mean(dim=1)
        h, c = torch.tanh(self.init_h(mean)), self.init_c(mean)
        steps, weights = [], []
        for _ in range(x.shape[2]):
            scores = self.score(torch.tanh(keys + self.query(h).unsqueeze(1))).squeeze(-1)
            w = torch.softmax(scores, dim=1)  # [N, T frames]
            y = (xm * w[:, None, :, None, None]).sum(dim=2)  # [N, C, H, W]
            h, c = self.cell(y.mean(dim=(2, 3)), (h, c))
            steps.append(y)
            weights.append(w)
        out = self.project(torch.stack(steps, dim=2))
        return out, masks, torch.stack(weights, dim=1)

    @staticmethod
    def regularizers(masks: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """The paper's attention regularisers (scalars, unweighted).

        ``tv``: anisotropic total variation of each mask, averaged over frames and samples.
        ``contrast``: ``0.5·mean(M·[M<0.5]) - 0.5·mean(M·[M>0.5])``, pushes masks towards 0/1.
        ``unimodal``: ``mean(relu(log w_{i-1} + log w_{i+1} - 2 log w_i))`` over each step's
        weights; zero iff every weight sequence is log-concave (hence unimodal).
        """
        tv = (masks[..., 1:, :] - masks[..., :-1, :]).abs().sum(dim=(-2, -1)) + (
            masks[..., :, 1:] - masks[..., :, :-1]
        ).abs().sum(dim=(-2, -1))
        contrast = 0.5 * (masks * (masks < 0.5)).mean() - 0.5 * (masks * (masks > 0.5)).mean()
        logw = weights.clamp_min(1e-12).log()
        if weights.shape[-1] < 3:
            unimodal = weights.new_zeros(())
        else:
            unimodal = F.relu(logw[..., :-2] + logw[..., 2:] - 2 * logw[..., 1:-1]).mean()
        return {"tv": tv.mean(), "contrast": contrast, "unimodal": unimodal}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(x)[0]


# --------------------------------------------------------------------------------------------
# attention_cluster
# --------------------------------------------------------------------------------------------


@register_block(
    "attention_cluster",
    kind="video",
    video=True,
    standard_io=False,
    supports_stride=False,
    signature="x [N,C,T,H,W] -> [N, heads*c_out] (clip descriptor)",
    test_kwargs={"shifting": False},  # shifted output has unit norm: sum of squares is constant
    paper="Attention Clusters: Purely Attention Based Local Feature Integration for Video "
    "Classification, CVPR 2018",
)
class AttentionCluster(nn.Module):
    """Attention cluster: several attention heads pool the frame features, concatenated.

    Frames are spatially averaged into local features ``X = [x_1..x_T]`` (projected to ``c_out``
    dims by a linear layer when ``c_in != c_out``). Each of the ``heads`` attention units computes
    ``a = softmax_t(w2^T tanh(W1 x_t + b1))`` (``hidden=None``: ``softmax_t(w^T x_t)``) and
    ``v = X a``; with ``shifting=True`` (the paper's shifting operation) ``v`` becomes
    ``(alpha v + beta) / (sqrt(heads) ||alpha v + beta||)`` with learnable scalars per head, so
    each head is unit-scaled and the concatenation has norm 1. Output: ``[N, heads * c_out]``.

    Deviation: no bias in the last scoring layer (it would cancel in the softmax over frames).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        heads: int = 8,
        hidden: int | None = 32,
        shifting: bool = True,
    ) -> None:
        super().__init__()
        if stride != 1:
            raise ValueError("attention_cluster pools the clip to a vector: stride must be 1")
        self.heads, self.dim = heads, c_out
        self.proj: nn.Module = nn.Linear(c_in, c_out) if c_in != c_out else nn.Identity()
        bound = 1 / math.sqrt(c_out)
        if hidden:
            self.w1 = nn.Parameter(torch.empty(heads, hidden, c_out).uniform_(-bound, bound))
            self.b1 = nn.Parameter(torch.zeros(heads, hidden))
            self.w2 = nn.Parameter(torch.empty(heads, hidden).uniform_(-1, 1) / math.sqrt(hidden))
        else:
            self.w2 = nn.Parameter(torch.empty(heads, c_out).uniform_(-bound, bound))
        self.hidden = hidden
        self.shifting = shifting
        if shifting:
            self.alpha = nn.Parameter(torch.ones(heads))
            self.beta = nn.Parameter(torch.zeros(heads))

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Spatially pooled (projected) local features ``[N, T, c_out]``."""
        return self.proj(x.mean(dim=(3, 4)).transpose(1, 2))

    def attention(self, feats: torch.Tensor) -> torch.Tensor:
        """Per-head attention over frames ``[N, heads, T]`` (sums to 1 over T)."""
        if self.hidden:
            z = torch.tanh(torch.einsum("ntc,hkc->nhtk", feats, self.w1) + self.b1[None, :, None])
            scores = torch.einsum("nhtk,hk->nht", z, self.w2)
        else:
            scores = torch.einsum("ntc,hc->nht", feats, self.w2)
        return torch.softmax(scores, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.frame_features(x)
        v = torch.einsum("nht,ntc->nhc", self.attention(feats), feats)
        if self.shifting:
            v = self.alpha[None, :, None] * v + self.beta[None, :, None]
            v = v / (math.sqrt(self.heads) * v.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return v.flatten(1)
