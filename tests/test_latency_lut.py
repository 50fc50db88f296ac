"""Latency look-up tables: decomposition, building, the latency-lut evaluator and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from automl.cli import main
from automl.config import Component, RunConfig
from automl.run import Run, RunSetupError
from evaluators.latency_lut import build_lut, predict
from automl.types import Task
from search_spaces.base import LutEntry
from search_spaces.nb201 import EDGES, NB201Space

TINY = {"channels": 2, "cells_per_stage": 1}


def test_every_arch_decomposes_into_table_entries():
    space = NB201Space()
    entries = space.lut_entries()
    rng = np.random.default_rng(0)
    for _ in range(200):
        keys = space.lut_keys(space.sample(rng))
        assert set(keys) <= set(entries)
    all_skip = {e: "skip_connect" for e in EDGES}
    assert len(space.lut_keys(all_skip)) == 1  # the reference network alone
    conv = dict(all_skip, op_e01="nor_conv_3x3")
    assert len(space.lut_keys(conv)) == 4  # + one edge in each of the three stages


def test_prediction_is_reference_plus_replacement_costs():
    space = NB201Space()
    entries = {k: 0.0 for k in space.lut_entries()}
    ref = next(k for k in entries if "network-of-skips" in k)
    entries[ref] = 5.0
    for k in entries:
        if "/nor_conv_3x3/" in k:
            entries[k] = 1.0
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|")
    assert predict(space, arch, space.default_task, entries) == pytest.approx(5.0 + 2 * 3 * 1.0)
    with pytest.raises(KeyError):
        predict(space, arch, Task("classification", 3, (16, 16), 10), entries)


def test_build_lut_applies_baselines():
    class Fake(NB201Space):
        def lut_entries(self, task=None):
            slow = lambda: torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, 3, padding=1) for _ in range(30)])  # noqa: E731
            return {"base": LutEntry(torch.nn.Identity, ((1, 8, 8),)),
                    "delta": LutEntry(slow, ((1, 8, 8),), baseline="base", per=2)}

    table = build_lut(Fake(**TINY), Task("classification", 1, (8, 8), 2), min_run_time=0.01, threads=1)
    assert set(table["entries"]) == {"base", "delta"} and table["device"] == "cpu"
    assert table["entries"]["delta"] > 0 and table["entries"]["base"] < table["entries"]["delta"] * 2


def test_latency_table_cli_and_lut_evaluator(capsys, tmp_path):
    lut = tmp_path / "lut.json"
    try:
        main(["latency-table", "--space", "nb201", "--set", "space.channels=2", "--set", "space.cells_per_stage=1",
              "--input-size", "8x8", "--out", str(lut), "--min-run-time", "0.01", "--threads", "1"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    table = json.loads(lut.read_text())
    assert table["space"] == "nb201" and table["options"] == TINY and len(table["entries"]) == 13

    # The table's input size differs from the run's task (32x32): refused before the run starts.
    cfg = RunConfig(space=Component("nb201", TINY), controller=Component("random"),
                    evaluators=[Component("latency-lut", {"lut": str(lut)})], budget=2, run_dir=str(tmp_path / "r"))
    with pytest.raises(RunSetupError, match=r"the LUT lacks 13 of the 13 entries this run needs \(e.g. "
                                            r"'nb201/.*/2x32x32'; this run: input 3x32x32, 10 classes\)"):
        Run(cfg, tensorboard=False)
    assert not (tmp_path / "r").exists()
    assert cfg.objectives == ["latency_ms:min"]  # the evaluator's suggestion

    try:
        main(["latency-table", "--space", "nb201", "--set", "space.channels=2", "--set", "space.cells_per_stage=1",
              "--out", str(lut), "--min-run-time", "0.01", "--threads", "1"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    cfg = RunConfig(space=Component("nb201", TINY), controller=Component("random"), objectives=["latency_ms:min"],
                    evaluators=[Component("latency-lut", {"lut": str(lut)})], budget=3, run_dir=str(tmp_path / "r2"))
    summary = Run(cfg, tensorboard=False).execute()
    assert all(r.state == "complete" and r.metrics["latency_ms"] > 0 for r in summary.records)


def test_lut_errors(capsys, tmp_path):
    with pytest.raises(RunSetupError, match="LUT file not found"):
        Run(RunConfig(space=Component("nb201"), evaluators=[Component("latency-lut", {"lut": str(tmp_path / "x")})],
                      objectives=["latency_ms:min"], run_dir=str(tmp_path / "r")))
    try:
        main(["latency-table", "--space", "seg-unet", "--out", str(tmp_path / "l.json")])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err
    assert "offers no latency look-up decomposition; spaces that do: " in err and "nb201" in err
