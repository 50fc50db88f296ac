"""Decoding helpers shared by supernets: the k best discrete choices of independent components.

A supernet's ``candidates(k)`` ranks discrete architectures by the sum of their parts' scores
(log-probabilities of the chosen op per edge, of the chosen inputs per node, ...). Because the
parts are independent, the best ``k`` combinations come from a lazy best-first walk over the
product instead of enumerating it.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def k_best(scores: Sequence[Sequence[float]], k: int) -> list[tuple[int, ...]]:
    """The ``k`` highest-scoring combinations of one choice per component (score = sum).

    ``scores[c]`` must be sorted in decreasing order. Lazy best-first enumeration over the
    product of independent components (returns fewer than ``k`` when the product is smaller).
    """
    if k < 1 or any(len(s) == 0 for s in scores):
        return []
    start = (0,) * len(scores)
    heap = [(-sum(s[0] for s in scores), start)]
    seen = {start}
    out: list[tuple[int, ...]] = []
    while heap and len(out) < k:
        neg, combo = heapq.heappop(heap)
        out.append(combo)
        for c, i in enumerate(combo):
            if i + 1 < len(scores[c]):
                nxt = combo[:c] + (i + 1,) + combo[c + 1 :]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (neg + scores[c][i] - scores[c][i + 1], nxt))
    return out
