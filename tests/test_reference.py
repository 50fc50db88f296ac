"""The reference network of a run (automl.reference): resolved up front, trained like the trials
after the search, compared in one line, reused on resume; space presets."""

from __future__ import annotations

import json
import time

import pytest

from automl.config import Component, RunConfig
from automl.reference import Reference, ReferenceSpecError, comparison, load
from automl.run import Run
from automl.store import TrialRecord
from automl.types import Objective, Task
from search_spaces.seg_unet import SegUNetSpace

SEG = Task("segmentation", 3, (32, 32), 5)


def record(metrics: dict[str, float]) -> TrialRecord:
    return TrialRecord(number=3, arch={}, key="k", state="complete", metrics=metrics, values=[], violation=0.0,
                       duration_s=1.0)


def test_presets_are_architectures_of_their_space_and_unknown_names_are_listed():
    space = SegUNetSpace()
    assert space.preset("unet") == space.validate(SegUNetSpace.presets()["unet"])
    with pytest.raises(KeyError, match=r"unknown seg-unet preset 'x'; known: \['attention-unet', .*'unet', 'unet\+\+'\]"):
        space.preset("x")


def test_a_reference_resolves_in_another_space_or_in_the_searched_one():
    ref = Reference.resolve("seg-unet:unet", "seg-hierarchical", {"layers": 4}, SEG)
    assert (ref.space, ref.options, ref.arch["depth"], ref.arch["skip1"]) == ("seg-unet", {}, 3, "concat")
    same = Reference.resolve("unet", "seg-unet", {}, SEG)
    assert same.space == "seg-unet" and same.arch == ref.arch
    with pytest.raises(ReferenceSpecError, match="builds segmentation networks but this run's task is classification"):
        Reference.resolve("seg-unet:unet", "nb201", {}, Task("classification", 3, (32, 32), 10))


@pytest.mark.parametrize(("found", "direction", "verdict"), [(0.6, "max", "ahead"), (0.4, "max", "behind"),
                                                               (0.4, "min", "ahead")])
def test_the_comparison_is_one_line_with_the_verdict_on_the_first_objective(found, direction, verdict):
    ref = {"spec": "seg-unet:unet", "state": "complete", "metrics": {"val_miou": 0.5, "latency_ms": 2.0, "other": 1}}
    line = comparison(record({"val_miou": found, "latency_ms": 3.0}), ref, [Objective("val_miou", direction)])
    assert "\n" not in line
    assert line.startswith(f"found net (trial 3): val_miou {found:.4g}, latency_ms 3")
    assert "reference seg-unet:unet: val_miou 0.5, latency_ms 2" in line and "other" not in line
    assert line.endswith(f"the found net is {verdict} on val_miou")
    failed = comparison(None, {"spec": "x:y", "state": "failed", "error": "boom"}, [Objective("val_miou", "max")])
    assert failed == "reference x:y: failed (boom)"


def test_a_run_trains_its_reference_like_its_trials_and_a_resume_reuses_it(tmp_path):
    def make(resume: bool = False, budget: int = 1) -> Run:
        cfg = RunConfig(space=Component("seg-unet"), controller=Component("random"), budget=budget,
                        evaluators=[Component("train", {"epochs": 1, "batch_size": 64, "save_weights": False}),
                                    Component("cost")],
                        dataset="shapes", reference="seg-unet:unet", run_dir=str(tmp_path / "run"))
        return Run(cfg, resume=resume, tensorboard=False, progress=False)

    summary = make().execute()
    ref = summary.reference
    assert ref is not None and ref["state"] == "complete" and ref["arch"]["width"] == 24
    assert 0.0 <= ref["metrics"]["val_miou"] <= 1.0 and ref["metrics"]["params_M"] > 0
    # the run's evaluators with the run's options: same epochs, and the same metrics measured
    assert ref["metrics"]["epochs_run"] == summary.best.metrics["epochs_run"] == 1
    assert set(ref["metrics"]) == set(summary.best.metrics)
    assert load(tmp_path / "run") == json.loads((tmp_path / "run" / "reference" / "reference.json").read_text())
    assert "  |  reference seg-unet:unet: val_miou " in comparison(summary.best, ref, summary.objectives)
    assert list(summary.phase_seconds) == ["set-up", "trials", "reference"]
    assert summary.phase_seconds["reference"] > 0 and sum(summary.phase_seconds.values()) <= summary.seconds
    written = (tmp_path / "run" / "reference" / "reference.json").stat().st_mtime_ns
    again = make(resume=True, budget=2).execute()
    assert again.reference == ref  # reused, not retrained
    assert (tmp_path / "run" / "reference" / "reference.json").stat().st_mtime_ns == written


def test_under_a_time_limit_the_reference_trains_the_epochs_the_best_trial_ran(tmp_path):
    from automl.reference import matched_epochs

    cfg = RunConfig(space=Component("seg-unet"), controller=Component("random"), budget=1,
                    evaluators=[Component("train", {"epochs": 50, "batch_size": 64, "save_weights": False})],
                    dataset="shapes", reference="seg-unet:unet", run_dir=str(tmp_path / "run"), time_limit=4.0)
    run = Run(cfg, tensorboard=False, progress=False)
    summary = run.execute()
    trained = summary.best.metrics["epochs_run"]
    assert 1 <= trained < 50  # the limit ended the trial's training
    assert time.time() - run.started < 4.0 + 30  # then only the reference (a few epochs)
    assert summary.reference["metrics"]["epochs_run"] == trained  # not cut: the same epochs
    assert "epochs_run" in comparison(summary.best, summary.reference, summary.objectives)
    assert matched_epochs(record({"epochs_run": 2.0})) == 2 and matched_epochs(record({})) is None
