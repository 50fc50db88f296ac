"""The run loop's weight-sharing path: supernet search -> derived archs -> evaluators -> store."""

from __future__ import annotations

import pytest

from automl.config import Component, RunConfig
from automl.run import Run, RunSetupError
from controllers.oneshot.base import OneShotController


def _config(tmp_path, **controller):
    return RunConfig(
        space=Component("nb201", {"channels": 2, "cells_per_stage": 1}),
        controller=Component("darts", {"epochs": 1, "batch_size": 128, "top_k": 2, **controller}),
        evaluators=[Component("train", {"epochs": 1, "batch_size": 128, "save_weights": True}), Component("cost")],
        dataset="digits",
        budget=2,
        run_dir=str(tmp_path / "run"),
    )


def test_supernet_search_then_evaluate_derived_archs(tmp_path):
    run = Run(_config(tmp_path), tensorboard=False)
    assert isinstance(run.controller, OneShotController)
    summary = run.execute()
    assert len(summary.records) == 2 and all(r.state == "complete" for r in summary.records)
    assert summary.best is not None and "val_acc" in summary.best.metrics and "params_M" in summary.best.metrics
    assert (tmp_path / "run" / "supernet" / "supernet.pt").is_file()
    assert (tmp_path / "run" / "derived-0.png").is_file()
    assert (tmp_path / "run" / "trials" / f"{summary.best.number:05d}" / "weights.pt").is_file()
    # the time breakdown names the supernet search, and its phases fit in the run's time
    assert list(summary.phase_seconds) == ["supernet search", "trials"]
    assert all(s > 0 for s in summary.phase_seconds.values())
    assert sum(summary.phase_seconds.values()) <= summary.seconds

    resumed = Run(_config(tmp_path), resume=True, tensorboard=False).execute()
    assert [r.key for r in resumed.records] == [r.key for r in summary.records]  # nothing evaluated twice
    assert [r.number for r in resumed.records] == [r.number for r in summary.records]


def test_weight_sharing_needs_a_supernet_and_one_objective(tmp_path):
    cfg = _config(tmp_path)
    cfg.space = Component("seg-unet")
    with pytest.raises(RunSetupError, match="requires \\['supernet'\\]"):
        Run(cfg, tensorboard=False)
    cfg = _config(tmp_path)
    cfg.objectives = ["val_acc:max", "params_M:min"]
    with pytest.raises(RunSetupError, match="single objective"):
        Run(cfg, tensorboard=False)


@pytest.mark.parametrize(("supernet", "message"), [
    ({"bogus": 1}, "space 'nb201' supernet: NB201Supernet.__init__() got an unexpected keyword argument 'bogus'"),
    ({"channels": 0}, "space 'nb201' supernet: nb201 supernet: channels must be an integer >= 1, got 0"),
    ({"cells_per_stage": 1.5}, "cells_per_stage must be an integer >= 1, got 1.5"),
])
def test_bad_supernet_options_fail_before_any_file(tmp_path, supernet, message):
    with pytest.raises(RunSetupError) as exc:
        Run(_config(tmp_path, supernet=supernet), tensorboard=False)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "run").exists()


def test_the_supernet_initialisation_follows_the_seed(tmp_path):
    import torch

    def init(seed: int) -> list[torch.Tensor]:
        cfg = _config(tmp_path)
        cfg.seed = seed
        torch.randn(7)  # whatever the global generator did before must not matter
        run = Run(cfg, write_files=False, tensorboard=False)
        return [p.detach().clone() for p in run.controller.supernet.parameters()]

    a, b, c = init(3), init(3), init(4)
    assert all(x.equal(y) for x, y in zip(a, b, strict=True))
    assert not all(x.equal(z) for x, z in zip(a, c, strict=True))
