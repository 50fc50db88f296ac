"""Auto-Keras maths (docs/algorithms.md §3): the edit distance and the Bourgain-embedded GP."""

from __future__ import annotations

import numpy as np
import pytest

from controllers.bayes.distance import (
    Skip,
    describe,
    distance,
    distance_matrix,
    skips_distance,
)
from controllers.bayes.gp import EditDistanceGP, ucb

CONV = {"filters": 64, "kernel": 3, "stride": 1}


def chain(n: int, skips=(), width: int = 64):
    layers = []
    for _ in range(n):
        layers += [("conv", {**CONV, "filters": width}), ("bn", {}), ("relu", {})]
    return describe(layers, skips)


def random_descriptor(rng) -> object:
    n = int(rng.integers(1, 5))
    width = int(rng.choice([16, 32, 64]))
    skips = [(int(u), int(u) + int(rng.integers(1, 3)), str(rng.choice(["add", "concat"])))
             for u in rng.integers(0, 3 * n - 2, size=int(rng.integers(0, 3)))]
    return chain(n, skips, width)


def test_distance_is_zero_on_itself_symmetric_and_non_negative():
    rng = np.random.default_rng(0)
    xs = [random_descriptor(rng) for _ in range(12)]
    d = distance_matrix(xs)
    assert np.allclose(np.diag(d), 0) and np.allclose(d, d.T) and (d >= 0).all()
    assert all(distance(x, x) == 0 for x in xs)


def test_one_inserted_layer_costs_exactly_one():
    a = chain(2)
    b = describe([*[(l.type, l.attrs) for l in a.layers[:3]], ("relu", {}), *[(l.type, l.attrs) for l in a.layers[3:]]])
    assert distance(a, b) == pytest.approx(1.0)


def test_a_skip_of_another_kind_costs_exactly_one():
    assert distance(chain(3, [(0, 3, "add")]), chain(3, [(0, 3, "concat")])) == pytest.approx(1.0)
    assert distance(chain(3, [(0, 3, "add")]), chain(3)) == pytest.approx(1.0)  # one skip fewer


def test_conv_substitution_is_the_mean_relative_difference():
    a, b = chain(1, width=64), chain(1, width=32)
    assert distance(a, b) == pytest.approx((32 / 64) / 3)  # filters differ by half; kernel, stride equal


def test_hungarian_matching_beats_greedy_on_a_crafted_case():
    a = [Skip(2, 3, "add"), Skip(0, 1, "add")]
    b = [Skip(1, 2, "add"), Skip(4, 5, "add")]
    scale = 4 + 1  # max u + max length
    cost = np.array([[abs(x.u - y.u) / scale for y in b] for x in a])  # equal lengths: |du| only
    taken, greedy = set(), 0.0
    for row in cost:  # greedy: each skip in turn takes its cheapest free partner
        k = min((c, j) for j, c in enumerate(row) if j not in taken)[1]
        taken.add(k)
        greedy += row[k]
    assert greedy == pytest.approx(5 / scale)  # a0 -> b0 (1), then a1 -> b1 (4)
    assert skips_distance(a, b) == pytest.approx(3 / scale)  # a0 -> b1 (2), a1 -> b0 (1)


def test_bourgain_kernel_is_symmetric_psd_with_unit_diagonal():
    rng = np.random.default_rng(1)
    gp = EditDistanceGP(seed=0).fit([random_descriptor(rng) for _ in range(20)], rng.normal(size=20))
    k = gp.kernel
    assert np.allclose(k, k.T) and np.allclose(np.diag(k), 1.0)
    assert np.linalg.eigvalsh(k).min() > -1e-9


def test_gp_interpolates_its_training_points_and_grows_incrementally():
    rng = np.random.default_rng(2)
    xs, ys = [], []
    while len(xs) < 10:  # distinct descriptors (a repeated one is a zero-distance duplicate)
        x = random_descriptor(rng)
        if all(distance(x, other) > 0 for other in xs):
            xs.append(x)
            ys.append(float(rng.normal()))
    gp = EditDistanceGP(seed=0).fit(xs[:5], ys[:5])
    for x, y in zip(xs[5:], ys[5:], strict=True):
        gp.add(x, y)  # 5 -> 6, 7: row appends; 8: refit at a power of two; 9, 10: appends
    mu, sigma = gp.predict(xs)
    assert np.allclose(mu, ys, atol=1e-3) and (sigma < 1e-3).all()
    far = chain(6, [(0, 17, "concat")], width=16)
    _, s_far = gp.predict([far])
    assert s_far[0] > 0.05  # away from the data the GP is uncertain
    assert np.allclose(gp.chol @ gp.chol.T, gp.kernel, atol=1e-8)  # the appended factor is the kernel's


def test_ucb_adds_or_subtracts_beta_sigma():
    mu, sigma = np.array([1.0, 2.0]), np.array([0.5, 0.0])
    assert ucb(mu, sigma).tolist() == [1.0 + 2.576 * 0.5, 2.0]
    assert ucb(mu, sigma, maximize=False).tolist() == [-(1.0 - 2.576 * 0.5), -2.0]


def test_the_row_wise_edit_distance_equals_the_textbook_table():
    from controllers.bayes.distance import Layer, layer_distance, layers_distance

    rng = np.random.default_rng(0)
    kinds = ["conv", "max_pool", "bn", "relu", "sep_conv"]

    def layer():
        return Layer(kinds[int(rng.integers(5))], {"filters": float(rng.choice([16, 32, 64])),
                                                   "kernel": float(rng.choice([1, 3, 5])), "stride": 1.0,
                                                   "padding": float(rng.integers(2))})

    def textbook(a, b):
        t = np.zeros((len(a) + 1, len(b) + 1))
        t[:, 0], t[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                t[i, j] = min(t[i - 1, j] + 1, t[i, j - 1] + 1, t[i - 1, j - 1] + layer_distance(a[i - 1], b[j - 1]))
        return t[-1, -1]

    for _ in range(200):
        a = [layer() for _ in range(int(rng.integers(0, 8)))]
        b = [layer() for _ in range(int(rng.integers(0, 8)))]
        assert layers_distance(a, b) == pytest.approx(textbook(a, b))


def test_a_gp_on_ranks_interpolates_normal_scores_and_ignores_outlier_sizes():
    from scipy.special import ndtri

    rng = np.random.default_rng(3)
    xs: list = []
    while len(xs) < 8:
        x = random_descriptor(rng)
        if all(distance(x, other) > 0 for other in xs):
            xs.append(x)
    ys = np.array([0.8, 0.82, 0.1, 0.85, 0.79, 0.9, 0.83, 0.81])
    gp = EditDistanceGP(seed=0, targets="rank").fit(xs, ys)
    scores = ndtri((np.argsort(np.argsort(ys)) + 0.5) / 8)
    assert np.allclose(gp.z, scores)
    mu, sigma = gp.predict(xs, standardised=True)
    assert np.allclose(mu, scores, atol=1e-3) and (sigma < 1e-3).all()
    squashed = ys.copy()
    squashed[2] = -1e6  # a far worse outlier changes nothing: only the order counts
    assert np.allclose(EditDistanceGP(seed=0, targets="rank").fit(xs, squashed).z, scores)
    with pytest.raises(ValueError, match="standardised"):
        gp.predict(xs)
    with pytest.raises(ValueError, match="targets"):
        EditDistanceGP(targets="log")
