"""Weight inheritance: a child trial starts from its parent's saved weights (space.transfer),
the train evaluator's patience and inherit_epochs, and the run keeping every trial's weights."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from automl import registry
from automl.config import Component, RunConfig
from automl.run import Run
from automl.trial import TrialSpec
from automl.types import Proposal
from controllers.base import Controller
from evaluators.base import EvalContext, Evaluator
from evaluators.data import load_dataset
from evaluators.train import TrainEvaluator
from search_spaces.base import SearchSpace

TINY_LR = 1e-12  # training that leaves the weights as they are (no BatchNorm: no running statistics)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit=600)


def plain_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10))


class CountingSpace(SearchSpace):
    """The default transfer, counting its calls and what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def transfer(self, parent_arch, parent_state, child_arch, child):
        self.calls.append((parent_arch, child_arch))
        return super().transfer(parent_arch, parent_state, child_arch, child)


def ctx_for(data, run_dir, number, space=None, **kw) -> EvalContext:
    return EvalContext(space=space or SearchSpace(), task=data.task, dataset=data, run_dir=run_dir,
                       trial_number=number, **kw)


@pytest.fixture(scope="module")
def parent(digits, tmp_path_factory):
    """Trial 0 of a run directory: trained for 2 epochs, weights saved; returns (run_dir, metrics)."""
    run_dir = tmp_path_factory.mktemp("inherit")
    out = TrainEvaluator(epochs=2, lr=0.1, save_weights=True).evaluate({"w": 8}, plain_cnn(0), ctx_for(digits, run_dir, 0))
    assert (run_dir / "trials" / "00000" / "weights.pt").is_file()
    return run_dir, out


def test_a_child_starts_from_its_parents_weights(digits, parent):
    run_dir, parent_metrics = parent
    space = CountingSpace()
    reports: list[float] = []
    ctx = ctx_for(digits, run_dir, 1, space, parent=0, inherit="parent", parent_arch={"w": 8},
                  report=lambda step, value: reports.append(value) and False)
    out = TrainEvaluator(epochs=1, lr=TINY_LR, inherit_weights=True).evaluate({"w": 8, "c": 1}, plain_cnn(1), ctx)
    assert out["inherited"] == 1.0
    assert space.calls == [({"w": 8}, {"w": 8, "c": 1})]
    assert reports == [parent_metrics["val_acc"]]  # the first epoch validates the parent's network
    assert out["val_loss"] == pytest.approx(parent_metrics["val_loss"], rel=1e-6)
    assert (run_dir / "trials" / "00001" / "weights.pt").is_file()  # kept: it may be a parent in turn
    scratch = TrainEvaluator(epochs=1, lr=TINY_LR).evaluate({}, plain_cnn(1), ctx_for(digits, None, 2))
    assert "inherited" not in scratch and scratch["val_acc"] < parent_metrics["val_acc"] - 0.3


def test_no_inheritance_unless_asked_for(digits, parent):
    run_dir, parent_metrics = parent
    space = CountingSpace()
    for ev, inherit in ((TrainEvaluator(epochs=1, lr=TINY_LR), "parent"),
                        (TrainEvaluator(epochs=1, lr=TINY_LR, inherit_weights=True), None)):
        ctx = ctx_for(digits, run_dir, 3, space, parent=0, inherit=inherit, parent_arch={"w": 8})
        out = ev.evaluate({}, plain_cnn(1), ctx)
        assert out.get("inherited", 0.0) == 0.0 and out["val_acc"] < parent_metrics["val_acc"] - 0.3
    assert space.calls == []


def test_missing_parent_weights_train_from_scratch(digits, tmp_path):
    ctx = ctx_for(digits, tmp_path, 5, parent=4, inherit="parent", parent_arch={"w": 8})  # trial 4 left no weights
    out = TrainEvaluator(epochs=3, inherit_epochs=1, inherit_weights=True).evaluate({}, plain_cnn(1), ctx)
    assert out["inherited"] == 0.0 and out["epochs_run"] == 3 and out["val_acc"] > 0.5


def test_inherit_epochs_budget_and_cosine_only_for_inheriting_trials(digits, parent):
    run_dir, _ = parent

    class Writer:
        def __init__(self):
            self.lr: list[float] = []

        def add_scalar(self, tag, value, step):
            if tag == "train/lr":
                self.lr.append(value)

    writer = Writer()
    ev = TrainEvaluator(epochs=3, inherit_epochs=1, inherit_weights=True, lr=0.1)
    ctx = ctx_for(digits, run_dir, 6, parent=0, inherit="parent", parent_arch={"w": 8}, writer=writer)
    out = ev.evaluate({}, plain_cnn(1), ctx)
    assert out["inherited"] == 1.0 and out["epochs_run"] == 1
    assert writer.lr[-1] < 0.1 * 0.1  # the cosine spanned the one inherited epoch (over three: 0.075)
    out = ev.evaluate({}, plain_cnn(1), ctx_for(digits, run_dir, 7))  # no parent: the full budget
    assert out["inherited"] == 0.0 and out["epochs_run"] == 3


def test_patience_stops_when_val_loss_stops_dropping(digits):
    # a val_loss drop never exceeds min_delta=10: epoch 1 sets the best, epoch 2 is one stale epoch
    out = TrainEvaluator(epochs=20, patience=1, min_delta=10.0).evaluate({}, plain_cnn(0), ctx_for(digits, None, 0))
    assert out["epochs_run"] == 2
    out = TrainEvaluator(epochs=20, patience=3, min_delta=10.0).evaluate({}, plain_cnn(0), ctx_for(digits, None, 0))
    assert out["epochs_run"] == 4
    out = TrainEvaluator(epochs=3, patience=5).evaluate({}, plain_cnn(0), ctx_for(digits, None, 0))
    assert out["epochs_run"] == 3


