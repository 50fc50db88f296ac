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


def test_sys_exit_in_an_evaluator_fails_the_trial_keeps_its_traceback_and_the_run_exits_1(capsys, tmp_path):
    from tests.helpers import run_cli

    plugin = tmp_path / "quits.py"
    plugin.write_text(
        "import sys\n"
        "def helper(arch):\n"
        "    sys.exit(3)\n"
        "def quits(arch, model, ctx):\n"
        "    helper(arch)\n"
    )
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "search", "--space", "nb201", "--controller", "random", "--evaluator",
                             f"{plugin}:quits", "--objective", "score:max", "--budget", "3", "--run-dir", str(run_dir),
                             "--no-progress", "--set", "space.channels=2", "--set", "space.cells_per_stage=1")
    assert code == 1  # no trial succeeded: not a success, and not a usage error either
    assert err.strip().splitlines() == [err.strip()] and "no trial succeeded (3 failed or pruned)" in err
    assert "SystemExit: the evaluator called sys.exit(3)" in err
    records = open_run(run_dir).records
    assert [r.state for r in records] == ["failed"] * 3  # none left RUNNING
    trace = records[0].traceback
    assert "quits.py" in trace and "in helper" in trace and "sys.exit(3)" in trace
    code, out, _ = run_cli(capsys, "show", str(run_dir), "--trial", "0")
    assert code == 0 and "in helper" in out and "SystemExit" in out


def test_a_hung_evaluator_is_stopped_by_the_trial_timeout(capsys, tmp_path):
    from tests.helpers import run_cli

    plugin = tmp_path / "hangs.py"
    plugin.write_text(
        "import time\n"
        "def hangs(arch, model, ctx):\n"
        "    if arch['op_e01'] == 'none':\n"
        "        time.sleep(60)\n"
        "    return {'score': 1.0}\n"
    )
    code, out, err = run_cli(capsys, "search", "--space", "nb201", "--controller", "random", "--evaluator",
                             f"{plugin}:hangs", "--objective", "score:max", "--budget", "10", "--seed", "3",
                             "--trial-timeout", "0.5", "--run-dir", str(tmp_path / "run"), "--no-progress",
                             "--set", "space.channels=2", "--set", "space.cells_per_stage=1")
    assert code == 0, err
    records = open_run(tmp_path / "run").records
    timed_out = [r for r in records if r.state == "failed"]
    assert timed_out and all("timed out" in r.error or "0.5" in r.error for r in timed_out)
    assert all(r.duration_s < 5 for r in records)
