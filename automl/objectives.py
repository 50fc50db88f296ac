"""Objectives (``METRIC:max|min``) and constraints (``METRIC<=BOUND``) parsed from text."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controllers.base import Objective

_OBJECTIVE = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*:\s*(max|min)\s*$")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(<=|>=|<|>)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


class SpecError(ValueError):
    """A user-supplied objective, constraint or config value is malformed."""


def parse_objective(text: str) -> Objective:
    m = _OBJECTIVE.match(str(text))
    if not m:
        raise SpecError(f"bad objective {text!r}: expected METRIC:max or METRIC:min, e.g. valid_acc:max")
    return Objective(m.group(1), m.group(2))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; ``violation`` is how far a value lies outside (0 when satisfied)."""

    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    def violation(self, value: float) -> float:
        if math.isnan(value):
            return math.inf
        excess = value - self.bound if self.op in ("<=", "<") else self.bound - value
        if self.op in ("<", ">") and excess == 0:
            return 1e-12  # a strict bound is violated at equality
        return max(0.0, excess)


def parse_constraint(text: str) -> Constraint:
    m = _CONSTRAINT.match(str(text))
    if not m:
        raise SpecError(
            f"bad constraint {text!r}: expected METRIC<=NUMBER (also <, >=, >), e.g. latency_ms<=20"
        )
    return Constraint(m.group(1), m.group(2), float(m.group(3)))


def total_violation(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> float:
    """Sum of violations; a constraint on a missing metric raises ``KeyError``."""
    total = 0.0
    for c in constraints:
        if c.metric not in metrics:
            raise KeyError(f"constraint {c} needs metric {c.metric!r}, evaluators returned {sorted(metrics)}")
        total += c.violation(float(metrics[c.metric]))
    return total