@pytest.mark.parametrize("options,message", [
    ({"inherit_weights": True, "save_weights": False}, "inherit_weights needs saved weights"),
    ({"inherit_epochs": 2}, "inherit_epochs applies to trials that inherit weights"),
    ({"inherit_weights": True, "inherit_epochs": 0}, "inherit_epochs must be an integer >= 1 or None"),
    ({"patience": 0}, "patience must be an integer >= 1 or None"),
    ({"min_delta": -1}, r"min_delta must be a number in \[0, inf\]"),
])
def test_option_errors(options, message):
    with pytest.raises(ValueError, match=message) as exc:
        TrainEvaluator(**options)
    assert "\n" not in str(exc.value)
    with pytest.raises(registry.RegistryError, match=message):
        registry.create("evaluator", "train", options)


def test_options_through_the_registry_and_weights_kept():
    ev = registry.create("evaluator", "train", {"patience": 5, "min_delta": 0, "inherit_weights": True,
                                                "inherit_epochs": 2})
    assert (ev.patience, ev.min_delta, ev.inherit_epochs) == (5, 0.0, 2)
    assert ev.save_weights and not ev.weights_on_front_only  # "front" with inheritance keeps every trial's
    assert TrainEvaluator(inherit_weights=True, save_weights=True).weights_on_front_only is False
    assert TrainEvaluator().weights_on_front_only and not TrainEvaluator().inherit_weights
    assert "inherited" in TrainEvaluator.provides
    with pytest.raises(registry.RegistryError, match="option patience expects an integer or null, got '5'"):
        registry.create("evaluator", "train", {"patience": "5"})
    with pytest.raises(registry.RegistryError, match="option inherit_weights expects true or false"):
        registry.create("evaluator", "train", {"inherit_weights": 1})


def test_trial_spec_with_parent_arch_survives_the_ray_round_trip():
    spec = TrialSpec(3, {"op": "a"}, parent=1, inherit="parent", parent_arch={"op": "b", "list": [1, 2]})
    assert TrialSpec(**dataclasses.asdict(spec)) == spec


# -- end to end through a run ----------------------------------------------------------------
class Parenting(Controller):
    """Proposes one random architecture, then mutations of it that inherit its weights."""

    name: ClassVar[str] = "parenting"

    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, Any] | None = None
        self.root_trial: int | None = None

    def ask(self):
        if self.root is None:
            self.root = self.space.sample(self.rng)
            return Proposal(self.root, note="root")
        assert self.root_trial is not None  # one trial in flight: the root was told before
        return Proposal(self.space.mutate(self.root, self.rng), parent=self.root_trial, inherit="parent")

    def tell(self, proposal, result):
        if proposal.arch == self.root and self.root_trial is None:
            self.root_trial = result.trial


class ParentSpy(Evaluator):
    """Records what each trial was told about its parent."""

    name: ClassVar[str] = "parent-spy"
    needs_model: ClassVar[bool] = False
    seen: ClassVar[dict[int, tuple[Any, ...]]] = {}

    def evaluate(self, arch, model, ctx):
        ParentSpy.seen[ctx.trial_number] = (ctx.parent, ctx.inherit, ctx.parent_arch)
        return {}


def test_a_run_passes_the_parent_and_keeps_every_trials_weights(tmp_path):
    ParentSpy.seen.clear()

    def config(budget: int) -> RunConfig:
        return RunConfig(
            space=Component("nb201", {"channels": 4, "cells_per_stage": 1}),
            controller=Component(f"{__name__}:Parenting"),
            evaluators=[Component("train", {"epochs": 1, "batch_size": 128, "inherit_weights": True}),
                        Component(f"{__name__}:ParentSpy")],
            objectives=["val_acc:max"], dataset="digits", budget=budget, run_dir=str(tmp_path / "run"))

    summary = Run(config(3), tensorboard=False).execute()
    recs = {r.number: r for r in summary.records}
    assert sorted(recs) == [0, 1, 2] and all(r.state == "complete" for r in recs.values())
    assert recs[0].metrics["inherited"] == 0.0 and ParentSpy.seen[0] == (None, None, None)
    for n in (1, 2):
        assert recs[n].metrics["inherited"] == 1.0
        assert recs[n].proposal["parent"] == 0 and recs[n].proposal["inherit"] == "parent"
        assert ParentSpy.seen[n] == (0, "parent", recs[0].arch)
    saved = {int(p.parent.name) for p in (tmp_path / "run").glob("trials/*/weights.pt")}
    assert saved == {0, 1, 2}  # the front alone would keep one: every trial may be a parent

    ParentSpy.seen.clear()
    summary = Run(config(4), resume=True, tensorboard=False).execute()  # replay, then one more child
    new = next(r for r in summary.records if r.number not in recs)
    assert new.metrics["inherited"] == 1.0 and ParentSpy.seen == {new.number: (0, "parent", recs[0].arch)}


def test_the_parent_arch_comes_from_the_store_for_another_processs_trial(tmp_path):
    from automl.engine import Engine
    from automl.objectives import parse_objective
    from automl.store import TrialStore

    space = registry.create("space", "nb201")
    store = TrialStore(f"sqlite:///{tmp_path / 'study.db'}", "s", [parse_objective("score:max")])
    arch = space.sample(__import__("numpy").random.default_rng(0))
    trial = store.start(arch)
    store.complete(trial, {"score": 1.0}, [1.0], 0.0, 0.1)
    engine = Engine(Parenting(), space, store, [parse_objective("score:max")], [], set(), 5, shared_store=False)
    assert engine.parent_arch(trial.number) == arch and engine.parent_arch(None) is None
    assert engine.parent_arch(99) is None and store.arch(99) is None
