"""Latency look-up for the seg-hierarchical space (ProxylessNAS-style expected latency, docs/algorithms.md §8).

LUT keys follow the ``darts`` space: ``"{op}:c{channels}:{H}x{W}:s1"`` for one cell op in the
*built* network (``retrain_filter_multiplier`` channels at the level, the level's size for the
task's input size), e.g. ``"sep_conv_3x3:c20:16x16:s1"``; ``zero`` costs 0. The stem, the
cell preprocessing, ASPP and decoder are the same for every cell choice and are not counted
(the path changes them only through the level sizes).

* architecture latency: Σ over the path's layers of the LUT entries of the cell's 2B ops at
  that layer's level;
* expected latency: Σ_l Σ_s π_l(s) Σ_edges q_e Σ_ops softmax(α_e)_op · LUT[op @ s], with
  π_l(s) the probability that layer l is at level s when β is read as the Markov chain whose
  max-product path Viterbi decodes, and q_e = 2 / (inputs of the edge's block) — two inputs
  survive decoding — or 2 · γ_e with edge normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from search_spaces.seg_hierarchical.genotype import CELL_OPS, LEVELS, OPS
from search_spaces.seg_hierarchical.ops import level_sizes, stem_strides
from search_spaces.supernet.relax import derivable_softmax


def lut_key(op: str, channels: int, size: tuple[int, int]) -> str:
    return f"{op}:c{channels}:{size[0]}x{size[1]}:s1"


def level_sites(space: Any, input_size: tuple[int, int]) -> list[tuple[int, tuple[int, int]]]:
    """(channels, map size) of a cell at each level of the network ``space`` builds."""
    def stem(n: int) -> int:  # the stem's two strided 3x3 convs, padding 1
        for stride in stem_strides(space.retrain_stem_stride):
            n = -(-n // stride)
        return n

    sizes = level_sizes((stem(input_size[0]), stem(input_size[1])), LEVELS)
    return [(space.retrain_filter_multiplier * 2**s, sizes[s]) for s in range(LEVELS)]


def _lookup(lut: Mapping[str, float], key: str) -> float:
    try:
        return float(lut[key])
    except KeyError:
        raise KeyError(f"latency LUT has no entry {key!r} (see latency_keys())") from None


def latency_keys(space: Any, input_size: tuple[int, int]) -> list[str]:
    """Every LUT key a search or an architecture of ``space`` can need."""
    return sorted(lut_key(op, c, size) for c, size in level_sites(space, input_size) for op in CELL_OPS)


def path_marginals(beta_probs: torch.Tensor) -> torch.Tensor:
    """π ``[L, 4]``: probability of each level at each layer under the β transition chain."""
    pi = beta_probs.new_zeros(LEVELS)
    pi[0] = 1.0  # layer -1: the stem, level 0
    rows = []
    for l in range(beta_probs.shape[0]):
        nxt = []
        for s in range(LEVELS):
            terms = [pi[j] * beta_probs[l, j, s - j + 1] for j in (s - 1, s, s + 1) if 0 <= j < LEVELS]
            nxt.append(torch.stack(terms).sum())
        pi = torch.stack(nxt)
        rows.append(pi)
    return torch.stack(rows)


def expected_latency(net: Any, lut: Mapping[str, float]) -> torch.Tensor:
    """Differentiable expected latency of a :class:`~.supernet.SegHierarchicalSupernet`."""
    p = derivable_softmax(net.alpha, OPS)  # over the ops decoding can pick (never 'zero')
    gamma = net.edge_probs()
    if gamma is not None:
        q = 2 * gamma
    else:
        q = torch.cat([p.new_full((b + 2,), 2.0 / (b + 2)) for b in range(net.blocks)])
    weights = (p * q.unsqueeze(-1)).sum(0)  # expected number of each op per cell
    cost = torch.tensor(
        [[0.0 if op == "zero" else _lookup(lut, lut_key(op, c, size)) for op in OPS] for c, size in net.lut_sites],
        dtype=p.dtype,
        device=p.device,
    )  # [levels, ops]
    per_level = cost @ weights  # [levels]
    return (path_marginals(net.network_probs()).sum(0) * per_level).sum()


def arch_latency(space: Any, genotype: Any, input_size: tuple[int, int], lut: Mapping[str, float]) -> float:
    """Predicted latency of a discrete architecture: its cells' ops at their levels."""
    sites = level_sites(space, input_size)
    ops = [op for block in genotype.cell for op, _ in block]
    return float(sum(_lookup(lut, lut_key(op, *sites[level])) for level in genotype.path for op in ops))
