"""The network level: path counting, enumeration and Viterbi decoding over β.

``beta_probs[l, i, k]`` is the probability of the transition from level ``i`` at layer ``l - 1``
to level ``i + k - 1`` at layer ``l`` (``k``: 0 = finer, 1 = same, 2 = coarser); layer -1 is
the stem at level 0. Entries of transitions that do not exist (leaving levels 0..3, or from a
level layer ``l - 1`` cannot reach) are ignored. A path's probability is the product of its
transitions, so the most probable path is a max-product (Viterbi) problem over the trellis.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from search_spaces.seg_hierarchical.genotype import LEVELS


def reachable(layer: int) -> range:
    """Levels layer ``layer`` can be at (layer -1 is the stem, level 0)."""
    return range(min(layer + 2, LEVELS))


def transition_mask(layers: int) -> np.ndarray:
    """``[layers, 4, 3]`` bool: which (source level, move) transitions exist into each layer."""
    mask = np.zeros((layers, LEVELS, 3), dtype=bool)
    for l in range(layers):
        for i in reachable(l - 1):
            for k in range(3):
                mask[l, i, k] = 0 <= i + k - 1 < LEVELS
    return mask


def count_paths(layers: int, first_levels: Sequence[int] = (0, 1)) -> int:
    """Number of level paths (|Δ| <= 1, levels 0..3) whose first layer is in ``first_levels``.

    12 layers: 75,025 with the first layer at stride 4 or 8; 28,657 (the paper's "2.9 x 10^4")
    with it fixed at stride 4.
    """
    counts = [1 if s in first_levels else 0 for s in range(LEVELS)]
    for _ in range(layers - 1):
        counts = [sum(counts[j] for j in (s - 1, s, s + 1) if 0 <= j < LEVELS) for s in range(LEVELS)]
    return sum(counts)


def all_paths(layers: int) -> Iterator[tuple[int, ...]]:
    """Every valid path (first layer at level 0 or 1), in lexicographic order."""

    def extend(prefix: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if len(prefix) == layers:
            yield prefix
            return
        last = prefix[-1] if prefix else 0
        for s in (last - 1, last, last + 1):
            if 0 <= s < LEVELS:
                yield from extend((*prefix, s))

    yield from extend(())


def _log_probs(beta_probs: Any) -> np.ndarray:
    p = np.asarray(beta_probs.detach().cpu() if hasattr(beta_probs, "detach") else beta_probs, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (LEVELS, 3):
        raise ValueError(f"beta_probs must have shape [layers, {LEVELS}, 3], got {p.shape}")
    with np.errstate(divide="ignore"):
        logp = np.log(np.clip(p, 0.0, None))
    return np.where(transition_mask(p.shape[0]), logp, -np.inf)


def path_log_prob(beta_probs: Any, path: Sequence[int]) -> float:
    """log Π_l beta_probs[l, s_{l-1}, s_l - s_{l-1} + 1] with s_{-1} = 0 (-inf if invalid)."""
    logp = _log_probs(beta_probs)
    prev, total = 0, 0.0
    for l, s in enumerate(path):
        k = s - prev + 1
        if not 0 <= k < 3:
            return -math.inf
        total += logp[l, prev, k]
        prev = s
    return float(total)


def relative_to_uniform(beta_probs: Any) -> np.ndarray:
    """β probabilities divided by the uniform probability of their node's valid moves.

    A boundary node (level 0 or 3) has 2 moves (1/2 each under uniform β), the others 3 (1/3), so
    plain max-product decoding of an uninformative β prefers paths along the boundary (the
    stride-4 path 0-0-0-...). Scored relative to uniform, every path of a uniform β scores 1 and
    only what β learned decides (a generalisation of NoamRosenberg's 2/3 scaling of the boundary
    softmaxes; docs/algorithms.md §5). Rounded to 1e-6: a float32 softmax of uniform β gives
    3 x 0.33333334 > 2 x 0.5, which would otherwise decide between equal paths."""
    p = np.asarray(beta_probs.detach().cpu() if hasattr(beta_probs, "detach") else beta_probs, dtype=np.float64)
    moves = transition_mask(p.shape[0]).sum(-1, keepdims=True)
    return np.round(p * np.maximum(moves, 1), 6)


def viterbi_path(beta_probs: Any) -> list[int]:
    """The max-product path over the trellis (Auto-DeepLab decoding); ties go to the lexicographically smallest path."""
    return k_best_paths(beta_probs, 1)[0][1]


def k_best_paths(beta_probs: Any, k: int) -> list[tuple[float, list[int]]]:
    """The ``k`` most probable distinct paths as ``(log prob, path)``, best first (list Viterbi).

    Each trellis state keeps its ``k`` best partial paths; with k = 1 this is plain Viterbi.
    Fewer than ``k`` are returned when fewer paths have non-zero probability.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    logp = _log_probs(beta_probs)
    layers = logp.shape[0]
    # state: level -> list of (log prob, path) sorted best first
    beams: dict[int, list[tuple[float, tuple[int, ...]]]] = {0: [(0.0, ())]}
    for l in range(layers):
        nxt: dict[int, list[tuple[float, tuple[int, ...]]]] = {}
        for s in reachable(l):
            cands = []
            for i, items in beams.items():
                move = s - i + 1
                if 0 <= move < 3 and np.isfinite(logp[l, i, move]):
                    cands += [(score + logp[l, i, move], path + (s,)) for score, path in items]
            if cands:
                nxt[s] = heapq.nsmallest(k, cands, key=lambda c: (-c[0], c[1]))
        beams = nxt
    finals = [c for items in beams.values() for c in items]
    best = heapq.nsmallest(k, finals, key=lambda c: (-c[0], c[1]))
    if not best:
        raise ValueError("every path has probability zero")
    return [(float(score), list(path)) for score, path in best]
