"""P-DARTS' limit on the skip connections of a decoded cell (Chen et al. 2019).

Long (and short) DARTS searches collapse to skip connections (docs/algorithms.md §4). P-DARTS keeps
at most M in the final cell: while the decoded cell has more, the decoded skip with the lowest
weight gets weight 0 and the cell is decoded again, so that edge takes its next-best op or the
node another input (its ``delete_min_sk_prob`` / ``keep_2_branches`` loop). This works for any
DARTS-style decoding, given as a function from weights to the rows decoded as skips.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def check_max_skips(value: object, owner: str) -> int | None:
    """``value`` as a supernet's ``max_skips`` option (None = no limit), else ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{owner}: max_skips must be an integer >= 0 or null, got {value!r}")
    return value


def limit_skips(
    w: torch.Tensor, skip_column: int, max_skips: int, skip_rows: Callable[[torch.Tensor], list[int]]
) -> torch.Tensor:
    """A copy of the ``[edges, ops]`` decoding weights ``w`` whose decoding keeps ≤ ``max_skips``
    skips; ``skip_rows(w)`` decodes ``w`` and returns the rows of the edges decoded as skip."""
    if isinstance(max_skips, bool) or not isinstance(max_skips, int) or max_skips < 0:
        raise ValueError(f"max_skips must be an integer >= 0, got {max_skips!r}")
    w = w.clone()
    rows = skip_rows(w)
    while len(rows) > max_skips:
        weakest = min(rows, key=lambda r: float(w[r, skip_column]))
        if float(w[weakest, skip_column]) == 0.0:  # skip is all that is left to choose there
            raise ValueError(f"max_skips={max_skips} cannot be met: an edge has no op but skip to choose")
        w[weakest, skip_column] = 0.0
        rows = skip_rows(w)
    return w
