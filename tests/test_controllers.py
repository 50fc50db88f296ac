"""Controllers: determinism, regularized-evolution mechanics, beating random search."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from automl.types import Objective, Proposal, Result
from controllers.evolution import RegularizedEvolution
from controllers.optuna_sampler import NSGA2Controller, TPEController
from controllers.random_search import RandomSearch
from automl.types import arch_key, Decision
from search_spaces.base import SearchSpace
from search_spaces.nb201 import NB201Space


class OneMax(SearchSpace):
    """24 binary decisions; fitness = number of ones."""

    name: ClassVar[str] = "onemax"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions"})

    def decisions(self):
        return tuple(Decision(f"b{i:02d}", (0, 1)) for i in range(24))


def onemax(arch: dict[str, Any]) -> float:
    return float(sum(arch.values()))


def drive(controller, space, budget: int, fn=onemax, seed: int = 0) -> list[tuple[dict, float]]:
    controller.setup(space, [Objective("f", "max")], seed)
    out = []
    for i in range(budget):
        proposal = controller.ask()
        value = fn(proposal.arch)
        controller.tell(proposal, Result(values=(value,), metrics={"f": value}, trial=i))
        out.append((proposal.arch, value))
    return out


@pytest.mark.parametrize("cls", [RandomSearch, RegularizedEvolution, TPEController, NSGA2Controller])
def test_same_seed_same_proposals(cls):
    a = drive(cls(), OneMax(), 30, seed=3)
    b = drive(cls(), OneMax(), 30, seed=3)
    c = drive(cls(), OneMax(), 30, seed=4)
    assert [arch_key(x) for x, _ in a] == [arch_key(x) for x, _ in b]
    assert [arch_key(x) for x, _ in a] != [arch_key(x) for x, _ in c]


def test_evolution_population_ages_and_children_differ_by_one_decision():
    space = OneMax()
    ctl = RegularizedEvolution(population=8, sample_size=3)
    ctl.setup(space, [Objective("f", "max")], 0)
    told = []
    for step in range(40):
        proposal = ctl.ask()
        arch = proposal.arch
        if step >= 8:  # after the random initial population, each child is one mutation away
            parents = [a for a, _ in ctl.population]
            assert any(sum(arch[k] != p[k] for k in arch) == 1 for p in parents)
            assert proposal.parent is not None and proposal.parent >= step - 8  # a member of the population
        else:
            assert proposal.parent is None
        ctl.tell(proposal, Result(values=(onemax(arch),), trial=step))
        told.append(arch)
        assert len(ctl.population) == min(step + 1, 8)
        assert [a for a, _ in ctl.population] == told[-8:]  # FIFO: the oldest is removed
    assert len(ctl.history) == 8 + 32  # P initial + cycles


def test_evolution_tournament_picks_best_of_sample():
    ctl = RegularizedEvolution(population=3, sample_size=3)
    ctl.setup(OneMax(), [Objective("f", "max")], 0)
    sample = [({"x": 1}, Result(values=(1.0,))), ({"x": 2}, Result(values=(5.0,))), ({"x": 3}, Result(values=None, failed=True))]
    assert ctl._best(sample) == 1
    ctl.setup(OneMax(), [Objective("f", "min")], 0)
    assert ctl._best(sample) == 0
    infeasible = [({"x": 1}, Result(values=(9.0,), violation=2.0)), ({"x": 2}, Result(values=(1.0,)))]
    ctl.setup(OneMax(), [Objective("f", "max")], 0)
    assert ctl._best(infeasible) == 1


def test_evolution_multi_objective_uses_pareto_rank():
    ctl = RegularizedEvolution()
    ctl.setup(OneMax(), [Objective("a", "max"), Objective("b", "max")], 0)
    sample = [({"i": 0}, Result(values=(1.0, 1.0))), ({"i": 1}, Result(values=(2.0, 2.0))), ({"i": 2}, Result(values=(0.5, 0.5)))]
    assert ctl._best(sample) == 1


def test_evolution_beats_random_on_onemax():
    """docs/algorithms.md §7: at equal budget, aging evolution beats random search on OneMax."""
    evo = [max(v for _, v in drive(RegularizedEvolution(population=20, sample_size=5), OneMax(), 150, seed=s)) for s in range(10)]
    rnd = [max(v for _, v in drive(RandomSearch(), OneMax(), 150, seed=s)) for s in range(10)]
    assert np.mean(evo) > np.mean(rnd) + 2


def test_tpe_uses_history_on_nb201_like_objective():
    space = NB201Space()

    def convs(arch):
        return float(sum(v == "nor_conv_3x3" for v in arch.values()))

    tpe = [max(v for _, v in drive(TPEController(), space, 40, fn=convs, seed=s)) for s in range(4)]
    rnd = [max(v for _, v in drive(RandomSearch(), space, 40, fn=convs, seed=s)) for s in range(4)]
    assert np.mean(tpe) > np.mean(rnd)


def test_optuna_controller_accepts_foreign_and_failed_results():
    ctl = TPEController()
    space = OneMax()
    ctl.setup(space, [Objective("f", "max")], 0)
    ctl.tell(ctl.ask(), Result(values=None, failed=True))
    ctl.tell(Proposal({f"b{i:02d}": 1 for i in range(24)}), Result(values=(24.0,)))  # never proposed
    states = [t.state.name for t in ctl.study.trials]
    assert states == ["FAIL", "COMPLETE"]


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        RegularizedEvolution(population=0)
    with pytest.raises(TypeError):
        RandomSearch(population=3)


def test_pending_proposals_are_told_in_any_order():
    """Several asks before any tell (parallel trials); results come back out of order."""
    for cls in (RandomSearch, RegularizedEvolution, TPEController, NSGA2Controller):
        ctl = cls()
        ctl.setup(OneMax(), [Objective("f", "max")], 0)
        told = 0
        for _ in range(6):
            batch = [ctl.ask() for _ in range(4)]
            assert len({id(p) for p in batch}) == 4
            for p in reversed(batch):
                ctl.tell(p, Result(values=(onemax(p.arch),), trial=told))
                told += 1
        if isinstance(ctl, TPEController):
            assert all(t.state.name == "COMPLETE" for t in ctl.study.trials) and len(ctl.study.trials) == 24
