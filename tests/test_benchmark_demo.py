"""benchmarks/demo.py: the zero-flag demo over search seeds, run as from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import _phases
from benchmarks import demo


def test_the_phases_the_cli_prints_are_read_back() -> None:
    seconds = {"supernet search": 64.04, "trials": 100.1, "reference": 17.8}
    line = f"1 trial(s) in 181.9 s{_phases(seconds)} (budget spent); 0 failed, 0 duplicate proposal(s) served"
    assert demo.phases(line) == {"supernet search": 64.0, "trials": 100.1, "reference": 17.8}
    assert demo.phases("3 trial(s) in 2.0 s (budget spent); 0 failed") == {}


def test_each_seed_runs_the_cli_and_reports_found_net_reference_and_time(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.json"
    demo.main(["--seeds", "3", "--space", "seg-unet", "--controller", "random", "--keep", str(tmp_path / "runs"),
               "--json", str(out), "--", "--budget", "1", "--reference", "seg-unet:unet", "--set", "train.epochs=1"])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["seed"] == 3 and row["metric"] == "val_miou" and row["wall_s"] > 0 and row["peak_rss_mb"] > 50
    assert 0 <= row["found"]["val_miou"] <= 1 and row["found"]["arch"]
    assert row["reference"]["spec"] == "seg-unet:unet" and 0 <= row["reference"]["val_miou"] <= 1
    assert (tmp_path / "runs" / "seed3" / "config.yaml").is_file()
    printed = capsys.readouterr().out
    assert "found val_miou" in printed and "found ahead on" in printed and "of 1 seed(s)" in printed


def test_a_failing_run_stops_the_benchmark_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--space nope .* exited 2"):
        demo.main(["--seeds", "0", "--space", "nope", "--keep", str(tmp_path)])


def test_bad_seeds_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        demo.main(["--seeds", "a,b"])
    assert exc.value.code == 2 and "--seeds must be comma-separated integers" in capsys.readouterr().err
