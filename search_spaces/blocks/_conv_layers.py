"""Conv-layer replacements of the 'conv' table: octave, deformable, shift, ternary, FickleNet.

Each block here replaces one ``nn.Conv2d(c_in, c_out, k, stride, 'same' padding, dilation,
bias=False)``: like that layer it has no normalisation or activation (compose those around it),
and its weight has the ``nn.Conv2d`` layout ``[c_out, c_in, k, k]`` so that each block's
property can be checked against ``F.conv2d`` with the same weights.
Registered on import of :mod:`search_spaces.blocks.conv`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks.registry import register_block
from search_spaces.layers import same_padding


def conv_weight(c_out: int, c_in: int, kernel_size: int) -> nn.Parameter:
    """A conv weight with ``nn.Conv2d``'s default initialisation."""
    weight = nn.Parameter(torch.empty(c_out, c_in, kernel_size, kernel_size))
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return weight


def check_odd(kernel_size: int) -> int:
    """Return ``kernel_size`` if it is odd (every block here uses centred 'same' padding)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    return kernel_size


class _ConvLayer(nn.Module):
    """Shared state of the blocks here: a ``[c_out, c_in, k, k]`` weight and 'same' geometry."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = check_odd(kernel_size)
        self.stride, self.dilation = stride, dilation
        self.padding = same_padding(kernel_size, dilation)
        self.weight = conv_weight(c_out, c_in, kernel_size)

    def plain_conv(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``F.conv2d`` with this layer's geometry (and its own weight unless one is given)."""
        w = self.weight if weight is None else weight
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation)


# ---------------------------------------------------------------------------------------------
# OctConv
# ---------------------------------------------------------------------------------------------


