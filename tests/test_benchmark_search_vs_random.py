"""benchmarks/search_vs_random.py: a tiny search, random samples and the reference, retrained alike."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.search_vs_random import main
from evaluators.data.shapes import CLASS_NAMES, generate_shapes


def test_tiny_benchmark_retrains_derived_random_and_reference_alike(tmp_path, capsys):
    images, masks = generate_shapes(48, (32, 32), 0)  # 48 shapes images instead of the default 512
    np.savez(tmp_path / "shapes.npz", images=images, masks=masks, num_classes=np.int64(len(CLASS_NAMES)))
    out = tmp_path / "svr.json"
    code = main(["--spaces", "seg-hierarchical", "--dataset", f"npz:{tmp_path / 'shapes.npz'}", "--random", "2",
                 "--seeds", "2", "--train-epochs", "1", "--json", str(out), "--set", "space.layers=2",
                 "--set", "controller.epochs=2", "--set", "controller.warmup_epochs=1",
                 "--set", "controller.batch_size=8"])
    assert code == 0
    res = json.loads(out.read_text())["spaces"]["seg-hierarchical"]
    assert list(res["archs"]) == ["derived", "random 0", "random 1", "seg-unet:unet"]
    assert res["archs"]["random 0"]["arch"] != res["archs"]["random 1"]["arch"]
    for row in res["archs"].values():
        assert len(row["val_miou"]) == 2 and all(math.isfinite(v) and 0 <= v <= 1 for v in row["val_miou"])
        assert row["latency_ms"] > 0 and row["params_M"] > 0
    assert res["random_mean"] == np.mean([res["archs"][f"random {i}"]["mean"] for i in range(2)])
    assert "derived " in capsys.readouterr().out
    assert main(["--seeds", "0"]) == 2


def test_bad_flags_and_spaces_get_one_line_and_exit_2(tmp_path, capsys):
    for argv, expected in ((["--threads", "0"], "--threads >= 1"), (["--train-epochs", "0"], "--train-epochs >= 1"),
                           (["--spaces", "nope"], "nope")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1


def test_spaces_without_space_options_or_latency_in_their_quick_settings_configure() -> None:
    """nb201's quick settings give no space options and no latency evaluator (a KeyError before)."""
    import argparse

    from benchmarks.search_vs_random import configure

    args = argparse.Namespace(dataset=None, search_seed=0, device="cpu", train_epochs=1, sets=[])
    cfg, train, latency = configure("nb201", args, Path("/nonexistent"))
    assert cfg.space.name == "nb201" and train["epochs"] == 1 and latency == {"min_run_time": 0.5}


def test_a_dataset_with_a_test_part_is_compared_on_it(tmp_path):
    """CIFAR-10's search splits the whole training set (validation part included), so the networks
    are compared on the test images no search step saw; val_acc is kept beside it."""
    from tests.test_datasets import write_cifar

    write_cifar(tmp_path / "c", n=8)
    out = tmp_path / "svr.json"
    code = main(["--spaces", "darts", "--dataset", f"cifar10:{tmp_path / 'c'}", "--random", "1", "--seeds", "1",
                 "--train-epochs", "1", "--json", str(out), "--set", "space.C=4", "--set", "space.layers=2",
                 "--set", "controller.epochs=1", "--set", "controller.batch_size=8",
                 "--set", "controller.supernet={C: 4, layers: 2}"])
    assert code == 0
    res = json.loads(out.read_text())["spaces"]["darts"]
    assert res["metric"] == "test_acc"
    for row in res["archs"].values():
        assert len(row["test_acc"]) == 1 and len(row["val_acc"]) == 1 and row["mean"] == row["test_acc"][0]
