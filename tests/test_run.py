"""The run loop: store, duplicate cache, failures, report-only metrics, resume by replay."""

from __future__ import annotations

from typing import Any, ClassVar

import optuna
import pytest

from automl.config import Component, RunConfig
from automl.run import Run, RunSetupError
from automl.store import TrialStore, default_storage
from automl.types import Objective
from controllers.base import Controller
from evaluators.base import Evaluator
from automl.types import arch_key


class Toy(Evaluator):
    """Scores NB201 archs by their conv count; hides a 'secret' report-only metric."""

    name: ClassVar[str] = "toy"
    needs_model: ClassVar[bool] = False
    provides: ClassVar[tuple[str, ...]] = ("score", "cost", "secret")
    report_only: ClassVar[tuple[str, ...]] = ("secret",)

    def __init__(self, fail_on: str | None = None, interrupt_at: int | None = None) -> None:
        self.fail_on = fail_on
        self.interrupt_at = interrupt_at
        self.calls: list[str] = []

    def evaluate(self, arch, model, ctx) -> dict[str, float]:
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(arch_key(arch))
        if self.fail_on and arch["op_e01"] == self.fail_on:
            raise RuntimeError("boom: out of memory")
        convs = sum(v.startswith("nor_conv") for v in arch.values())
        return {"score": convs + 0.1 * (arch["op_e23"] == "skip_connect"), "cost": float(convs), "secret": 42.0}


class Spy(Controller):
    """Random proposals that record what the run tells them."""

    name: ClassVar[str] = "spy"
    requires: ClassVar[frozenset[str]] = frozenset({"decisions"})
    multi_objective: ClassVar[bool] = True
    seen: ClassVar[list[Any]] = []

    def ask(self):
        return self.space.sample(self.rng)

    def tell(self, arch, result):
        Spy.seen.append(result)


def make(tmp_path, evaluator=None, controller="evolution", budget=20, resume=False, **kw) -> Run:
    cfg = RunConfig(space=Component("nb201"), controller=Component(controller), objectives=kw.pop("objectives", ["score:max"]),
                    budget=budget, seed=kw.pop("seed", 0), run_dir=str(tmp_path / "run"), **kw)
    return Run(cfg, resume=resume, tensorboard=False, evaluators=[evaluator or Toy()])


def test_trials_are_stored_with_arch_metrics_and_duration(tmp_path):
    run = make(tmp_path, budget=12)
    summary = run.execute()
    assert len(summary.records) == 12 and summary.stopped == "budget spent"
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "study.db").is_file()
    store = TrialStore(default_storage(str(tmp_path / "run")), "run", [Objective("score", "max")], create=False)
    recs = store.records()
    assert [r.key for r in recs] == [r.key for r in summary.records]
    assert all(r.state == "complete" and r.metrics["secret"] == 42.0 and r.duration_s >= 0 for r in recs)
    assert recs[0].arch_str.startswith("|")
    assert len({r.key for r in recs}) == 12  # distinct architectures


def test_duplicates_are_served_from_the_store_without_budget(tmp_path):
    ev = Toy()
    run = make(tmp_path, ev, budget=60)
    summary = run.execute()
    assert len(ev.calls) == len(set(ev.calls)) == 60
    assert summary.duplicates > 0  # evolution re-proposes archs on this small space


def test_report_only_metrics_never_reach_the_controller(tmp_path):
    Spy.seen.clear()
    run = make(tmp_path, controller="tests.test_run:Spy", budget=5)
    run.execute()
    assert Spy.seen and all("secret" not in r.metrics and "score" in r.metrics for r in Spy.seen)


def test_report_only_metric_cannot_be_an_objective(tmp_path):
    with pytest.raises(RunSetupError, match="report-only"):
        make(tmp_path, objectives=["secret:max"])
    assert not (tmp_path / "run").exists()


def test_unknown_objective_metric_is_refused_before_any_file(tmp_path):
    with pytest.raises(RunSetupError, match="provide: cost, score, secret"):
        make(tmp_path, objectives=["accuracy:max"])
    assert not (tmp_path / "run").exists()


def test_evaluator_errors_become_failed_trials(tmp_path):
    summary = make(tmp_path, Toy(fail_on="none"), budget=25).execute()
    failed = [r for r in summary.records if r.state == "failed"]
    assert failed and all("RuntimeError: boom: out of memory" in r.error for r in failed)
    assert len(summary.records) == 25


