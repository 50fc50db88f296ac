"""Pareto dominance, non-dominated sorting and crowding distance (NSGA-II, Deb et al. 2002).

Points are tuples oriented *larger is better* (see :meth:`Objective.score`). Infeasible points
are handled by constrained domination: a feasible point dominates an infeasible one, and of two
infeasible points the one with the smaller violation dominates.

:func:`front` and :func:`best` apply this to stored trials (any objects with ``state``,
``metrics``, ``violation``, ``feasible`` and ``number``, e.g. ``automl.store.TrialRecord``).
Like :mod:`automl.types`, this module imports nothing of the project, so controllers use it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from automl.types import Objective

Point = Sequence[float]
R = TypeVar("R", bound=Any)


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y in zip(a, b, strict=True):
        if x < y:
            return False
        if x > y:
            better = True
    return better


def constrained_dominates(a: Point, va: float, b: Point, vb: float) -> bool:
    if va <= 0 and vb > 0:
        return True
    if va > 0 and vb > 0:
        return va < vb
    if va > 0:
        return False
    return dominates(a, b)


def nondominated_ranks(points: Sequence[Point], violations: Sequence[float] | None = None) -> list[int]:
    """Front index of every point (0 = non-dominated), by the fast non-dominated sort."""
    n = len(points)
    viol = list(violations) if violations is not None else [0.0] * n
    dominated_by_count = [0] * n
    dominates_list: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if constrained_dominates(points[i], viol[i], points[j], viol[j]):
                dominates_list[i].append(j)
                dominated_by_count[j] += 1
            elif constrained_dominates(points[j], viol[j], points[i], viol[i]):
                dominates_list[j].append(i)
                dominated_by_count[i] += 1
    ranks = [0] * n
    front = [i for i in range(n) if dominated_by_count[i] == 0]
    rank = 0
    while front:
        nxt = []
        for i in front:
            ranks[i] = rank
            for j in dominates_list[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    nxt.append(j)
        front = nxt
        rank += 1
    return ranks


def crowding_distances(points: Sequence[Point]) -> list[float]:
    """NSGA-II crowding distance within one front (boundary points get infinity)."""
    n = len(points)
    if n == 0:
        return []
    dist = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo or not math.isfinite(hi - lo):
            continue
        for k in range(1, n - 1):
            dist[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (hi - lo)
    return dist


def rank_order(points: Sequence[Point], violations: Sequence[float] | None = None) -> list[int]:
    """Indices sorted best first: by front, then by larger crowding distance."""
    ranks = nondominated_ranks(points, violations)
    crowd = [0.0] * len(points)
    for r in set(ranks):
        members = [i for i in range(len(points)) if ranks[i] == r]
        for i, d in zip(members, crowding_distances([points[i] for i in members]), strict=True):
            crowd[i] = d
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowd[i], i))


def pareto_front(points: Sequence[Point], violations: Sequence[float] | None = None) -> list[int]:
    """Indices of the feasible non-dominated points."""
    viol = list(violations) if violations is not None else [0.0] * len(points)
    feasible = [i for i in range(len(points)) if viol[i] <= 0]
    return [
        i
        for i in feasible
        if not any(dominates(points[j], points[i]) for j in feasible if j != i)
    ]


def scored(records: Sequence[R], objectives: Sequence[Objective]) -> list[R]:
    """Completed trials that have every objective metric."""
    return [r for r in records if r.state == "complete" and all(o.metric in r.metrics for o in objectives)]


def front(records: Sequence[R], objectives: Sequence[Objective]) -> list[R]:
    """Feasible non-dominated trials, sorted by the first objective (best first)."""
    pool = scored(records, objectives)
    points = [tuple(o.score(r.metrics[o.metric]) for o in objectives) for r in pool]
    idx = pareto_front(points, [r.violation for r in pool])
    # Equal points (the same metrics from different archs) all stay on the front.
    members = [pool[i] for i in idx]
    first = objectives[0]
    return sorted(members, key=lambda r: (-first.score(r.metrics[first.metric]), r.number))


def best(records: Sequence[R], objective: Objective) -> R | None:
    """The feasible trial with the best value of one objective (earliest on ties)."""
    pool = [r for r in scored(records, [objective]) if r.feasible]
    if not pool:
        return None
    return max(pool, key=lambda r: (objective.score(r.metrics[objective.metric]), -r.number))
