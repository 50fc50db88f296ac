"""Memory-lean autograd functions for the search-time ops (same values and gradients).

* :func:`depthwise_pointwise` — ``pw(dw(x))`` (the body of DARTS SepConv/DilConv) keeps only
  ``x`` for backward, which its caller keeps anyway (the shared ReLU of a state, or the ReLU
  output inside SepConv); the depthwise output is recomputed in backward, and only when the
  pointwise weight gradient is asked for (the weight step), never in the architecture step.
  Autograd would keep one activation per depthwise conv, 6 per edge of the DARTS op set.
  The input gradient of the depthwise conv is computed as a forward conv
  (:func:`depthwise_input_grad`).
* :func:`max_pool` — max pooling that keeps its input instead of int64 argmax indices (twice
  the size of a float32 activation); the indices are recomputed in backward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _DepthwisePointwise(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, w_dw: torch.Tensor, w_pw: torch.Tensor, conf: tuple[Any, ...]
    ) -> torch.Tensor:
        stride, padding, dilation, groups = conf
        ctx.conf = conf
        ctx.save_for_backward(x, w_dw, w_pw)
        return F.conv2d(F.conv2d(x, w_dw, None, stride, padding, dilation, groups), w_pw)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w_dw, w_pw = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        need_x, need_dw, need_pw = ctx.needs_input_grad[:3]
        # Backward runs outside autocast: compute in the activations' dtype (bf16 under AMP).
        dtype = x.dtype
        grad, dw, pw = grad.to(dtype), w_dw.to(dtype), w_pw.to(dtype)
        g_x = g_dw = g_pw = None
        if need_pw:
            mid = F.conv2d(x, dw, None, stride, padding, dilation, groups)
            g_pw = torch.ops.aten.convolution_backward(
                grad, mid, pw, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
            )[1].to(w_pw.dtype)
        if need_x or need_dw:
            g_mid = F.conv2d(grad, pw.transpose(0, 1))  # input gradient of a 1x1 conv
            if need_dw:
                g_dw = torch.ops.aten.convolution_backward(
                    g_mid, x, dw, None, list(stride), list(padding), list(dilation), False, [0, 0], groups,
                    [False, True, False],
                )[1].to(w_dw.dtype)
            if need_x:
                g_x = depthwise_input_grad(g_mid, x, dw, stride, padding, dilation, groups)
        return g_x, g_dw, g_pw, None


def depthwise_input_grad(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> torch.Tensor:
    """Input gradient of a depthwise conv with 'same' padding, as a forward conv.

    The transposed conv is the correlation of the gradient (zero-interleaved for stride 2)
    with the flipped kernel. The CPU (oneDNN) backward-data kernel of dilated and 5x5
    depthwise convs is 5-20x slower than the forward kernel this uses; the result is the same.
    """
    k = weight.shape[-1]
    same = all(p == d * (k - 1) // 2 for p, d in zip(padding, dilation, strict=True))
    if not same or weight.shape[-2] != k or stride[0] != stride[1] or stride[0] not in (1, 2):
        return torch.ops.aten.convolution_backward(
            grad, x, weight, None, list(stride), list(padding), list(dilation), False, [0, 0], groups,
            [True, False, False],
        )[0]
    if stride[0] == 2:
        spread = grad.new_zeros(x.shape).contiguous(memory_format=torch.channels_last)
        spread[..., ::2, ::2] = grad
        grad = spread
    return F.conv2d(grad, weight.flip(-1, -2), None, 1, padding, dilation, groups)


def depthwise_pointwise(x: torch.Tensor, dw: nn.Conv2d, pw: nn.Conv2d) -> torch.Tensor:
    """``pw(dw(x))`` for bias-free convs, keeping only ``x`` for backward."""
    if not torch.is_grad_enabled():
        return pw(dw(x))
    conf = (dw.stride, dw.padding, dw.dilation, dw.groups)
    return _DepthwisePointwise.apply(x, dw.weight, pw.weight, conf)


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, conf: tuple[int, int, int]) -> torch.Tensor:
        ctx.conf = conf
        ctx.save_for_backward(x)
        kernel, stride, padding = conf
        return F.max_pool2d(x, kernel, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (x,) = ctx.saved_tensors
        k, s, p = ctx.conf
        _, indices = torch.ops.aten.max_pool2d_with_indices(x, [k, k], [s, s], [p, p], [1, 1], False)
        g = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [k, k], [s, s], [p, p], [1, 1], False, indices)
        return g, None


def max_pool(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """``pool(x)`` keeping ``x`` (not the argmax indices) for backward."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return pool(x)
    conf = (int(pool.kernel_size), int(pool.stride), int(pool.padding))  # type: ignore[arg-type]
    return _MaxPool.apply(x, conf)
