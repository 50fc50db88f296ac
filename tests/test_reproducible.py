"""Same seed, same result: two identical training searches give identical metrics trial by trial,
and a search stopped and resumed gives the same trials as one that ran through."""

from __future__ import annotations

import torch

from automl.report import open_run
from evaluators.train import deterministic_kernels
from tests.helpers import run_cli

TRAIN_SEARCH = ["search", "--space", "nb201", "--controller", "evolution", "--dataset", "digits",
                "--evaluator", "train", "--set", "space.channels=4", "--set", "space.cells_per_stage=1",
                "--set", "controller.population=3", "--seed", "3", "--no-progress"]
TIMINGS = {"train_seconds"}


def _trials(run_dir):
    return [(r.key, r.state, {k: v for k, v in r.metrics.items() if k not in TIMINGS}) for r in open_run(run_dir).records]


def test_two_identical_training_searches_give_identical_metrics(capsys, tmp_path):
    for name in ("a", "b"):
        code, _, err = run_cli(capsys, *TRAIN_SEARCH, "--budget", "6", "--run-dir", str(tmp_path / name))
        assert code == 0, err
    a, b = _trials(tmp_path / "a"), _trials(tmp_path / "b")
    assert len(a) == 6 and all(state == "complete" for _, state, _ in a)
    assert len({m["val_acc"] for _, _, m in a}) > 1  # the trials really differ from each other
    assert a == b  # architectures and every metric, exactly


def test_a_resumed_training_search_equals_one_that_ran_through(capsys, tmp_path):
    assert run_cli(capsys, *TRAIN_SEARCH, "--budget", "6", "--run-dir", str(tmp_path / "through"))[0] == 0
    assert run_cli(capsys, *TRAIN_SEARCH, "--budget", "3", "--run-dir", str(tmp_path / "split"))[0] == 0
    code, out, err = run_cli(capsys, "search", "--resume", str(tmp_path / "split"), "--budget", "6", "--no-progress")
    assert code == 0, err
    assert _trials(tmp_path / "split") == _trials(tmp_path / "through")


def test_deterministic_kernels_are_set_for_the_trial_and_restored():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    with deterministic_kernels(True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
