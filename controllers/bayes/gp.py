"""A Gaussian process over architectures: edit distances, a Bourgain embedding, an RBF kernel
(docs/algorithms.md §3).

The edit distance is not Euclidean, so ``exp(-d^2)`` need not be positive semi-definite. As in
Auto-Keras, the training architectures are embedded with Bourgain's construction: for scale
``i = 0..k`` (``k = ceil(log2 n - 1)``), ``t = ceil(ln n)`` times, a random subset ``S`` of
``2^i`` training points (drawn with replacement) gives the coordinate ``min_{s in S} d(x, s)``.
The kernel is the RBF of these coordinates (``gamma = 1 / dimensions``), so it is PSD with a
unit diagonal. The subsets of ``n`` points are drawn from a generator seeded by ``(seed, n)``
(Auto-Keras reseeds with 123 before every embedding), so a refit of the same points gives the
same kernel whatever happened before: a resumed search repeats exactly. Deviations from
Auto-Keras 0.3.x (Appendix B): the same kernel serves fit and predict (new points are embedded
against the stored subsets, never ``exp(-d^2)`` of raw distances); all ``t`` repetitions are drawn
at every scale; a Cholesky failure retries with ten times the jitter instead of skipping the update.

:meth:`EditDistanceGP.fit` embeds the points it is given (Auto-Keras refits, and so re-embeds,
after every result). :meth:`EditDistanceGP.add` appends one observation by extending the Cholesky
factor by a row (O(n^2)) against the current embedding, which is redrawn (a full fit) only when
``n`` reaches the next power of two, where its number of scales changes. Between two redraws the
newer points are never landmarks of the embedding, so it tells their neighbourhoods apart less
well: :class:`~controllers.bayes.controller.BayesController` refits after every real result
(``reembed``) and appends only the believers of pending trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import ndtri

from controllers.bayes.distance import Descriptor, DistanceCache

JITTER = 1e-10
TARGETS = ("standard", "rank")


class EditDistanceGP:
    """GP regression on descriptors. Targets are standardised (mean 0, standard deviation 1)
    before the unit-amplitude kernel sees them and predictions are scaled back, so the prior
    fits accuracies in [0, 1] and in percent alike (deviation: Auto-Keras fits raw metrics)."""

    def __init__(self, lam: float = 1.0, seed: int = 0, distances: DistanceCache | None = None,
                 targets: str = "standard", noise: float = JITTER) -> None:
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
        if not noise > 0:
            raise ValueError(f"noise must be > 0, got {noise!r}")
        self.targets, self.noise = targets, float(noise)
        self.lam = lam
        self.dist = distances if distances is not None else DistanceCache(lam)
        self.seed = int(seed) % 2**63  # the embedding's generator takes (seed, n), both >= 0
        self.x: list[Descriptor] = []
        self.y = np.zeros(0)
        self.subsets: list[np.ndarray] = []
        self.landmarks = 0  # how many (first) points the embedding's subsets were drawn from

    # -- embedding -------------------------------------------------------------------------------
    def _draw_subsets(self, n: int) -> None:
        k = max(0, math.ceil(math.log2(n) - 1)) if n > 1 else 0
        t = max(1, math.ceil(math.log(n))) if n > 1 else 1
        rng = np.random.default_rng([self.seed, n])
        self.landmarks = n
        self.subsets = [rng.integers(0, n, size=2**i) for i in range(k + 1) for _ in range(t)]

    def _coordinates(self, distances: np.ndarray) -> np.ndarray:
        """Bourgain coordinates of points whose distances to the training points are the rows."""
        return np.stack([distances[:, s].min(axis=1) for s in self.subsets], axis=1)

    def _rbf(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        gamma = 1.0 / a.shape[1]
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-gamma * sq)

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, x: Sequence[Descriptor], y: Sequence[float], landmarks: int | None = None) -> EditDistanceGP:
        """Fit from scratch: the embedding, the kernel and its Cholesky factor. The embedding's
        subsets are drawn from the first ``landmarks`` points (default all; a resumed search
        that had appended points since its last redraw passes that redraw's count)."""
        self.x, self.y = list(x), np.asarray(y, dtype=float)
        if not self.x:
            raise ValueError("the GP needs at least one observation")
        self.distances = self.dist.matrix(self.x, self.x)
        self._draw_subsets(len(self.x) if landmarks is None else min(int(landmarks), len(self.x)))
        self.coords = self._coordinates(self.distances)
        self.kernel = self._rbf(self.coords, self.coords)
        self.chol = _cholesky(self.kernel, self.noise)
        self._solve()
        return self

    def add(self, x: Descriptor, y: float) -> None:
        """One more observation: a Cholesky row append, or a full refit at a power of two."""
        n = len(self.x)
        if n == 0 or (n + 1) & n == 0:  # n + 1 is a power of two: the embedding gains a scale
            self.fit([*self.x, x], [*self.y, y])
            return
        row = self.dist.matrix([x], self.x)[0]
        c = self._coordinates(row[None, :])
        k = self._rbf(c, self.coords)[0]
        self.x.append(x)
        self.y = np.append(self.y, y)
        self.distances = np.block([[self.distances, row[:, None]], [row[None, :], np.zeros((1, 1))]])
        self.coords = np.vstack([self.coords, c])
        self.kernel = np.block([[self.kernel, k[:, None]], [k[None, :], np.ones((1, 1))]])
        l_row = solve_triangular(self.chol, k, lower=True)
        diag = 1.0 + self.noise - l_row @ l_row
        if diag <= 1e-12:  # numerically dependent: refactorise with more jitter
            self.chol = _cholesky(self.kernel, self.noise)
        else:
            self.chol = np.block([[self.chol, np.zeros((n, 1))], [l_row[None, :], np.array([[math.sqrt(diag)]])]])
        self._solve()

    def _solve(self) -> None:
        self.mean = float(self.y.mean())
        spread = float(self.y.std())
        self.scale = spread if spread > 1e-12 else 1.0
        self.z = self.standardise(self.y)
        self.alpha = cho_solve((self.chol, True), self.z)

    def standardise(self, y: np.ndarray) -> np.ndarray:
        """Values in the GP's own units: ``(y - mean) / std`` (``standard``), or the normal scores of
        their ranks among the observations (``rank``: a Gaussian copula, robust to outliers)."""
        y = np.asarray(y, dtype=float)
        if self.targets == "standard":
            return (y - self.mean) / self.scale
        ranks = np.searchsorted(np.sort(self.y), y, side="left") + 0.5 * (
            np.searchsorted(np.sort(self.y), y, side="right") - np.searchsorted(np.sort(self.y), y, side="left"))
        return ndtri(np.clip(ranks / len(self.y), 0.5 / len(self.y), 1 - 0.5 / len(self.y)))

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, x: Sequence[Descriptor], standardised: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at ``x``: in the metric's units, or in the GP's
        own (:meth:`standardise`) with ``standardised`` (the only units of ``targets="rank"``)."""
        d = self.dist.matrix(list(x), self.x)
        k = self._rbf(self._coordinates(d), self.coords)
        mu = k @ self.alpha
        v = solve_triangular(self.chol, k.T, lower=True)
        sigma = np.sqrt(np.clip(1.0 - (v * v).sum(0), 0.0, None))
        if standardised:
            return mu, sigma
        if self.targets != "standard":
            raise ValueError("a GP fitted on ranks predicts in standardised units only")
        return mu * self.scale + self.mean, sigma * self.scale


def _cholesky(kernel: np.ndarray, jitter: float = JITTER) -> np.ndarray:
    """Lower Cholesky factor of ``kernel + jitter * I``, the jitter growing tenfold on failure."""
    for _ in range(12):
        try:
            return np.linalg.cholesky(kernel + jitter * np.eye(len(kernel)))
        except np.linalg.LinAlgError:
            jitter *= 10
    raise np.linalg.LinAlgError(f"kernel matrix not positive definite even with jitter {jitter:g}")


def ucb(mu: np.ndarray, sigma: np.ndarray, beta: float = 2.576, maximize: bool = True) -> np.ndarray:
    """Upper confidence bound ``mu + beta * sigma`` (``-(mu - beta * sigma)`` for a loss)."""
    return mu + beta * sigma if maximize else -(mu - beta * sigma)
