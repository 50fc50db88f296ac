"""cost (checked against hand counts) and latency (torch.utils.benchmark, ONNX Runtime)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evaluators.base import EvalContext, EvaluationError
from evaluators.cost import CostEvaluator
from evaluators.latency import LatencyEvaluator
from automl.types import Task
from search_spaces.base import SearchSpace
from search_spaces.seg_unet import SegUNetSpace

TASK = Task(kind="classification", in_channels=3, input_size=(16, 16), num_classes=10)


def ctx(task: Task = TASK, **kw) -> EvalContext:
    return EvalContext(space=SearchSpace(), task=task, **kw)


def hand_model(inplace: bool) -> nn.Module:
    # conv 3->8 k3 on 16x16: 8*3*9 + 8 = 224 params, 16*16*8*27 = 55296 MACs (bias adds not counted)
    # linear 2048->10: 20490 params, 20480 MACs
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))


@pytest.mark.parametrize("inplace", [True, False])
def test_cost_matches_hand_counts(inplace):
    out = CostEvaluator().evaluate({}, hand_model(inplace), ctx())
    assert out["params"] == 224 + 20490 and out["params_M"] == pytest.approx(0.020714)
    assert out["flops_M"] == pytest.approx((55296 + 20480) / 1e6, abs=1e-12)
    # conv output 8*16*16 float32 = 8192 B; ReLU adds another 8192 B unless in place; flatten is a view; logits 40 B
    assert out["act_MB"] == pytest.approx((8192 + (0 if inplace else 8192) + 40) / 1e6, abs=1e-12)


def test_cost_scales_with_batch_and_input_size():
    one = CostEvaluator().evaluate({}, hand_model(True), ctx())
    four = CostEvaluator(batch_size=4).evaluate({}, hand_model(True), ctx())
    assert four["params"] == one["params"]
    assert four["flops_M"] == pytest.approx(4 * one["flops_M"]) and four["act_MB"] == pytest.approx(4 * one["act_MB"])
    conv = nn.Conv2d(3, 4, 1, bias=False)
    big = CostEvaluator(input_size=[10, 20]).evaluate({}, conv, ctx())
    assert big["flops_M"] * 1e6 == 10 * 20 * 4 * 3 and big["params"] == 12


def test_cost_counts_shared_parameters_once_and_keeps_the_mode():
    lin = nn.Linear(4, 4)
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    shared.train()
    out = CostEvaluator().evaluate({}, shared, ctx(Task(in_channels=4, input_size=())))
    assert out["params"] == 20 and out["flops_M"] * 1e6 == 2 * 16
    assert shared.training and shared[1].training


def test_cost_on_seg_unet_odd_size():
    space = SegUNetSpace()
    model = space.build({**space.preset("unet"), "width": 8, "block1": "sep_conv", "block2": "dil_conv"})
    out = CostEvaluator(input_size=[33, 31]).evaluate({}, model, ctx(space.default_task))
    assert out["params"] == sum(p.numel() for p in model.parameters())
    assert out["flops_M"] > 0 and out["act_MB"] > 0


def test_cost_errors():
    with pytest.raises(EvaluationError, match=r"forward on input \[1, 3, 16, 16\] failed"):
        CostEvaluator().evaluate({}, nn.Linear(5, 5), ctx())
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        CostEvaluator(batch_size=0)
    with pytest.raises(ValueError, match="input_size must be a list of 1-3 positive integers"):
        CostEvaluator(input_size=[0, 3])
    with pytest.raises(TypeError, match=r"no option \['batch'\]; options: batch_size, input_size"):
        CostEvaluator(batch=2)
    assert CostEvaluator.provides == ("params", "params_M", "flops_M", "act_MB") and CostEvaluator.needs_model


# -- latency ----------------------------------------------------------------------------------------
def test_latency_fixed_count_and_autorange():
    model = hand_model(False).train()
    fixed = LatencyEvaluator(repeats=7, warmup=2).evaluate({}, model, ctx())
    assert set(fixed) == {"latency_ms", "latency_iqr_ms"}
    assert 0 < fixed["latency_ms"] < 100 and fixed["latency_iqr_ms"] >= 0
    assert model.training  # the mode is restored
    auto = LatencyEvaluator(min_run_time=0.05, threads=1).evaluate({}, model, ctx())
    assert 0 < auto["latency_ms"] < 100


def test_latency_grows_with_work():
    model = nn.Conv2d(3, 64, 5, padding=2)
    small = LatencyEvaluator(repeats=15, input_size=[8, 8]).evaluate({}, model, ctx())
    large = LatencyEvaluator(repeats=15, input_size=[8, 8], batch_size=64).evaluate({}, model, ctx())
    # 64x the work; the small call's fixed overhead and a busy machine keep the ratio near 4-8x
    assert large["latency_ms"] > 2 * small["latency_ms"]


def test_latency_onnxruntime():
    pytest.importorskip("onnxruntime")
    model = hand_model(True)
    out = LatencyEvaluator(repeats=5, onnxruntime=True, onnx_exporter="torchscript").evaluate({}, model, ctx())
    assert set(out) == set(LatencyEvaluator.provides)
    assert 0 < out["latency_ort_ms"] < 100 and out["latency_ort_iqr_ms"] >= 0


@pytest.mark.slow
def test_latency_onnxruntime_dynamo_exporter():
    pytest.importorskip("onnxscript")
    space = SegUNetSpace()
    model = space.build({**space.preset("unet"), "depth": 2, "width": 8, "block2": "sep_conv"})
    out = LatencyEvaluator(repeats=5, onnxruntime=True).evaluate({}, model, ctx(space.default_task))
    assert out["latency_ort_ms"] > 0


def test_latency_export_failure_is_an_evaluation_error(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::magic\nlong trace")

    monkeypatch.setattr(torch.onnx, "export", broken)
    message = r"ONNX export \(torchscript\) failed: RuntimeError: unsupported operator aten::magic$"
    with pytest.raises(EvaluationError, match=message):
        LatencyEvaluator(repeats=3, onnxruntime=True, onnx_exporter="torchscript").evaluate({}, hand_model(True), ctx())


@pytest.mark.parametrize(
    "options,error,message",
    [
        ({"repeats": 2}, ValueError, "repeats must be an integer >= 3"),
        ({"threads": 0}, ValueError, "threads must be an integer >= 1"),
        ({"min_run_time": 0}, ValueError, r"min_run_time must be seconds in \(0, 60\]"),
        ({"onnxruntime": "yes"}, TypeError, "onnxruntime must be true or false"),
        ({"onnx_exporter": "tf"}, ValueError, "onnx_exporter must be dynamo or torchscript"),
        ({"batch_size": 1.5}, ValueError, "batch_size must be an integer >= 1"),
        ({"device": "cuda"}, TypeError, r"no option \['device'\]; options: batch_size"),
    ],
)
def test_latency_option_errors(options, error, message):
    with pytest.raises(error, match=message) as exc:
        LatencyEvaluator(**options)
    assert "\n" not in str(exc.value)


def test_latency_forward_failure():
    with pytest.raises(EvaluationError, match=r"forward on input \[1, 3, 16, 16\] failed"):
        LatencyEvaluator(repeats=3).evaluate({}, nn.Linear(5, 5), ctx())
