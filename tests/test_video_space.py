"""The ``video`` space: every decision value builds, catalogue coverage, presets train and export,
an end-to-end search on ``moving-shapes``, one-line errors."""

from __future__ import annotations

import pytest
import torch

from automl.config import RunConfig
from automl.export import check_parity, export_model
from automl.run import Run, RunSetupError
from automl.types import Task
from search_spaces.blocks import get_block
from search_spaces.video import VideoSpace
from tests.test_every_combination import _shortened

TASK = Task("video", 3, (8, 16, 16), 8)
SPACE = VideoSpace()


def _forward(arch: dict) -> torch.Tensor:
    torch.manual_seed(0)
    return SPACE.build(arch, TASK)(torch.randn(2, 3, *TASK.input_size))


@pytest.mark.parametrize("decision", [d.name for d in SPACE.decisions()])
def test_every_decision_value_builds_a_clip_classifier(decision):
    base = SPACE.preset("slowfast-like" if decision in ("alpha", "beta") else "i3d-like")
    for value in next(d for d in SPACE.decisions() if d.name == decision).choices:
        assert _forward({**base, decision: value}).shape == (2, TASK.num_classes), (decision, value)


def test_block_choices_cover_every_catalogue_video_block_and_build_it():
    choices = SPACE.block_choices()
    video = {"inflated_conv3d", "r2plus1d", "mict", "fast3d", "cost", "gst", "temporal_bilinear",
             "temporal_transition", "st_attention", "conv_lstm", "slowfast", "attention_cluster"}
    assert video | {"non_local", "gc", "attentional_pool"} == set(choices)
    for block, arch in choices.items():
        net = SPACE.build(arch, TASK)
        assert any(isinstance(m, get_block(block).cls) for m in net.modules()), block


@pytest.mark.parametrize("name", ["i3d-like", "slowfast-like"])
def test_presets_train_a_step_and_export_with_parity(tmp_path, name):
    torch.manual_seed(0)
    net = SPACE.build(SPACE.preset(name), TASK)
    x, y = torch.randn(4, 3, *TASK.input_size), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    net.eval()
    files = export_model(net, x[:2], tmp_path, ("torchscript", "pt2", "onnx"))
    parity = check_parity(net, files, {"random": torch.randn(3, 3, *TASK.input_size)})
    assert set(parity) == {"torchscript", "pt2", "onnx"}
    assert all(v["random"] < 1e-4 for v in parity.values()), parity


def test_presets_and_describe():
    assert set(VideoSpace.presets()) == {"i3d-like", "slowfast-like"}
    text = "inflated_conv3d/1 inflated_conv3d/2 inflated_conv3d/2 pool single(a8,b0.125)"
    assert SPACE.describe(SPACE.preset("i3d-like")) == text and SPACE.parse(text) == SPACE.preset("i3d-like")
    with pytest.raises(ValueError, match="stage 1 takes no insert"):
        SPACE.parse(text.replace("/1 ", "/1+gc ", 1))
    assert SPACE.parse("slowfast-like") == SPACE.preset("slowfast-like")
    assert SPACE.default_task.input_shape(2) == (2, 3, 8, 32, 32)


def test_a_search_on_moving_shapes_records_accuracy_cost_and_latency(tmp_path):
    cfg = RunConfig()
    for key, value in (("space", "video"), ("controller", "random"), ("budget", 2), ("run_dir", str(tmp_path / "run"))):
        cfg.set(key, value)
    _shortened(cfg)
    run = Run(cfg, tensorboard=False)
    summary = run.execute()
    run.close()
    assert cfg.dataset == "moving-shapes" and run.task.input_size == (8, 32, 32)
    assert [r.state for r in summary.records] == ["complete"] * 2, [r.error for r in summary.records]
    for rec in summary.records:
        assert {"val_acc", "params", "flops_M", "latency_ms"} <= set(rec.metrics)
        assert 0 <= rec.metrics["val_acc"] <= 1 and rec.metrics["flops_M"] > 0


@pytest.mark.parametrize(("arch", "message"), [
    ({**VideoSpace.presets()["i3d-like"], "head": "mlp"}, "head='mlp' is not one of"),
    ({**VideoSpace.presets()["i3d-like"], "insert_1": "gc"}, "unknown ['insert_1']"),
])
def test_bad_architectures_fail_in_one_line(arch, message):
    with pytest.raises(ValueError) as error:
        SPACE.build(arch)
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


def test_bad_dataset_and_task_fail_in_one_line(tmp_path):
    cfg = RunConfig()
    for key, value in (("space", "video"), ("dataset", "digits"), ("run_dir", str(tmp_path / "run"))):
        cfg.set(key, value)
    with pytest.raises(RunSetupError) as error:
        Run(cfg, tensorboard=False)
    assert "video datasets:" in str(error.value) and len(str(error.value).splitlines()) == 1
    with pytest.raises(ValueError, match="builds video networks"):
        SPACE.build(SPACE.preset("i3d-like"), Task())
    with pytest.raises(ValueError, match="alpha=4 needs at least 4 frames"):
        SPACE.build(SPACE.preset("slowfast-like"), Task("video", 3, (2, 16, 16), 8))
    with pytest.raises(ValueError, match="width must be an integer >= 8"):
        VideoSpace(width=4)
