"""benchmarks/train_step.py: times each optimizer implementation on the demo's retrain network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import train_step


def test_each_width_and_mode_is_timed_and_the_evaluators_choice_is_named(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        code = train_step.main(["--widths", "2", "--modes", "loop,fused", "--batch", "2", "--min-time", "0.01",
                                "--threads", "1", "--json", str(tmp_path / "out.json")])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["evaluator_mode"] == "fused" and out["batch"] == 2
    assert [(r["width"], r["mode"]) for r in out["rows"]] == [(2, "loop"), (2, "fused")]
    for row in out["rows"]:
        assert 0 < row["optimizer_step_ms"] < row["train_step_ms"] and row["tensors"] > 10
    assert "the train evaluator uses: fused" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--modes", "adam"], "--modes: unknown ['adam']; accepted: loop, foreach, fused"),
    (["--widths", "3"], "--widths: expected even integers >= 2, got [3]"),
    (["--widths", "four"], "--widths 'four': expected even integers"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--min-time", "0"], "--min-time must be > 0 seconds, got 0.0"),
])
def test_bad_arguments_exit_2_naming_the_argument(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        train_step.parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_search_run_that_is_not_a_run_is_one_line(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit, match=r"^--search-run: .* is not a run directory \(no config.yaml\)$"):
            train_step.main(["--search-run", str(tmp_path), "--widths", "2", "--modes", "fused", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
