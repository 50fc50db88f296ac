"""Best trials and Pareto fronts of stored trials for any set of objectives."""

from __future__ import annotations

from collections.abc import Sequence

from automl.store import TrialRecord
from controllers.base import Objective
from controllers.pareto import pareto_front


def scored(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    """Completed trials that have every objective metric."""
    return [r for r in records if r.state == "complete" and all(o.metric in r.metrics for o in objectives)]


def front(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    """Feasible non-dominated trials, sorted by the first objective (best first)."""
    pool = scored(records, objectives)
    points = [tuple(o.score(r.metrics[o.metric]) for o in objectives) for r in pool]
    idx = pareto_front(points, [r.violation for r in pool])
    # Equal points (the same metrics from different archs) all stay on the front.
    members = [pool[i] for i in idx]
    first = objectives[0]
    return sorted(members, key=lambda r: (-first.score(r.metrics[first.metric]), r.number))


def best(records: Sequence[TrialRecord], objective: Objective) -> TrialRecord | None:
    """The feasible trial with the best value of one objective (earliest on ties)."""
    pool = [r for r in scored(records, [objective]) if r.feasible]
    if not pool:
        return None
    return max(pool, key=lambda r: (objective.score(r.metrics[objective.metric]), -r.number))
