"""``bayes``: Auto-Keras's Bayesian optimisation over architectures (Jin et al. 2019;
docs/algorithms.md §3).

Each ``ask`` fits an :class:`~controllers.bayes.gp.EditDistanceGP` to the results so far (anew,
with a new embedding, after every result; see ``reembed``), then runs the annealed tree search (:func:`~controllers.bayes.search.anneal`) from every
trained architecture over the space's ``neighbors`` (network morphisms on ``morph``, one-decision
mutations on spaces built from decisions), scoring each unseen neighbour by UCB
(``mu + beta * sigma``); the best neighbour is proposed with the trial it descends from as its
``parent`` and ``inherit="parent"`` (the ``train`` evaluator's ``inherit_weights`` starts it from
that trial's weights through the space's ``transfer``). Architectures are compared through the
descriptor of their graph (:mod:`~controllers.bayes.descriptor`), so the controller runs on every
space that offers ``graph``.

The first ``initial`` proposals are the space's samples (on ``morph`` the start graph, as Auto-Keras
trains its seed CNN first; on decision spaces random architectures). When the search finds no
unseen neighbour it falls back to a fresh sample (Auto-Keras: a fresh default CNN).

Pending trials (parallel executors) are *kriging believers*: before each ``ask`` every proposal
still in flight joins the GP with its predicted mean, and is never proposed twice; the GP is refit
from the real results once they arrive. A failed or infeasible trial counts as the worst value
seen so far (none seen yet: it is only remembered as tried).

The GP, the acquisition and the annealing all work in the GP's own units (``targets``): ``rank``
(default) fits the normal scores of the results' ranks (a Gaussian copula), ``standard`` the
standardised results. On NAS-Bench-201 CIFAR-10 (beta 2.576, 100 queries, both without
``reembed``) standardised values gave 93.93 on seeds 0-19 and ranks 94.18 on seeds 0-99: a few
broken cells (10% accuracy beside 85%) inflate the standard deviation, and with it the exploration.

``reembed`` (default true) refits the GP, with a new Bourgain embedding of all the points, after
every result, as Auto-Keras does; false appends each result to the Cholesky factor and redraws the
embedding only at powers of two (O(n^2) instead of O(n^3) an update, but the points since the last
redraw are never the embedding's landmarks). On NAS-Bench-201 CIFAR-10 (100 queries, seeds 0-99)
that took the mean test accuracy from 94.17 (false) to 94.25 (true); ``ask`` stays far below a
second at 300 observations (``benchmarks/bayes_ask.py``). Believers are appended either way.

``noise`` is the GP's nugget: the variance, in the GP's units, added to the kernel's diagonal
(1e-10, Auto-Keras's jitter, for exact metrics such as the NB201 table; larger values, e.g.
0.05, let the GP average repeated noisy trainings instead of interpolating them).

Deviations from Auto-Keras 0.3.7: the targets above (Auto-Keras fits the raw metric, so its
exploration depends on the metric's scale) and an annealing temperature in those units; one
consistent kernel for fit and predict; Cholesky failures retry with more jitter (never a silent
skip); pending trials as kriging believers.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from automl.types import (
    Arch,
    Objective,
    Proposal,
    Result,
    Task,
    arch_from_key,
    arch_key,
)
from controllers.base import Controller
from controllers.bayes.descriptor import descriptor
from controllers.bayes.distance import Descriptor, DistanceCache
from controllers.bayes.gp import JITTER, TARGETS, EditDistanceGP, ucb
from controllers.bayes.search import Found, Seed, anneal
from search_spaces.base import SearchSpace

_PENDING = "bayes.pending"


class BayesController(Controller):
    """GP-UCB over edit distances with an annealed tree search over neighbours."""

    name: ClassVar[str] = "bayes"
    description: ClassVar[str] = "Auto-Keras BO: edit-distance GP, UCB, annealed search over morphisms (Jin et al. 2019)"
    requires: ClassVar[frozenset[str]] = frozenset({"graph"})

    def __init__(self, beta: float = 2.576, lam: float = 1.0, initial: int | None = None, neighbours: int = 8,
                 t_min: float = 1e-4, decay: float = 0.9, inherit: bool = True, targets: Literal["rank", "standard"] = "rank",
                 noise: float = JITTER, reembed: bool = True) -> None:
        super().__init__()
        if beta < 0 or lam < 0:
            raise ValueError(f"bayes: beta and lam must be >= 0 (got beta={beta}, lam={lam})")
        if initial is not None and initial < 1:
            raise ValueError(f"bayes: initial must be >= 1 (got {initial})")
        if neighbours < 1:
            raise ValueError(f"bayes: neighbours must be >= 1 (got {neighbours})")
        if not 0 < t_min < 1 or not 0 < decay < 1:
            raise ValueError(f"bayes: need 0 < t_min < 1 and 0 < decay < 1 (got t_min={t_min}, decay={decay})")
        self.beta, self.lam, self.neighbours = float(beta), float(lam), int(neighbours)
        self.initial_option = initial
        self.t_min, self.decay, self.inherit = float(t_min), float(decay), bool(inherit)
        if targets not in TARGETS:
            raise ValueError(f"bayes: targets must be one of {', '.join(TARGETS)}, got {targets!r}")
        self.targets = targets
        if not noise > 0:
            raise ValueError(f"bayes: noise must be > 0 (got {noise})")
        self.noise = float(noise)
        if not isinstance(reembed, bool):
            raise ValueError(f"bayes: reembed must be true or false (got {reembed!r})")
        self.reembed = reembed
        self.last: Found | None = None  # the last tree search (for logs and tests)

    def bind(self, space: SearchSpace, task: Task, objectives: Sequence[Objective], seed: int) -> None:
        super().bind(space, task, objectives, seed)
        if "neighbors" not in space.offers and "decisions" not in space.offers:
            raise ValueError(f"bayes: space {space.name!r} offers neither 'neighbors' (morphisms) nor 'decisions'")
        self.initial = self.initial_option or (10 if "decisions" in space.offers else 1)
        self.distances = DistanceCache(self.lam)
        self.gp = EditDistanceGP(self.lam, seed=seed, distances=self.distances, targets=self.targets,
                                noise=self.noise)
        self._descriptors: dict[str, Descriptor] = {}
        self.observed: list[tuple[dict[str, Any], float, int | None]] = []  # (arch, value, trial)
        self.tried: set[Hashable] = set()  # descriptor keys of everything proposed or told
        self._tried_archs: dict[str, None] = {}  # the same architectures' keys, in order (for state_dict)
        self.pending: dict[int, Proposal] = {}
        self._worst: float | None = None
        self._in_gp: list[Hashable] = []  # what the GP holds: real results, then believers
        self._believers = 0
        self._asked = 0

    # -- descriptors -----------------------------------------------------------------------------
    def descriptor(self, arch: Arch) -> Descriptor:
        key = arch_key(arch)
        d = self._descriptors.get(key)
        if d is None:
            d = self._descriptors[key] = descriptor(self.space.graph(arch))  # type: ignore[union-attr]
        return d

    def key(self, arch: Arch) -> Hashable:
        """Equal keys = edit distance 0 (the same chain and skips)."""
        return self.distances.ids(self.descriptor(arch))

    # -- the contract ----------------------------------------------------------------------------
    def ask(self) -> Proposal | None:
        assert self.space is not None, "bind() first"
        self._asked += 1
        if self._asked <= self.initial or not self.observed:
            arch = self._fresh()
            proposal = Proposal(arch, note="initial") if arch is not None else None
        else:
            self._sync_gp()
            values = self.gp.standardise(np.array([v for _, v, _ in self.observed]))
            found = self.last = anneal(
                [Seed(a, float(v), t) for (a, _, t), v in zip(self.observed, values, strict=True)], self._neighbors,
                self._score, self.key, set(self.tried), self.rng, t_min=self.t_min, decay=self.decay,
            )
            if found.arch is not None:
                inherit = "parent" if self.inherit and found.parent is not None else None
                proposal = Proposal(found.arch, parent=found.parent, inherit=inherit,
                                    note=f"neighbour of trial {found.parent}: ucb {found.score:.4g}, "
                                         f"{found.pops} pops, {found.scored} scored")
            else:
                arch = self._fresh()
                proposal = Proposal(arch, note="fallback: no unseen neighbour") if arch is not None else None
        if proposal is not None:
            self._remember(proposal.arch)
            self.pending[id(proposal)] = proposal
            proposal.meta[_PENDING] = True
        return proposal

    def tell(self, proposal: Proposal, result: Result) -> None:
        self.pending.pop(id(proposal), None)
        self._remember(proposal.arch)
        value = self.fitness(result)[0] if result.feasible else None
        if value is not None:
            self._worst = value if self._worst is None else min(self._worst, value)
        elif self._worst is None:
            return  # a failure before any success: remembered as tried, nothing to fit
        else:
            value = self._worst
        self.observed.append((dict(proposal.arch), float(value), result.trial))
        if self.reembed or self._believers or len(self._in_gp) != len(self.observed) - 1:
            self._in_gp = []  # a new embedding, believers in the GP, or out of step: refit at the next ask
        else:
            self.gp.add(self.descriptor(proposal.arch), float(value))
            self._in_gp.append(self.key(proposal.arch))

    # -- internals -------------------------------------------------------------------------------
    def _remember(self, arch: Arch) -> None:
        self.tried.add(self.key(arch))
        self._tried_archs[arch_key(arch)] = None

    def _sync_gp(self) -> None:
        """The GP holds every real result, then a believer (its predicted mean) per pending proposal."""
        if len(self._in_gp) != len(self.observed) + self._believers or not self._in_gp:
            self.gp.fit([self.descriptor(a) for a, _, _ in self.observed], [v for _, v, _ in self.observed])
            self._in_gp = [self.key(a) for a, _, _ in self.observed]
            self._believers = 0
        waiting = [p for p in self.pending.values() if self.key(p.arch) not in set(self._in_gp)]
        for p in waiting:
            d = self.descriptor(p.arch)
            mu, _ = self.gp.predict([d], standardised=True)
            self.gp.add(d, float(self._unstandardise(mu[0])))
            self._in_gp.append(self.key(p.arch))
            self._believers += 1

    def _neighbors(self, arch: Arch) -> list[dict[str, Any]]:
        return self.space.neighbors(arch, self.rng, self.neighbours)  # type: ignore[union-attr]

    def _score(self, archs: Sequence[Arch]) -> np.ndarray:
        mu, sigma = self.gp.predict([self.descriptor(a) for a in archs], standardised=True)
        return ucb(mu, sigma, self.beta)

    def _unstandardise(self, z: float) -> float:
        """A value in the metric's units from the GP's (for a believer): inverse of the
        standardisation, or the observed value of the nearest rank."""
        if self.gp.targets == "standard":
            return z * self.gp.scale + self.gp.mean
        ys = np.sort(self.gp.y)
        return float(np.interp(z, np.sort(self.gp.z), ys))

    def _fresh(self) -> dict[str, Any] | None:
        """An unseen sample of the space, else an unseen neighbour of something tried."""
        space = self.space
        assert space is not None
        for _ in range(50):
            arch = space.sample(self.rng)
            if self.key(arch) not in self.tried:
                return arch
        known = [a for a, _, _ in self.observed] + [p.arch for p in self.pending.values()]
        for i in self.rng.permutation(len(known)):
            for child in self._neighbors(known[int(i)]):
                if self.key(child) not in self.tried:
                    return child
        return None

    # -- resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "observed": [[dict(a), v, t] for a, v, t in self.observed],
            "tried": list(self._tried_archs),
            "worst": self._worst,
            "asked": self._asked,
            "rng": self.rng.bit_generator.state,
            "embedding_seed": self.gp.seed,
            "landmarks": self.gp.landmarks if self.observed else 0,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.observed = [(dict(a), float(v), t) for a, v, t in state["observed"]]
        self.tried, self._tried_archs = set(), {}
        for key in state["tried"]:
            self._remember(arch_from_key(key))
        self._worst, self._asked = state["worst"], int(state["asked"])
        self.rng.bit_generator.state = state["rng"]
        self.gp.seed = int(state.get("embedding_seed", self.gp.seed))  # absent before 2026-12-01: this run's seed
        self._in_gp, self._believers = [], 0  # reembed: the next ask refits (the embedding of n points is fixed)
        landmarks = int(state.get("landmarks", 0))
        if not self.reembed and self.observed and 0 < landmarks <= len(self.observed):
            # appended results since the last redraw: the same embedding as before the stop
            self.gp.fit([self.descriptor(a) for a, _, _ in self.observed], [v for _, v, _ in self.observed],
                        landmarks=landmarks)
            self._in_gp = [self.key(a) for a, _, _ in self.observed]

