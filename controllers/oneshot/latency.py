"""Latency-aware search (ProxylessNAS, docs/algorithms.md §8).

The supernet gives a differentiable expected latency E[LAT] = Σ p(op)·LUT[op]; the α loss
becomes either

* ``mul`` (ProxylessNAS code default ``mul#log``): L_CE · w · (log E[LAT] / log T)^β, w=0.2, β=0.3;
* ``add`` (paper form): L_CE + λ · E[LAT] / T (the code's ``add#linear`` subtracts a constant 1,
  which leaves the gradient unchanged).

The penalty is soft; the returned architectures must meet the hard target: a derived
architecture's predicted latency is the sum of the LUT entries of its ops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from automl.types import Arch


def latency_penalised(ce: torch.Tensor, expected_ms: torch.Tensor, target_ms: float, *, form: str,
                      weight: float, beta: float) -> torch.Tensor:
    """The architecture loss with the expected-latency term (see the module docstring).

    ``mul`` takes log E[LAT] with E[LAT] clamped at ≥ 1 (in the LUT's unit): below that the
    log would be negative and its fractional power undefined; the target is > 1 there, so the
    clamp only switches the penalty's gradient off far inside the budget.
    """
    if form == "add":
        return ce + weight * expected_ms / target_ms
    if form == "mul":
        ratio = torch.log(expected_ms.clamp_min(1.0)) / math.log(target_ms)
        return weight * ce * ratio.pow(beta)
    raise ValueError(f"darts: unknown latency loss form {form!r}")


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)


def predicted_latency(supernet: Any, arch: Arch, lut: Mapping[str, float]) -> float:
    """Predicted latency of a discrete architecture: the sum of its parts' LUT entries.

    In order of preference: the supernet's own ``arch_latency(arch, lut)``; the space's LUT
    decomposition ``supernet.space.lut_keys(arch, supernet.task)`` (capability ``lut``, the
    sum the ``latency-lut`` evaluator reports); else every string in the arch JSON that is a
    LUT key counts once per occurrence (op names of a genotype; other strings are ignored).
    """
    own: Callable[[Arch, Mapping[str, float]], Any] | None = getattr(supernet, "arch_latency", None)
    if callable(own):
        return float(own(arch, lut))
    space = getattr(supernet, "space", None)
    if space is not None and "lut" in getattr(space, "offers", ()):
        keys = space.lut_keys(arch, getattr(supernet, "task", None))
        missing = sorted({k for k in keys if k not in lut})
        if missing:
            raise ValueError(f"darts: the latency LUT has no entry {missing[0]!r} (of {len(missing)} missing); "
                             "measure it for this space and task")
        return float(sum(float(lut[k]) for k in keys))
    return float(sum(float(lut[s]) for s in _leaves(arch) if s in lut))


def within_target(candidates: Sequence[Arch], latencies: Sequence[float], target_ms: float,
                  top_k: int) -> tuple[list[Arch], bool]:
    """The best ``top_k`` candidates meeting the target (order kept), and whether any did.

    When none meets it the ``top_k`` best are returned unchanged and the flag is False, so
    the caller can report it.
    """
    feasible = [a for a, lat in zip(candidates, latencies, strict=True) if lat <= target_ms]
    if feasible:
        return feasible[:top_k], True
    return list(candidates[:top_k]), False
