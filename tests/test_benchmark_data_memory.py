"""benchmarks/data_memory.py: a tiny Cityscapes-like set through build, search and train, and its JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks.data_memory import main, synthetic

pytestmark = pytest.mark.filterwarnings("ignore:darts. WARNING the architecture parameters are still undecided")


def test_synthetic_set_has_every_class_and_void_pixels():
    images, masks = synthetic(4, 64, 96, 19)
    assert images.shape == (4, 64, 96, 3) and masks.shape == (4, 64, 96) and images.dtype == masks.dtype == "uint8"
    assert (masks[:, -1] == 255).all() and int(masks[masks != 255].max()) <= 18


def test_tiny_benchmark_reports_compact_bytes_and_peaks(tmp_path, capsys):
    out = tmp_path / "memory.json"
    assert main(["--images", "12", "--height", "32", "--width", "64", "--val-fraction", "0.25", "--search-steps", "1",
                 "--train-steps", "1", "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["dtypes"] == {"images": "torch.uint8", "targets": "torch.uint8"}
    assert res["samples"] == {"train": 9, "val": 3}
    pixels = 12 * 32 * 64
    assert res["bytes"]["stored"] == 3 * pixels + pixels  # uint8 images and masks
    assert res["bytes"]["float32_int64"] == 4 * 3 * pixels + 8 * pixels
    assert list(res["phases"]) == ["build", "search", "train"]
    assert all(p["peak_rss"] > 0 and p["seconds"] >= 0 for p in res["phases"].values())
    assert 0 <= res["train"]["val_miou"] <= 1
    assert "peak RSS" in capsys.readouterr().out
