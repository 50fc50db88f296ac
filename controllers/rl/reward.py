"""Rewards from results: the raw objective, Zoph & Le's cube of accuracy, or MnasNet's
scalarisation of accuracy and latency.

* ``raw``: the first objective, oriented larger-is-better (``Objective.score``);
* ``cube``: ``acc ** 3`` of the first objective, an accuracy to maximise; values above 1 are read
  as percent (NAS-Bench-201 tables) and divided by 100;
* ``mnas``: ``acc * (lat / target) ** w`` with ``acc`` the first objective and ``lat`` the
  second (MnasNet's soft constraint, w = -0.07 on both sides of the target).

A failed or infeasible result has no reward of its own: it gets the lowest reward seen so far,
so it is never better than an architecture that worked (before the first success it is skipped).
"""

from __future__ import annotations

from collections.abc import Sequence

from automl.types import Objective, Result

REWARDS = ("raw", "cube", "mnas")


def check(reward: str, objectives: Sequence[Objective], mnas_target: float | None) -> None:
    """One-line ValueError for a reward that does not fit the run's objectives."""
    if reward not in REWARDS:
        raise ValueError(f"rl: reward {reward!r} is not one of {', '.join(REWARDS)}")
    if reward == "mnas":
        if len(objectives) != 2 or mnas_target is None or mnas_target <= 0:
            raise ValueError("rl: reward mnas needs two objectives (accuracy, latency) and mnas_target > 0")
    elif len(objectives) != 1:
        raise ValueError(f"rl: {len(objectives)} objectives need reward: mnas (accuracy x latency scalarisation)")
    if reward == "cube" and objectives[0].direction != "max":
        raise ValueError("rl: reward cube needs an accuracy to maximise as the objective")


def accuracy(value: float) -> float:
    return value / 100.0 if value > 1.0 else value


def reward_of(result: Result, objectives: Sequence[Objective], reward: str, mnas_target: float | None = None,
              mnas_w: float = -0.07) -> float | None:
    """The reward of ``result`` (None when it failed or is infeasible)."""
    if result.values is None or result.violation > 0:
        return None
    if reward == "raw":
        return objectives[0].score(result.values[0])
    if reward == "cube":
        return accuracy(result.values[0]) ** 3
    acc, lat = accuracy(result.values[0]), float(result.values[1])
    assert mnas_target is not None
    return acc * (max(lat, 1e-12) / mnas_target) ** mnas_w
