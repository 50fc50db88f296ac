"""Smoke runs of the preset benchmarks (issue 15) at the smallest settings: they finish, print a
table and write JSON whose figures are in range; the search-run comparison reads a run's best."""

from __future__ import annotations

import json

from automl.cli import main as automl
from benchmarks import mobile_latency, seg_unet_presets, video_presets


def test_seg_unet_presets_beside_a_search_runs_best(tmp_path, capsys):
    run = tmp_path / "search"
    automl(["search", "--space", "seg-unet", "--controller", "random", "--evaluator", "cost", "--objective",
            "params_M:min", "--budget", "2", "--run-dir", str(run), "--no-progress"])
    out = tmp_path / "r.json"
    assert seg_unet_presets.main(["--presets", "unet", "--epochs", "1", "--seeds", "1", "--threads", "1",
                                  "--search-run", str(run), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["presets"]
    names = list(rows)
    assert names[0] == "unet" and names[1].startswith("search best (trial ")
    assert all(0 <= r["mean"] <= 1 and r["latency_ms"] > 0 for r in rows.values())
    assert "search best" in capsys.readouterr().out
    assert seg_unet_presets.main(["--presets", "nope"]) == 2


def test_mobile_latency_constrained_search_smoke(tmp_path):
    out = tmp_path / "m.json"
    assert mobile_latency.main(["--budget", "3", "--steps", "2", "--min-run-time", "0.01", "--latency-size", "16x16",
                                "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["controller"] == "evolution" and r["controller_options"]["initial"].startswith("mobilenetv2-like")
    assert r["trials"] == 3 and r["latency_size"] == [16, 16] and r["preset"]["latency_ms"] > 0
    assert len(r["fastest"]) == 3 and r["constraint"].startswith("latency_ms<=")


def test_video_presets_smoke(tmp_path):
    out = tmp_path / "v.json"
    assert video_presets.main(["--epochs", "1", "--seeds", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["rows"]) == {"i3d-like", "slowfast-like"} and r["chance"] == 0.125
    assert all(0 <= row["mean"] <= 1 and row["flops_M"] > 0 for row in r["rows"].values())