def test_constraints_mark_infeasible_trials_and_keep_them_off_the_front(tmp_path):
    summary = make(tmp_path, budget=30, objectives=["score:max", "cost:min"], constraints=["cost<=3"]).execute()
    infeasible = [r for r in summary.records if r.violation > 0]
    assert infeasible and all(r.metrics["cost"] > 3 for r in infeasible)
    assert summary.front and all(r.metrics["cost"] <= 3 for r in summary.front)


def test_incompatible_controller_is_refused_naming_choices(tmp_path):
    with pytest.raises(RunSetupError, match="requires \\['neighbors'\\].*controllers for this space: random, evolution, "
                                            "tpe, nsga2, darts, rl, bayes; spaces for this controller: morph"):
        make(tmp_path, controller="tests.test_run:NeedsMorphisms")
    assert not (tmp_path / "run").exists()


class NeedsMorphisms(Controller):
    name: ClassVar[str] = "needs-morphisms"
    requires: ClassVar[frozenset[str]] = frozenset({"neighbors"})


def test_existing_run_dir_is_not_overwritten(tmp_path):
    make(tmp_path, budget=3).execute()
    with pytest.raises(RunSetupError, match="--resume"):
        make(tmp_path, budget=3)


@pytest.mark.parametrize("controller", ["evolution", "tpe", "random", "rl"])
def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path, controller):
    full = make(tmp_path / "a", controller=controller, budget=30).execute()

    ev = Toy(interrupt_at=13)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "b", ev, controller=controller, budget=30).execute()
    assert len(ev.calls) == 13
    ev2 = Toy()
    resumed = make(tmp_path / "b", ev2, controller=controller, budget=30, resume=True).execute()
    assert len(ev2.calls) == 17  # nothing completed is evaluated again
    assert [r.key for r in resumed.records] == [r.key for r in full.records]  # same controller state
    store = TrialStore(default_storage(str(tmp_path / "b" / "run")), "run", [Objective("score", "max")], create=False)
    states = [t.state.name for t in store.study.trials]
    assert states.count("COMPLETE") == 30 and states.count("FAIL") == 1  # the interrupted one, kept aside


def test_resume_after_crash_fails_running_trials(tmp_path):
    run = make(tmp_path, budget=5)
    run.execute()
    orphan = run.store.study.ask()  # a trial left RUNNING, as after kill -9: its heartbeat long past
    orphan.set_user_attr("arch", {"x": 1})
    orphan.set_user_attr("heartbeat", 0.0)
    resumed = make(tmp_path, budget=8, resume=True)
    summary = resumed.execute()
    assert len(summary.records) == 8
    frozen = resumed.store.study.trials[orphan.number]
    assert frozen.state.name == "FAIL" and frozen.user_attrs["interrupted"] is True


def test_in_memory_storage_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(space=Component("nb201"), controller=Component("random"), objectives=["score:max"], budget=4)
    run = Run(cfg, storage=optuna.storages.InMemoryStorage(), write_files=False, tensorboard=False, evaluators=[Toy()])
    assert len(run.execute().records) == 4
    assert list(tmp_path.iterdir()) == []


def test_space_exhaustion_stops_the_run(tmp_path):
    cfg = RunConfig(space=Component("nb201"), controller=Component("random"), objectives=["score:max"], budget=20000)
    run = Run(cfg, storage=optuna.storages.InMemoryStorage(), write_files=False, tensorboard=False, evaluators=[Toy()])
    run.space.size = lambda: 50  # pretend the space is tiny
    summary = run.execute()
    assert summary.stopped.startswith("space exhausted") and len(summary.records) == 50


class Reporting(Toy):
    """Reports its score at four 'epochs' and stops when the pruner says so."""

    def evaluate(self, arch, model, ctx):
        out = super().evaluate(arch, model, ctx)
        for step in range(4):
            if ctx.report(step, out["score"]):
                from evaluators.base import TrialPruned

                raise TrialPruned(f"at step {step}")
        return out


def test_median_pruner_stops_poor_trials(tmp_path):
    summary = make(tmp_path, Reporting(), controller="random", budget=30, pruner="median").execute()
    pruned = [r for r in summary.records if r.state == "pruned"]
    done = [r for r in summary.records if r.state == "complete"]
    assert pruned and done and len(summary.records) == 30
    assert all(r.error.startswith("pruned") for r in pruned)
    store = TrialStore(default_storage(str(tmp_path / "run")), "run", [Objective("score", "max")], create=False)
    assert sum(t.state.name == "PRUNED" for t in store.study.trials) == len(pruned)
