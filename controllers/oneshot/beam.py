"""Greedy beam search over a sequence of choices, one position at a time (CR-NAS §3.3).

Position ``i`` extends each of the ``width`` kept prefixes by every choice of that position;
``score(prefix)`` rates a prefix (CR-NAS: the mean minibatch metric of the supernet with the
remaining positions drawn uniformly); the ``width`` best extensions are kept. So each position
costs ``width × len(choices)`` scorings (fewer at the first positions, while fewer prefixes
exist), and an additive score is maximised exactly: a prefix of the optimum is always among the
best prefixes of its length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Prefix = tuple[Any, ...]


@dataclass
class BeamResult:
    """The final beam (best first) and every scored prefix, per position, in scoring order."""

    beam: list[tuple[Prefix, float]]
    scored: list[list[tuple[Prefix, float]]] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return sum(len(step) for step in self.scored)


def beam_search(
    choices: Sequence[Sequence[Any]],
    score: Callable[[Prefix], float],
    width: int = 3,
    on_step: Callable[[int, list[tuple[Prefix, float]]], Any] | None = None,
) -> BeamResult:
    """Keep the ``width`` best prefixes position by position; ties keep the earlier prefix.

    ``on_step(position, beam)`` is called after each position (progress, checkpoints).
    """
    if width < 1:
        raise ValueError(f"beam width must be >= 1, got {width}")
    beam: list[tuple[Prefix, float]] = [((), 0.0)]
    result = BeamResult(beam=[])
    for position, options in enumerate(choices):
        if not options:
            raise ValueError(f"position {position} has no choices")
        step = [(prefix + (c,), float(score(prefix + (c,)))) for prefix, _ in beam for c in options]
        result.scored.append(step)
        order = sorted(range(len(step)), key=lambda i: (-step[i][1], i))
        beam = [step[i] for i in order[:width]]
        if on_step is not None:
            on_step(position, beam)
    result.beam = beam
    return result
