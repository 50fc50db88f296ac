"""Pareto dominance, sorting and crowding; fronts of stored trials for 1-3 objectives."""

from __future__ import annotations

import math

from automl.pareto import best, front
from automl.store import TrialRecord
from automl.types import Objective
from automl.pareto import crowding_distances, dominates, nondominated_ranks, pareto_front, rank_order


def test_dominance():
    assert dominates((2, 2), (1, 2))
    assert not dominates((2, 2), (2, 2))
    assert not dominates((3, 1), (1, 3))


def test_ranks_and_front():
    pts = [(1, 5), (2, 4), (3, 3), (2, 2), (1, 1), (5, 0)]
    assert nondominated_ranks(pts) == [0, 0, 0, 1, 2, 0]
    assert sorted(pareto_front(pts)) == [0, 1, 2, 5]


def test_infeasible_points_are_dominated_and_kept_off_the_front():
    pts = [(10, 10), (1, 1), (0, 0)]
    viol = [0.5, 0.0, 0.0]
    ranks = nondominated_ranks(pts, viol)
    assert ranks[1] == 0 and ranks[0] > ranks[2]  # feasible beats infeasible, whatever the values
    assert pareto_front(pts, viol) == [1]


def test_crowding_distance():
    d = crowding_distances([(0, 4), (1, 3), (3, 1), (4, 0)])
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] == d[2] == (3 / 4) * 2


def test_rank_order_prefers_front_then_spread():
    pts = [(1, 1), (0, 4), (2, 2), (4, 0), (1, 3)]
    order = rank_order(pts)
    assert set(order[:4]) == {1, 2, 3, 4} and order[-1] == 0
    assert set(order[:2]) == {1, 3}  # boundary points first (infinite crowding)


def _rec(n, violation=0.0, state="complete", **metrics):
    return TrialRecord(n, {"n": n}, str(n), state, metrics, tuple(metrics.values()), violation)


def test_front_of_records_for_one_two_three_objectives():
    recs = [
        _rec(0, acc=0.9, lat=10.0, size=5.0),
        _rec(1, acc=0.8, lat=5.0, size=1.0),
        _rec(2, acc=0.7, lat=6.0, size=0.5),
        _rec(3, acc=0.95, lat=30.0, size=9.0, violation=1.0),
        _rec(4, state="failed"),
    ]
    acc, lat, size = Objective("acc", "max"), Objective("lat", "min"), Objective("size", "min")
    assert [r.number for r in front(recs, [acc])] == [0]
    assert [r.number for r in front(recs, [acc, lat])] == [0, 1]
    assert [r.number for r in front(recs, [acc, lat, size])] == [0, 1, 2]
    assert best(recs, acc).number == 0  # trial 3 is better but infeasible
    assert best(recs, lat).number == 1
