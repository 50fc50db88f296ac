"""The ``cr`` controller's parts: beam search, the uniform sampler, scorings in the store,
and (with the ``cr-resnet`` space) a seeded search end to end, its resume and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from automl.store import TrialStore
from automl.types import Decision, Objective, Scoring
from controllers.oneshot.beam import beam_search
from controllers.oneshot.single_path import uniform_sampler


def test_beam_search_recovers_the_optimum_of_an_additive_oracle():
    rng = np.random.default_rng(0)
    positions, choices = 16, (1, 2, 3)
    gain = rng.normal(size=(positions, len(choices)))
    calls = []

    def oracle(prefix):
        calls.append(prefix)
        return float(sum(gain[i, choices.index(c)] for i, c in enumerate(prefix)))

    result = beam_search([choices] * positions, oracle, width=3)
    best = tuple(choices[int(j)] for j in gain.argmax(1))
    assert result.beam[0][0] == best
    assert result.beam[0][1] == pytest.approx(gain.max(1).sum())
    # K x 3 scorings per position once the beam is full (1 prefix at the start, then 3)
    assert [len(step) for step in result.scored] == [3] + [9] * (positions - 1)
    assert result.evaluations == len(calls) == 3 + 9 * (positions - 1)
    assert [s for _, s in result.beam] == sorted((s for _, s in result.beam), reverse=True)


def test_beam_search_of_width_one_is_greedy_and_width_checked():
    result = beam_search([(0, 1), (0, 1)], lambda p: float(sum(p)), width=1)
    assert result.beam == [((1, 1), 2.0)]
    with pytest.raises(ValueError, match="beam width"):
        beam_search([(0, 1)], lambda p: 0.0, width=0)


def test_uniform_sampler_is_uniform_and_keeps_fixed_values():
    alloc = Decision("alloc", tuple(f"a{i}" for i in range(12)))
    sample = uniform_sampler([alloc], {"alloc": "a0", "d0": 1}, np.random.default_rng(0))
    draws = [sample() for _ in range(6000)]
    assert all(d["d0"] == 1 for d in draws)
    counts = np.array([sum(d["alloc"] == c for d in draws) for c in alloc.choices])
    assert stats.chisquare(counts).pvalue > 0.01
    # and a sampler that is not uniform is caught by the same test
    skewed = np.array([700] + [482] * 11)
    assert stats.chisquare(skewed).pvalue < 0.01


def test_scorings_live_beside_the_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    store = TrialStore(storage, "run", [Objective("val_miou", "max")])
    assert store.scorings() == []
    store.record_scorings([Scoring({"alloc": "3-4-6-3"}, {"score_miou": 0.4, "score_loss": 1.2}, 0.4,
                                   note="stage allocation", arch_str="3-4-6-3")])
    again = TrialStore.open_existing(storage, "run", [Objective("val_miou", "max")], read_only=True)
    [rec] = again.scorings()
    assert rec.arch == {"alloc": "3-4-6-3"} and rec.metrics["score_miou"] == 0.4
    assert rec.proposal == {"parent": None, "inherit": "supernet", "note": "stage allocation"}
    assert again.records() == []  # not a trial of the search: no budget, not on the front


# -- the controller on cr-resnet ---------------------------------------------------------------
TINY_SPACE = {"blocks": 8, "block": "basic", "width": 4, "stem_stride": 1, "head_channels": 8}
TINY_CR = {"epochs": 1, "spatial_epochs": 1, "batch_size": 32, "beam_width": 2, "top_k": 1, "completions": 1}


def _config(tmp_path, name="run", **controller):
    from automl.config import Component, RunConfig

    return RunConfig(space=Component("cr-resnet", TINY_SPACE), controller=Component("cr", {**TINY_CR, **controller}),
                     evaluators=[Component("train", {"epochs": 1, "batch_size": 32}), Component("cost")],
                     dataset="shapes", budget=3, seed=0, run_dir=str(tmp_path / name))


def test_cr_search_end_to_end_is_seeded_and_resumes_without_repeating_work(tmp_path):
    from automl.run import Run
    from search_spaces.cr_resnet.allocations import allocations

    run = Run(_config(tmp_path), tensorboard=True)
    summary = run.execute()
    run.close()
    events = b"".join(p.read_bytes() for p in (tmp_path / "run" / "tb").rglob("events.*"))
    assert b"cr/stage_supernet_loss" in events and b"cr/allocation_miou" in events
    scorings = run.store.scorings()
    stage = [r for r in scorings if r.proposal["note"] == "stage allocation"]
    spatial = [r for r in scorings if r.proposal["note"] == "spatial candidate"]
    assert len(stage) == len(allocations(8)) == 9 and len(spatial) == 2  # beam width 2
    assert all(r.proposal["inherit"] == "supernet" and 0 <= r.metrics["score_miou"] <= 1 for r in scorings)
    best_alloc = max(stage, key=lambda r: (r.values[0], -r.metrics["score_loss"]))
    records = summary.records
    assert [r.proposal["note"] for r in records] == ["derived 0", "derived 1", "derived 2"]
    assert all(r.state == "complete" and "val_miou" in r.metrics and "flops_M" in r.metrics for r in records)
    cr_arch, scr_arch, baseline = (r.arch for r in records)
    assert scr_arch["alloc"] == cr_arch["alloc"] == best_alloc.arch["alloc"]
    assert all(v == 1 for k, v in scr_arch.items() if k != "alloc")
    assert baseline == run.space.preset("baseline") and baseline["alloc"] == "2-2-2-2"
    assert records[0].metrics["flops_M"] == pytest.approx(records[2].metrics["flops_M"], rel=0.01)
    assert (tmp_path / "run" / "supernet" / "stage.pt").is_file() and (tmp_path / "run" / "supernet" / "spatial.pt").is_file()

    again = Run(_config(tmp_path, name="again"), tensorboard=False)
    repeat = again.execute()
    assert [r.arch for r in repeat.records] == [r.arch for r in records]
    assert [r.metrics for r in again.store.scorings()] == [r.metrics for r in scorings]

    resumed = Run(_config(tmp_path), resume=True, tensorboard=False)
    out = resumed.execute()
    assert [r.number for r in out.records] == [r.number for r in records]  # nothing evaluated again
    assert len(resumed.store.scorings()) == len(scorings)  # nothing scored or recorded again


def test_an_interrupted_phase_resumes_at_the_next_epoch_and_ends_in_the_same_state(tmp_path, monkeypatch):
    import torch

    from automl import registry
    from controllers.oneshot import cr_phases
    from controllers.oneshot.single_path import SinglePathTrainer, TrainOptions

    space = registry.create("space", "cr-resnet", TINY_SPACE)
    levels = space.reallocation()
    gen = torch.Generator().manual_seed(0)
    images, targets = torch.randn(48, 3, 32, 32, generator=gen), torch.randint(0, 5, (48, 32, 32), generator=gen)

    def job(checkpoint):
        torch.manual_seed(0)
        return cr_phases.PhaseJob(
            name="stage", supernet=space.single_path_supernet(space.default_task), images=images, targets=targets,
            train_idx=torch.arange(40), val_idx=torch.arange(40, 48), kind="segmentation", num_classes=5,
            ignore_index=255, train=TrainOptions(3, 0.05, 0.0, 0.9, 1e-4, 5.0), batch_size=16,
            searched=(levels.allocation,), fixed=dict(levels.baseline), seed=0, checkpoint=checkpoint,
            candidates=[levels.baseline])

    straight = job(tmp_path / "a" / "stage.pt")
    whole = cr_phases.run_phase(straight)
    original = SinglePathTrainer.epoch

    def crash_in_third(self, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(SinglePathTrainer, "epoch", crash_in_third)
    with pytest.raises(KeyboardInterrupt):
        cr_phases.run_phase(job(tmp_path / "b" / "stage.pt"))
    monkeypatch.setattr(SinglePathTrainer, "epoch", original)
    resumed_job = job(tmp_path / "b" / "stage.pt")
    resumed = cr_phases.run_phase(resumed_job)
    assert resumed.resumed_at == 2 and len(resumed.history) == 3
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in whole.history])
    for key, value in straight.supernet.state_dict().items():
        assert torch.allclose(value.float(), resumed_job.supernet.state_dict()[key].float()), key
    assert resumed.scores[0][1] == pytest.approx(whole.scores[0][1])


@pytest.mark.parametrize(("options", "message"), [
    ({"top_k": 4}, "top_k (4) cannot exceed beam_width (3)"),
    ({"arch_val_fraction": 1.0}, "arch_val_fraction must be in (0, 1)"),
    ({"epochs": -1}, "epochs must be an integer >= 0"),
    ({"lr": "fast"}, "lr expects a number"),
])
def test_bad_cr_options_are_one_line(tmp_path, options, message):
    from automl.config import Component
    from automl.run import Run, RunSetupError

    cfg = _config(tmp_path)
    cfg.controller = Component("cr", options)
    with pytest.raises(RunSetupError) as exc:
        Run(cfg, tensorboard=False)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "run").exists()


def test_cr_and_differentiable_search_refuse_each_others_spaces(tmp_path):
    from automl.config import Component
    from automl.run import Run, RunSetupError

    cfg = _config(tmp_path)
    cfg.space = Component("seg-unet")
    with pytest.raises(RunSetupError, match=r"requires \['realloc'\]"):
        Run(cfg, tensorboard=False)
    cfg = _config(tmp_path)
    cfg.controller = Component("darts")
    with pytest.raises(RunSetupError, match=r"requires \['supernet'\]"):
        Run(cfg, tensorboard=False)
