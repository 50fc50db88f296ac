"""benchmarks/cr_realloc.py: a tiny search and retraining end to end, and its JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.cr_realloc import main
from evaluators.data.shapes import CLASS_NAMES, generate_shapes


def test_tiny_benchmark_compares_three_archs_at_equal_flops(tmp_path, capsys):
    images, masks = generate_shapes(64, (32, 32), 0)  # 64 shapes images instead of the default 512
    np.savez(tmp_path / "shapes.npz", images=images, masks=masks, num_classes=np.int64(len(CLASS_NAMES)))
    out = tmp_path / "cr.json"
    code = main(["--dataset", f"npz:{tmp_path / 'shapes.npz'}", "--out", str(tmp_path / "runs"), "--json", str(out),
                 "--epochs", "1", "--spatial-epochs", "1", "--width", "4", "--train-epochs", "1", "--seeds", "1",
                 "--set", "space.blocks=8", "--set", "space.head_channels=8", "--set", "controller.beam_width=2",
                 "--set", "controller.top_k=1", "--set", "controller.completions=1",
                 "--set", "latency.min_run_time=0.05"])
    assert code == 0
    res = json.loads(out.read_text())
    archs = res["archs"]
    assert list(archs) == ["baseline", "SCR", "CR"]
    assert archs["baseline"]["describe"] == "2-2-2-2 d:11-11-11-11"
    assert archs["SCR"]["arch"]["alloc"] == archs["CR"]["arch"]["alloc"]
    assert set(archs["SCR"]["describe"].split("d:")[1]) <= {"1", "-"}
    for row in archs.values():
        assert len(row["val_miou"]) == 1 and all(math.isfinite(v) and 0 <= v <= 1 for v in row["val_miou"])
        assert row["flops_M"] > 0 and row["params_M"] > 0 and row["latency_ms"] > 0
    assert archs["CR"]["flops_M"] == pytest.approx(archs["baseline"]["flops_M"], rel=0.01)
    assert res["search"]["seconds"] > 0 and res["machine"]["torch"] and res["samples"]["val"] > 0
    assert (tmp_path / "runs" / "search" / "config.yaml").is_file()
    assert "CR " in capsys.readouterr().out
