"""Bad input, as a new user types it: one line on stderr naming what is wrong (and what is
accepted), exit code 2, no traceback, and nothing written or changed anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli

TABLE_RUN = ["--space", "nb201", "--controller", "evolution", "--no-progress"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_benchmarks) -> Path:
    """A working directory with a finished 3-trial run and the broken things a user may point at."""
    root = tmp_path_factory.mktemp("home")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        from automl.cli import main

        main(["search", *TABLE_RUN, "--budget", "3", "--run-dir", "run"])
    finally:
        os.chdir(cwd)
    (root / "afile").write_text("not a folder\n")
    (root / "bad.yaml").write_text("space: nb201\ncontroller: [evolution\n")
    (root / "typo.yaml").write_text("space: nb201\nbugdet: 3\n")
    (root / "noevals.yaml").write_text("space: nb201\nevaluators: []\n")
    (root / "noobjectives.yaml").write_text("space: nb201\nobjectives: []\n")
    for name, keep in (("lost", "config.yaml"), ("emptydb", "config.yaml")):
        (root / name).mkdir()
        (root / name / keep).write_text((root / "run" / "config.yaml").read_text())
    (root / "emptydb" / "study.db").write_bytes(b"")
    (root / "notarun").mkdir()
    for name, text in (("badcfg", b"space: [nb201\n"), ("binarycfg", b"\xff\xfe\x00space")):
        (root / name).mkdir()
        (root / name / "config.yaml").write_bytes(text)
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, (12, 16, 16))
    masks[0, 0, 0], masks[1, 0, 0] = 7, 200
    np.savez(root / "stray.npz", images=rng.integers(0, 255, (12, 16, 16, 3), dtype=np.uint8), masks=masks)
    np.savez(root / "empty.npz", images=np.zeros((0, 8, 8), np.uint8), labels=np.zeros((0,), np.int64))
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


CASES: list[tuple[list[str], str]] = [
    # the argument parser
    (["search", "--budget", "abc"], "Invalid value for '--budget'"),
    (["search", "--bugdet", "3"], "No such option: --bugdet"),
    (["nosuch"], "No such command 'nosuch'; commands: search, show"),
    (["show"], "Missing argument 'run_dir' (usage: automl show [OPTIONS] RUN_DIR"),
    # run configuration
    (["search", *TABLE_RUN, "--budget", "0"], "budget: expected a positive integer"),
    (["search", *TABLE_RUN, "--seed", "-1"], "seed: expected an integer from 0 to 2**32-1, got -1"),
    (["search", *TABLE_RUN, "--objective", "valid_acc"], "expected METRIC:max or METRIC:min"),
    (["search", *TABLE_RUN, "--constraint", "latency<twenty"], "bad constraint"),
    (["search", "--space", "nb201", "--controller", "anneal"], "unknown controller 'anneal'; choose from: random"),
    (["search", "--space", "nb301"], "unknown space 'nb301'; choose from: nb201"),
    (["search", *TABLE_RUN, "--evaluator", "nb201-tabel"], "unknown evaluator 'nb201-tabel'"),
    (["search", *TABLE_RUN, "--set", "contoller.population=5"], "(did you mean 'controller'?)"),
    (["search", *TABLE_RUN, "--set", "controller.population=abc"], "option population expects an integer, got 'abc'"),
    (["search", *TABLE_RUN, "--set", "controller.populaton=3"], "unknown option(s) ['populaton']; accepted: population"),
    (["search", "--space", "nb201", "--controller", "darts", "--set", "controller.stop_at_skips=0"],
     "darts: stop_at_skips must be an integer >= 1, got 0"),
    (["search", "--space", "nb201", "--controller", "darts", "--set", "controller.stop_when_stable=two"],
     "option stop_when_stable expects an integer or null, got 'two'"),
    (["search", "--space", "nb201", "--controller", "bayes", "--set", "controller.targets=log"],
     "option targets expects one of 'rank', 'standard', got 'log'"),
    (["search", "--space", "morph", "--controller", "bayes", "--set", "space.start=vgg"],
     "unknown start 'vgg'; choose from cnn, resnet"),
    (["search", "--space", "seg-unet", "--controller", "bayes"], "requires ['graph'] which space 'seg-unet' does not offer"),
    (["search", *TABLE_RUN, "--set", "population"], "expected space.KEY=VALUE, controller.KEY=VALUE"),
    (["search", *TABLE_RUN, "--objective", "accuracy:max"], "metric 'accuracy' is not produced by the evaluators"),
    (["search", *TABLE_RUN, "--objective", "test_acc:max"], "report-only"),
    (["search", *TABLE_RUN, "--device", "bogus"], "device 'bogus' is not a device name; accepted here: cpu"),
    (["search", "--config", "missing.yaml"], "config file not found: missing.yaml"),
    (["search", "--config", "bad.yaml"], "bad.yaml: not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence that starts at line 2)"),
    (["search", "--config", "typo.yaml"], "unknown key(s) bugdet; accepted: space, controller"),
    (["search", "--config", "noevals.yaml"], "noevals.yaml: evaluators is an empty list; name at least one (e.g. [train])"),
    (["search", "--config", "noobjectives.yaml"], "noobjectives.yaml: objectives is an empty list; give METRIC:max|min entries"),
    (["search", *TABLE_RUN, "--pruner", "median", "--objective", "valid_acc:max", "--objective", "flops_M:min"],
     "--pruner median stops trials by one intermediate value; give one --objective"),
    (["search", *TABLE_RUN, "--pruner", "bogus"], "pruner: 'bogus' is not one of none, median, successive-halving"),
    (["search", *TABLE_RUN, "--mnas-reward", "val_acc"], "mnas"),
    (["search", *TABLE_RUN, "--workers", "4"], "--workers needs --executor ray"),
    (["search", *TABLE_RUN, "--trial-timeout", "-1"], "trial-timeout must be a number of seconds > 0"),
    (["search", *TABLE_RUN, "--time-limit", "-5"], "time_limit: expected a number of seconds > 0 (0: no limit), got -5.0"),
    (["search", *TABLE_RUN, "--time-limit", "inf"], "time_limit: expected a number of seconds > 0 (0: no limit), got inf"),
    (["search", *TABLE_RUN, "--executor", "dask"], "executor: 'dask' is not one of local, ray"),
    (["search", "--space", "nb201", "--controller", "darts", "--dataset", "digits", "--executor", "ray", "--workers",
      "3", "--set", "controller.batch_size=64", "--no-progress"],
     "darts: batch_size 64 does not split over 3 processes (torchrun --nproc-per-node or --executor ray --workers)"),
    # run directories
    (["search", *TABLE_RUN, "--run-dir", "afile"], "--run-dir afile: afile is a file, not a folder"),
    (["search", *TABLE_RUN, "--run-dir", "run"], "run directory run already holds files; continue it with --resume"),
    (["search", "--resume", "lost"], "lost/study.db is missing; its trials are lost and resuming would start the run over"),
    (["search", "--resume", "emptydb"], "emptydb/study.db is empty; its trials are lost"),
    (["search", "--resume", "run", "--budget", "1"], "--budget 1 is below the 3 trials this run already has"),
    (["search", "--resume", "run", "--space", "nb201"], "--resume continues a run as configured"),
    (["search", "--resume", "notarun"], "no config.yaml there, so it is not a run directory"),
    (["search", *TABLE_RUN, "--join"], "--join works with --resume RUN_DIR only"),
    # data
    (["search", *TABLE_RUN, "--dataset", "digits", "--evaluator", "nb201-table"],
     "nb201-table holds cifar10 results (classification, 32x32x3, 10 classes) but this run's data is"),
    (["search", "--space", "seg-unet", "--controller", "random", "--dataset", "npz:stray.npz"],
     "mask values 0, 1, 2, 7, 200 skip class ids 3, 4, 5, 6, 8 ... (no ignore_index); give num_classes"),
    (["search", "--space", "nb201", "--controller", "random", "--evaluator", "train", "--dataset", "npz:empty.npz"],
     "'images' holds no samples"),
    (["search", "--space", "nb201", "--controller", "random", "--evaluator", "train", "--dataset", "nosuch"],
     "unknown dataset spec 'nosuch'; accepted:"),
    # read-only commands
    (["show", "notarun"], "notarun is not a run directory (no config.yaml)"),
    (["show", "badcfg"], "badcfg: its config.yaml cannot be read: badcfg/config.yaml: not valid YAML"),
    (["pareto", "binarycfg"], "binarycfg/config.yaml: not a text file (not UTF-8)"),
    (["show", "lost"], "cannot read the trials of lost: "),
    (["show", "emptydb"], "study.db is empty"),
    (["pareto", "lost", "--out", "f.png"], "cannot read the trials of lost"),
    (["export", "lost"], "cannot read the trials of lost"),
    (["show", "run", "--top", "-1"], "--top must be >= 0"),
    (["show", "run", "--trial", "99"], "--trial 99: the run has no finished trial 99; its trials: 0..2"),
    (["export", "run", "--trial", "99"], "99"),
    (["export", "run", "--format", "gif"], "gif"),
    (["export", "run", "--train-epochs", "0"], "--train-epochs must be a positive integer"),
    (["pareto", "run", "--objective", "nope:max"], "nope"),
    (["blocks", "nosuch"], "unknown block 'nosuch'; known blocks:"),
    (["search", *TABLE_RUN, "--reference", "seg-unet:unet"],
     "reference 'seg-unet:unet': space 'seg-unet' builds segmentation networks but this run's task is classification"),
    (["search", *TABLE_RUN, "--reference", "unet"], "reference 'unet': unknown nb201 preset 'unet'; known: none"),
    (["search", *TABLE_RUN, "--reference", "segunet:unet"], "reference 'segunet:unet': unknown space 'segunet'"),
    (["search", "--space", "seg-unet", "--reference", "seg-unet:segnet"],
     ("reference 'seg-unet:segnet': unknown seg-unet preset 'segnet'; known: ['attention-unet', 'deeplab-aspp', "
      "'dla-seg', 'icnet', 'pan', 'panoptic-fpn-semantic', 'unet', 'unet++']")),
    (["search", "--space", "seg-hierarchical", "--set", "space.stem_stride=3"],
     "stem_stride must be one of 4, 2, 1, got 3"),
    (["latency-table", "--space", "nosuch"], "unknown space 'nosuch'"),
    (["spaces", "nosuch"], "unknown space 'nosuch'; known spaces: nb201"),
    (["search", "--space", "seg-unet", "--controller", "evolution", "--set", "controller.initial=unet,nope"],
     "evolution: initial: unknown seg-unet preset 'nope'; known:"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(capsys, monkeypatch, home, args, message):
    monkeypatch.chdir(home)
    before = _snapshot(home)
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and message in err, err
    assert _snapshot(home) == before  # nothing written, created or changed


def test_a_missing_table_named_by_the_environment_is_one_line(capsys, monkeypatch, home):
    monkeypatch.chdir(home)
    monkeypatch.setenv("AUTOML_NB201_TABLE", str(home / "no-such-table.csv"))
    before = _snapshot(home)
    code, _, err = run_cli(capsys, "search", *TABLE_RUN, "--run-dir", "x")
    assert code == 2 and "AUTOML_NB201_TABLE=" in err and "names no file" in err, err
    assert _snapshot(home) == before


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
