"""The trial store: one Optuna study per run (SQLite file by default, any SQLAlchemy URL).

Each evaluated architecture is one Optuna trial. Its user attributes hold what automl needs
and what optuna-dashboard shows: ``arch`` (the JSON architecture), ``arch_key`` (canonical
text), ``arch_str`` (the space's description), ``metrics`` (every metric, report-only ones
included), ``violation`` (constraint excess, 0 = feasible), ``duration_s`` and ``error``.
Objective values are the trial's values, so Optuna's own tools read the front.

A trial interrupted mid-evaluation (Ctrl-C, crash) is marked FAIL with ``interrupted=True``;
such trials are ignored by resume, the duplicate cache and the budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from controllers.base import Objective, Result
from search_spaces.base import Arch, arch_key


@dataclass
class TrialRecord:
    """A finished trial as automl sees it."""

    number: int
    arch: dict[str, Any]
    key: str
    state: str  # "complete" | "failed" | "pruned"
    metrics: dict[str, float] = field(default_factory=dict)
    values: tuple[float, ...] | None = None
    violation: float = 0.0
    duration_s: float = 0.0
    error: str = ""
    arch_str: str = ""

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and self.violation <= 0

    def result(self, hidden: Sequence[str] = ()) -> Result:
        """The controller's view: report-only metrics removed."""
        metrics = {k: v for k, v in self.metrics.items() if k not in hidden}
        return Result(
            values=self.values if self.state == "complete" else None,
            metrics=metrics,
            violation=self.violation,
            failed=self.state != "complete",
        )


def default_storage(run_dir: str) -> str:
    from pathlib import Path

    return f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"


class TrialStore:
    """Read and write the trials of one run in an Optuna storage."""

    def __init__(
        self,
        storage: str | optuna.storages.BaseStorage | None,
        study_name: str,
        objectives: Sequence[Objective],
        *,
        create: bool = True,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        optuna.logging.set_verbosity(logging.WARNING)
        self.objectives = tuple(objectives)
        directions = ["maximize" if o.direction == "max" else "minimize" for o in objectives]
        if create:
            self.study = optuna.create_study(
                storage=storage, study_name=study_name, directions=directions, load_if_exists=True, pruner=pruner
            )
        else:
            self.study = optuna.load_study(storage=storage, study_name=study_name, pruner=pruner)
        if create and self.study.user_attrs.get("objectives") is None:
            self.study.set_user_attr("objectives", [str(o) for o in objectives])

    # -- reading ------------------------------------------------------------------------------
    def records(self) -> list[TrialRecord]:
        """Finished, non-interrupted trials ordered by trial number."""
        out = []
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING or t.user_attrs.get("interrupted") or "arch" not in t.user_attrs:
                continue
            state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(t.state, "failed")
            out.append(
                TrialRecord(
                    number=t.number,
                    arch=dict(t.user_attrs["arch"]),
                    key=t.user_attrs.get("arch_key") or arch_key(t.user_attrs["arch"]),
                    state=state,
                    metrics=dict(t.user_attrs.get("metrics", {})),
                    values=tuple(t.values) if t.values is not None and state == "complete" else None,
                    violation=float(t.user_attrs.get("violation", 0.0)),
                    duration_s=float(t.user_attrs.get("duration_s", 0.0)),
                    error=str(t.user_attrs.get("error", "")),
                    arch_str=str(t.user_attrs.get("arch_str", "")),
                )
            )
        return sorted(out, key=lambda r: r.number)

    def mark_interrupted(self) -> int:
        """Fail every trial left RUNNING by a crash; returns how many."""
        n = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial = optuna.Trial(self.study, t._trial_id)  # FrozenTrial has no public id
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted before it finished; evaluated again on resume")
            self.study.tell(trial, state=TrialState.FAIL)
            n += 1
        return n

    # -- writing ------------------------------------------------------------------------------
    def start(self, arch: Arch, arch_str: str = "") -> optuna.Trial:
        trial = self.study.ask()
        trial.set_user_attr("arch", dict(arch))
        trial.set_user_attr("arch_key", arch_key(arch))
        if arch_str:
            trial.set_user_attr("arch_str", arch_str)
        return trial

    def complete(
        self, trial: optuna.Trial, metrics: Mapping[str, float], values: Sequence[float], violation: float, duration: float
    ) -> None:
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        trial.set_user_attr("violation", float(violation))
        trial.set_user_attr("duration_s", round(duration, 6))
        self.study.tell(trial, list(values))

    def fail(
        self,
        trial: optuna.Trial,
        error: str,
        duration: float,
        metrics: Mapping[str, float] | None = None,
        *,
        pruned: bool = False,
        interrupted: bool = False,
    ) -> None:
        if metrics:
            trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))})
        trial.set_user_attr("error", error)
        trial.set_user_attr("duration_s", round(duration, 6))
        if interrupted:
            trial.set_user_attr("interrupted", True)
        self.study.tell(trial, state=TrialState.PRUNED if pruned else TrialState.FAIL)
