"""User evaluators: a class or a function given as file.py:attr / module:attr, errors kept per trial."""

from __future__ import annotations

from pathlib import Path

from automl.cli import main
from automl.report import open_run

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_latency_evaluator.py"


def test_example_latency_target_evaluator_from_the_cli(capsys, tmp_path):
    run_dir = tmp_path / "run"
    args = ["search", "--space", "nb201", "--set", "space.channels=4", "--set", "space.cells_per_stage=1",
            "--controller", "random", "--evaluator", f"{EXAMPLE}:TargetLatency",
            "--evaluator", f"{EXAMPLE}:params_budget", "--set", "TargetLatency.target_ms=1000",
            "--set", "TargetLatency.min_run_time=0.01", "--objective", "params_M:min",
            "--constraint", "latency_ms<=1000", "--budget", "3", "--run-dir", str(run_dir), "--no-progress"]
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    view = open_run(run_dir)
    assert len(view.records) == 3
    for rec in view.records:
        assert rec.state == "complete"
        assert rec.metrics["meets_target"] == 1.0 and 0 < rec.metrics["latency_ratio"] < 1
        assert rec.metrics["latency_ms"] > 0 and rec.metrics["params_M"] > 0


def test_failing_user_evaluator_fails_trials_not_the_search(capsys, tmp_path):
    plugin = tmp_path / "bad_eval.py"
    plugin.write_text(
        "def flaky(arch, model, ctx):\n"
        "    if arch['op_e01'] == 'none':\n"
        "        raise RuntimeError('device lost')\n"
        "    return {'score': 1.0}\n"
    )
    run_dir = tmp_path / "run"
    try:
        main(["search", "--space", "nb201", "--set", "space.channels=2", "--set", "space.cells_per_stage=1",
              "--controller", "random", "--evaluator", f"{plugin}:flaky", "--objective", "score:max",
              "--budget", "12", "--seed", "3", "--run-dir", str(run_dir), "--no-progress"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    records = open_run(run_dir).records
    failed = [r for r in records if r.state == "failed"]
    assert len(records) == 12 and failed
    assert all(r.error == "RuntimeError: device lost" for r in failed)


def test_unimportable_user_evaluator_is_one_line(capsys, tmp_path):
    try:
        main(["search", "--space", "nb201", "--evaluator", f"{tmp_path}/missing.py:f", "--objective", "x:max",
              "--run-dir", str(tmp_path / "r")])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err
    assert "cannot import" in err and "no such file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
