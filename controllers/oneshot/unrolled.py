"""Second-order (unrolled) DARTS architecture gradient, docs/algorithms.md §4.

    w' = w − ξ (∇w L_train(w, α) + m·buf + wd·w)          (a virtual step of the real SGD)
    g  = ∇α L_val(w', α) − ξ [∇α L_train(w⁺, α) − ∇α L_train(w⁻, α)] / (2ε)
    w± = w ± ε ∇w' L_val(w', α),   ε = 0.01 / ‖∇w' L_val(w', α)‖

Unlike the reference, which builds a whole new network for w', the virtual step is written into
the parameters in place and undone afterwards, each pass asks autograd only for the gradients
it needs (weights, α, or both), and BatchNorm running statistics are restored after its four
forward passes (the reference lets two of them move the real network's statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch

LossFn = Callable[[], torch.Tensor]
# Averages gradients over the processes of a data-parallel search, in place (None entries kept).
AverageFn = Callable[[list[torch.Tensor | None]], None]


@contextmanager
def requires_grad(params: Sequence[torch.Tensor], flag: bool) -> Iterator[None]:
    """Temporarily switch ``requires_grad`` of ``params`` (autograd then skips their gradients)."""
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, b in zip(params, before, strict=True):
            p.requires_grad_(b)


@contextmanager
def preserved(tensors: Sequence[torch.Tensor]) -> Iterator[None]:
    """Restore ``tensors`` (parameters or buffers) to their current values on exit."""
    saved = [t.detach().clone() for t in tensors]
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved, strict=True):
                t.copy_(s)


def grads_of(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """∂loss/∂params, zeros for parameters the loss does not reach."""
    out = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, out, strict=True)]


def _norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))


def finite_difference_hvp(train_loss: LossFn, weights: Sequence[torch.Tensor], arch: Sequence[torch.Tensor],
                          vector: Sequence[torch.Tensor], r: float = 0.01) -> list[torch.Tensor]:
    """(∇α L_train(w + εv) − ∇α L_train(w − εv)) / 2ε ≈ ∇²_{α,w} L_train · v, ε = r / ‖v‖.

    The weights are restored exactly (from a copy, not by adding ε back).
    """
    norm = _norm(vector)
    eps = r / norm.clamp_min(torch.finfo(norm.dtype).tiny)  # a tensor: no host sync; v = 0 gives 0
    grads: list[list[torch.Tensor]] = []
    with preserved(weights), requires_grad(weights, False):
        for sign in (1.0, -2.0):  # w + εv, then w − εv
            with torch.no_grad():
                for w, v in zip(weights, vector, strict=True):
                    w.add_(v.to(w.dtype) * (sign * eps).to(w.dtype))
            grads.append(grads_of(train_loss(), arch))
    return [(gp - gm) / (2.0 * eps) for gp, gm in zip(grads[0], grads[1], strict=True)]


def virtual_step(weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None], xi: float,
                 momentum: float, weight_decay: float, buffers: Mapping[int, torch.Tensor]) -> None:
    """w ← w − ξ (g + wd·w + m·buf) in place, as ``torch.optim.SGD`` would step.

    ``buffers`` maps ``id(w)`` to SGD's momentum buffer (absent: zero). A weight without a
    gradient is left alone, as SGD skips it.
    """
    with torch.no_grad():
        for w, g in zip(weights, grads, strict=True):
            if g is None:
                continue
            d = g + weight_decay * w if weight_decay else g.clone()
            buf = buffers.get(id(w))
            if buf is not None and momentum:
                d.add_(buf, alpha=momentum)
            w.sub_(xi * d)


def unrolled_arch_gradient(train_loss: LossFn, val_loss: LossFn, weights: Sequence[torch.Tensor],
                           arch: Sequence[torch.Tensor], *, xi: float, momentum: float, weight_decay: float,
                           buffers: Mapping[int, torch.Tensor], state: Sequence[torch.Tensor] = (),
                           hvp_loss: LossFn | None = None, r: float = 0.01, average_train: AverageFn | None = None,
                           average_val: AverageFn | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The second-order α gradient and the validation loss at w'.

    ``train_loss`` / ``val_loss`` evaluate the current parameters on the fixed training /
    validation batch; ``state`` are tensors (BatchNorm running statistics) restored after the
    virtual passes; ``hvp_loss`` (default ``train_loss``) is used for the finite differences,
    e.g. the same loss without mixed precision. ``average_train`` / ``average_val`` (data-parallel
    search) average the gradients of the training / validation loss over the processes before
    they are used, so w', w± and the result are those of the global batch.
    """
    with preserved(state):
        with requires_grad(arch, False):
            g_w = list(torch.autograd.grad(train_loss(), list(weights), allow_unused=True))
        if average_train is not None:
            average_train(g_w)
        with preserved(weights):
            virtual_step(weights, g_w, xi, momentum, weight_decay, buffers)
            del g_w
            loss_v = val_loss()
            both = grads_of(loss_v, [*arch, *weights])
        if average_val is not None:
            average_val(list(both))
        d_alpha, v = both[: len(arch)], both[len(arch):]
        del both
        hvp = finite_difference_hvp(hvp_loss or train_loss, weights, arch, v, r)
        if average_train is not None:
            average_train(list(hvp))
    return [da - xi * h for da, h in zip(d_alpha, hvp, strict=True)], loss_v.detach()
