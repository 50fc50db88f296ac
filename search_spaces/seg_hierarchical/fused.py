"""The conv unit of the batched mixed ops with a memory-lean, hand-written backward.

A unit is ``u -> depthwise convs -> pointwise conv -> search BN (-> per-channel scale)`` over
the channel-major layout ``[G, C, T, N, H, W]`` of :mod:`.mixed` (G = (op, edge) groups). Plain
autograd would keep the depthwise output and the pointwise output alive until the backward
pass (2 of the ~3 tensors of every mixed op); :class:`_Unit` keeps only its input ``u`` and the
BN statistics and recomputes the two cheap forward kernels in ``backward``.

Depthwise backward is also done by hand: oneDNN's own backward is 10-20x slower than its
forward for 5x5 and dilated depthwise kernels on CPU; grad_input = conv(grad, flipped kernel)
and grad_kernel = conv(padded input, grad as the kernel, stride = dilation) are fast forward
kernels. Kernels are cropped to the taps that can reach the map (exact) before they get here;
the 1x1 ones that leaves (1x1 maps) are per-channel products (:func:`_depthwise`), since torch
runs 1x1 convs of a batch under 16 on one thread through a kernel that loops over the groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F

EPS = 1e-5

# (groups, dilation) of each depthwise kernel of a unit, in group order
Spec = tuple[tuple[int, int], ...]


def _depthwise(x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int] = (0, 0), dilation: int = 1,
               stride: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, groups=channels)`` for ``x`` [1, ch, H, W] and ``weight`` [ch, 1, kh, kw].
    A 1x1 weight (the kernels on 1x1 maps, the kernel gradient of a 1x1 map) is a per-channel
    product: torch sends 1x1 convs of a batch under 16 on one thread to its reference kernel,
    which loops over the thousands of groups here (4x the time of a whole seg-hierarchical search
    at 1 thread)."""
    if weight.shape[-2:] == (1, 1):
        if padding != (0, 0):
            x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
        return x[..., ::stride, ::stride] * weight.view(1, -1, 1, 1)
    return F.conv2d(x, weight, padding=padding, dilation=dilation, stride=stride, groups=x.shape[1])