def avg_pool_2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling to ``ceil(H/2) x ceil(W/2)``; an odd last row/column is its own mean."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:  # replicate-padding makes the partial window the mean of what exists
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def upsample_2x(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Nearest x2 upsampling cropped to ``size`` (the inverse geometry of :func:`avg_pool_2x`)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")[..., : size[0], : size[1]]


def _octave_example(
    c_in: int, batch: int, height: int, width: int, frames: int
) -> tuple[torch.Tensor, ...]:
    low = c_in // 2  # int(0.5 * c_in): the default alpha_in
    return (
        torch.randn(batch, c_in - low, height, width),
        torch.randn(batch, low, (height + 1) // 2, (width + 1) // 2),
    )


@register_block(
    "octave_conv",
    kind="conv",
    paper="Drop an Octave: Octave Convolution (OctConv, Chen et al. 2019)",
    signature="(x_high [N, c_in_h, H, W], x_low [N, c_in_l, ceil(H/2), ceil(W/2)] | None) -> "
    "(y_high [N, c_out_h, H', W'], y_low [N, c_out_l, ceil(H'/2), ceil(W'/2)] | None), "
    "H' = ceil(H/stride)",
    standard_io=False,
    example=_octave_example,
)
class OctaveConv(_ConvLayer):
    """Octave convolution: high/low-frequency channel groups (ratio alpha), four paths H<->L.

    ``c_in_l = int(alpha_in * c_in)`` input channels live at half resolution (``c_in_h`` the
    rest), likewise for the output with ``alpha_out``. Following the paper and its reference
    code: ``Y_h = conv(X_h; W_hh) + up(conv(X_l; W_lh))`` and
    ``Y_l = conv(X_l; W_ll) + conv(pool(X_h); W_hl)`` with 2x2 average pooling and nearest
    upsampling; at stride 2 both inputs are average-pooled first and the L->H path needs no
    upsampling. The four weights are the blocks of one ``[c_out, c_in, k, k]`` tensor
    (``weight[:c_out_h, :c_in_h]`` is W_hh, ...), so with ``alpha_in = alpha_out = 0`` the
    block is exactly ``F.conv2d(x, weight)``. The first layer of a network uses ``alpha_in=0``
    (pass only ``x_high``), the last ``alpha_out=0`` (``y_low`` is ``None``). Call as
    ``block(x_high, x_low)`` or ``block((x_high, x_low))``. Odd sizes: the low branch has
    ``ceil(H/2)`` rows (pooling treats the odd last row as its own mean; upsampling crops).
    No BN/activation (the paper's OctConv is a drop-in conv layer).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        alpha_in: float = 0.5,
        alpha_out: float = 0.5,
    ) -> None:
        if stride not in (1, 2):
            raise ValueError(f"octave_conv supports stride 1 or 2, got {stride}")
        if not (0 <= alpha_in < 1 and 0 <= alpha_out < 1):
            raise ValueError("alpha_in and alpha_out must lie in [0, 1)")
        super().__init__(c_in, c_out, 1, dilation, kernel_size)
        self.octave_stride = stride  # applied by pooling, the convs themselves run at stride 1
        self.c_in_low, self.c_out_low = int(alpha_in * c_in), int(alpha_out * c_out)
        self.c_in_high, self.c_out_high = c_in - self.c_in_low, c_out - self.c_out_low

    def forward(
        self,
        x_high: torch.Tensor | tuple[torch.Tensor, torch.Tensor | None],
        x_low: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(x_high, (tuple, list)):
            x_high, x_low = x_high
        if (x_low is None) != (self.c_in_low == 0):
            raise ValueError(
                "octave_conv expects a low-frequency input iff alpha_in > 0 "
                f"(c_in_low={self.c_in_low})"
            )
        ho, hi, w = self.c_out_high, self.c_in_high, self.weight
        if self.octave_stride == 2:
            x_high = avg_pool_2x(x_high)
        y_high = self.plain_conv(x_high, w[:ho, :hi])
        y_low = self.plain_conv(avg_pool_2x(x_high), w[ho:, :hi]) if self.c_out_low else None
        if x_low is not None:
            low_to_high = self.plain_conv(x_low, w[:ho, hi:])
            if self.octave_stride == 1:
                low_to_high = upsample_2x(low_to_high, y_high.shape[-2:])
            y_high = y_high + low_to_high
            if y_low is not None:
                x_low = avg_pool_2x(x_low) if self.octave_stride == 2 else x_low
                y_low = y_low + self.plain_conv(x_low, w[ho:, hi:])
        return y_high, y_low


# ---------------------------------------------------------------------------------------------
# Deformable convolution
# ---------------------------------------------------------------------------------------------


def deform_sample(
    x: torch.Tensor,
    offset: torch.Tensor,
    kernel_size: int,
    stride: int,
    padding: int,
    dilation: int,
) -> torch.Tensor:
    """Bilinearly sample the k x k taps of every output position, displaced by ``offset``.

    ``offset`` is ``[N, 2*k*k, Ho, Wo]`` with ``(dy, dx)`` pairs per tap (row-major taps, as in
    torchvision's ``deform_conv2d``). Returns the columns ``[N, C*k*k, Ho*Wo]`` (channel-major,
    matching ``weight.flatten(1)``). Samples outside the image are zero, like zero padding.
    """
    n, c, h, w = x.shape
    ho, wo = offset.shape[-2:]
    taps = torch.arange(kernel_size * kernel_size, device=x.device)
    tap_y = (taps // kernel_size).to(x.dtype).mul(dilation).view(-1, 1, 1)
    tap_x = (taps % kernel_size).to(x.dtype).mul(dilation).view(-1, 1, 1)
    rows = torch.arange(ho, device=x.device, dtype=x.dtype).mul(stride).sub(padding).view(1, ho, 1)
    cols = torch.arange(wo, device=x.device, dtype=x.dtype).mul(stride).sub(padding).view(1, 1, wo)
    ys = tap_y + rows + offset[:, 0::2]  # [N, K, Ho, Wo] absolute pixel coordinates
    xs = tap_x + cols + offset[:, 1::2]
    grid = torch.stack([xs * (2.0 / max(w - 1, 1)) - 1.0, ys * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)
    sampled = F.grid_sample(
        x, grid.view(n, -1, wo, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )  # [N, C, K*Ho, Wo]
    return sampled.reshape(n, -1, ho * wo)


@register_block(
    "deform_conv",
    kind="conv",
    paper="Deformable Convolutional Networks (Dai et al. 2017)",
)
class DeformConv(_ConvLayer):
    """Deformable convolution (v1): tap offsets from a parallel conv, bilinear sampling.

    As in the paper, the offsets come from a conv over the same input with the same kernel
    size, stride and dilation, producing ``2 * k * k`` channels (one offset group), initialised
    to zero so training starts from the plain conv. Sampling uses ``F.grid_sample`` (no
    torchvision), then a matmul with ``weight.flatten(1)``. With zero offsets the block equals
    ``F.conv2d(x, weight)``. Deviations: one deformable group (the paper's default); no
    modulation (that is DCNv2); no deformable RoI pooling (a detection-head op).
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1, kernel_size: int = 3
    ) -> None:
        super().__init__(c_in, c_out, stride, dilation, kernel_size)
        k = self.kernel_size
        self.offset = nn.Conv2d(
            c_in, 2 * k * k, k, stride=stride, padding=self.padding, dilation=dilation
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset(x)
        cols = deform_sample(x, offset, self.kernel_size, self.stride, self.padding, self.dilation)
        ho, wo = offset.shape[-2:]
        return torch.matmul(self.weight.flatten(1), cols).view(x.shape[0], -1, ho, wo)


# ---------------------------------------------------------------------------------------------
# Sparse shift layer
# ---------------------------------------------------------------------------------------------


def integer_shift(x: torch.Tensor, offset: torch.Tensor, dim: int) -> torch.Tensor:
    """``out[:, c, i] = x[:, c, i + offset[c]]`` along ``dim`` (2 rows, 3 columns), 0 outside."""
    n, c, h, w = x.shape
    size = x.shape[dim]
    idx = torch.arange(size, device=x.device).view(1, size) + offset.view(c, 1)
    valid = ((idx >= 0) & (idx < size)).to(x.dtype)
    view = (1, c, size, 1) if dim == 2 else (1, c, 1, size)
    idx = idx.clamp(0, size - 1).view(view).expand(n, c, h, w)
    return torch.gather(x, dim, idx) * valid.view(view)


def bilinear_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift channel ``c`` by the real ``shift[c] = (dy, dx)`` with bilinear interpolation."""
    for dim, s in ((2, shift[:, 0]), (3, shift[:, 1])):
        base = torch.floor(s).detach()
        frac = (s - base).view(1, -1, 1, 1)
        b = base.long()
        x = integer_shift(x, b, dim) * (1 - frac) + integer_shift(x, b + 1, dim) * frac
    return x


@register_block(
    "shift_conv",
    kind="conv",
    paper="All You Need is a Few Shifts (Chen et al. 2019), sparse shift layer",
)
class ShiftConv(nn.Module):
    """Sparse shift layer + pointwise conv: each channel moved by a learnable (dy, dx), then 1x1.

    Quantisation-aware shift learning as in the paper: the forward pass uses the rounded
    displacement (an exact integer shift with zero fill: ``out[c, i, j] = x[c, i + dy, j + dx]``),
    the backward pass the gradient of bilinear interpolation at the real-valued displacement.
    ``shift_penalty()`` is the L1 sparsity regulariser on the displacements the paper adds to
    the loss. The stride is applied by the 1x1 conv. Displacements start uniform in
    ``[-dilation, dilation]`` (Active Shift Layer initialisation; ``dilation`` widens it).
    Deviation: only the layer, not the paper's fully-exploited network; no BN/activation.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.empty(c_in, 2).uniform_(-float(dilation), float(dilation)))
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def shift_features(self, x: torch.Tensor) -> torch.Tensor:
        """The shift step alone (``c_in`` channels, same size)."""
        q = torch.round(self.shift).detach().long()
        out = integer_shift(integer_shift(x, q[:, 0], 2), q[:, 1], 3)
        if self.training and torch.is_grad_enabled():
            real = bilinear_shift(x.detach(), self.shift)  # carries only the displacement gradient
            out = out + (real - real.detach())  # adds exactly zero to the forward value
        return out

    def shift_penalty(self) -> torch.Tensor:
        return self.shift.abs().sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.shift_features(x))


# ---------------------------------------------------------------------------------------------
# Ternary weights
# ---------------------------------------------------------------------------------------------


def ternarize(weight: torch.Tensor, threshold: float = 0.7) -> torch.Tensor:
    """Per-filter ternary approximation ``scale_f * {-1, 0, +1}`` of a conv weight (TWN rule).

    Weights with ``|w| <= threshold * mean|w_f|`` become 0; the others keep their sign with the
    scale ``mean(|w|)`` over the kept weights of the filter (the least-squares optimum).
    """
    flat = weight.flatten(1)
    mag = flat.abs()
    keep = (mag > threshold * mag.mean(dim=1, keepdim=True)).to(weight.dtype)
    scale = (mag * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp_min(1.0)
    return (torch.sign(flat) * keep * scale).view_as(weight)


@register_block(
    "ternary_conv",
    kind="conv",
    paper="TernaryNet (Heinrich et al. 2018); Ternary Weight Networks (Li et al. 2016)",
)
class TernaryConv(_ConvLayer):
    """Convolution with ternary weights ``{-1, 0, +1} * scale`` and a straight-through gradient.

    The latent full-precision weight is ternarised on every forward pass with a per-filter
    threshold ``threshold * mean|w|`` and scale (see :func:`ternarize`); the gradient passes
    straight through to the latent weight. Deviations from TernaryNet: activations stay
    full-precision (the paper also ternarises them and smooths their backward pass with its
    tanh continuation), the threshold/scale rule is TWN's, and the conv is an ordinary float
    conv rather than the masked-Hamming-distance kernel used for deployment.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        threshold: float = 0.7,
    ) -> None:
        super().__init__(c_in, c_out, stride, dilation, kernel_size)
        self.threshold = threshold

    def ternary_weight(self) -> torch.Tensor:
        """The weight used in the forward pass (value ternary, gradient identity to ``weight``)."""
        w = self.weight
        return ternarize(w.detach(), self.threshold) + (w - w.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.plain_conv(x, self.ternary_weight())


# ---------------------------------------------------------------------------------------------
# FickleNet stochastic dilated convolution
# ---------------------------------------------------------------------------------------------


@register_block(
    "fickle_conv",
    kind="conv",
    paper="FickleNet: Weakly and Semi-supervised Semantic Segmentation (Lee et al. 2019)",
)
class FickleConv(_ConvLayer):
    """FickleNet conv: dilated conv with random hidden-unit dropping per sliding window in training.

    Training: the input is expanded into its sliding windows (``F.unfold``, the paper's
    enlarged feature map), every element of every window except the kernel centre is dropped
    with probability ``drop_rate`` (kept ones scaled by ``1/(1-drop_rate)``, i.e. dropout), then
    the conv is a matmul. The centre tap is never dropped and never rescaled. Eval: the plain
    (deterministic) dilated conv, which is the expectation of the training output. The paper
    uses ``drop_rate=0.9`` in its classifier for localisation; the default here is milder.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        if not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate must lie in [0, 1), got {drop_rate}")
        super().__init__(c_in, c_out, stride, dilation, kernel_size)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_rate == 0:
            return self.plain_conv(x)
        n, c, h, w = x.shape
        k, kk = self.kernel_size, self.kernel_size**2
        cols = F.unfold(x, k, dilation=self.dilation, padding=self.padding, stride=self.stride)
        keep = (torch.rand(n, c, kk, cols.shape[-1], device=x.device) >= self.drop_rate).to(x.dtype)
        keep = keep / (1.0 - self.drop_rate)
        centre = torch.arange(kk, device=x.device).view(1, 1, kk, 1) == kk // 2
        keep = torch.where(centre, torch.ones_like(keep), keep).view(n, c * kk, -1)
        span = self.dilation * (k - 1) + 1
        ho = (h + 2 * self.padding - span) // self.stride + 1
        wo = (w + 2 * self.padding - span) // self.stride + 1
        return torch.matmul(self.weight.flatten(1), cols * keep).view(n, -1, ho, wo)
