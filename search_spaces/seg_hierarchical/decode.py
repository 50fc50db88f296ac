"""DARTS decoding of the searched cell (docs/algorithms.md §4; Auto-DeepLab decodes cells the same way)."""

from __future__ import annotations

import torch

from search_spaces.seg_hierarchical.genotype import CELL_OPS, Block, edge_index


def decode_cell(probs: torch.Tensor, blocks: int, edge_weights: torch.Tensor | None = None) -> list[Block]:
    """DARTS decoding: per block the two inputs whose best non-zero op is strongest, that op.

    ``probs`` ``[edges, 8]`` op probabilities; ``edge_weights`` (PC-DARTS γ) multiply the edge
    scores. Never yields ``zero``; the two inputs are distinct; ties go to the lower input.
    """
    probs = probs.detach().cpu().double()
    nonzero = probs[:, 1:]
    best_p, best_op = nonzero.max(dim=1)
    score = best_p * (edge_weights.detach().cpu().double() if edge_weights is not None else 1.0)
    cell = []
    for b in range(blocks):
        rows = [edge_index(b, j, blocks) for j in range(b + 2)]
        ranked = sorted(range(b + 2), key=lambda j: (-float(score[rows[j]]), j))[:2]
        cell.append(tuple((CELL_OPS[int(best_op[rows[j]])], j) for j in sorted(ranked)))
    return cell  # type: ignore[return-value]
