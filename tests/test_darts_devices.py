"""The search steps off the plain CPU fp32 path: another device and bf16 autocast.

No GPU here, so two stand-ins keep the CUDA path honest:

* the ``meta`` device (shapes only) fails on any tensor created on the CPU inside a step
  (e.g. a latency cost table) — the error CUDA would raise;
* CPU bf16 autocast with channels-last weights runs the mixed-precision path of the trainer
  (``amp`` is CUDA-only by default), custom autograd functions included.
"""

from __future__ import annotations

import pytest
import torch

from automl import registry
from controllers.oneshot.batches import Batch, gather, place
from controllers.oneshot.darts_options import DartsOptions
from controllers.oneshot.bilevel import BilevelTrainer
from automl.types import Task

# (space options, supernet options, task)
SPACES = {
    "darts": ({}, {"C": 4, "layers": 3}, Task("classification", 3, (8, 8), 10)),
    "seg-hierarchical": ({"layers": 3, "filter_multiplier": 2}, {}, Task("segmentation", 3, (32, 32), 5)),
    "nb201": ({}, {"channels": 4, "cells_per_stage": 1}, Task("classification", 3, (8, 8), 10)),
}
BATCH = 16  # bf16 with batch-statistics BN on tiny maps needs a few samples to stay close


def trainer(space_name: str, order: int, method: str, device: str,
            mixed_precision: bool | None = None) -> tuple[BilevelTrainer, Batch]:
    torch.manual_seed(0)
    space_options, supernet_options, task = SPACES[space_name]
    space = registry.create("space", space_name, space_options)
    probe = DartsOptions(order=order, method=method, partial_channels=2)
    net = space.supernet(task, **supernet_options, **probe.relaxation())
    lut = {k: 1.0 + i % 3 for i, k in enumerate(net.latency_keys())} if hasattr(net, "latency_keys") else None
    options = DartsOptions(order=order, method=method, partial_channels=2,
                           latency_target_ms=5.0 if lut else None)
    x = torch.randn(BATCH, 3, *task.input_size)
    shape = (BATCH, *task.input_size) if task.kind == "segmentation" else (BATCH,)
    y = torch.randint(0, task.num_classes, shape)
    t = BilevelTrainer(net, options, device=device, latency_lut=lut, mixed_precision=mixed_precision)
    return t, Batch(x.to(device), y.to(device))


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_steps_create_no_tensor_off_the_search_device(space_name: str) -> None:
    """Second order with partial channels and a latency target: every code path of a step
    (meta tensors are slow, ~1 ms an op, so one configuration per space)."""
    t, batch = trainer(space_name, 2, "pcdarts", "meta")
    t.weight_step(batch)
    t.arch_step(batch, batch)
    assert all(p.device.type == "meta" for p in t.net.parameters())
    if t.lut is not None:
        assert t.expected_latency().device.type == "meta"


@pytest.mark.parametrize(("order", "method"), [(1, "darts"), (2, "pcdarts")])
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_steps_under_bf16_autocast_and_channels_last(space_name: str, order: int, method: str) -> None:
    t, batch = trainer(space_name, order, method, "cpu", mixed_precision=True)  # the CUDA default
    assert t.amp and all(p.is_contiguous(memory_format=torch.channels_last) for p in t.net.parameters() if p.dim() == 4)
    batch = Batch(batch.images.contiguous(memory_format=torch.channels_last), batch.targets)
    with torch.no_grad():
        full = t.loss(batch, amp=False)[0]
        half = t.loss(batch)[0]
    assert half.dtype == torch.float32 and abs(half.item() - full.item()) < 0.05 * full.item()
    arch = [a.detach().clone() for a in t.arch]
    weights = [w.detach().clone() for w in t.weights]
    t.weight_step(batch)
    t.arch_step(batch, batch)
    for before, after in [*zip(arch, t.arch), *zip(weights, t.weights)]:
        assert after.dtype == torch.float32 and bool(torch.isfinite(after).all())
    assert any(not a.equal(b) for a, b in zip(arch, t.arch))
    assert sum(not w.equal(b) for w, b in zip(weights, t.weights)) > len(weights) // 2


def test_small_search_data_moves_to_the_device_once_and_large_data_stays_on_the_host() -> None:
    images, targets = torch.randn(10, 3, 4, 4), torch.arange(10)
    meta = torch.device("meta")
    x, y = place(images, targets, meta)
    assert x.device == meta and y.device == meta
    batch = gather(x, y, torch.tensor([3, 1]), meta, channels_last=True)
    assert batch.images.shape == (2, 3, 4, 4) and batch.images.is_contiguous(memory_format=torch.channels_last)
    x, y = place(images, targets, meta, resident_bytes=images.numel() * 4)  # the targets tip it over
    assert x is images and y is targets
    assert gather(x, y, torch.tensor([3, 1]), meta).targets.device == meta
    assert place(images, targets, torch.device("cpu"))[0] is images


# -- on a GPU (skipped without one): the real mixed-precision path ---------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize(("order", "method"), [(1, "darts"), (2, "pcdarts"), (1, "gdas")])
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_steps_on_cuda_with_the_default_amp(space_name: str, order: int, method: str) -> None:
    t, batch = trainer(space_name, order, method, "cuda")
    assert t.amp and t.channels_last  # options.amp defaults to True on CUDA
    arch = [a.detach().clone() for a in t.arch]
    for _ in range(2):
        t.weight_step(batch)
        t.arch_step(batch, batch)
    assert all(p.is_cuda and p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in t.net.parameters())
    assert any(not a.equal(b) for a, b in zip(arch, t.arch))
    if t.lut is not None:
        assert t.expected_latency().is_cuda


@cuda
def test_a_short_search_runs_on_cuda() -> None:
    from controllers.oneshot.base import SearchData
    from controllers.oneshot.darts import DartsController

    space_options, supernet_options, task = SPACES["seg-hierarchical"]
    space = registry.create("space", "seg-hierarchical", space_options)
    ctl = DartsController(epochs=2, warmup_epochs=1, batch_size=4, top_k=2)
    g = torch.Generator().manual_seed(0)
    data = SearchData(images=torch.randn(16, 3, *task.input_size, generator=g),
                      targets=torch.randint(0, task.num_classes, (16, *task.input_size), generator=g))
    archs = ctl.search(space.supernet(task, **supernet_options, **ctl.supernet_options()), data, device="cuda")
    assert len(archs) == 2 and all(space.validate(a) == a for a in archs)
    assert [h["arch_updated"] for h in ctl.history] == [0.0, 1.0]
