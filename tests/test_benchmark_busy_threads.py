"""benchmarks/busy_threads.py: a training step per thread count, alone and beside busy processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import busy_threads


def test_each_thread_count_is_timed_with_what_automl_search_would_see(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        code = busy_threads.main(["--threads", "1", "--busy", "0", "--min-time", "0.01",
                                  "--json", str(tmp_path / "out.json")])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["width"] == 8 and out["batch"] == 8 and len(out["rows"]) == 1
    row = out["rows"][0]
    assert row["busy"] == 0 and row["threads"] == 1 and row["train_step_ms"] > 0
    assert row["idle_cpus"] is None or row["idle_cpus"] >= 0
    assert "train step ms" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--threads", "0"], "--threads takes comma-separated integers >= 1, got '0'"),
    (["--busy", "x"], "--busy takes comma-separated integers >= 0, got 'x'"),
    (["--min-time", "0"], "--min-time must be > 0 seconds, got 0.0"),
])
def test_bad_arguments_exit_2_naming_the_argument(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        busy_threads.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
