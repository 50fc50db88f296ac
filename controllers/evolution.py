"""Regularized (aging) evolution, Real et al. 2019 (AmoebaNet).

A FIFO population of ``population`` individuals; each cycle draws ``sample_size`` members
uniformly *with replacement*, mutates the best of the sample once (``space.mutate`` changes
exactly one decision) and, once the child is evaluated, appends it and removes the *oldest*
member. The first ``population`` proposals are random. With trials in flight (parallel executors) the
tournament draws from the members told so far, as in the paper's asynchronous workers.

Multi-objective runs rank the tournament sample by constrained Pareto dominance then crowding
distance (NSGA-II ordering); single-objective runs by the objective, infeasible results last.

Defaults follow the NAS-Bench-201 R-EA scripts (P=10, S=3) rather than the paper's P=100,
S=25, which only pay off at budgets of thousands of models.

``initial`` (preset names of the space, e.g. ``unet,attention-unet``) puts those networks first
in the initial population; random architectures fill the rest of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import ClassVar

from automl.pareto import rank_order
from automl.types import Arch, Objective, Proposal, Result, Task
from controllers.base import Controller, initial_names, initial_proposals
from search_spaces.base import SearchSpace


class RegularizedEvolution(Controller):
    """Aging evolution: tournament selection, one mutation per child, oldest removed."""

    name: ClassVar[str] = "evolution"
    description: ClassVar[str] = "regularized (aging) evolution, Real et al. 2019"
    requires: ClassVar[frozenset[str]] = frozenset()
    multi_objective: ClassVar[bool] = True

    def __init__(self, population: int = 10, sample_size: int = 3, initial: str | Sequence[str] | None = None) -> None:
        super().__init__()
        if population < 1 or not 1 <= sample_size:
            raise ValueError("evolution: population and sample_size must be >= 1")
        self.initial = initial_names(initial, self.name)
        self.seeds: list[Proposal] = []
        self.population_size = int(population)
        self.sample_size = int(sample_size)
        self.population: deque[tuple[Arch, Result]] = deque()
        self.history: list[tuple[Arch, Result]] = []
        self._proposed = 0

    def bind(self, space: SearchSpace, task: Task, objectives: Sequence[Objective], seed: int) -> None:
        super().bind(space, task, objectives, seed)
        self.seeds = initial_proposals(space, self.initial, self.name)

    def ask(self) -> Proposal | None:
        assert self.space is not None, "bind() first"
        self._proposed += 1
        if self._proposed <= len(self.seeds):
            return self.seeds[self._proposed - 1]
        if self._proposed <= self.population_size or not self.population:
            return Proposal(self.space.sample(self.rng), note="random")
        idx = self.rng.integers(len(self.population), size=self.sample_size)
        sample = [self.population[int(i)] for i in idx]
        parent, result = sample[self._best(sample)]
        return Proposal(self.space.mutate(parent, self.rng), parent=result.trial, note="mutation")

    def tell(self, proposal: Proposal, result: Result) -> None:
        self.population.append((dict(proposal.arch), result))
        self.history.append((dict(proposal.arch), result))
        while len(self.population) > self.population_size:
            self.population.popleft()

    def _best(self, sample: list[tuple[Arch, Result]]) -> int:
        points = [self.fitness(r) for _, r in sample]
        violations = [r.violation if not r.failed else float("inf") for _, r in sample]
        if len(self.objectives) == 1:
            return max(range(len(sample)), key=lambda i: (violations[i] <= 0, -violations[i], points[i]))
        return rank_order(points, violations)[0]
