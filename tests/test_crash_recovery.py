"""kill -9 mid-search, then --resume: nothing completed is lost or repeated (black-box and darts);
two processes resuming one study never evaluate the same architecture twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from automl.store import TrialStore, default_storage
from automl.types import Objective

REPO = Path(__file__).resolve().parents[1]
SLOW_SCORE = ["--evaluator", "tests.engine_toys:Score", "--set", "Score.sleep=0.25", "--objective", "score:max"]


def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "automl.cli", "search", *args, "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def store(run: Path, objective: str = "score:max") -> TrialStore:
    metric, direction = objective.split(":")
    return TrialStore(default_storage(str(run)), run.name, [Objective(metric, direction)], create=False)  # type: ignore[arg-type]


def wait_until(predicate, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def completed(run: Path) -> int:
    try:
        return len(store(run).records())
    except Exception:  # noqa: BLE001 - the database is not there yet
        return 0


def running(run: Path) -> bool:
    try:
        return any(t.state.name == "RUNNING" for t in store(run).study.get_trials(deepcopy=False))
    except Exception:  # noqa: BLE001 - the database is not there yet
        return False


@pytest.mark.parametrize("controller", ["evolution", "rl"])  # rl: the resumed policy is the one killed
def test_kill_9_of_a_black_box_search_then_resume_loses_and_repeats_nothing(tmp_path, controller):
    full = tmp_path / "full"
    finish(cli("--space", "nb201", "--controller", controller, *SLOW_SCORE, "--budget", "16", "--run-dir", str(full)))

    run = tmp_path / "killed"
    proc = cli("--space", "nb201", "--controller", controller, *SLOW_SCORE, "--budget", "16", "--run-dir", str(run))
    wait_until(lambda: completed(run) >= 6 and running(run), 120)  # kill inside a 0.25 s trial, not between two
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before = {r.number: r for r in store(run).records()}
    assert 6 <= len(before) < 16
    assert any(t.state.name == "RUNNING" for t in store(run).study.trials)  # killed mid-trial

    out = finish(cli("--resume", str(run)))
    assert "interrupted trial(s) will be evaluated again" in out
    after = store(run).records()
    assert len(after) == 16 and len({r.key for r in after}) == 16  # nothing repeated
    by_number = {r.number: r for r in after}
    assert all(by_number[n].key == r.key and by_number[n].metrics == r.metrics for n, r in before.items())  # nothing lost
    assert {r.key for r in after} == {r.key for r in store(full).records()}  # the controller went on as if never killed
    assert not any(t.state.name == "RUNNING" for t in store(run).study.trials)


def test_kill_9_of_a_darts_search_resumes_the_supernet_from_its_last_epoch(tmp_path):
    run = tmp_path / "darts"
    args = ["--space", "nb201", "--controller", "darts", "--dataset", "digits", "--evaluator", "cost",
            "--objective", "params_M:min", "--budget", "1", "--run-dir", str(run),
            "--set", "space.channels=2", "--set", "space.cells_per_stage=1",
            "--set", "controller.epochs=40", "--set", "controller.batch_size=64",
            "--set", "controller.supernet={channels: 2, cells_per_stage: 1}"]
    proc = cli(*args)
    checkpoint = run / "supernet" / "supernet.pt"

    def epochs_done() -> int:
        try:
            return int(torch.load(checkpoint, weights_only=True)["epoch"])
        except Exception:  # noqa: BLE001 - not written yet, or being replaced
            return 0

    wait_until(lambda: epochs_done() >= 2, 240)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = epochs_done()
    assert 2 <= done < 40

    out = finish(cli("--resume", str(run)))
    first = next(line for line in out.splitlines() if line.strip().startswith("epoch "))
    assert first.strip().startswith(f"epoch {done + 1}/40"), first  # continued, not restarted
    assert epochs_done() == 40
    records = store(run, "params_M:min").records()
    assert len(records) == 1 and records[0].state == "complete"


def test_a_second_search_of_a_running_run_is_refused_in_one_line_and_changes_nothing(tmp_path):
    run = tmp_path / "busy"
    first = cli("--space", "nb201", "--controller", "evolution", *SLOW_SCORE, "--budget", "40", "--run-dir", str(run))
    wait_until(lambda: completed(run) >= 1, 60)
    # the store's files (study.db and SQLite's transient journal) change under the running search
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and not p.name.startswith("study.db")}
    second = cli("--resume", str(run), "--budget", "60")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "is in use by automl pid" in lines[0] and "--join" in lines[0], out
    assert yaml.safe_load((run / "config.yaml").read_text())["budget"] == 40
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.name != ".lock" and "tb" not in p.parts)
    finish(first)
    assert len(store(run).records()) == 40


def test_two_processes_resuming_one_study_never_evaluate_an_arch_twice(tmp_path):
    run = tmp_path / "shared"
    finish(cli("--space", "nb201", "--controller", "evolution", *SLOW_SCORE, "--budget", "6", "--run-dir", str(run)))
    a = cli("--resume", str(run), "--budget", "24", "--join")
    b = cli("--resume", str(run), "--budget", "24", "--join")
    out_a, out_b = finish(a), finish(b)
    assert "joined as another worker" in out_a + out_b
    st = store(run)
    records = st.records()
    counts = Counter(r.key for r in records)
    assert max(counts.values()) == 1, counts.most_common(3)
    assert len(records) >= 24
    given_up = [t for t in st.study.trials if t.user_attrs.get("superseded")]
    assert given_up  # the same seed made both propose the same archs: claims decided who runs them
    assert not any(t.state.name == "RUNNING" for t in st.study.trials)


@pytest.fixture(autouse=True)
def _no_stray_processes():
    yield
    # a failed assertion must not leave a search running in the background
    subprocess.run(["pkill", "-f", "automl.cli search .*pytest"], check=False)
