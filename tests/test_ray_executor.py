"""The Ray Tune executor on a local Ray (2 CPUs, loopback only): the same store as the local
executor, failures as data, a killed worker, ASHA, timeouts, and the sockets Ray listens on."""

from __future__ import annotations

import ipaddress
import os

import pytest

# Before Ray is imported: no token file for a throw-away local cluster, loopback only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
pytest.importorskip("ray.tune")

from automl.config import Component, RunConfig  # noqa: E402
from automl.executors.base import ExecutorOptions  # noqa: E402
from automl.executors.ray_tune import RayTuneExecutor  # noqa: E402
from automl.run import Run, RunSetupError  # noqa: E402
from automl.store import TrialStore, default_storage  # noqa: E402
from automl.types import Objective  # noqa: E402
from tests.engine_toys import Curve, Score  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, started the way the executor starts its own."""
    executor = RayTuneExecutor(ExecutorOptions(executor="ray", workers=2))
    executor.start()
    yield executor
    executor.close()


def make(tmp_path, evaluator, *, budget=10, name="run", **kw) -> Run:
    cfg = RunConfig(space=Component("nb201"), controller=Component(kw.pop("controller", "evolution")),
                    objectives=["score:max"], budget=budget, seed=0, run_dir=str(tmp_path / name),
                    executor="ray", workers=kw.pop("workers", 2), trial_cpus=kw.pop("trial_cpus", 1.0), **kw)
    return Run(cfg, tensorboard=False, evaluators=[evaluator])


def test_injected_failures_under_ray_are_recorded_and_the_search_completes(local_ray, tmp_path):
    summary = make(tmp_path, Score(fail_every=5), budget=50).execute()
    assert len(summary.records) == 50 and summary.stopped == "budget spent"
    failed = [r for r in summary.records if r.state == "failed"]
    assert len(failed) == 10 and all("injected failure" in r.error for r in failed)
    store = TrialStore(default_storage(str(tmp_path / "run")), "run", [Objective("score", "max")], create=False)
    records = store.records()
    assert len(records) == 50 and len({r.key for r in records}) == 50
    assert all(t.state.name != "RUNNING" for t in store.study.trials)


def test_a_killed_worker_is_retried_or_failed_and_the_search_completes(local_ray, tmp_path):
    marks = tmp_path / "marks"
    retried = make(tmp_path, Score(kill_first=2, marks=str(marks)), budget=6, retries=1).execute()
    assert len(retried.records) == 6 and all(r.state == "complete" for r in retried.records)
    assert len(list(marks.glob("2-*"))) == 2  # trial 2 ran twice: killed, then retried
    failed = make(tmp_path, Score(kill_first=1, marks=str(tmp_path / "m2")), budget=4, name="r2").execute()
    assert len(failed.records) == 4
    (dead,) = [r for r in failed.records if r.state == "failed"]
    assert dead.number == 1 and dead.error.startswith("Ray worker failed")


def test_asha_stops_poor_training_trials(local_ray, tmp_path):
    summary = make(tmp_path, Curve(steps=9), budget=16, scheduler="asha", controller="random").execute()
    pruned = [r for r in summary.records if r.state == "pruned"]
    done = [r for r in summary.records if r.state == "complete"]
    assert len(summary.records) == 16 and pruned and done
    assert all("stopped by ASHA" in r.error for r in pruned)


def test_trial_timeout_under_ray(local_ray, tmp_path):
    summary = make(tmp_path, Score(hang_every=2), budget=4, trial_timeout=0.5).execute()
    timed_out = [r for r in summary.records if r.state == "failed"]
    assert [r.number for r in timed_out] == [1, 3] and all("timed out after 0.5 s" in r.error for r in timed_out)


def test_trials_see_their_cpu_share_as_torch_threads_and_no_gpu(local_ray, tmp_path):
    from tests.engine_toys import Score as _Score

    class Threads(_Score):
        def evaluate(self, arch, model, ctx):
            import torch

            gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
            return {"score": float(torch.get_num_threads()), "trial": float(ctx.trial_number),
                    "visible_gpus": -1.0 if gpus is None else float(len([g for g in gpus.split(",") if g]))}

    summary = make(tmp_path, Threads(), budget=3, workers=1, trial_cpus=2.0).execute()
    assert {r.metrics["score"] for r in summary.records} == {2.0}
    assert {r.metrics["visible_gpus"] for r in summary.records} == {0.0}  # a trial without GPUs sees none


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    import psutil

    out = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out += [(pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def test_local_ray_listens_on_loopback_only(local_ray):
    import psutil
    import ray

    @ray.remote
    def pid() -> int:
        return os.getpid()

    worker = ray.get(pid.remote())  # a worker exists and listens too
    names = ("gcs_server", "raylet", "ray::", "default_worker", "runtime_env", "dashboard")
    ray_pids = {p.pid for p in psutil.process_iter(["cmdline"])
                if any(n in " ".join(p.info["cmdline"] or []) for n in names)} | {worker, os.getpid()}
    listeners = _listening(ray_pids)
    assert any(pid != os.getpid() for pid, _, _ in listeners)  # the check saw Ray's servers
    for pid, ip, port in listeners:
        addr = ipaddress.ip_address(ip.split("%")[0])
        mapped = getattr(addr, "ipv4_mapped", None)
        assert (mapped or addr).is_loopback, f"pid {pid} listens on {ip}:{port}"


def test_a_log_that_raises_on_one_line_still_gets_the_lines_after_it(local_ray, capsys):
    from automl.executors.ray_tune import _LogRelay

    seen: list[str] = []

    def log(line: str) -> None:
        if line == "bad":
            raise RuntimeError("boom")
        seen.append(line)

    relay = _LogRelay(log)
    for line in ("a", "bad", "b"):
        relay.queue.put(line)
    relay.close()
    assert seen == ["a", "b"]
    assert "could not log a line of rank 0 (RuntimeError: boom): bad" in capsys.readouterr().err


def test_an_unreachable_ray_address_is_one_line_before_any_file(tmp_path):
    with pytest.raises(RunSetupError) as exc:
        make(tmp_path, Score(), ray_address="127.0.0.1:9")
    assert "--ray-address '127.0.0.1:9': nothing answers there" in str(exc.value)
    assert not (tmp_path / "run").exists()


def test_cr_supernet_phases_run_as_ray_tasks_and_match_the_local_search(local_ray, tmp_path):
    from tests.test_cr_controller import _config

    local_run = Run(_config(tmp_path, name="local"), tensorboard=False)
    local = local_run.execute()
    cfg = _config(tmp_path, name="ray")
    cfg.executor, cfg.workers, cfg.trial_cpus = "ray", 1, 2.0
    lines: list[str] = []
    run = Run(cfg, tensorboard=False, log=lines.append)
    remote = run.execute()
    assert any("stage phase runs as a task with one trial's resources" in line for line in lines)
    # the same stage scores (up to float order: the task has other threads) and allocation
    stage = [r for r in run.store.scorings() if r.proposal["note"] == "stage allocation"]
    expected = [r for r in local_run.store.scorings() if r.proposal["note"] == "stage allocation"]
    assert [r.arch for r in stage] == [r.arch for r in expected] and len(stage) == 9
    assert [r.values[0] for r in stage] == pytest.approx([r.values[0] for r in expected], abs=1e-3)
    assert [r.arch["alloc"] for r in remote.records] == [r.arch["alloc"] for r in local.records]
    assert (tmp_path / "ray" / "supernet" / "stage.pt").is_file()  # written by the Ray task


class _Held:
    """A dataset by reference already in memory (what ``DatasetRef.load`` serves): uint8 images."""

    def __init__(self, seed: int = 0) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (16, 3, 6, 6), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 3, (16,), generator=g)
        self.images, self.targets = {"train": images, "val": images[:4]}, {"train": labels, "val": labels[:4]}
        self.parts, self.ignore_index, self.mean, self.std = ("train", "val"), None, (0.5,) * 3, (0.25,) * 3

    def load(self) -> _Held:
        return self


def test_darts_search_on_ray_train_workers_keeps_one_set_of_parameters(local_ray):
    import io

    import torch

    from controllers.oneshot.base import SearchData
    from controllers.oneshot.darts import DartsController
    from controllers.oneshot.group import GroupSearch, run_group_search
    from tests.test_darts_controller import ToySupernet
    from tests.test_darts_ddp import FAST, without_batchnorm

    def fresh() -> DartsController:
        c = DartsController(**FAST)
        c.setup(space=None, objectives=[Objective("valid_acc")], seed=0)  # type: ignore[arg-type]
        c.supernet = without_batchnorm(ToySupernet())  # no BatchNorm: shards add up to the global batch
        return c

    held = _Held()
    lines: list[str] = []
    final = local_ray.call_group(run_group_search, GroupSearch(fresh(), held, ("train",), "cpu", None, None),
                                 log=lines.append)
    assert sum(ln.startswith("epoch") for ln in lines) == FAST["epochs"]  # rank 0's lines, once each
    payload = torch.load(io.BytesIO(final), weights_only=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' kernels, so the same rounding
    try:
        ref = fresh()
        start = [p.detach().clone() for p in ref.supernet.arch_parameters()]
        ref.search(ref.supernet, SearchData.from_dataset(held))
    finally:
        torch.set_num_threads(threads)
    moved = max(float((p.detach() - p0).abs().max()) for p, p0 in zip(ref.supernet.arch_parameters(), start, strict=True))
    assert moved > 1e-3  # α moved, so agreeing means something
    assert payload["epoch"] == FAST["epochs"]
    for key, value in ref.supernet.state_dict().items():  # α and weights of 2 workers = one process
        torch.testing.assert_close(payload["supernet"][key], value, rtol=1e-5, atol=1e-5)


def test_a_failing_group_member_is_one_line(local_ray):
    with pytest.raises(ValueError, match=r"data-parallel group of 2 Ray Train workers failed: .*boom"):
        local_ray.call_group(_fail, "boom")


def _fail(message: str) -> None:
    raise RuntimeError(message)


def test_bayes_proposes_while_trials_are_in_flight(local_ray, tmp_path):
    """Auto-Keras BO under Ray: pending trials are kriging believers, so the GP proposals made
    while another trial runs are distinct from it, and each names the trial it descends from."""
    summary = make(tmp_path, Score(), budget=16, controller="bayes").execute()
    assert len(summary.records) == 16 and all(r.state == "complete" for r in summary.records)
    assert len({r.key for r in summary.records}) == 16
    guided = [r for r in summary.records if r.proposal.get("parent") is not None]
    assert len(guided) >= 5  # 10 initial samples, then the GP's proposals
    assert all(r.proposal["parent"] < r.number for r in guided)
