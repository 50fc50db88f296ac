"""CUDA-only paths: AMP (bf16 / fp16 with GradScaler), channels_last, CUDA timing. Skipped without a GPU."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluators.base import EvalContext
from evaluators.cost import CostEvaluator
from evaluators.data import load_dataset
from evaluators.latency import LatencyEvaluator
from evaluators.train import TrainEvaluator
from automl.types import Task
from search_spaces.base import SearchSpace
from search_spaces.seg_unet import SegUNetSpace

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ARCH = {**SegUNetSpace.presets()["unet"], "width": 16, "block2": "sep_conv", "block3": "dil_conv"}


@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_segmentation_trains_on_cuda(amp, channels_last):
    data = load_dataset("shapes", num_samples=256)
    torch.manual_seed(0)
    model = SegUNetSpace().build(ARCH, data.task)
    ev = TrainEvaluator(
        epochs=3, batch_size=16, optimizer="adamw", lr=3e-3, amp=amp, channels_last=channels_last, grad_clip=1.0
    )
    out = ev.evaluate(ARCH, model, EvalContext(space=SegUNetSpace(), task=data.task, dataset=data, device="cuda"))
    assert all(math.isfinite(v) for v in out.values())
    assert out["val_miou"] > 0.2 and out["val_pixel_acc"] > 0.74  # beyond predicting background everywhere
    assert next(model.parameters()).is_cuda and not model.training
    assert all(p.is_contiguous() for p in model.parameters())  # channels_last undone


def test_classification_amp_auto_learns_on_cuda():
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(), nn.Linear(2048, 10))
    ctx = EvalContext(space=SearchSpace(), task=data.task, dataset=data, device="cuda")
    out = TrainEvaluator(epochs=3, label_smoothing=0.1, amp="auto", channels_last=True).evaluate({}, model, ctx)
    assert out["val_acc"] > 0.9


def test_cost_on_cuda_matches_cpu():
    space = SegUNetSpace()
    ctx = EvalContext(space=space, task=space.default_task, device="cuda")
    cpu = CostEvaluator().evaluate(ARCH, space.build(ARCH), EvalContext(space=space, task=space.default_task))
    gpu = CostEvaluator().evaluate(ARCH, space.build(ARCH).cuda(), ctx)
    assert (gpu["params"], gpu["flops_M"]) == (cpu["params"], pytest.approx(cpu["flops_M"]))
    assert gpu["act_MB"] == pytest.approx(cpu["act_MB"], rel=0.05)  # cuDNN BatchNorm keeps a few statistics more


def test_latency_on_cuda_waits_for_the_kernels():
    """A ~1 TFLOP matrix product takes milliseconds; without synchronisation it would time as microseconds."""
    model = nn.Linear(8192, 8192, bias=False).cuda()
    ctx = EvalContext(space=SearchSpace(), task=Task(in_channels=8192, input_size=()), device="cuda")
    out = LatencyEvaluator(batch_size=8192, repeats=5, warmup=2).evaluate({}, model, ctx)
    assert 1.0 < out["latency_ms"] < 1000
    space = SegUNetSpace()
    unet_ctx = EvalContext(space=space, task=space.default_task, device="cuda")
    small = LatencyEvaluator(min_run_time=0.05).evaluate(ARCH, space.build(ARCH), unet_ctx)
    assert 0 < small["latency_ms"] < out["latency_ms"]
