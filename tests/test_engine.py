"""The one loop (automl/engine.py) under the local executor: failures as data, retries, timeouts,
pending trials in flight, replay in told order, claims between processes, heartbeats."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from automl.config import Component, RunConfig
from automl.engine import WAIT
from automl.executors.base import Executor
from automl.run import Run, RunSetupError
from automl.store import TrialStore, default_storage
from automl.trial import TrialSpec, Workbench, run_trial
from automl.types import Objective, Task
from tests.engine_toys import Score


def make(tmp_path, evaluator=None, *, controller="random", budget=20, resume=False, name="run", **kw) -> Run:
    cfg = RunConfig(space=Component("nb201"), controller=Component(controller), objectives=["score:max"],
                    budget=budget, seed=kw.pop("seed", 0), run_dir=str(tmp_path / name), **kw)
    return Run(cfg, resume=resume, tensorboard=False, evaluators=[evaluator or Score()])


def stored(tmp_path, name="run") -> TrialStore:
    return TrialStore(default_storage(str(tmp_path / name)), name, [Objective("score", "max")], create=False)


def test_injected_failures_are_recorded_and_the_search_completes(tmp_path):
    summary = make(tmp_path, Score(fail_every=5), budget=50).execute()
    assert len(summary.records) == 50 and summary.stopped == "budget spent"
    failed = [r for r in summary.records if r.state == "failed"]
    assert len(failed) == 10 and all("injected failure" in r.error for r in failed)
    assert {r.number for r in failed} == {n for n in range(50) if n % 5 == 0}
    assert len(stored(tmp_path).records()) == 50


def test_retries_run_a_failed_trial_again(tmp_path):
    marks = tmp_path / "marks"
    summary = make(tmp_path, Score(flaky=True, marks=str(marks)), budget=6, retries=1).execute()
    assert all(r.state == "complete" for r in summary.records)
    assert len(list(marks.iterdir())) == 12  # two attempts per trial
    no_retry = make(tmp_path, Score(flaky=True, marks=str(tmp_path / "m2")), budget=3, name="r2").execute()
    assert all(r.state == "failed" and "flaky" in r.error for r in no_retry.records)


def test_a_trial_over_the_timeout_fails_with_its_reason(tmp_path):
    summary = make(tmp_path, Score(hang_every=3), budget=6, trial_timeout=0.3).execute()
    timed_out = [r for r in summary.records if r.state == "failed"]
    assert [r.number for r in timed_out] == [2, 5]
    assert all("timed out after 0.3 s" in r.error for r in timed_out)
    assert all(r.duration_s < 5 for r in summary.records)


def test_no_trial_starts_after_the_time_limit(tmp_path):
    summary = make(tmp_path, Score(sleep=0.2), budget=50, time_limit=0.5).execute()
    assert summary.stopped == "time limit reached" and 1 <= len(summary.records) <= 4
    assert all(r.state == "complete" for r in summary.records)
    late = make(tmp_path, Score(), budget=5, time_limit=1e-6, name="late").execute()
    assert len(late.records) == 1 and late.stopped == "time limit reached"  # one trial runs at least
    assert make(tmp_path, Score(), budget=5, name="free").execute().stopped == "budget spent"


def test_timeout_also_stops_a_trial_outside_the_main_thread(tmp_path):
    import threading

    wb = Workbench(space=("nb201", {}), evaluators=(Score(hang_every=1),), task=Task(), timeout=0.2)
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(run_trial(wb, TrialSpec(0, {f"op_e{i}{j}": "none" for i, j in
                                                                          ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))}))))
    t.start()
    t.join(20)
    assert not t.is_alive() and out[0].state == "failed" and "timed out" in out[0].error


def test_the_train_evaluator_stops_at_the_first_non_finite_loss():
    from evaluators.base import EvalContext
    from evaluators.data import load_dataset
    from evaluators.train import TrainEvaluator

    class Blows(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            out = self.fc(x.flatten(1))
            return out * float("nan") if self.calls >= 3 else out

    data = load_dataset("digits", task_kind="classification", seed=0)
    model = Blows()
    ctx = EvalContext(space=None, task=data.task, dataset=data)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="non-finite loss by step 3"):
        TrainEvaluator(epochs=5, batch_size=16).evaluate({}, model, ctx)
    assert model.calls == 3


class Shuffled(Executor):
    """Keeps ``n`` trials in flight and finishes them in a seeded, out-of-order way."""

    name = "shuffled"

    def __init__(self, n: int, seed: int = 0, stop_after: int | None = None) -> None:
        self.n, self.rng, self.stop_after = n, random.Random(seed), stop_after

    def run(self, engine, workbench, reporter) -> None:
        flight: list[TrialSpec] = []
        finished = 0
        while True:
            spec = engine.next()
            if isinstance(spec, TrialSpec):
                flight.append(spec)
                continue
            if not flight:
                return
            assert spec == WAIT or spec is None
            done = flight.pop(self.rng.randrange(len(flight)))
            if self.stop_after is not None and finished == self.stop_after:
                raise KeyboardInterrupt
            engine.finish(run_trial(workbench, done))
            finished += 1


def _run_with(tmp_path, executor, *, name, controller, budget=30, resume=False):
    run = make(tmp_path, controller=controller, budget=budget, resume=resume, name=name)
    run.executor = executor
    run.executor_options = run.executor_options.__class__(executor="ray", workers=4)  # 4 asks ahead
    return run


@pytest.mark.parametrize("controller", ["evolution", "tpe", "rl"])
def test_trials_in_flight_at_an_interrupt_run_first_on_resume(tmp_path, controller):
    with pytest.raises(KeyboardInterrupt):
        _run_with(tmp_path, Shuffled(4, seed=1, stop_after=13), name="b", controller=controller).execute()
    st = stored(tmp_path, "b")
    done = {r.key for r in st.records()}
    interrupted = [t.user_attrs["arch_key"] for t in st.study.trials if t.user_attrs.get("interrupted")]
    assert len(done) == 13 and len(interrupted) == 4  # four were in flight at the stop
    out = _run_with(tmp_path, Shuffled(1), name="b", controller=controller, resume=True).execute()
    assert len(out.records) == 30 and len({r.key for r in out.records}) == 30  # none lost, none repeated
    new = [r for r in out.records if r.key not in done]
    assert {r.key for r in new[:4]} == set(interrupted)  # the interrupted proposals ran first


def test_replay_reproduces_the_controller_state_with_trials_in_flight(tmp_path):
    """Records told out of order (4 in flight) replay into the same controller state."""
    run = _run_with(tmp_path, Shuffled(4, seed=3), name="a", controller="evolution", budget=24)
    run.execute()
    told = run.store.records(order="told")
    assert [r.number for r in told] != sorted(r.number for r in told)  # results really came out of order
    fresh = _run_with(tmp_path, Shuffled(4, seed=3), name="a", controller="evolution", budget=24, resume=True)
    engine_ctl = fresh.controller
    from automl.engine import Engine

    engine = Engine(engine_ctl, fresh.space, fresh.store, fresh.objectives, (), set(), 24, max_in_flight=4)
    assert engine.replay(told) == 0  # every stored result matched a re-asked proposal
    assert [a for a, _ in engine_ctl.population] == [a for a, _ in run.controller.population]
    engine.close()


def test_a_claimed_architecture_is_not_evaluated_twice(tmp_path):
    """Two processes on one study: the later start of the same arch gives its trial up."""
    run = make(tmp_path, budget=3)
    run.execute()
    arch = run.store.records()[0].arch
    key = run.store.records()[0].key
    trial = run.store.start(arch)
    assert run.store.claim(trial, key) == 0  # trial 0 holds it
    assert run.store.study.trials[trial.number].user_attrs["superseded"] is True
    assert len(run.store.records()) == 3  # the given-up trial is not a record


def test_a_running_trial_of_a_live_process_is_not_marked_interrupted(tmp_path):
    run = make(tmp_path, budget=2)
    run.execute()
    mine = run.store.start({"x": 1})  # owned by this (live) process
    dead = run.store.start({"x": 2})
    dead.set_user_attr("owner", {"host": "elsewhere", "pid": 1, "start": ""})
    dead.set_user_attr("heartbeat", 0.0)
    assert run.store.stale() == [dead.number]
    assert run.store.mark_interrupted() == 1
    states = {t.number: t.state.name for t in run.store.study.trials}
    assert states[mine.number] == "RUNNING" and states[dead.number] == "FAIL"


def test_a_trial_just_asked_by_another_process_is_not_stale(tmp_path):
    """Between ``ask`` and its owner attributes, a trial of another process is young, not dead
    (a concurrent ``--resume`` once failed it under the asking process: UpdateFinishedTrialError)."""
    run = make(tmp_path, budget=1)
    run.execute()
    asked = run.store.study.ask()  # no owner, no heartbeat yet
    old = run.store.study.ask()
    run.store.study._storage.set_trial_user_attr(old._trial_id, "heartbeat", 0.0)  # an ancient one stays stale
    assert run.store.stale() == [old.number]
    assert run.store.mark_interrupted() == 1
    run.store.start({"x": 3})  # the young trial can still be written to
    asked.set_user_attr("owner", {"host": "elsewhere", "pid": 1, "start": ""})
    assert run.store.study.trials[asked.number].state.name == "RUNNING"


def test_proposal_origin_is_stored(tmp_path):
    summary = make(tmp_path, controller="evolution", budget=16).execute()
    children = [r for r in summary.records if r.proposal.get("parent") is not None]
    assert children and all(r.proposal["note"] == "mutation" for r in children)
    assert all(r.proposal["parent"] < r.number for r in children)
    back = {r.number: r for r in stored(tmp_path).records()}
    assert all(back[r.number].proposal == r.proposal for r in children)


@pytest.mark.parametrize(("flags", "message"), [
    ({"executor": "local", "workers": 3}, "--workers needs --executor ray"),
    ({"executor": "ray", "workers": 0}, "workers must be an integer >= 1"),
    ({"retries": -1}, "retries must be an integer >= 0"),
    ({"trial_timeout": 0.0}, "trial-timeout must be a number of seconds > 0"),
    ({"executor": "ray", "trial_gpus": 0.5}, "--trial-gpus 0.5 needs --device cuda"),
    ({"executor": "ray", "pruner": "median"}, "--pruner median works with the local executor"),
    ({"scheduler": "asha"}, "--scheduler needs --executor ray"),
])
def test_bad_executor_options_fail_before_any_file(tmp_path, flags, message):
    with pytest.raises(RunSetupError) as exc:
        make(tmp_path, **flags)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "run").exists()


def test_in_memory_store_needs_no_heartbeat(tmp_path):
    cfg = RunConfig(space=Component("nb201"), controller=Component("random"), objectives=["score:max"], budget=3)
    run = Run(cfg, storage=optuna.storages.InMemoryStorage(), write_files=False, tensorboard=False, evaluators=[Score()])
    assert len(run.execute().records) == 3 and not run.shared_store


def test_the_workbench_a_worker_gets_is_picklable(tmp_path):
    import pickle

    cfg = RunConfig(space=Component("nb201", {"channels": 4}), controller=Component("random"),
                    evaluators=[Component("train", {"epochs": 1}), Component("cost")], dataset="digits", budget=2,
                    run_dir=str(tmp_path / "run"))
    run = Run(cfg, tensorboard=False)
    wb = pickle.loads(pickle.dumps(run.workbench()))
    assert wb.space == ("nb201", {"channels": 4}) and [e[0] for e in wb.evaluators] == ["train", "cost"]
    assert wb.dataset.spec == "digits" and not hasattr(wb.dataset, "tensors")  # a reference, not the data
    spec = TrialSpec(0, run.space.sample(__import__("numpy").random.default_rng(0)))
    out = run_trial(wb, spec)  # as a worker would: resolves the workbench itself
    assert out.state == "complete" and "val_acc" in out.metrics and "params_M" in out.metrics


def test_cuda_out_of_memory_is_a_failed_trial_with_its_reason():
    class Oom(Score):
        def evaluate(self, arch, model, ctx):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    wb = Workbench(space=("nb201", {}), evaluators=(Oom(),), task=Task(), retries=1)
    arch = {f"op_e{i}{j}": "none" for i, j in ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))}
    out = run_trial(wb, TrialSpec(0, arch))
    assert out.state == "failed" and out.error.startswith("CUDA out of memory: ") and out.attempts == 2


def test_the_local_executor_does_not_import_ray(tmp_path):
    import subprocess
    import sys

    code = ("import sys\n"
            "from automl.config import Component, RunConfig\nfrom automl.run import Run\n"
            "from tests.engine_toys import Score\n"
            f"cfg = RunConfig(space=Component('nb201'), controller=Component('random'), objectives=['score:max'], "
            f"budget=3, run_dir={str(tmp_path / 'run')!r})\n"
            "Run(cfg, tensorboard=False, evaluators=[Score()]).execute()\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_proposal_waiting_on_a_trial_that_dies_is_evaluated_here(tmp_path):
    from automl.engine import Engine
    from automl.types import Proposal

    run = make(tmp_path, budget=1)
    run.execute()
    arch = run.space.sample(__import__("numpy").random.default_rng(7))
    other = run.store.start(arch)  # held by a live process (this one counts as live)

    class Once:
        def __init__(self) -> None:
            self.asked, self.told = 0, []

        def ask(self):
            self.asked += 1
            return Proposal(arch) if self.asked == 1 else None

        def tell(self, proposal, result) -> None:
            self.told.append(result)

    ctl = Once()
    engine = Engine(ctl, run.space, run.store, run.objectives, (), set(), budget=5)
    assert engine.next() == WAIT and engine.watching  # claimed elsewhere: wait for it
    assert engine.next() == WAIT
    run.store.fail(other, "interrupted", 0.0, interrupted=True)  # that process was stopped
    spec = engine.next()
    assert isinstance(spec, TrialSpec) and spec.arch == run.space.validate(arch)
    engine.finish(run_trial(run.workbench(), spec))
    assert len(ctl.told) == 1 and ctl.told[0].values is not None
    engine.close()