def _conv(x: torch.Tensor, k: torch.Tensor, d: int) -> torch.Tensor:
    """Depthwise conv of ``x`` [g, C, T, N, H, W] with ``k`` [g, C, 1, kh, kw] (shared over T, N)."""
    g, c, t, n, h, w = x.shape
    kh, kw = k.shape[-2:]
    wt = k.expand(g, c, t * n, kh, kw).reshape(g * c * t * n, 1, kh, kw)
    pad = (d * (kh - 1) // 2, d * (kw - 1) // 2)
    return _depthwise(x.reshape(1, -1, h, w), wt, pad, d).view(x.shape)


def _conv_grads(
    x: torch.Tensor, k: torch.Tensor, d: int, grad: torch.Tensor, need_x: bool, need_k: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`_conv` w.r.t. ``x`` and ``k`` (both by forward depthwise convs)."""
    g, c, t, n, h, w = x.shape
    kh, kw = k.shape[-2:]
    ph, pw = d * (kh - 1) // 2, d * (kw - 1) // 2
    ch = g * c * t * n
    gx = gk = None
    if need_x:
        wt = k.flip(-1, -2).expand(g, c, t * n, kh, kw).reshape(ch, 1, kh, kw)
        gx = _depthwise(grad.reshape(1, ch, h, w), wt, (ph, pw), d).view(x.shape)
    if need_k:
        xp = F.pad(x.reshape(1, ch, h, w), (pw, pw, ph, ph))
        gk = _depthwise(xp, grad.reshape(ch, 1, h, w), stride=d)
        gk = gk.view(g, c, t * n, kh, kw).sum(2, keepdim=True)
    return gx, gk


def _inputs(u: torch.Tensor, spec: Spec) -> list[torch.Tensor]:
    """The input of each kernel: ``u`` repeated (one shared group) or its slice of groups."""
    out, start = [], 0
    for groups, _ in spec:
        if u.shape[0] == 1:
            out.append(u.expand(groups, *u.shape[1:]))
        else:
            out.append(u[start : start + groups])
        start += groups
    return out


def _forward(
    u: torch.Tensor, pw: torch.Tensor, kernels: Sequence[torch.Tensor], spec: Spec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise outputs z [G, C, T, N, H, W] and pointwise outputs v [G, Co, T, N, H, W]."""
    z = torch.cat([_conv(x, k, d) for x, k, (_, d) in zip(_inputs(u, spec), kernels, spec)])
    g, c, t, n, h, w = z.shape
    v = torch.bmm(pw, z.view(g, c, -1)).view(g, pw.shape[1], t, n, h, w)
    return z, v


class _Unit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, pw, scale, spec, *kernels):  # type: ignore[override]
        _, v = _forward(u, pw, kernels, spec)
        n_hw = v.shape[-3] * v.shape[-2] * v.shape[-1]
        y, mean, invstd = torch.native_batch_norm(v.reshape(1, -1, n_hw), scale, None, None, None, True, 0.0, EPS)
        ctx.spec = spec
        ctx.save_for_backward(u, pw, scale, mean, invstd, *kernels)
        return y.view(v.shape)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        u, pw, scale, mean, invstd, *kernels = ctx.saved_tensors
        spec = ctx.spec
        need_u, need_pw, need_scale = ctx.needs_input_grad[:3]
        need_k = ctx.needs_input_grad[4:]
        z, v = _forward(u, pw, kernels, spec)  # recomputed
        g, c = z.shape[:2]
        n_hw = v.shape[-3] * v.shape[-2] * v.shape[-1]
        gv, gscale, _ = torch.ops.aten.native_batch_norm_backward(
            grad.reshape(1, -1, n_hw), v.reshape(1, -1, n_hw), scale, None, None, mean, invstd, True, EPS,
            [True, bool(need_scale and scale is not None), False],
        )
        gv = gv.view(g, pw.shape[1], -1)
        gpw = torch.bmm(gv, z.view(g, c, -1).transpose(1, 2)) if need_pw else None
        gz = torch.bmm(pw.transpose(1, 2), gv).view(z.shape)
        gu = torch.zeros_like(u) if need_u else None
        gks: list[torch.Tensor | None] = []
        start = 0
        for x, k, (groups, d), nk in zip(_inputs(u, spec), kernels, spec, need_k):
            gx, gk = _conv_grads(x, k, d, gz[start : start + groups], need_u, nk)
            if gx is not None and gu is not None:
                if u.shape[0] == 1:
                    gu += gx.sum(0, keepdim=True)
                else:
                    gu[start : start + groups] += gx
            gks.append(gk)
            start += groups
        return (gu, gpw, gscale if need_scale else None, None, *gks)


def conv_unit(
    u: torch.Tensor,
    kernels: Sequence[tuple[torch.Tensor, int]],
    pw: torch.Tensor,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``u`` [1 or G, C, T, N, H, W] -> depthwise ``kernels`` [(k [g_i, C, 1, kh, kw], dilation)]
    (their groups concatenated, G = Σ g_i; one shared input group is repeated) -> pointwise
    ``pw`` [G, Co, C] -> search BN per (G, Co, T) over (N, H, W), times ``scale`` [G*Co*T].

    Runs in the autocast dtype under AMP (inputs cast, autocast off inside), else in ``u``'s."""
    spec = tuple((int(k.shape[0]), int(d)) for k, d in kernels)
    device = u.device.type
    amp = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    dtype = torch.get_autocast_dtype(device) if amp else u.dtype
    u, pw = u.to(dtype), pw.to(dtype)
    scale = scale.to(dtype) if scale is not None else None
    with torch.autocast(device, enabled=False) if amp else nullcontext():  # one dtype throughout
        return _Unit.apply(u, pw, scale, spec, *(k.to(dtype) for k, _ in kernels))
