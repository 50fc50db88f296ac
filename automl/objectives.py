"""Objectives (``METRIC:max|min``) and constraints (``METRIC<=BOUND``) parsed from text."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from automl.types import Objective

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


@dataclass(frozen=True)
class MnasReward:
    """MnasNet's latency-aware reward ``ACC · (LAT / T)^w`` (Tan et al. 2019, eq. 2).

    ``w = alpha`` when ``LAT <= T`` and ``beta`` otherwise. Soft constraint (default):
    ``alpha = beta = -0.07`` (2x latency is worth 5 % relative accuracy); hard constraint:
    ``alpha = 0, beta = -1``. Stored as the derived metric ``mnas_reward``.
    """

    accuracy: str
    latency: str
    target: float
    alpha: float = -0.07
    beta: float = -0.07

    def __post_init__(self) -> None:
        if not self.target > 0:
            raise SpecError(f"mnas_reward: target must be a positive latency, got {self.target}")

    def __call__(self, metrics: Mapping[str, float]) -> float:
        for m in (self.accuracy, self.latency):
            if m not in metrics:
                raise KeyError(f"mnas_reward needs metric {m!r}, evaluators returned {sorted(metrics)}")
        lat = float(metrics[self.latency])
        w = self.alpha if lat <= self.target else self.beta
        return float(metrics[self.accuracy]) * (max(lat, 1e-12) / self.target) ** w


def parse_mnas(value: object) -> MnasReward:
    """From ``{accuracy, latency, target, alpha?, beta?}`` or ``"ACC,LAT,TARGET[,W]"``."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if len(parts) not in (3, 4):
            raise SpecError(f"bad mnas_reward {value!r}: expected ACC_METRIC,LAT_METRIC,TARGET[,W], e.g. val_acc,latency_ms,20")
        try:
            w = float(parts[3]) if len(parts) == 4 else -0.07
            return MnasReward(parts[0], parts[1], float(parts[2]), w, w)
        except SpecError:  # a number out of range: its own message
            raise
        except ValueError:
            raise SpecError(f"bad mnas_reward {value!r}: TARGET and W must be numbers") from None
    if isinstance(value, Mapping):
        unknown = set(value) - {"accuracy", "latency", "target", "alpha", "beta"}
        if unknown or not {"accuracy", "latency", "target"} <= set(value):
            raise SpecError(
                f"bad mnas_reward {dict(value)!r}: keys are accuracy, latency, target (required), alpha, beta"
            )
        try:
            return MnasReward(str(value["accuracy"]), str(value["latency"]), float(value["target"]),
                              float(value.get("alpha", -0.07)), float(value.get("beta", -0.07)))
        except SpecError:
            raise
        except (TypeError, ValueError):
            raise SpecError(f"bad mnas_reward {dict(value)!r}: target, alpha and beta must be numbers") from None
    raise SpecError(f"bad mnas_reward {value!r}: expected a mapping or ACC,LAT,TARGET[,W]")
