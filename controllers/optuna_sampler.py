"""Optuna samplers (TPE, NSGA-II) as controllers over a space's decisions.

Each controller keeps a private in-memory Optuna study whose parameters are the space's
decisions (categorical distributions); ``ask`` turns a trial's parameters into an architecture
and ``tell`` reports the objective values (or a failure). The run's own trial store is
separate, so the sampler sees exactly what the controller contract allows: objectives, never
report-only metrics. Constraint violations are passed on with ``Trial.set_constraint`` (Optuna >= 5).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import optuna

from automl.types import Arch, Proposal, Result
from controllers.base import Controller

_VIOLATION = "automl_violation"
_TRIAL = "optuna_trial"


class OptunaSamplerController(Controller):
    """Base for controllers that delegate proposals to an Optuna sampler.

    Each proposal is an open trial of the private study (kept in ``proposal.meta``), so any
    number may be pending; the sampler sees them as RUNNING (TPE's ``constant_liar``).
    """

    requires: ClassVar[frozenset[str]] = frozenset({"decisions"})

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise TypeError(f"{type(self).__name__} must define make_sampler()")

    def bind(self, space, task, objectives, seed) -> None:  # type: ignore[override]
        super().bind(space, task, objectives, seed)
        optuna.logging.set_verbosity(logging.WARNING)
        self.study = optuna.create_study(
            sampler=self.make_sampler(seed),
            directions=["maximize" if o.direction == "max" else "minimize" for o in objectives],
        )
        self.distributions = {
            d.name: optuna.distributions.CategoricalDistribution(list(d.choices))
            for d in space.decisions()
        }

    def ask(self) -> Proposal | None:
        trial = self.study.ask(self.distributions)
        arch = {name: trial.params[name] for name in self.distributions}
        return Proposal(arch, meta={_TRIAL: trial})

    def tell(self, proposal: Proposal, result: Result) -> None:
        trial = proposal.meta.pop(_TRIAL, None)
        if trial is None:  # told about an arch it did not propose: add it as a finished trial
            self._add_foreign(proposal.arch, result)
            return
        trial.set_constraint(_VIOLATION, float(result.violation))
        if result.values is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, list(result.values))

    def _add_foreign(self, arch: Arch, result: Result) -> None:
        if result.values is None:
            return
        try:
            params = {name: arch[name] for name in self.distributions}
        except KeyError:
            return
        self.study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=self.distributions,
                values=list(result.values),
                constraints={_VIOLATION: float(result.violation)},
            )
        )


class TPEController(OptunaSamplerController):
    """Tree-structured Parzen Estimator (Bergstra et al. 2011) via ``optuna.samplers.TPESampler``."""

    name: ClassVar[str] = "tpe"
    description: ClassVar[str] = "Optuna TPE sampler over the space's decisions"
    multi_objective: ClassVar[bool] = True

    def __init__(self, n_startup_trials: int = 10, multivariate: bool = True, **sampler_options: Any) -> None:
        super().__init__()
        self.sampler_options = {"n_startup_trials": int(n_startup_trials), "multivariate": bool(multivariate),
                                "constant_liar": True, **sampler_options}

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, **self.sampler_options)


class NSGA2Controller(OptunaSamplerController):
    """NSGA-II (Deb et al. 2002) via ``optuna.samplers.NSGAIISampler``."""

    name: ClassVar[str] = "nsga2"
    description: ClassVar[str] = "Optuna NSGA-II sampler (multi-objective evolution)"
    multi_objective: ClassVar[bool] = True

    def __init__(self, population: int = 20, mutation_prob: float | None = None, **sampler_options: Any) -> None:
        super().__init__()
        self.sampler_options = {"population_size": int(population), "mutation_prob": mutation_prob, **sampler_options}

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=seed, **self.sampler_options)
