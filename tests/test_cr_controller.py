"""The ``cr`` controller's parts: beam search, the uniform sampler, scorings in the store,
and (with the ``cr-resnet`` space) a seeded search end to end, its resume and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from automl.store import TrialStore
from automl.types import Decision, Objective
from controllers.oneshot.beam import beam_search
from controllers.oneshot.single_path import uniform_sampler


def test_beam_search_recovers_the_optimum_of_an_additive_oracle():
    rng = np.random.default_rng(0)
    positions, choices = 16, (1, 2, 3)
    gain = rng.normal(size=(positions, len(choices)))
    calls = []

    def oracle(prefix):
        calls.append(prefix)
        return float(sum(gain[i, choices.index(c)] for i, c in enumerate(prefix)))

    result = beam_search([choices] * positions, oracle, width=3)
    best = tuple(choices[int(j)] for j in gain.argmax(1))
    assert result.beam[0][0] == best
    assert result.beam[0][1] == pytest.approx(gain.max(1).sum())
    # K x 3 scorings per position once the beam is full (1 prefix at the start, then 3)
    assert [len(step) for step in result.scored] == [3] + [9] * (positions - 1)
    assert result.evaluations == len(calls) == 3 + 9 * (positions - 1)
    assert [s for _, s in result.beam] == sorted((s for _, s in result.beam), reverse=True)


def test_beam_search_of_width_one_is_greedy_and_width_checked():
    result = beam_search([(0, 1), (0, 1)], lambda p: float(sum(p)), width=1)
    assert result.beam == [((1, 1), 2.0)]
    with pytest.raises(ValueError, match="beam width"):
        beam_search([(0, 1)], lambda p: 0.0, width=0)


def test_uniform_sampler_is_uniform_and_keeps_fixed_values():
    alloc = Decision("alloc", tuple(f"a{i}" for i in range(12)))
    sample = uniform_sampler([alloc], {"alloc": "a0", "d0": 1}, np.random.default_rng(0))
    draws = [sample() for _ in range(6000)]
    assert all(d["d0"] == 1 for d in draws)
    counts = np.array([sum(d["alloc"] == c for d in draws) for c in alloc.choices])
    assert stats.chisquare(counts).pvalue > 0.01
    # and a sampler that is not uniform is caught by the same test
    skewed = np.array([700] + [482] * 11)
    assert stats.chisquare(skewed).pvalue < 0.01


def test_scorings_live_beside_the_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    store = TrialStore(storage, "run", [Objective("val_miou", "max")])
    assert store.scorings() == []
    n = store.record_scoring({"alloc": "3-4-6-3"}, {"score_miou": 0.4, "score_loss": 1.2}, 0.4, note="stage allocation",
                             arch_str="3-4-6-3")
    assert n == 0
    again = TrialStore.open_existing(storage, "run", [Objective("val_miou", "max")], read_only=True)
    [rec] = again.scorings()
    assert rec.arch == {"alloc": "3-4-6-3"} and rec.metrics["score_miou"] == 0.4
    assert rec.proposal == {"parent": None, "inherit": "supernet", "note": "stage allocation"}
    assert again.records() == []  # not a trial of the search: no budget, not on the front
