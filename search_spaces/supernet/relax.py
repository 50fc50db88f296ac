"""Continuous relaxations of a categorical choice per edge: softmax (DARTS) and hard Gumbel (GDAS).

Shared by the DARTS and NAS-Bench-201 supernets. A *mixing table* is computed once per forward
pass from α (and the edge-normalisation β of PC-DARTS) and read by every cell of that type:

* ``softmax``: ``scales[e][k] = softmax(α_e)_k`` (times ``softmax_node(β)_e`` with edge_norm);
* ``gumbel`` (GDAS, Dong & Yang 2019): ``p = softmax((log_softmax(α) + G) / τ)`` with
  ``G ~ Gumbel(0, 1)``, ``index = argmax p`` and ``h = onehot(index) + (p - p.detach())``.
  This is GDAS's straight-through ``h - p.detach() + p`` rearranged so that the forward value
  is *exactly* one-hot (``(1 - p) + p`` is not always 1.0 in floating point). Only op
  ``index`` runs, scaled by ``h_index`` (= 1); the other ops add their zero-valued ``h_k``
  (``rest``), so every α receives a gradient (GDAS ``forward_gdas``). Noise is redrawn when it
  is not finite, as GDAS does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_GUMBEL_DRAWS = 100


@dataclass
class Mix:
    """The mixing table of one cell type for one forward pass.

    ``scales[e][k]``: the 0-d weight of op column ``k`` on edge ``e``. ``index[e]``: the one
    op to run (gumbel) or ``None`` (run every op). ``rest[n]``: the sum of the zero-valued
    weights of the ops not run on node ``n``'s edges (gumbel) or ``None``. ``edge[e]``: the
    edge-normalisation weight (scales the PC-DARTS bypass) or ``None``.
    """

    scales: list[tuple[torch.Tensor, ...]]
    index: list[int] | None = None
    rest: list[torch.Tensor] | None = None
    edge: tuple[torch.Tensor, ...] | None = None


def node_slices(steps: int, first_inputs: int = 2) -> list[slice]:
    """Rows of each node's incoming edges: node ``i`` has ``first_inputs + i`` edges."""
    out, start = [], 0
    for i in range(steps):
        out.append(slice(start, start + first_inputs + i))
        start += first_inputs + i
    return out


def node_softmax(beta: torch.Tensor, nodes: Sequence[slice]) -> torch.Tensor:
    """PC-DARTS edge normalisation: softmax of β over each node's incoming edges."""
    return torch.cat([F.softmax(beta[s], dim=-1) for s in nodes])


def derivable_softmax(alpha: torch.Tensor, ops: Sequence[str], never: Sequence[str] = ("none", "zero")) -> torch.Tensor:
    """softmax(α) per row over the ops decoding can pick: the ``never`` columns get probability 0
    and the rest are renormalised, so a latency expectation cannot shrink by growing ``none``."""
    keep = torch.tensor([op not in never for op in ops], device=alpha.device)
    return F.softmax(alpha.masked_fill(~keep, float("-inf")), dim=-1)


def gumbel_hard(alpha: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GDAS sample per row of ``alpha``: ``(h, onehot)`` with ``h`` exactly one-hot in value."""
    logp = F.log_softmax(alpha, dim=-1)
    for _ in range(MAX_GUMBEL_DRAWS):
        gumbels = -torch.empty_like(alpha).exponential_().log()
        probs = F.softmax((logp + gumbels) / tau, dim=-1)
        if bool(torch.isfinite(gumbels).all()) and bool(torch.isfinite(probs).all()):
            break
    else:  # pragma: no cover - needs MAX_GUMBEL_DRAWS non-finite draws in a row
        raise FloatingPointError("GDAS: no finite Gumbel sample")
    onehot = torch.zeros_like(probs).scatter_(-1, probs.argmax(-1, keepdim=True), 1.0)
    return onehot + (probs - probs.detach()), onehot


def make_mix(
    alpha: torch.Tensor,
    beta: torch.Tensor | None,
    nodes: Sequence[slice],
    sampling: str,
    tau: float,
) -> Mix:
    """The mixing table of one cell type (see the module docstring)."""
    edge = node_softmax(beta, nodes) if beta is not None else None
    if sampling == "softmax":
        w = F.softmax(alpha, dim=-1)
        if edge is not None:
            w = w * edge.unsqueeze(-1)
        return Mix([row.unbind() for row in w.unbind()], edge=None if edge is None else edge.unbind())
    if sampling != "gumbel":
        raise ValueError(f"sampling must be 'softmax' or 'gumbel', got {sampling!r}")
    h, onehot = gumbel_hard(alpha, tau)
    if edge is not None:
        h = h * edge.unsqueeze(-1)
    rest = (h * (1.0 - onehot)).sum(-1)
    return Mix(
        [row.unbind() for row in h.unbind()],
        index=onehot.argmax(-1).tolist(),
        rest=[rest[s].sum() for s in nodes],
        edge=None if edge is None else edge.unbind(),
    )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle (PC-DARTS): ``[g, C/g]`` channel grid transposed.

    A channels-last input gives a channels-last output (the permutation is done on the
    innermost dimension), so the ops after it keep their fast layout.
    """
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        y = x.permute(0, 2, 3, 1).reshape(n, h, w, groups, c // groups).transpose(3, 4)
        return y.reshape(n, h, w, c).permute(0, 3, 1, 2)
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
