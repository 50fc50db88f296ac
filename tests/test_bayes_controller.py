"""The ``bayes`` controller (Auto-Keras BO): descriptors from the graph form, the distance cache,
the annealed tree search, pending trials, failures and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from automl import registry
from automl.types import Objective, Result, arch_key
from controllers.bayes.controller import BayesController
from controllers.bayes.descriptor import descriptor
from controllers.bayes.distance import DistanceCache, distance
from controllers.bayes.gp import EditDistanceGP
from controllers.bayes.search import Seed, anneal
from search_spaces.darts import DartsSpace
from search_spaces.macro import MacroSpace
from search_spaces.nb201 import NB201Space
from search_spaces.nb201.space import EDGES, from_arch_str

MAX = (Objective("score", "max"),)


def score(arch) -> float:
    """A toy benchmark on NB201: 3x3 convs are good, 'none' is bad (optimum 6.0 at all-conv3x3)."""
    return float(sum({"nor_conv_3x3": 1.0, "nor_conv_1x1": 0.6, "skip_connect": 0.3, "avg_pool_3x3": 0.2,
                      "none": 0.0}[arch[e]] for e in EDGES))


def drive(controller, space, budget: int, seed: int = 0) -> list[float]:
    controller.setup(space, MAX, seed)
    values = []
    for n in range(budget):
        p = controller.ask()
        values.append(score(p.arch))
        controller.tell(p, Result((values[-1],), trial=n))
    return values


def test_descriptor_of_an_nb201_cell():
    arch = from_arch_str("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    d = descriptor(NB201Space().graph(arch))
    assert [(x.type, x.attrs.get("kernel")) for x in d.layers] == [("conv", 3), ("conv", 3), ("conv", 3)]
    assert sorted((s.u, s.v, s.kind) for s in d.skips) == [(0, 2, "add:conv1"), (0, 3, "add:identity")]
    # 'none' everywhere into the output: nothing reaches it
    empty = from_arch_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|")
    assert descriptor(NB201Space().graph(empty)).layers == ()


def test_one_more_layer_on_the_chain_costs_exactly_one():
    a = from_arch_str("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|")
    b = from_arch_str("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    da, db = (descriptor(NB201Space().graph(x)) for x in (a, b))
    assert len(da.layers) == 3 and len(db.layers) == 2 and distance(da, db) == pytest.approx(1.0)


@pytest.mark.parametrize("space", [NB201Space(), DartsSpace(), MacroSpace(layers=6)], ids=lambda s: s.name)
def test_the_distance_cache_equals_the_distance_on_every_graph_space(space):
    rng = np.random.default_rng(0)
    ds = [descriptor(space.graph(space.sample(rng))) for _ in range(8)]
    cache = DistanceCache()
    m = cache.matrix(ds, ds)
    expected = np.array([[distance(x, y) for y in ds] for x in ds])
    assert np.allclose(m, expected) and np.allclose(np.diag(m), 0) and np.allclose(m, m.T)
    assert np.allclose(cache.matrix(ds[:3], ds), expected[:3])  # looked up the second time


def test_annealing_pops_at_most_88_times_and_returns_the_best_scored():
    rng = np.random.default_rng(0)
    found = anneal([Seed(0, 0.0, 7)], lambda x: [x * 10 + i for i in range(1, 9)], lambda xs: -np.log1p(xs),
                   key=lambda x: x, seen=set(), rng=rng)
    assert found.pops <= 88 and found.parent == 7 and found.arch == 1  # smallest child scores best
    assert math.ceil(math.log(1e-4) / math.log(0.9)) == 88


def test_bayes_beats_random_search_on_a_toy_nb201_benchmark():
    best_bayes, best_random = [], []
    for seed in range(3):
        best_bayes.append(max(drive(BayesController(initial=5), NB201Space(), 25, seed)))
        best_random.append(max(drive(registry.create("controller", "random"), NB201Space(), 25, seed)))
    assert np.mean(best_bayes) > np.mean(best_random)
    assert max(best_bayes) == 6.0


def test_proposals_are_distinct_name_their_parent_and_inherit():
    c = BayesController(initial=3)
    c.setup(NB201Space(), MAX, 0)
    seen = set()
    for n in range(12):
        p = c.ask()
        assert arch_key(p.arch) not in seen
        seen.add(arch_key(p.arch))
        if n >= 3:
            assert p.parent is not None and p.parent < n and p.inherit == "parent"
            assert c.last is not None and c.last.pops <= 88
        c.tell(p, Result((score(p.arch),), trial=n))


def test_pending_proposals_are_believed_and_never_repeated():
    c = BayesController(initial=2)
    c.setup(NB201Space(), MAX, 1)
    first = [c.ask() for _ in range(2)]
    for n, p in enumerate(first):
        c.tell(p, Result((score(p.arch),), trial=n))
    pending = [c.ask() for _ in range(4)]  # four in flight at once
    assert len({arch_key(p.arch) for p in pending + first}) == 6
    assert c._believers == 3  # the later asks saw the earlier ones as believers
    for n, p in enumerate(reversed(pending), start=2):  # results arrive out of order
        c.tell(p, Result((score(p.arch),), trial=n))
    nxt = c.ask()
    assert c._believers == 0 and len(c.gp.x) == 6 and arch_key(nxt.arch) not in {arch_key(p.arch) for p in pending}


def test_failures_count_as_the_worst_value_seen():
    c = BayesController(initial=2)
    c.setup(NB201Space(), MAX, 0)
    p0 = c.ask()
    c.tell(p0, Result(None, failed=True, trial=0))  # before any success: only remembered
    assert c.observed == []
    p1, p2 = c.ask(), c.ask()
    c.tell(p1, Result((3.0,), trial=1))
    c.tell(p2, Result(None, failed=True, trial=2))
    assert [v for _, v, _ in c.observed] == [3.0, 3.0]
    assert c.ask() is not None


def test_a_noisy_gp_averages_repeated_results_instead_of_interpolating_them():
    exact, noisy = BayesController(initial=2), BayesController(initial=2, noise=0.5)
    for c in (exact, noisy):
        drive(c, NB201Space(), 6, seed=2)
        c._sync_gp()
    assert noisy.gp.noise == 0.5 and exact.gp.noise < 1e-6
    z = exact.gp.z
    mu_exact, _ = exact.gp.predict(exact.gp.x, standardised=True)
    mu_noisy, _ = noisy.gp.predict(noisy.gp.x, standardised=True)
    assert np.allclose(mu_exact, z, atol=1e-4)  # interpolates its training points
    assert np.abs(mu_noisy - z).max() > 0.05  # a nugget smooths them


@pytest.mark.parametrize("reembed", [True, False])
def test_state_dict_restores_the_next_proposal(reembed):
    a = BayesController(initial=3, reembed=reembed)
    drive(a, NB201Space(), 7, seed=4)
    assert reembed or a.gp.landmarks == 4 < len(a.gp.x)  # appended since the last redraw (at 4 points)
    state = a.state_dict()
    assert len(state["tried"]) == 7  # every architecture asked, failures included, is never proposed again
    b = BayesController(initial=3, reembed=reembed)
    b.setup(NB201Space(), MAX, 99)
    b.load_state_dict(state)
    assert arch_key(a.ask().arch) == arch_key(b.ask().arch)
    assert a.gp.landmarks == b.gp.landmarks and all(np.array_equal(x, y) for x, y in zip(a.gp.subsets, b.gp.subsets))


def test_reembed_redraws_the_embedding_over_every_result_and_false_only_at_powers_of_two():
    every, doubling = BayesController(initial=3), BayesController(initial=3, reembed=False)
    for c in (every, doubling):
        c.setup(NB201Space(), MAX, 0)
    counts = {id(every): [], id(doubling): []}
    for n in range(14):
        for c in (every, doubling):
            p = c.ask()
            if n >= 3:
                counts[id(c)].append(c.gp.landmarks)
            c.tell(p, Result((score(p.arch),), trial=n))
    assert counts[id(every)] == list(range(3, 14))  # every result is a landmark candidate at once
    assert counts[id(doubling)] == [2, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8]  # redrawn at 1, 2, 4 and 8 points only


def test_the_embedding_of_n_points_depends_on_the_seed_and_n_only():
    c = BayesController()
    c.setup(NB201Space(), MAX, 0)
    rng = np.random.default_rng(0)
    descs = [c.descriptor(NB201Space().sample(rng)) for _ in range(12)]
    ys = rng.normal(size=12)
    first = EditDistanceGP(seed=7).fit(descs, ys)
    grown = EditDistanceGP(seed=7).fit(descs[:5], ys[:5])
    for d, y in zip(descs[5:], ys[5:]):
        grown.add(d, y)  # refits at 8 and then appends: another embedding...
    again = grown.fit(descs, ys)  # ...until a fit of the same 12 points
    assert all(np.array_equal(x, y) for x, y in zip(first.subsets, again.subsets))
    other = EditDistanceGP(seed=8).fit(descs, ys)
    assert not all(np.array_equal(x, y) for x, y in zip(first.subsets, other.subsets))


def test_bayes_needs_a_graph_and_refuses_bad_options():
    with pytest.raises(ValueError, match="beta"):
        BayesController(beta=-1)
    with pytest.raises(ValueError, match="initial"):
        BayesController(initial=0)
    with pytest.raises(ValueError, match="noise"):
        BayesController(noise=0)
    with pytest.raises(ValueError, match="reembed must be true or false"):
        BayesController(reembed="yes")
    space, controller = registry.create("space", "seg-unet"), registry.create("controller", "bayes")
    with pytest.raises(Exception, match="graph"):
        registry.check_compatible(space, controller, "seg-unet", "bayes")

