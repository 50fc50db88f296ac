"""Batched mixed ops: every candidate op of every edge leaving one cell state in a few kernels.

In a cell, a state (H(l-2), H(l-1) or a block) feeds one edge into each later block, and every
edge mixes the eight ops of :data:`~.genotype.OPS`. :class:`MixedSource` computes all edges
leaving one state at once, for all T incoming transitions of a lattice node at once.

Layout: inside a cell, tensors are *channel-major* ``[C, T, N, H, W]`` (T = the node's incoming
transitions, which share the cell's weights; T = 1 for H(l-2), whose edges are identical for
every transition and are computed once). Per-op tensors add a leading group dim G = (op, edge):
``[G, C, T, N, H, W]``. Then

* a depthwise conv is one ``conv2d`` over ``[1, G*C*T*N, H, W]`` with the (small) kernels
  repeated over T*N; sep3, sep5 and atrous3 share one 5x5 call (3x3 and rate-2 3x3 kernels are
  5x5 kernels with zero taps), the second stage of sep3/sep5 another; taps that only ever see
  padding on small maps are cropped (exact);
* a pointwise conv is one ``bmm`` of ``[G, C_out, C_in]`` with ``[G, C_in, T*N*H*W]``;
* search BN (batch statistics, no affine) is one ``batch_norm`` over ``[1, G*C*T, N*H*W]`` —
  statistics per op, edge, channel and transition, exactly those of separate per-transition
  cells; the mixing weights of the conv ops ride on the last BN's per-channel scale;
* depthwise -> pointwise -> BN is one :func:`~.fused.conv_unit` that keeps only its input for
  the backward pass;
* pooling (+ BN), skip and zero have no weights, so their output is the same for every edge:
  computed once per state, mixed into each edge by one matrix product; ``zero`` costs nothing.

Forward modes: :meth:`MixedSource.forward` (softmax weights, DARTS) and
:meth:`MixedSource.forward_hard` (one op per edge, GDAS; only the chosen ops run).
Output: ``[E, C, T, N, H, W]``, edge e = Σ_o w[e, o] · op_o(x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.seg_hierarchical.fused import EPS, conv_unit
from search_spaces.seg_hierarchical.genotype import OPS

# conv ops in α column order: (name, kernel, dilation) of the first depthwise stage
CONV_OPS: tuple[tuple[str, int, int], ...] = (
    ("sep_conv_3x3", 3, 1),
    ("sep_conv_5x5", 5, 1),
    ("atrous_conv_3x3", 3, 2),
    ("atrous_conv_5x5", 5, 2),
)
CONV_COLUMNS = tuple(OPS.index(name) for name, _, _ in CONV_OPS)  # 4, 5, 6, 7
SHARED_COLUMNS = (OPS.index("max_pool_3x3"), OPS.index("avg_pool_3x3"), OPS.index("skip_connect"))
SEP = 2  # the first SEP conv ops are separable: a second depthwise-pointwise stage


def search_bn(x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """BN of a channel-major tensor ``[..., C, T, N, H, W]`` per (leading dims, C, T) over (N, H, W).

    Batch statistics, no running stats, no affine; ``weight`` is an optional per-channel scale.
    """
    n_hw = x.shape[-3] * x.shape[-2] * x.shape[-1]
    y = F.batch_norm(x.reshape(1, -1, n_hw), None, None, weight, None, True, 0.0, EPS)
    return y.view(x.shape)


def crop(k: torch.Tensor, dilation: int, h: int, w: int) -> torch.Tensor:
    """Drop the taps of ``k`` [..., kh, kw] that only ever see zero padding on an h x w map."""
    kh = min(k.shape[-2], 2 * ((h - 1) // dilation) + 1)
    kw = min(k.shape[-1], 2 * ((w - 1) // dilation) + 1)
    oh, ow = (k.shape[-2] - kh) // 2, (k.shape[-1] - kw) // 2
    return k[..., oh : oh + kh, ow : ow + kw]


def as_5x5(k: torch.Tensor, dilation: int) -> torch.Tensor:
    """A 3x3 kernel (dilation 1 or 2) or 5x5 kernel (dilation 1) as the equal 5x5 dilation-1 kernel."""
    if k.shape[-1] == 5:
        return k
    if dilation == 1:
        return F.pad(k, (1, 1, 1, 1))
    out = k.new_zeros(*k.shape[:-2], 5, 5)
    out[..., ::2, ::2] = k
    return out


def _uniform(*shape: int, fan_in: int) -> nn.Parameter:
    """nn.Conv2d's default initialisation (kaiming uniform, a=sqrt(5)): U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class MixedSource(nn.Module):
    """The mixed ops of the ``edges`` edges leaving one cell state with ``channels`` channels.

    Parameters (one set per edge, shared by the transitions): ``dw1_<op>`` ``[E, C, 1, k, k]``
    first depthwise conv of each conv op, ``pw1`` ``[4*E, C, C]`` their pointwise convs
    (op-major), ``dw2_<op>`` and ``pw2`` ``[2*E, C, C]`` the second stage of the separable convs.
    """

    def __init__(self, channels: int, edges: int) -> None:
        super().__init__()
        c, e = channels, edges
        self.channels, self.edges = c, e
        for name, k, _ in CONV_OPS:
            self.register_parameter(f"dw1_{name}", _uniform(e, c, 1, k, k, fan_in=k * k))
        self.pw1 = _uniform(len(CONV_OPS) * e, c, c, fan_in=c)
        for name, k, _ in CONV_OPS[:SEP]:
            self.register_parameter(f"dw2_{name}", _uniform(e, c, 1, k, k, fan_in=k * k))
        self.pw2 = _uniform(SEP * e, c, c, fan_in=c)

    def dw1(self, op: int) -> torch.Tensor:
        return getattr(self, f"dw1_{CONV_OPS[op][0]}")

    def dw2(self, op: int) -> torch.Tensor:
        return getattr(self, f"dw2_{CONV_OPS[op][0]}")

    # -- softmax relaxation (DARTS) -------------------------------------------------------------
    def forward(self, x: torch.Tensor, w_conv: torch.Tensor, w_shared: torch.Tensor) -> torch.Tensor:
        """``x`` [C, T, N, H, W]; ``w_conv`` [4, E] (conv ops), ``w_shared`` [E, 3] (max, avg, skip)."""
        e, c, t = self.edges, x.shape[0], x.shape[1]
        h, w = x.shape[-2:]
        five = torch.cat([as_5x5(self.dw1(o), CONV_OPS[o][2]) for o in range(3)])  # sep3, sep5, atrous3
        stage1 = [(crop(five, 1, h, w), 1), (crop(self.dw1(3), 2, h, w), 2)]
        scale = w_conv.reshape(-1, 1, 1).expand(len(CONV_OPS) * e, c, t)
        ones = torch.ones_like(scale[: SEP * e])
        z = conv_unit(F.relu(x).unsqueeze(0), stage1, self.pw1, torch.cat([ones, scale[SEP * e :]]).reshape(-1))
        stage2 = [(crop(torch.cat([as_5x5(self.dw2(o), 1) for o in range(SEP)]), 1, h, w), 1)]
        s = conv_unit(F.relu(z[: SEP * e]), stage2, self.pw2, scale[: SEP * e].reshape(-1))
        y = s.view(SEP, e, -1).sum(0) + z[SEP * e :].view(len(CONV_OPS) - SEP, e, -1).sum(0)
        y = y + torch.mm(w_shared, shared_ops(x).view(len(SHARED_COLUMNS), -1))
        return y.view(e, *x.shape)

    # -- one op per edge (GDAS) -------------------------------------------------------------------
    def forward_hard(self, x: torch.Tensor, hard: torch.Tensor, chosen: Sequence[int]) -> torch.Tensor:
        """``hard`` [E, 8] straight-through one-hot weights, ``chosen`` the α column per edge.

        Edge e = hard[e, o_e] · op_{o_e}(x) + Σ_{o ≠ o_e} hard[e, o] (values 0, gradients 1):
        only the chosen op runs, yet every α of the edge receives a gradient (GDAS).
        """
        outs = self._conv_subset(x, chosen)
        shared = [col for col in SHARED_COLUMNS if col in chosen]
        if shared:
            pooled = shared_ops(x, shared)
            outs.update({e: pooled[shared.index(col)] for e, col in enumerate(chosen) if col in shared})
        edges = []
        for e, col in enumerate(chosen):
            rest = hard[e].sum() - hard[e, col]
            edges.append(hard[e, col] * outs[e] + rest if e in outs else rest.expand(x.shape))  # zero: nothing runs
        return torch.stack(edges)

    def _conv_subset(self, x: torch.Tensor, chosen: Sequence[int]) -> dict[int, torch.Tensor]:
        """Run each conv op only on the edges that chose it; edge -> output [C, T, N, H, W]."""
        groups = [(o, [e for e, col in enumerate(chosen) if col == c]) for o, c in enumerate(CONV_COLUMNS)]
        groups = [(o, edges) for o, edges in groups if edges]
        if not groups:
            return {}
        h, w = x.shape[-2:]
        pw1 = self.pw1.view(len(CONV_OPS), self.edges, *self.pw1.shape[1:])
        stage1 = [(crop(self.dw1(o)[ed], CONV_OPS[o][2], h, w), CONV_OPS[o][2]) for o, ed in groups]
        z = conv_unit(F.relu(x).unsqueeze(0), stage1, torch.cat([pw1[o][ed] for o, ed in groups]))
        order = [e for _, ed in groups for e in ed]
        outs = {e: z[i] for i, e in enumerate(order) if chosen[e] not in CONV_COLUMNS[:SEP]}
        sep = [(o, ed) for o, ed in groups if o < SEP]  # separable ops come first in `groups`
        if sep:
            pw2 = self.pw2.view(SEP, self.edges, *self.pw2.shape[1:])
            stage2 = [(crop(self.dw2(o)[ed], 1, h, w), 1) for o, ed in sep]
            s = conv_unit(F.relu(z[: sum(len(ed) for _, ed in sep)]), stage2, torch.cat([pw2[o][ed] for o, ed in sep]))
            outs.update({e: s[i] for i, e in enumerate(e for _, ed in sep for e in ed)})
        return outs


def shared_ops(x: torch.Tensor, which: Sequence[int] = SHARED_COLUMNS) -> torch.Tensor:
    """The weight-free ops of one state, ``[len(which), C, T, N, H, W]``: max/avg pool (+ BN), skip."""
    c, t, n, h, w = x.shape
    flat = x.reshape(1, c * t * n, h, w)
    pools = []
    if OPS.index("max_pool_3x3") in which:
        pools.append(F.max_pool2d(flat, 3, stride=1, padding=1).view(x.shape))
    if OPS.index("avg_pool_3x3") in which:
        pools.append(F.avg_pool2d(flat, 3, stride=1, padding=1, count_include_pad=False).view(x.shape))
    outs = [search_bn(torch.stack(pools))] if pools else []
    if OPS.index("skip_connect") in which:
        outs.append(x.unsqueeze(0))
    return torch.cat(outs) if len(outs) > 1 else outs[0]
