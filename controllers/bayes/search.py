"""Auto-Keras's acquisition optimiser: an A*-like tree search with simulated annealing over
neighbours (docs/algorithms.md §3, Appendix B.9).

A priority queue starts with every trained architecture keyed by its metric, best first. Each pop
cools the temperature (``T <- decay * T`` from ``T = 1`` until ``T <= t_min``: at most 88 pops
with the defaults) and is accepted with probability ``min(1, exp((value - best) / (T * scale)))``,
where ``value`` is the popped element's metric (a trained seed) or acquisition (a generated one)
and ``best`` the best acquisition so far (both in the GP's standardised units). An accepted element expands into its unseen neighbours,
each scored by the acquisition and pushed; the best scored neighbour is returned with the trained
ancestor it descends from. As in Auto-Keras (not the paper's Algorithm 1) the test is applied to
the popped element. Deviation: values are in the GP's standardised units (ranks or z-scores),
so one schedule serves accuracies in [0, 1] and in percent.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Neighbors = Callable[[Any], Sequence[Any]]
Score = Callable[[Sequence[Any]], np.ndarray]


@dataclass(frozen=True)
class Seed:
    """A trained architecture the search starts from: its value (larger is better) and trial."""

    arch: Any
    value: float
    trial: int | None


@dataclass
class Found:
    """The search's answer: the best-scored unseen architecture, its score, the trial it descends
    from, and how many elements were popped and scored."""

    arch: Any | None
    score: float
    parent: int | None
    pops: int
    scored: int


def anneal(seeds: Sequence[Seed], neighbors: Neighbors, score: Score, key: Callable[[Any], Hashable],
           seen: set[Hashable], rng: np.random.Generator, *, t_min: float = 1e-4, decay: float = 0.9) -> Found:
    """Run the annealed tree search; ``seen`` holds the keys of architectures never to return
    (trained or pending) and grows with every neighbour generated."""
    if not 0 < decay < 1 or not 0 < t_min < 1:
        raise ValueError(f"anneal: need 0 < decay < 1 and 0 < t_min < 1 (got {decay}, {t_min})")
    count = itertools.count()
    heap = [(-s.value, next(count), s.arch, s.trial) for s in seeds]
    heapq.heapify(heap)
    best = Found(None, -math.inf, None, 0, 0)
    temperature = 1.0
    while heap and temperature > t_min:
        neg_value, _, arch, parent = heapq.heappop(heap)
        best.pops += 1
        gap = (-neg_value - best.score) / temperature
        if best.arch is None or gap >= 0 or rng.random() < math.exp(gap):
            children = []
            for child in neighbors(arch):
                k = key(child)
                if k not in seen:
                    seen.add(k)
                    children.append(child)
            if children:
                values = np.asarray(score(children), dtype=float)
                best.scored += len(children)
                for child, value in zip(children, values, strict=True):
                    heapq.heappush(heap, (-float(value), next(count), child, parent))
                    if value > best.score:
                        best.arch, best.score, best.parent = child, float(value), parent
        temperature *= decay
    return best
