"""Data-parallel darts search (controllers/oneshot/distributed.py): two gloo processes hold the
same α/β and weights after every step, equal to one process with the same global batch (BatchNorm
per shard: the single-process reference cuts its batch into ghost batches); ``torchrun ... automl
search`` leaves one run; bad input is one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from automl.store import TrialStore, default_storage
from automl.types import Objective, Task
from controllers.oneshot.base import SearchData
from controllers.oneshot.darts import DartsController
from tests.helpers import run_cli
from tests.test_darts_controller import ToySupernet, toy_data

pytestmark = pytest.mark.filterwarnings("ignore:darts. WARNING the architecture parameters are still undecided")

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
NB201 = Task("classification", 3, (8, 8), 10)

# name -> (supernet kind, controller options); every case runs 2 epochs of 2 steps.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "first-order": ("toy", {}),
    "second-order": ("toy", {"order": 2}),
    "gdas": ("toy-gumbel", {"method": "gdas"}),
    "segmentation": ("toy-seg", {}),  # shards with different numbers of ignored pixels
    "nb201": ("nb201", {}),  # BatchNorm: per shard
}
FAST = {"epochs": 2, "batch_size": 4, "w_lr": 0.1, "arch_lr": 3e-2}  # α/β move well away from their start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def without_batchnorm(net: nn.Module) -> nn.Module:
    """``net`` with every BatchNorm replaced by the identity (then shards add up exactly)."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    return net


class GhostBatches(nn.Module):
    """One process's reference for a supernet with BatchNorm: the forward runs each of the
    ``WORLD`` shards of the batch separately (BatchNorm per shard), like the processes do."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(part) for part in x.chunk(WORLD)])

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.net, name)


def seg_data(n: int = 16, size: int = 6) -> SearchData:
    data = toy_data(n, kind="segmentation", size=size)
    for i in range(n):  # sample i ignores its first i % size rows
        data.targets[i, : i % size] = 255
    return data


def case(name: str) -> tuple[DartsController, Any, SearchData]:
    """The controller, supernet and data of a case (the same in every process)."""
    kind, options = CASES[name]
    c = DartsController(**FAST, **options)
    if kind == "nb201":
        from search_spaces.nb201.space import NB201Space

        c.bind(NB201Space(), NB201, [Objective("valid_acc")], 0)
        g = torch.Generator().manual_seed(2)
        return c, c.supernet, SearchData(torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g))
    c.setup(space=None, objectives=[Objective("valid_acc")], seed=0)  # type: ignore[arg-type]
    if kind == "toy-seg":
        return c, without_batchnorm(ToySupernet(kind="segmentation")), seg_data()
    return c, without_batchnorm(ToySupernet(sampling="gumbel" if kind == "toy-gumbel" else "softmax")), toy_data()


def outcome(c: DartsController, net: Any, derived: list[Any]) -> dict[str, Any]:
    return {"arch": [p.detach().clone() for p in net.arch_parameters()],
            "weights": [p.detach().clone() for p in net.weight_parameters()],
            "derived": derived, "history": c.history}


def worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        for name in CASES:
            c, net, data = case(name)
            derived = c.search(net, data)
            torch.save(outcome(c, net, derived), Path(out) / f"{name}-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case searched by two gloo processes; their outcomes as files."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return out


def single(name: str) -> dict[str, Any]:
    """One process, on one thread like the workers: the same kernels, so the same rounding (Adam's
    first α steps are ±lr whatever a gradient's size, so a rounding flip of a near-zero gradient
    moves α by 2·lr; with 2 threads here the nb201 case differed by 0.11)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        c, net, data = case(name)
        reference = GhostBatches(net) if CASES[name][0] == "nb201" else net
        return outcome(c, net, c.search(reference, data))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_keep_one_set_of_parameters_equal_to_one_process(parallel: Path, name: str) -> None:
    ranks = [torch.load(parallel / f"{name}-{r}.pt", weights_only=False) for r in range(WORLD)]
    for key in ("arch", "weights"):  # the same bits in every process
        assert all(torch.equal(a, b) for a, b in zip(ranks[0][key], ranks[1][key], strict=True)), key
    assert ranks[0]["derived"] == ranks[1]["derived"] and ranks[0]["history"] == ranks[1]["history"]

    ref = single(name)
    initial = [a.detach() for a in case(name)[1].arch_parameters()]
    moved = max(float((a - a0).abs().max()) for a, a0 in zip(ref["arch"], initial, strict=True))
    assert moved > 1e-3  # α/β did move, so agreeing means something
    for key in ("arch", "weights"):
        for a, b in zip(ranks[0][key], ref[key], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert ranks[0]["derived"] == ref["derived"]
    for mine, theirs in zip(ranks[0]["history"], ref["history"], strict=True):  # metrics of the global batch
        assert mine.keys() == theirs.keys()
        for k in mine:
            assert mine[k] == pytest.approx(theirs[k], rel=1e-5), k


SEARCH = ["search", "--space", "nb201", "--controller", "darts", "--dataset", "digits", "--evaluator", "cost",
          "--objective", "params_M:min", "--budget", "1", "--set", "space.channels=2",
          "--set", "space.cells_per_stage=1", "--set", "controller.epochs=1",
          "--set", "controller.supernet={channels: 2, cells_per_stage: 1}", "--no-progress"]


def test_torchrun_search_leaves_one_run_with_one_trial(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORLD), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), "-m", "automl.cli", *SEARCH,
           "--set", "controller.batch_size=64"]
    proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run directory:") == 1 and proc.stdout.count("epoch 1/1") == 1, proc.stdout
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "supernet" / "supernet.pt").is_file()
    records = TrialStore(default_storage(str(run)), run.name, [Objective("params_M", "min")], create=False).records()
    assert len(records) == 1 and records[0].state == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize(("args", "expected"), [
    ([*SEARCH, "--set", "controller.batch_size=63"], "batch_size 63 does not split over 2 processes"),
    (["search", "--space", "nb201", "--controller", "evolution", "--evaluator", "cost", "--objective", "params_M:min"],
     "controller 'evolution' does not search with several processes"),
])
def test_bad_input_under_torchrun_is_one_line(capsys, monkeypatch, tmp_path: Path, args: list[str], expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_worker_process_reports_an_error_only_after_rank_0_could(capsys, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr("automl.cli.WORKER_ERROR_DELAY_S", 0.0)
    code, _, err = run_cli(capsys, "search", "--budget", "abc")
    assert code == 2 and err.strip().endswith("(torchrun process 1)") and len(err.strip().splitlines()) == 1
