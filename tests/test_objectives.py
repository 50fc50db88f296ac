"""Objective, constraint and MnasNet-reward parsing and semantics."""

from __future__ import annotations

import math

import pytest

from automl.config import Component, RunConfig
from automl.objectives import MnasReward, SpecError, parse_constraint, parse_mnas, parse_objective
from automl.run import Run
from tests.test_run import Toy


def test_objective_syntax():
    o = parse_objective(" val_acc : max ")
    assert (o.metric, o.direction) == ("val_acc", "max") and o.score(3.0) == 3.0
    assert parse_objective("latency_ms:min").score(3.0) == -3.0
    for bad in ("val_acc", "val_acc:maximise", ":max", "a b:min"):
        with pytest.raises(SpecError, match="expected METRIC:max or METRIC:min"):
            parse_objective(bad)


@pytest.mark.parametrize(
    ("text", "value", "violation"),
    [("latency_ms<=20", 25.0, 5.0), ("latency_ms<=20", 20.0, 0.0), ("latency_ms<20", 20.0, 1e-12),
     ("acc>=0.9", 0.85, 0.05), ("acc>0.9", 0.95, 0.0), ("x<=-1e-3", 0.0, 1e-3)],
)
def test_constraint_violation(text, value, violation):
    assert parse_constraint(text).violation(value) == pytest.approx(violation)


def test_bad_constraints():
    for bad in ("latency_ms=20", "latency_ms<=fast", "<=3"):
        with pytest.raises(SpecError, match="expected METRIC<=NUMBER"):
            parse_constraint(bad)
    assert math.isinf(parse_constraint("a<=1").violation(float("nan")))


def test_mnas_reward_matches_the_paper():
    """docs/algorithms.md §8: at LAT = T the reward equals ACC; 2x LAT multiplies it by ~0.953."""
    r = MnasReward("acc", "lat", 20.0)
    assert r({"acc": 0.8, "lat": 20.0}) == pytest.approx(0.8)
    assert r({"acc": 0.8, "lat": 40.0}) / 0.8 == pytest.approx(2 ** -0.07) == pytest.approx(0.9526, abs=1e-4)
    hard = MnasReward("acc", "lat", 20.0, alpha=0.0, beta=-1.0)
    assert hard({"acc": 0.8, "lat": 10.0}) == pytest.approx(0.8) and hard({"acc": 0.8, "lat": 40.0}) == pytest.approx(0.4)
    assert parse_mnas("acc,lat,20") == r
    assert parse_mnas({"accuracy": "acc", "latency": "lat", "target": 20, "alpha": 0, "beta": -1}) == hard
    for bad in ("acc,lat", "acc,lat,fast", {"accuracy": "acc"}, {"accuracy": "a", "latency": "l", "target": 0}):
        with pytest.raises(SpecError):
            parse_mnas(bad)


def test_mnas_reward_is_a_usable_objective(tmp_path):
    cfg = RunConfig(space=Component("nb201"), controller=Component("evolution"), objectives=["mnas_reward:max"],
                    mnas_reward={"accuracy": "score", "latency": "cost", "target": 3}, budget=10,
                    run_dir=str(tmp_path / "r"))
    summary = Run(cfg, tensorboard=False, evaluators=[Toy()]).execute()
    rec = summary.records[0]
    expected = rec.metrics["score"] * (max(rec.metrics["cost"], 1e-12) / 3) ** -0.07
    assert rec.metrics["mnas_reward"] == pytest.approx(expected)
    assert summary.best.metrics["mnas_reward"] == max(r.metrics["mnas_reward"] for r in summary.records)
