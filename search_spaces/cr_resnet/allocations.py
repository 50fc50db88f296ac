"""Stage allocations of CR-NAS: how N residual blocks are spread over a ResNet's four stages.

CR-NAS (Liang et al., ICLR 2020) keeps the total number of blocks N fixed and searches
tau = (tau1, tau2, tau3, tau4) with tau1 + tau2 + tau3 + tau4 = N, each count taken from its
stage's candidate list below (ResNet-50: N = 16, [3, 4, 6, 3]).
"""

from __future__ import annotations

import itertools
from functools import cache

Allocation = tuple[int, int, int, int]

TAU1: tuple[int, ...] = tuple(range(1, 11))
TAU2: tuple[int, ...] = tuple(range(1, 11))
TAU3: tuple[int, ...] = (2, 3, 5, 6, 9, 11, 14, 17, 20, 23)
TAU4: tuple[int, ...] = (2, 3, 4, 6, 7, 9, 11, 13, 15, 17)
CANDIDATES: tuple[tuple[int, ...], ...] = (TAU1, TAU2, TAU3, TAU4)
ACCEPTED = "tau1, tau2 in 1..10, tau3 in {2,3,5,6,9,11,14,17,20,23}, tau4 in {2,3,4,6,7,9,11,13,15,17}"

RESNET50: Allocation = (3, 4, 6, 3)
# Published ResNets whose allocation is the baseline of their N (ResNet-26/50/101 layouts).
KNOWN_BASELINES: dict[int, Allocation] = {
    8: (2, 2, 2, 2),
    16: RESNET50,
    33: (3, 4, 23, 3),
}


@cache
def _allocations(n: int) -> tuple[Allocation, ...]:
    return tuple(sorted(t for t in itertools.product(*CANDIDATES) if sum(t) == n))


def allocations(n: int) -> list[Allocation]:
    """Every valid allocation of ``n`` blocks, sorted (lexicographically); empty if none."""
    return list(_allocations(n))


def check_blocks(n: int) -> int:
    """``n`` if some allocation of ``n`` blocks exists, else a one-line ``ValueError``."""
    if isinstance(n, bool) or not isinstance(n, int) or not _allocations(n):
        lo, hi = sum(min(c) for c in CANDIDATES), sum(max(c) for c in CANDIDATES)
        raise ValueError(
            f"cr-resnet: blocks must be an integer in {lo}..{hi} (some allocation sums to it), got {n!r}"
        )
    return n


def alloc_name(alloc: tuple[int, ...]) -> str:
    """``(3, 4, 6, 3)`` -> ``"3-4-6-3"``."""
    return "-".join(str(int(t)) for t in alloc)


def parse_alloc(text: str) -> Allocation:
    """``"3-4-6-3"`` -> ``(3, 4, 6, 3)``; each count must be in its stage's candidate list."""
    parts = str(text).strip().split("-")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"cr-resnet: allocation {text!r} is not four block counts like '3-4-6-3' ({ACCEPTED})"
        )
    alloc = (int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]))
    if any(t not in c for t, c in zip(alloc, CANDIDATES, strict=True)):
        raise ValueError(
            f"cr-resnet: allocation {text!r} has a count outside the candidates ({ACCEPTED})"
        )
    return alloc


def baseline_allocation(n: int) -> Allocation:
    """The reference allocation of ``n`` blocks.

    The published layouts where they exist (8: [2, 2, 2, 2], 16: ResNet-50's [3, 4, 6, 3],
    33: ResNet-101's [3, 4, 23, 3]); otherwise the valid allocation closest in L1 distance to
    [3, 4, 6, 3] * n / 16, ties broken by the L2 distance and then the sorted order.
    """
    check_blocks(n)
    if n in KNOWN_BASELINES:
        return KNOWN_BASELINES[n]
    target = [t * n / 16 for t in RESNET50]

    def distance(alloc: Allocation) -> tuple[float, float]:
        gaps = [abs(a - b) for a, b in zip(alloc, target, strict=True)]
        return sum(gaps), sum(g * g for g in gaps)

    return min(
        _allocations(n), key=distance
    )  # min keeps the first of equals: sorted order
