"""Latency look-up for DARTS cells (ProxylessNAS-style expected latency, docs/algorithms.md §8).

LUT key of one candidate op on one edge: ``"{op}:c{channels}:{H}x{W}:s{stride}"`` — op name,
channels the op runs at (``C/K`` with partial channels), the edge's *input* size and its
stride, e.g. ``"sep_conv_3x3:c16:32x32:s1"``; values in the LUT's unit (ms). 'none' costs 0
and has no key. The stem, the cell preprocessing and the classifier are the same for every
architecture and are not counted. ``latency_keys`` lists the keys a supernet needs.

* expected latency: ``Σ_cells Σ_edges q_e Σ_ops p_e(op) · LUT[op]`` with ``p_e`` the softmax of
  α_e over the ops decoding can pick (never 'none': renormalised, so growing 'none' cannot
  lower it) and
  ``q_e = 2 / (inputs of the edge's node)`` — two edges per node survive decoding, all inputs
  equally likely — or ``q_e = 2 · softmax_node(β)_e`` with edge normalisation;
* architecture latency: the sum of the LUT entries of the two ops of every node.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from search_spaces.darts.genotype import arch_to_genotype
from search_spaces.supernet.relax import derivable_softmax, node_softmax

Site = tuple[str, int, tuple[int, int], int]  # (cell kind, channels, input size, stride)


def lut_key(op: str, channels: int, size: tuple[int, int], stride: int) -> str:
    return f"{op}:c{channels}:{size[0]}x{size[1]}:s{stride}"


def cell_sites(net: Any) -> Iterator[tuple[str, list[tuple[int, tuple[int, int], int]]]]:
    """Per cell of ``net``: its kind and, per state, (channels, input size, stride of its edges)."""
    h, w = net.task.input_size
    for cell in net.cells:
        c = cell.nodes.mixed_channels
        out = (math.ceil(h / 2), math.ceil(w / 2)) if cell.reduction else (h, w)
        stride = 2 if cell.reduction else 1
        states = [(c, (h, w), stride)] * 2 + [(c, out, 1)] * cell.nodes.steps
        yield cell.kind, states
        h, w = out


def _edge_states(steps: int) -> list[int]:
    return [j for i in range(steps) for j in range(2 + i)]


def _lookup(lut: Mapping[str, float], key: str) -> float:
    try:
        return float(lut[key])
    except KeyError:
        raise KeyError(f"latency LUT has no entry {key!r} (see latency_keys())") from None


def latency_keys(net: Any) -> list[str]:
    keys = set()
    for _, states in cell_sites(net):
        for c, size, stride in states[: len(states) - 1]:
            keys.update(lut_key(op, c, size, stride) for op in net.ops if op != "none")
    return sorted(keys)


def expected_latency(net: Any, lut: Mapping[str, float]) -> torch.Tensor:
    """Differentiable expected latency of ``net`` (a DartsSupernet) under ``lut``."""
    nodes = net.nodes
    total = net.alphas_normal.new_zeros(())
    weights = {}
    for kind in ("normal", "reduce"):
        p = derivable_softmax(getattr(net, f"alphas_{kind}"), net.ops)
        beta = getattr(net, f"betas_{kind}")
        q = 2 * node_softmax(beta, nodes) if beta is not None else torch.cat(
            [p.new_full((s.stop - s.start,), 2.0 / (s.stop - s.start)) for s in nodes]
        )
        weights[kind] = p * q.unsqueeze(-1)
    edge_states = _edge_states(net.steps)
    for kind, states in cell_sites(net):
        cost = [
            [0.0 if op == "none" else _lookup(lut, lut_key(op, *states[j])) for op in net.ops] for j in edge_states
        ]
        total = total + (weights[kind] * torch.tensor(cost, dtype=weights[kind].dtype, device=weights[kind].device)).sum()
    return total


def arch_latency(net: Any, arch: Mapping[str, Any], lut: Mapping[str, float]) -> float:
    """Predicted latency of a discrete architecture laid out as ``net``'s cells."""
    g = arch_to_genotype(arch, net.multiplier)
    total = 0.0
    for kind, states in cell_sites(net):
        pairs: Sequence[tuple[str, int]] = g.cell(kind)[0]
        if len(pairs) != 2 * net.steps:
            raise ValueError(f"arch has {len(pairs) // 2} nodes per cell, the supernet {net.steps}")
        total += sum(0.0 if op == "none" else _lookup(lut, lut_key(op, *states[j])) for op, j in pairs)
    return total
