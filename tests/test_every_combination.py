"""Every registered space x controller on its default data, as ``automl search --space S
--controller C`` configures it: the run either works (its trial completes) or is refused in one
line before anything is written. Training lengths are cut to a few steps so the test stays fast;
the combination, the default dataset, evaluators and quick settings are the CLI's."""

from __future__ import annotations

import inspect

import pytest

from automl import registry
from automl.config import RunConfig
from automl.run import Run, RunSetupError

COMBINATIONS = [(s, c) for s in registry.names("space") for c in registry.names("controller")]


def _shortened(cfg: RunConfig) -> None:
    """The CLI's configuration with every training length cut (same components, same data)."""
    cfg.fill_defaults()
    params = inspect.signature(registry.resolve("controller", cfg.controller.name)).parameters
    if "epochs" in params:  # every length in epochs: 1 (warm-up: 0)
        cfg.controller.options = {**cfg.controller.options,
                                  **{p: 0 if p == "warmup_epochs" else 1 for p in params if p.endswith("epochs")}}
    for e in cfg.evaluators:
        if e.name == "train":
            e.options = {**{k: v for k, v in e.options.items() if k != "epochs"}, "steps": 2}
        if e.name == "latency":
            e.options = {**e.options, "min_run_time": 0.01}


@pytest.mark.parametrize(("space", "controller"), COMBINATIONS, ids=[f"{s}+{c}" for s, c in COMBINATIONS])
def test_a_zero_flag_search_runs_or_is_refused_before_writing(tmp_path, space, controller):
    cfg = RunConfig()
    cfg.set("space", space)
    cfg.set("controller", controller)
    cfg.set("budget", 1)
    cfg.set("run_dir", str(tmp_path / "run"))
    _shortened(cfg)
    fits = set(registry.resolve("controller", controller).requires) <= set(registry.resolve("space", space).offers)
    if not fits:  # the one kind of combination that may not run: refused in one line, nothing written
        with pytest.raises(RunSetupError) as refused:
            Run(cfg, tensorboard=False)
        assert len(str(refused.value).splitlines()) == 1 and "controllers for this space:" in str(refused.value)
        assert not (tmp_path / "run").exists()
        return
    run = Run(cfg, tensorboard=False)
    summary = run.execute()
    run.close()
    assert [r.state for r in summary.records] == ["complete"], [r.error for r in summary.records]
