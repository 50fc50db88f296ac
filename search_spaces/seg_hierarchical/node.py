"""One node of the Auto-DeepLab lattice: its searched cell over the node's incoming transitions.

ˢH^l = Σ_t β_t · Cell(H_t, ˢH^{l-2}; α) over the T incoming transitions t of the node. The T
cells share their weights, so the node runs *one* cell on the T preprocessed inputs side by
side (channel-major layout ``[C, T, N, H, W]``, see :mod:`.mixed`) and mixes the T block
concatenations with β at the end. The edges leaving H(l-2) are the same for every transition
and run once (T = 1, broadcast).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_spaces.seg_hierarchical.genotype import edge_index
from search_spaces.seg_hierarchical.mixed import CONV_COLUMNS, SHARED_COLUMNS, MixedSource, search_bn
from search_spaces.seg_hierarchical.ops import Preprocess


def source_edges(blocks: int) -> list[list[int]]:
    """α rows of the edges leaving each cell state (0 = H(l-2), 1 = H(l-1), k + 1 = block k)."""
    return [
        [edge_index(b, j, blocks) for b in range(max(0, j - 1), blocks)] for j in range(blocks + 1)
    ]

class Node(nn.Module):
    """One lattice node: its cell (mixed ops per state) and the preprocessing of its inputs."""

    def __init__(
        self, channels: int, blocks: int, incoming: list[tuple[int, str, int]], c_prev_prev: int, partial: int
    ) -> None:
        super().__init__()
        self.channels, self.blocks, self.partial = channels, blocks, partial
        self.incoming = [level for level, _, _ in incoming]
        self.pre = nn.ModuleList(Preprocess(c_in, channels, kind, norm=False) for _, kind, c_in in incoming)
        self.pre_prev_prev = Preprocess(c_prev_prev, channels, "1x1", norm=False)
        self.mixed = nn.ModuleList(MixedSource(channels // partial, len(e)) for e in source_edges(blocks))

    def forward(
        self,
        prev: list[torch.Tensor],
        betas: torch.Tensor,
        prev_prev: torch.Tensor,
        size: tuple[int, int],
        mix: Mixing,
    ) -> torch.Tensor:
        """``prev`` the T incoming H^{l-1} states, ``betas`` [T] their β -> ``[N, B*C, H, W]``."""
        # channel-major cell layout [C, T, N, H, W]; search BN per transition after the stacking
        s1 = search_bn(torch.stack([pre(x, size) for pre, x in zip(self.pre, prev)]).permute(2, 0, 1, 3, 4))
        s0 = search_bn(self.pre_prev_prev(prev_prev, size).transpose(0, 1).unsqueeze(1))
        acc = self._edges(0, s0, mix) + self._edges(1, s1, mix)  # [E, C, T, N, H, W]
        blocks = [acc[0]]
        for j in range(2, self.blocks + 1):
            acc = acc[1:] + self._edges(j, acc[0], mix)
            blocks.append(acc[0])
        out = torch.stack(blocks)  # [B, C, T, N, H, W]
        b, c, t, n, h, w = out.shape
        out = out[:, :, 0] * betas[0] if t == 1 else torch.einsum("bctnhw,t->bcnhw", out, betas)
        return out.permute(2, 0, 1, 3, 4).reshape(n, b * c, h, w)

    def _edges(self, j: int, x: torch.Tensor, mix: Mixing) -> torch.Tensor:
        """Outputs of the edges leaving state j: ``[E, C, T, N, H, W]`` (T = 1 broadcasts)."""
        k = self.partial
        if k == 1:
            y = mix.run(self.mixed[j], j, x)
        else:  # PC-DARTS: C/K channels through the mixed ops, the rest bypass, channel shuffle
            c = x.shape[0]
            y = mix.run(self.mixed[j], j, x[: c // k])
            rest = x[c // k :].unsqueeze(0).expand(y.shape[0], c - c // k, *x.shape[1:])
            y = torch.cat([y, rest], dim=1)
            y = y.view(y.shape[0], k, c // k, *x.shape[1:]).transpose(1, 2).reshape(y.shape)
        if mix.gamma is not None:
            y = y * mix.gamma[j].view(-1, 1, 1, 1, 1, 1)
        return y

class Mixing:
    """Per-forward op weights, split by cell state (computed once, used by every node)."""

    def __init__(self, net: Any) -> None:
        """``net``: the seg-hierarchical supernet whose α (and edge β) mix this forward pass."""
        self.hard = net.sampling == "gumbel"
        rows = net.source_rows
        if self.hard:
            hard, chosen = net.sample_ops()
            self.w = [hard[r] for r in rows]
            self.chosen = [chosen[r].tolist() for r in rows]
        else:
            p = torch.softmax(net.alpha, dim=-1)
            self.w_conv = [p[r][:, list(CONV_COLUMNS)].t() for r in rows]
            self.w_shared = [p[r][:, list(SHARED_COLUMNS)] for r in rows]
        g = net.edge_probs()
        self.gamma = [g[r] for r in rows] if g is not None else None

    def run(self, mixed: MixedSource, j: int, x: torch.Tensor) -> torch.Tensor:
        if self.hard:
            return mixed.forward_hard(x, self.w[j], self.chosen[j])
        return mixed(x, self.w_conv[j], self.w_shared[j])
