"""Blocks of the 'Attention and context' table of docs/algorithms.md Block notes.

Kinds: blocks that re-weight features multiplicatively with a gate or an attention map are
``kind="attention"``; blocks that add pooled global context or return pooled (orderless)
descriptors are ``kind="context"`` (``gc``, ``context_enhancement``, ``bilinear_pool``,
``factorized_bilinear``, ``attentional_pool``).

Conventions shared by the blocks below:

* Channel-preserving attention modules (``se``, ``non_local``, ``gc``,
  ``spatial_attention_module``) first pass the input through a 1x1 conv + BN projection carrying
  ``c_in -> c_out`` and the stride (identity when ``c_in == c_out`` and ``stride == 1``); the
  module then acts on the projected features, so at ``c_in == c_out, stride 1`` it is exactly the
  paper's module.
* ``dilation`` is accepted everywhere for the uniform interface; it only changes blocks that have
  a spatial kernel (``self_attention`` footprint, ``spatial_attention_module`` depthwise conv).
  Like a 1x1 ``nn.Conv2d`` it is a no-op elsewhere.
* A conv followed by BN has no bias, and no bias is kept where a softmax over space / neighbours
  would cancel it (it would be dead weight with an exactly zero gradient).
* Blocks whose output size is fixed by their inputs (two-input blocks, pooled descriptors) set
  ``supports_stride=False`` and raise on ``stride != 1``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks._attention_common import (
    coordinate_grid,
    global_pool,
    hidden_width,
    neighbourhoods,
    project,
    require_unit_stride,
    resize,
    sine_positional_encoding,
)
from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct, create_act


def _coarser_pair(c_in: int, batch: int, height: int, width: int, frames: int) -> tuple[torch.Tensor, ...]:
    """A fine map ``[N, c, H, W]`` and a coarser one ``[N, 2c, ceil(H/2), ceil(W/2)]``."""
    return (
        torch.randn(batch, c_in, height, width),
        torch.randn(batch, 2 * c_in, math.ceil(height / 2), math.ceil(width / 2)),
    )


def _two_streams(c_in: int, batch: int, height: int, width: int, frames: int) -> tuple[torch.Tensor, ...]:
    return torch.randn(batch, c_in, height, width), torch.randn(batch, c_in, height, width)


def _local_and_global(c_in: int, batch: int, height: int, width: int, frames: int) -> tuple[torch.Tensor, ...]:
    return torch.randn(batch, c_in, height, width), torch.randn(batch, c_in)


# --------------------------------------------------------------------------------------------
# SE, non-local, GC (the three blocks GCNet puts in one framework)
# --------------------------------------------------------------------------------------------


@register_block(
    "se",
    kind="attention",
    paper="Hu et al., Squeeze-and-Excitation Networks (CVPR 2018); as framed in Cao et al., GCNet (2019)",
)
class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel gate: ``y = x * sigmoid(W2 relu(W1 avgpool(x)))``.

    Hu et al. / GCNet Fig. 4(c): global average pooling, a bottleneck of two 1x1 convs
    (``c -> c/reduction -> c``, ReLU between) and a sigmoid give one gate in (0, 1) per channel.
    Deviations: the input is first projected (1x1 conv + BN, carrying the stride) when
    ``c_in != c_out`` or ``stride > 1`` and the gate acts on the projection; the bottleneck width is
    at least ``min_hidden`` so that narrow search-space cells keep a usable gate.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        reduction: int = 16,
        min_hidden: int = 8,
    ) -> None:
        super().__init__()
        hidden = hidden_width(c_out, reduction, min_hidden)
        self.proj = project(c_in, c_out, stride)
        self.fc1 = nn.Conv2d(c_out, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, c_out, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel gate ``[N, C, 1, 1]`` in (0, 1) for (already projected) features ``x``."""
        return torch.sigmoid(self.fc2(F.relu(self.fc1(global_pool(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return x * self.gate(x)


@register_block(
    "non_local",
    kind="attention",
    paper="Wang et al., Non-local Neural Networks (CVPR 2018); as framed in Cao et al., GCNet (2019)",
)
class NonLocal(nn.Module):
    """Embedded-Gaussian non-local block: ``z = x + BN(W_z softmax(theta(x)^T phi(x)) g(x))``.

    Wang et al. Sec. 3: theta, phi, g are 1x1 convs to ``c / reduction`` channels, the pairwise
    weights are a softmax over all positions j, the output 1x1 conv W_z (+ BN) is zero-initialised
    so a new block starts as the identity. ``sub_sample`` max-pools phi and g by 2 (the paper's
    cheaper variant). Deviations: phi has no bias (a softmax over j cancels it exactly); the input is
    first projected (1x1 conv + BN with the stride) when ``c_in != c_out`` or ``stride > 1``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        reduction: int = 2,
        sub_sample: bool = False,
    ) -> None:
        super().__init__()
        inter = max(1, c_out // reduction)
        self.proj = project(c_in, c_out, stride)
        self.theta = nn.Conv2d(c_out, inter, 1)
        self.phi = nn.Conv2d(c_out, inter, 1, bias=False)
        self.g = nn.Conv2d(c_out, inter, 1)
        self.pool: nn.Module = nn.MaxPool2d(2, ceil_mode=True) if sub_sample else nn.Identity()
        self.out = ConvNormAct(inter, c_out, 1, act=None)
        nn.init.zeros_(self.out[0].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        n, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # [N, HW, C']
        k = self.pool(self.phi(x)).flatten(2)  # [N, C', M]
        v = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # [N, M, C']
        y = torch.softmax(q @ k, dim=-1) @ v  # [N, HW, C']
        return x + self.out(y.transpose(1, 2).reshape(n, -1, h, w))


@register_block(
    "gc",
    kind="context",
    paper="Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond (2019)",
)
class GlobalContext(nn.Module):
    """Global context block: softmax-pooled context, LayerNorm bottleneck transform, add fusion.

    Cao et al. Fig. 4(d): context modelling ``c = sum_j softmax_j(W_k x_j) x_j`` (one query-
    independent attention map), transform ``W_v2 ReLU(LN(W_v1 c))`` with ratio ``1/reduction``,
    broadcast addition to every position. The last transform conv is zero-initialised (identity at
    start, as in the reference code). Deviations: W_k has no bias (the softmax over space cancels
    it); the bottleneck is at least ``min_hidden`` wide; the input is first projected (1x1 conv + BN
    with the stride) when ``c_in != c_out`` or ``stride > 1``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        reduction: int = 16,
        min_hidden: int = 8,
    ) -> None:
        super().__init__()
        hidden = hidden_width(c_out, reduction, min_hidden)
        self.proj = project(c_in, c_out, stride)
        self.mask = nn.Conv2d(c_out, 1, 1, bias=False)
        self.transform = nn.Sequential(
            nn.Conv2d(c_out, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(),
            nn.Conv2d(hidden, c_out, 1),
        )
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The transformed global context term ``[N, C, 1, 1]`` added to every position."""
        n, c = x.shape[:2]
        weights = torch.softmax(self.mask(x).flatten(2), dim=-1)  # [N, 1, HW]
        pooled = (x.flatten(2) @ weights.transpose(1, 2)).view(n, c, 1, 1)
        return self.transform(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return x + self.context(x)


# --------------------------------------------------------------------------------------------
# Segmentation attention: Attention U-Net gate, PAN's FPA and GAU
# --------------------------------------------------------------------------------------------


@register_block(
    "attention_gate",
    kind="attention",
    paper="Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas (MIDL 2018)",
    signature="(x [N, c_in, H, W] skip, g [N, gating_channels, Hg, Wg] coarser gating) -> [N, c_out, H, W]",
    standard_io=False,
    supports_stride=False,
    example=_coarser_pair,
)
class AttentionGate(nn.Module):
    """Additive attention gate: the coarser gating signal g weights the skip features x per pixel.

    Oktay et al. Eq. 1-2 / Fig. 2: ``alpha = sigmoid(psi(ReLU(W_x x + W_g g + b_g)) + b_psi)``;
    W_x is a ``sub_sample x sub_sample`` conv with that stride, bringing x to the gating grid,
    the coefficients are resampled (bilinear; the paper's trilinear in 3D) back to the skip's
    H x W and the output is ``W(alpha * x)`` with W a 1x1 conv + BN to ``c_out`` (as in the
    authors' code). ``gating_channels`` defaults to ``2 * c_in`` (one U-Net level coarser),
    ``inter_channels`` to ``c_in // 2``. Deviation: when the strided W_x grid and g's grid differ
    (odd sizes), W_g g is resampled bilinearly onto W_x's grid.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        gating_channels: int | None = None,
        inter_channels: int | None = None,
        sub_sample: int = 2,
    ) -> None:
        super().__init__()
        require_unit_stride("attention_gate", stride)
        inter = inter_channels or max(1, c_in // 2)
        self.sub_sample = sub_sample
        self.theta_x = nn.Conv2d(c_in, inter, sub_sample, stride=sub_sample, bias=False)
        self.phi_g = nn.Conv2d(gating_channels or 2 * c_in, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)
        self.out = ConvNormAct(c_in, c_out, 1, act=None)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients ``[N, 1, H, W]`` in (0, 1) on the skip's grid."""
        s = self.sub_sample
        h, w = x.shape[-2:]
        tx = self.theta_x(F.pad(x, (0, (-w) % s, 0, (-h) % s)))  # ceil(H/s) x ceil(W/s)
        pg = resize(self.phi_g(g), tx.shape[-2:])
        alpha = torch.sigmoid(self.psi(F.relu(tx + pg)))
        return resize(alpha, (h, w))  # bilinear = convex combination: stays in (0, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.out(x * self.coefficients(x, g))


@register_block(
    "fpa",
    kind="attention",
    paper="Li et al., Pyramid Attention Network for Semantic Segmentation (BMVC 2018)",
)
class FeaturePyramidAttention(nn.Module):
    """Feature pyramid attention: a 7-5-3 conv pyramid's map weights a 1x1 branch, plus global pool.

    Li et al. Sec. 3.1 / Fig. 2: a U-shaped pyramid (7x7, 5x5, 3x3 convs, each stage halving the
    resolution, with a second conv of the same size on each level) is merged top-down by
    upsample-and-add into a pixel-wise attention map that multiplies the 1x1-conv features of the
    input; a global-average-pooling branch is added. Upsampling is bilinear to exact sizes so any
    H x W (e.g. 33x47) works; ``mid_channels=1`` gives the paper's single pixel-wise map
    (larger values give a per-channel map, as in some re-implementations). Deviations: the pooled
    branch has a conv bias + ReLU instead of BN (BN on 1x1 maps fails at batch size 1); with
    ``stride > 1`` the 1x1 branch is strided and the attention map is resampled to its grid.
    The convs are :class:`ConvNormAct` units; ``act`` (every activation, the pooled branch's too)
    and ``norm`` name their layers for create_act / create_norm.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        mid_channels: int = 1,
        kernel_sizes: tuple[int, ...] = (7, 5, 3),
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if mid_channels not in (1, c_out):
            raise ValueError(f"mid_channels must be 1 or c_out={c_out}, got {mid_channels}")
        self.master = ConvNormAct(c_in, c_out, 1, stride, norm=norm, act=act)
        self.pooled = nn.Sequential(nn.Conv2d(c_in, c_out, 1), create_act(act))
        widths = [c_in] + [mid_channels] * len(kernel_sizes)
        self.down = nn.ModuleList(
            ConvNormAct(widths[i], mid_channels, k, 2, norm=norm, act=act)
            for i, k in enumerate(kernel_sizes)
        )
        self.lateral = nn.ModuleList(
            ConvNormAct(mid_channels, mid_channels, k, norm=norm, act=act) for k in kernel_sizes
        )

    def attention(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The pyramid's attention map, resampled to ``size``."""
        levels = []
        y = x
        for down, lateral in zip(self.down, self.lateral, strict=True):
            y = down(y)
            levels.append(lateral(y))
        a = levels[-1]
        for level in reversed(levels[:-1]):
            a = level + resize(a, level.shape[-2:])
        return resize(a, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.master(x)
        return m * self.attention(x, m.shape[-2:]) + self.pooled(global_pool(x))


@register_block(
    "gau",
    kind="attention",
    paper="Li et al., Pyramid Attention Network for Semantic Segmentation (BMVC 2018)",
    signature="(low [N, c_in, H, W], high [N, high_channels, Hh, Wh]) -> [N, c_out, H, W]",
    standard_io=False,
    supports_stride=False,
    example=_coarser_pair,
)
class GlobalAttentionUpsample(nn.Module):
    """Global attention upsample: channel weights pooled from the high level weight low-level features.

    Li et al. Sec. 3.2 / Fig. 3: low-level features go through a 3x3 conv + BN; the high-level
    features are globally pooled, passed through a 1x1 conv and ReLU to give one weight per
    channel; the weighted low-level features are added to the upsampled high-level features
    (``ReLU(up(high) + weights(high) * conv3x3(low))``). ``high_channels`` defaults to ``2 * c_in``.
    Deviations: the high level is upsampled bilinearly to the low level's exact size and then
    mapped by a 1x1 conv + BN (the reference code uses a transposed conv, which cannot hit odd
    sizes); the weight branch has a conv bias instead of BN (BN on 1x1 maps fails at batch 1).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        high_channels: int | None = None,
    ) -> None:
        super().__init__()
        require_unit_stride("gau", stride)
        high = high_channels or 2 * c_in
        self.low = ConvNormAct(c_in, c_out, 3, act=None)
        self.weights = nn.Sequential(nn.Conv2d(high, c_out, 1), nn.ReLU())
        self.up = ConvNormAct(high, c_out, 1, act=None)

    def channel_weights(self, high: torch.Tensor) -> torch.Tensor:
        """Per-channel weights ``[N, c_out, 1, 1]``; a function of the high-level input alone."""
        return self.weights(global_pool(high))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        up = self.up(resize(high, low.shape[-2:]))
        return F.relu(up + self.low(low) * self.channel_weights(high))


# --------------------------------------------------------------------------------------------
# Self-attention operators: SAN (pairwise / patchwise), Transformer multi-head attention
# --------------------------------------------------------------------------------------------

Relation = Literal["subtraction", "summation", "hadamard", "concatenation", "dot_product"]


@register_block(
    "self_attention",
    kind="attention",
    paper="Zhao, Jia & Koltun, Exploring Self-attention for Image Recognition (CVPR 2020)",
)
class LocalSelfAttention(nn.Module):
    """SAN local self-attention over a k x k footprint, ``variant="pairwise"`` or ``"patchwise"``.

    Zhao et al. Sec. 3: ``y_i = sum_{j in R(i)} alpha(x_i, x_j) * beta(x_j)`` with beta a 1x1 conv
    (``c_in -> c_out``) and vector weights shared by groups of ``share_planes`` channels (channel c
    uses weight ``c % (c_out / share_planes)``, as in the reference aggregation kernel).
    Pairwise: ``alpha = softmax_j(gamma([delta(phi(x_i), psi(x_j)), p_i - p_j]))`` with relation
    delta (``relation``, pairwise only; subtraction is the paper's default), position encoding p a learned linear
    map of normalised coordinates, gamma = BN-ReLU-1x1-BN-ReLU-1x1. Patchwise: ``alpha =
    gamma([phi(x_i), psi(x_R(i))])`` (concatenation of the whole footprint), giving one weight
    vector per footprint position, not normalised (as in the reference code). Borders are
    reflection-padded; ``stride`` evaluates outputs on the strided grid and ``dilation`` spreads
    the footprint. Deviations: phi, psi and the position map have no bias and the last pairwise
    gamma conv has none (BN / the p_i - p_j difference / the softmax cancel them);
    ``share_planes`` is reduced to ``gcd(c_out, share_planes)`` when it does not divide ``c_out``;
    ``rel_channels`` defaults to ``max(4, c_in // 16)`` (SAN: ``c // 16``).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        variant: Literal["pairwise", "patchwise"] = "pairwise",
        kernel_size: int = 7,
        rel_channels: int | None = None,
        share_planes: int = 8,
        relation: Relation = "subtraction",
    ) -> None:
        super().__init__()
        if variant not in ("pairwise", "patchwise"):
            raise ValueError(f"variant must be 'pairwise' or 'patchwise', got {variant!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        rel = rel_channels or max(4, c_in // 16)
        k2 = kernel_size * kernel_size
        wc = c_out // math.gcd(c_out, share_planes)  # weight channels
        self.variant, self.relation = variant, relation
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.phi = nn.Conv2d(c_in, rel, 1, bias=False)
        self.psi = nn.Conv2d(c_in, rel, 1, bias=False)
        self.beta = nn.Conv2d(c_in, c_out, 1)
        if relation not in ("subtraction", "summation", "hadamard", "concatenation", "dot_product"):
            raise ValueError(f"unknown relation {relation!r}")
        if variant == "pairwise":
            rel_dim = {"concatenation": 2 * rel, "dot_product": 1}.get(relation, rel)
            self.position = nn.Conv2d(2, 2, 1, bias=False)
            gamma_in, gamma_mid, gamma_out = rel_dim + 2, rel, wc
        else:
            self.position = None
            gamma_in, gamma_mid, gamma_out = rel * (k2 + 1), wc, k2 * wc
        self.gamma = nn.Sequential(
            nn.BatchNorm2d(gamma_in),
            nn.ReLU(),
            nn.Conv2d(gamma_in, gamma_mid, 1, bias=False),
            nn.BatchNorm2d(gamma_mid),
            nn.ReLU(),
            nn.Conv2d(gamma_mid, gamma_out, 1, bias=variant == "patchwise"),
        )

    def _relate(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if self.relation == "subtraction":
            return q - k
        if self.relation == "summation":
            return q + k
        if self.relation == "hadamard":
            return q * k
        if self.relation == "concatenation":
            return torch.cat([q.expand_as(k), k], dim=1)
        return (q * k).sum(dim=1, keepdim=True)

    def attend(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        rel_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Aggregate one footprint per output position.

        ``query`` ``[N, r, Ho, Wo]`` = phi(x_i); ``keys`` ``[N, r, K, Ho, Wo]`` = psi(x_j) and
        ``values`` ``[N, c_out, K, Ho, Wo]`` = beta(x_j) for the K footprint positions j;
        ``rel_pos`` ``[1 or N, 2, K, Ho, Wo]`` = p_i - p_j (pairwise only). Returns ``[N, c_out, Ho, Wo]``.
        """
        n, c, kk, ho, wo = values.shape
        q = query.unsqueeze(2)
        if self.variant == "pairwise":
            assert rel_pos is not None, "pairwise attention needs the relative positions"
            rel = self._relate(q, keys)
            feats = torch.cat([rel, rel_pos.expand(n, -1, -1, -1, -1)], dim=1)
            w = self.gamma(feats.flatten(3))  # [N, wc, K, Ho*Wo]
            w = torch.softmax(w, dim=2)
        else:
            feats = torch.cat([q, keys], dim=2).flatten(1, 2).flatten(2).unsqueeze(2)
            w = self.gamma(feats).view(n, -1, kk, ho * wo)  # [N, wc, K, Ho*Wo]
        wc = w.shape[1]
        out = values.reshape(n, c // wc, wc, kk, ho * wo) * w.unsqueeze(1)
        return out.sum(dim=3).reshape(n, c, ho, wo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, d, s = self.kernel_size, self.dilation, self.stride
        query = self.phi(x)[:, :, ::s, ::s]
        keys = neighbourhoods(self.psi(x), k, d, s)
        values = neighbourhoods(self.beta(x), k, d, s)
        rel_pos = None
        if self.position is not None:
            p = self.position(coordinate_grid(x.shape[2], x.shape[3], x))
            rel_pos = p[:, :, ::s, ::s].unsqueeze(2) - neighbourhoods(p, k, d, s)
        return self.attend(query, keys, values, rel_pos)


@register_block(
    "mhsa",
    kind="attention",
    paper="Vaswani et al., Attention Is All You Need (NeurIPS 2017)",
)
class MultiHeadSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over all spatial positions, + positional encoding.

    Vaswani et al. Sec. 3.2: ``softmax(Q K^T / sqrt(d_k)) V`` in ``heads`` parallel heads of
    ``head_dim`` channels, concatenated and mapped by W_O; the fixed sinusoidal encoding (Sec. 3.5,
    here its 2D form: half the channels encode the row, half the column) is added to the input
    (``positional="none"`` drops it). Positions are the H x W pixels; with ``stride > 1`` the
    queries are the strided grid (keys and values stay at full resolution). ``dropout`` acts on
    the attention weights in training only. Deviations: just the attention sublayer (no residual,
    LayerNorm or feed-forward, since ``c_in`` and ``c_out`` may differ); W_K has no bias (the
    softmax over keys cancels it); ``head_dim`` defaults to ``ceil(c_out / heads)``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        heads: int = 4,
        head_dim: int | None = None,
        positional: Literal["sine", "none"] = "sine",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if positional not in ("sine", "none"):
            raise ValueError(f"positional must be 'sine' or 'none', got {positional!r}")
        self.heads = heads
        self.head_dim = head_dim or math.ceil(c_out / heads)
        self.positional, self.dropout = positional, dropout
        inner = heads * self.head_dim
        self.q = nn.Conv2d(c_in, inner, 1, stride=stride)
        self.k = nn.Conv2d(c_in, inner, 1, bias=False)
        self.v = nn.Conv2d(c_in, inner, 1)
        self.out = nn.Conv2d(inner, c_out, 1)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # [N, h*d, H, W] -> [N, h, HW, d]
        n = t.shape[0]
        return t.reshape(n, self.heads, self.head_dim, -1).transpose(2, 3)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head queries, keys, values ``[N, heads, L, head_dim]`` (positional encoding added)."""
        if self.positional == "sine":
            x = x + sine_positional_encoding(x.shape[1], x.shape[2], x.shape[3], x)
        return self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        ho, wo = math.ceil(x.shape[2] / self.q.stride[0]), math.ceil(x.shape[3] / self.q.stride[1])
        q, k, v = self.qkv(x)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        attn = F.dropout(attn, self.dropout, training=self.training)
        y = (attn @ v).transpose(2, 3).reshape(n, -1, ho, wo)
        return self.out(y)


# --------------------------------------------------------------------------------------------
# Learn to Pay Attention, ThunderNet SAM / CEM
# --------------------------------------------------------------------------------------------


@register_block(
    "attention_estimator",
    kind="attention",
    paper="Jetley et al., Learn To Pay Attention (ICLR 2018)",
    signature="(local [N, c_in, H, W], g [N, global_channels]) -> (g_a [N, c_out], attention [N, 1, H, W])",
    standard_io=False,
    supports_stride=False,
    example=_local_and_global,
)
class AttentionEstimator(nn.Module):
    """Attention estimator: compatibility of local features with the global feature, softmax over space.

    Jetley et al. Sec. 3: local features l_i (projected by a 1x1 conv to ``c_out`` when
    ``c_in != c_out``) are scored against the global feature g, ``c_i = <u, l_i + g>``
    (``compatibility="pc"``, the paper's best) or ``c_i = <l_i, g>`` (``"dp"``); ``a = softmax(c)``
    over the H x W positions and the output is ``g_a = sum_i a_i l_i``, returned with the map a.
    The global feature is a second input (the network's global vector; ``global_channels``
    defaults to ``c_in``) mapped to ``c_out`` by a linear layer when widths differ (the paper
    projects only l; with ``global_channels == c_out`` nothing changes). Note, as follows from
    the paper's formula: with "pc" the term ``<u, g>`` is the same at every position and cancels in
    the softmax, so g does not change the pc outputs; it is therefore not projected in pc mode.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        global_channels: int | None = None,
        compatibility: Literal["pc", "dp"] = "pc",
    ) -> None:
        super().__init__()
        require_unit_stride("attention_estimator", stride)
        if compatibility not in ("pc", "dp"):
            raise ValueError(f"compatibility must be 'pc' or 'dp', got {compatibility!r}")
        g_ch = global_channels or c_in
        self.compatibility = compatibility
        self.project_local: nn.Module = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        self.project_global: nn.Module = nn.Identity()
        if compatibility == "pc":
            self.u = nn.Conv2d(c_out, 1, 1, bias=False)
        elif g_ch != c_out:
            self.project_global = nn.Linear(g_ch, c_out)

    def scores(self, local: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Compatibility scores ``[N, 1, H, W]`` of the projected local features with g."""
        if self.compatibility == "pc":
            return self.u(local)  # + <u, g>, a per-image constant that the softmax cancels
        g = self.project_global(g)
        return (local * g[:, :, None, None]).sum(dim=1, keepdim=True)

    def forward(self, local: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local = self.project_local(local)
        n, _, h, w = local.shape
        a = torch.softmax(self.scores(local, g).flatten(2), dim=-1)  # [N, 1, HW]
        g_a = (local.flatten(2) * a).sum(dim=-1)
        return g_a, a.view(n, 1, h, w)


@register_block(
    "spatial_attention_module",
    kind="attention",
    paper="Qin et al., ThunderNet: Towards Real-time Generic Object Detection (ICCV 2019), SAM",
)
class SpatialAttentionModule(nn.Module):
    """ThunderNet SAM: ``F_SAM = F * sigmoid(BN(theta(F_RPN)))``, a sigmoid map from a context branch.

    Qin et al. Sec. 3.3 (Eq. 2): the RPN's features, which know foreground from background, give
    through a 1x1 conv + BN and a sigmoid one weight in (0, 1) per position and channel that
    re-weights the (CEM) feature map. The RPN context branch is built in, as in ThunderNet's RPN:
    5x5 depthwise conv (``dilation``, with the stride) + 1x1 conv to ``context_channels``
    (default ``c_in``; 256 in the paper) + BN + ReLU; an external RPN map can be passed as
    ``forward(x, rpn)`` instead. Deviation: the main features are projected (1x1 conv + BN with
    the stride) when ``c_in != c_out`` or ``stride > 1``; BN in the context branch.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        context_channels: int | None = None,
    ) -> None:
        super().__init__()
        ctx = context_channels or c_in
        self.proj = project(c_in, c_out, stride)
        self.context = nn.Sequential(
            nn.Conv2d(c_in, c_in, 5, stride=stride, padding=2 * dilation, dilation=dilation, groups=c_in, bias=False),
            ConvNormAct(c_in, ctx, 1),
        )
        self.theta = ConvNormAct(ctx, c_out, 1, act=None)

    def weights(self, rpn: torch.Tensor) -> torch.Tensor:
        """Re-weighting map ``[N, c_out, H, W]`` in (0, 1) from RPN / context features."""
        return torch.sigmoid(self.theta(rpn))

    def forward(self, x: torch.Tensor, rpn: torch.Tensor | None = None) -> torch.Tensor:
        if rpn is None:
            rpn = self.context(x)
        return self.proj(x) * self.weights(rpn)


@register_block(
    "context_enhancement",
    kind="context",
    paper="Qin et al., ThunderNet: Towards Real-time Generic Object Detection (ICCV 2019), CEM",
    signature="(c4 [N, c_in, H, W], c5 [N, c5_channels, H5, W5]) -> [N, c_out, H, W]",
    standard_io=False,
    supports_stride=False,
    example=_coarser_pair,
)
class ContextEnhancement(nn.Module):
    """ThunderNet CEM: sum of C4, upsampled C5 and the global pool of C5, at C4's resolution.

    Qin et al. Sec. 3.2 / Fig. 3: three 1x1 convs to ``c_out`` (245 in the paper): on C4; on C5
    then 2x upsampling; on the global average pool of C5 then broadcast; the three maps are added.
    ``c5_channels`` defaults to ``2 * c_in``. Deviation: upsampling is bilinear to C4's exact size
    (so C5 at ceil(H/2) x ceil(W/2) of an odd C4 still aligns).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        c5_channels: int | None = None,
    ) -> None:
        super().__init__()
        require_unit_stride("context_enhancement", stride)
        c5 = c5_channels or 2 * c_in
        self.lateral4 = nn.Conv2d(c_in, c_out, 1)
        self.lateral5 = nn.Conv2d(c5, c_out, 1)
        self.glb = nn.Conv2d(c5, c_out, 1)

    def forward(self, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        return self.lateral4(c4) + resize(self.lateral5(c5), c4.shape[-2:]) + self.glb(global_pool(c5))


# --------------------------------------------------------------------------------------------
# Orderless second-order pooling: bilinear, factorised bilinear, attentional pooling
# --------------------------------------------------------------------------------------------


def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_i a_i b_i^T / HW`` for ``[N, Ca, H, W]`` and ``[N, Cb, H, W]`` -> ``[N, Ca, Cb]``."""
    hw = a.shape[2] * a.shape[3]
    return a.flatten(2) @ b.flatten(2).transpose(1, 2) / hw


@register_block(
    "bilinear_pool",
    kind="context",
    paper="Lin, RoyChowdhury & Maji, Bilinear CNNs for Fine-grained Visual Recognition (TPAMI 2017)",
    signature="(a [N, c_in, H, W], b [N, c_in_b, H, W] or None) -> [N, c_out * c_out]",
    standard_io=False,
    supports_stride=False,
    example=_two_streams,
)
class BilinearPool(nn.Module):
    """Bilinear pooling: ``vec(sum_i a_i b_i^T / HW)``, signed square root, L2 normalisation.

    Lin et al. Sec. 3: the outer product of the two streams' features at each location,
    average-pooled over locations (orderless), then ``sign(z) sqrt(|z|)`` and ``z / ||z||``
    (``normalize=False`` returns the raw pooled matrix). ``forward(a)`` (or ``b is None``) is the
    symmetric B-CNN [M, M], i.e. the Gram matrix / HW of a's features. Deviation: each stream is
    reduced to ``c_out`` channels by a bias-free 1x1 conv when its width differs (identity
    otherwise; stream b has its own map, ``c_in_b`` defaults to ``c_in``); b is resampled to a's
    size if they differ.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        c_in_b: int | None = None,
        normalize: bool = True,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        require_unit_stride("bilinear_pool", stride)
        cb = c_in_b or c_in
        self.normalize, self.eps = normalize, eps
        self.proj_a: nn.Module = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)
        self.proj_b: nn.Module = nn.Identity() if cb == c_out else nn.Conv2d(cb, c_out, 1, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        fa = self.proj_a(a)
        fb = fa if b is None else resize(self.proj_b(b), fa.shape[-2:])
        z = _gram(fa, fb).flatten(1)
        if self.normalize:
            z = torch.sign(z) * torch.sqrt(z.abs() + self.eps)
            z = F.normalize(z, dim=1)
        return z


@register_block(
    "factorized_bilinear",
    kind="context",
    paper="Li et al., Factorized Bilinear Models for Image Recognition (ICCV 2017)",
    signature="x [N, c_in, H, W] -> [N, c_out]",
    standard_io=False,
    supports_stride=False,
)
class FactorizedBilinear(nn.Module):
    """Factorised bilinear layer on pooled second-order features: ``y = b + W xbar + <F^T F, G>``.

    Li et al. Sec. 3: the classifier on the bilinear-pooled descriptor ``G = sum_i x_i x_i^T / HW``
    has, per output c, a low-rank matrix ``F_c^T F_c`` (``F_c``: ``rank x c_in``), so
    ``y_c = b_c + w_c^T xbar + (1/HW) sum_i ||F_c x_i||^2`` is computed without forming G (xbar is
    the mean feature: the FB layer's linear term). DropFactor (``drop_factor``) drops whole rank-1
    terms with that probability in training only (inverted scaling, so eval needs no rescale).
    Deviation: pooling is the average (the paper sums) so the scale does not depend on H x W.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        rank: int = 20,
        drop_factor: float = 0.0,
    ) -> None:
        super().__init__()
        require_unit_stride("factorized_bilinear", stride)
        self.c_out, self.rank, self.drop_factor = c_out, rank, drop_factor
        self.linear = nn.Linear(c_in, c_out)
        self.factors = nn.Conv2d(c_in, c_out * rank, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        quad = self.factors(x).view(n, self.c_out, self.rank, -1).pow(2).mean(dim=-1)  # [N, c_out, rank]
        if self.training and self.drop_factor > 0:
            keep = torch.rand_like(quad) >= self.drop_factor
            quad = quad * keep / (1.0 - self.drop_factor)
        return self.linear(x.mean(dim=(2, 3))) + quad.sum(dim=-1)


@register_block(
    "attentional_pool",
    kind="context",
    paper="Girdhar & Ramanan, Attentional Pooling for Action Recognition (NeurIPS 2017)",
    signature="x [N, c_in, H, W] -> [N, c_out] class scores",
    standard_io=False,
    supports_stride=False,
)
class AttentionalPool(nn.Module):
    """Attentional pooling: low-rank second-order pooling ``score_k = Tr(X^T X W_k^T)``, ``W_k = a_k b^T``.

    Girdhar & Ramanan Sec. 3: with X the ``HW x c_in`` feature matrix and a rank-1 class weight
    ``W_k = a_k b^T``, the score is ``(X a_k)^T (X b)``: the class-specific top-down map ``X a_k``
    times the class-agnostic bottom-up saliency map ``X b``, summed over positions, so the
    second-order features are never formed. ``c_out`` is the number of classes K; a per-class bias
    is added. ``rank=P`` uses ``W_k = sum_p a_kp b_p^T`` (bottom-up vectors shared across classes,
    our reading of the rank-P extension).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        rank: int = 1,
    ) -> None:
        super().__init__()
        require_unit_stride("attentional_pool", stride)
        self.c_out, self.rank = c_out, rank
        self.top_down = nn.Conv2d(c_in, c_out * rank, 1, bias=False)  # rows a_kp
        self.bottom_up = nn.Conv2d(c_in, rank, 1, bias=False)  # rows b_p
        self.bias = nn.Parameter(torch.zeros(c_out))

    def attention_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-down ``[N, K, P, H, W]`` and bottom-up ``[N, 1, P, H, W]`` attention maps."""
        n, _, h, w = x.shape
        top = self.top_down(x).view(n, self.c_out, self.rank, h, w)
        bottom = self.bottom_up(x).view(n, 1, self.rank, h, w)
        return top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self.attention_maps(x)
        return (top * bottom).sum(dim=(2, 3, 4)) + self.bias
