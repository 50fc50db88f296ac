"""Small helpers shared by the attention and context blocks (``attention.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.layers import ConvNormAct


def project(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """1x1 conv + BN (a :class:`ConvNormAct` without activation) that changes width and applies
    the stride; identity when neither is needed.

    Channel-preserving attention modules (SE, non-local, GC, SAM) run on its output so that they
    fit the ``Block(c_in, c_out, stride)`` contract. A 1x1 conv with stride s and no padding gives
    ``ceil(H/s)`` rows, as the contract wants.
    """
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return ConvNormAct(c_in, c_out, 1, stride, act=None)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resampling to an exact spatial size (no-op when the size already matches).

    Exact sizes (not scale factors) keep odd resolutions such as 33x47 aligned with their
    ceil(H/2) x ceil(W/2) coarser levels.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling to ``[N, C, 1, 1]``."""
    return x.mean(dim=(2, 3), keepdim=True)


def hidden_width(channels: int, reduction: int, minimum: int) -> int:
    """Bottleneck width ``channels // reduction``, at least ``minimum`` (tiny search-space widths)."""
    return max(minimum, channels // reduction)


def require_unit_stride(name: str, stride: int) -> None:
    if stride != 1:
        raise ValueError(f"{name} has no stride (its output size is fixed by its inputs); got {stride}")


def neighbourhoods(
    x: torch.Tensor, kernel_size: int, dilation: int = 1, stride: int = 1
) -> torch.Tensor:
    """The k x k footprint R(i) of every output position: ``[N, C, k*k, ceil(H/s), ceil(W/s)]``.

    Borders are reflection-padded as in the SAN reference code (replicate padding when the map is
    too small to reflect). Built from strided slices rather than ``unfold`` so that it exports to
    ONNX / torch.export as plain Slice/Concat ops.
    """
    h, w = x.shape[-2:]
    pad = dilation * (kernel_size - 1) // 2
    if pad:
        mode = "reflect" if pad < min(h, w) else "replicate"
        x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    ho, wo = math.ceil(h / stride), math.ceil(w / stride)
    taps = []
    for i in range(kernel_size):
        for j in range(kernel_size):
            y0, x0 = i * dilation, j * dilation
            taps.append(
                x[:, :, y0 : y0 + (ho - 1) * stride + 1 : stride, x0 : x0 + (wo - 1) * stride + 1 : stride]
            )
    return torch.stack(taps, dim=2)


def coordinate_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``[1, 2, H, W]`` x / y coordinates normalised to [-1, 1] (SAN's ``position``)."""
    ys = torch.linspace(-1.0, 1.0, h, device=like.device, dtype=like.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=like.device, dtype=like.dtype)
    return torch.stack(
        [xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=0
    ).unsqueeze(0)


def sine_positional_encoding(channels: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """2D version of the Transformer's sinusoidal encoding: ``[1, channels, H, W]``.

    Half the channels encode the row, half the column, each as interleaved
    ``sin(pos / 10000^(2i/d)), cos(pos / 10000^(2i/d))`` (Vaswani et al., Sec. 3.5).
    """

    def encode(dim: int, length: int) -> torch.Tensor:  # [dim, length]
        pos = torch.arange(length, device=like.device, dtype=like.dtype)
        i = torch.arange(dim, device=like.device)
        freq = torch.pow(10000.0, -(2 * (i // 2)).to(like.dtype) / max(dim, 1))
        angle = freq.view(dim, 1) * pos.view(1, length)
        return torch.where((i % 2 == 0).view(dim, 1), torch.sin(angle), torch.cos(angle))

    c_y = channels // 2
    c_x = channels - c_y
    pe_y = encode(c_y, h).view(c_y, h, 1).expand(c_y, h, w)
    pe_x = encode(c_x, w).view(c_x, 1, w).expand(c_x, h, w)
    return torch.cat([pe_y, pe_x], dim=0).unsqueeze(0)
