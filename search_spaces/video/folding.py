"""Catalogue 2D blocks on clips: fold time into the height axis, ``[N, C, T, H, W] -> [N, C, T·H, W]``.

``non_local``, ``gc`` and ``attentional_pool`` are pointwise (1×1 convs, per-channel norms)
except for one operation over *all positions* (a softmax or a sum over them). On the folded map
the positions are the clip's T·H·W points, so the block computes its spatio-temporal form
exactly: the space-time non-local block of Wang et al. (softmax over every other point of the
clip), GC's context pooled over the whole clip, attentional pooling over all T·H·W features.
Folding T into N instead would give the frame-wise blocks; no new 3D variants are needed.
"""

from __future__ import annotations

import torch
from torch import nn


class FoldTime(nn.Module):
    """Run ``block`` (a 2D module whose only non-pointwise step is over all positions) on a clip;
    4-D outputs are unfolded back to ``[N, C', T, H, W]``, others (pooled vectors) returned as is."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        y = self.block(x.reshape(n, c, t * h, w))
        return y.reshape(n, y.shape[1], t, h, w) if y.dim() == 4 else y
