"""From α (and β) to genotypes: the DARTS decoding rule and the k best genotypes.

The decoding weights ``w[e, k]`` are softmax(α) per edge (times PC-DARTS' softmax(β) over the
node's edges with edge normalisation). DARTS (quark0/darts ``Network.genotype``): for each
node keep the two incoming edges whose best non-'none' weight is largest and give each its
best non-'none' op, so a node never gets 'none' and always has two distinct inputs; the
pairs are listed best edge first; the output is the last ``multiplier`` nodes.

This is the maximiser of the product of the chosen (edge, op) weights over two distinct inputs
per node, which is the score :func:`candidate_genotypes` ranks by (best first).

With ``max_skips``, :func:`limit_skips` applies P-DARTS' skip limit (:mod:`search_spaces.supernet.skip_limit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from search_spaces.supernet import skip_limit
from search_spaces.darts.genotype import Genotype, Pair, default_concat
from search_spaces.supernet.decode import k_best
from search_spaces.supernet.relax import node_slices

Option = tuple[float, tuple[Pair, ...]]
SKIP = "skip_connect"


def _columns(ops: Sequence[str]) -> list[int]:
    cols = [k for k, op in enumerate(ops) if op != "none"]
    if not cols:
        raise ValueError("decoding needs an op other than 'none'")
    return cols


def derive_cell(w: torch.Tensor, ops: Sequence[str], steps: int) -> tuple[Pair, ...]:
    """DARTS decoding of one cell type from its ``[edges, ops]`` weights."""
    cols = _columns(ops)
    pairs: list[Pair] = []
    for rows in node_slices(steps):
        sub = w[rows][:, cols].tolist()
        best = [max(range(len(cols)), key=lambda k, r=r: r[k]) for r in sub]
        edges = sorted(range(len(sub)), key=lambda j: -sub[j][best[j]])[:2]
        pairs.extend((ops[cols[best[j]]], j) for j in edges)
    return tuple(pairs)


def skip_count(pairs: Sequence[Pair]) -> int:
    return sum(op == SKIP for op, _ in pairs)


def limit_skips(w: torch.Tensor, ops: Sequence[str], steps: int, max_skips: int) -> torch.Tensor:
    """A copy of one cell type's ``[edges, ops]`` weights whose decoding has ≤ ``max_skips`` skips."""
    if SKIP not in ops:
        return skip_limit.limit_skips(w, 0, max_skips, lambda _: [])
    starts = [rows.start for rows in node_slices(steps)]

    def skip_rows(weights: torch.Tensor) -> list[int]:
        pairs = derive_cell(weights, ops, steps)
        return [starts[i // 2] + j for i, (op, j) in enumerate(pairs) if op == SKIP]

    return skip_limit.limit_skips(w, list(ops).index(SKIP), max_skips, skip_rows)


def derive_genotype(
    normal: torch.Tensor, reduce: torch.Tensor, ops: Sequence[str], steps: int, multiplier: int
) -> Genotype:
    concat = default_concat(steps, multiplier)
    return Genotype(derive_cell(normal, ops, steps), concat, derive_cell(reduce, ops, steps), concat)


def node_options(w: torch.Tensor, ops: Sequence[str]) -> list[Option]:
    """Every (two distinct inputs, an op each) choice of one node, best log-score first."""
    cols = _columns(ops)
    logw = w[:, cols].clamp_min(1e-30).log().tolist()
    options: list[Option] = []
    for j1 in range(len(logw)):
        for j2 in range(j1 + 1, len(logw)):
            for a, la in enumerate(logw[j1]):
                for b, lb in enumerate(logw[j2]):
                    first, second = ((j1, a, la), (j2, b, lb)) if la >= lb else ((j2, b, lb), (j1, a, la))
                    pair = tuple((ops[cols[k]], j) for j, k, _ in (first, second))
                    options.append((la + lb, pair))
    options.sort(key=lambda o: -o[0])
    return options


def candidate_genotypes(
    normal: torch.Tensor,
    reduce: torch.Tensor,
    ops: Sequence[str],
    steps: int,
    multiplier: int,
    k: int,
) -> list[Genotype]:
    """The ``k`` best distinct genotypes by Σ log w over the chosen (edge, op) pairs."""
    nodes = [node_options(w[rows], ops) for w in (normal, reduce) for rows in node_slices(steps)]
    concat = default_concat(steps, multiplier)
    out = []
    for combo in k_best([[s for s, _ in opts] for opts in nodes], k):
        chosen = [nodes[n][i][1] for n, i in enumerate(combo)]
        cells = [tuple(p for node in chosen[c * steps : (c + 1) * steps] for p in node) for c in (0, 1)]
        out.append(Genotype(cells[0], concat, cells[1], concat))
    return out
