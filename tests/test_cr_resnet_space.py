"""The cr-resnet space: allocations, equal FLOPs, shapes, supernet = standalone, text and errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from automl.types import Task
from search_spaces.cr_resnet import (
    CRResNetSpace,
    alloc_name,
    allocations,
    baseline_allocation,
    parse_alloc,
)
from search_spaces.cr_resnet.allocations import CANDIDATES
from search_spaces.supernet.single_path import SinglePathSupernet

SIZE = (
    32,
    32,
)  # a multiple of 32: every stage quarters the area exactly (equal block FLOPs)
TASKS = {
    "classification": Task("classification", 3, SIZE, 7),
    "segmentation": Task("segmentation", 3, SIZE, 5),
}


def small(**options) -> CRResNetSpace:
    return CRResNetSpace(**{"width": 4, "head_channels": 8, **options})


def flops(model: torch.nn.Module, x: torch.Tensor, *args) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, *args)
    return counter.get_total_flops()


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


# -- allocations ------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "count"), [(8, 9), (16, 153), (33, 374)])
def test_allocations_are_every_valid_tau(n, count):
    valid = allocations(n)
    brute = [
        t
        for t in itertools.product(range(1, 24), repeat=4)
        if sum(t) == n and all(map(tuple.__contains__, CANDIDATES, t))
    ]
    assert valid == sorted(valid) == brute and len(valid) == count == len(set(valid))
    assert baseline_allocation(n) in valid
    assert all(
        sum(t) == n and all(t[s] in CANDIDATES[s] for s in range(4)) for t in valid
    )


def test_baselines():
    known = [(2, 2, 2, 2), (3, 4, 6, 3), (3, 4, 23, 3)]
    assert [baseline_allocation(n) for n in (8, 16, 33)] == known
    for n in (6, 12, 17, 24, 60):
        target = [t * n / 16 for t in (3, 4, 6, 3)]
        best = min(sum(abs(a - b) for a, b in zip(t, target)) for t in allocations(n))
        assert sum(abs(a - b) for a, b in zip(baseline_allocation(n), target)) == best
    for n in (5, 61, 0):
        with pytest.raises(ValueError, match="blocks must be an integer in 6..60"):
            baseline_allocation(n)


def test_alloc_names():
    assert alloc_name((3, 4, 6, 3)) == "3-4-6-3"
    assert parse_alloc(" 10-1-2-17 ") == (10, 1, 2, 17)
    for bad in ("3-4-6", "3-4-x-3", "3-4-7-3", "0-4-6-3", "3,4,6,3"):
        with pytest.raises(ValueError, match="tau3 in") as err:
            parse_alloc(bad)
        assert "\n" not in str(err.value)


# -- FLOPs ------------------------------------------------------------------------------------
def stage_flops(net, x: torch.Tensor) -> tuple[int, list[tuple[int, int]]]:
    """(stem + head FLOPs, per stage (first block, any later block)) of a supernet."""
    fixed, per_stage, features = flops(net.stem, x), [], []
    with torch.no_grad():
        h = net.stem(x)
        for stage in net.stages:
            first = flops(stage[0], h)
            h = stage[0](h)
            per_stage.append((first, flops(stage[1], h)))
            features.append(h)
    return fixed + flops(net.head, features, SIZE), per_stage


@pytest.mark.parametrize("kind", list(TASKS))
@pytest.mark.parametrize("block", ["bottleneck", "basic"])
def test_every_allocation_costs_the_same_flops(block, kind):
    space, task = small(block=block), TASKS[kind]
    x = torch.randn(1, 3, *SIZE)
    net = space.single_path_supernet(task).eval()
    fixed, per_stage = stage_flops(net, x)
    total = {
        a: fixed + sum(f + (t - 1) * r for t, (f, r) in zip(a, per_stage))
        for a in allocations(16)
    }
    base = total[(3, 4, 6, 3)]
    assert max(abs(v - base) for v in total.values()) <= 0.01 * base
    whole = [(3, 4, 6, 3), (1, 1, 3, 11), (10, 2, 2, 2), (1, 10, 3, 2), (2, 2, 5, 7)]
    for alloc in whole:  # whole networks, standalone and in the supernet
        arch = space.arch(alloc)
        assert flops(space.build(arch, task).eval(), x) == total[alloc]
        net.activate(arch)
        assert flops(net, x) == total[alloc]


def test_dilation_changes_neither_params_nor_flops():
    space, task = small(), TASKS["segmentation"]
    x = torch.randn(1, 3, *SIZE)
    nets = [
        space.build(space.arch((3, 4, 6, 3), (d,) * 16), task).eval() for d in (1, 2, 3)
    ]
    mixed = space.build(
        space.sample(np.random.default_rng(3)) | {"alloc": "3-4-6-3"}, task
    ).eval()
    assert len({sum(p.numel() for p in m.parameters()) for m in [*nets, mixed]}) == 1
    assert len({flops(m, x) for m in [*nets, mixed]}) == 1
    convs = [
        m
        for m in nets[2].stages.modules()
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert len(convs) == 16
    assert {(m.dilation, m.padding) for m in convs} == {((3, 3), (3, 3))}


# -- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stem_stride", [1, 2, 4])
def test_output_shapes(stem_stride):
    arch = small().arch((1, 2, 6, 7), (2,) * 16)
    for kind, head in [
        ("classification", "fpn"),
        ("segmentation", "fpn"),
        ("segmentation", "aspp"),
    ]:
        task = TASKS[kind]
        model = small(stem_stride=stem_stride, head=head).build(arch, task).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 28))
        assert out.shape == ((2, 7) if kind == "classification" else (2, 5, 32, 28))


def test_basic_blocks_and_training_step():
    space = small(block="basic", head="aspp", blocks=8)
    model = space.build(space.sample(np.random.default_rng(0)), TASKS["segmentation"])
    stride8 = small(block="basic", head="aspp", blocks=8, stem_stride=1).build(
        space.sample(np.random.default_rng(0)), TASKS["segmentation"]
    )
    rates = [b[0].dilation[0] for b in stride8.head.aspp.branches if b[0].kernel_size == (3, 3)]
    assert rates == [1, 1, 2]  # 6/12/18 x 16/8 x 32/513 on 32x32 images, not 12/24/36 on a 4x4 map
    out = model(torch.randn(2, 3, *SIZE))
    out.mean().backward()
    assert out.shape == (2, 5, *SIZE)
    assert all(p.grad is not None for p in model.parameters())


# -- supernet ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "head"),
    [("segmentation", "fpn"), ("segmentation", "aspp"), ("classification", "fpn")],
)
def test_supernet_runs_the_standalone_network(kind, head):
    space, task = small(head=head), TASKS[kind]
    torch.manual_seed(0)
    net = space.single_path_supernet(task)
    assert isinstance(net, SinglePathSupernet)
    assert net.active == [3, 4, 6, 3]  # the baseline runs before any activate
    randomise_bn(net)
    net.eval()
    x = torch.randn(2, 3, *SIZE)
    rng = np.random.default_rng(0)
    for arch in [space.reallocation().baseline, *(space.sample(rng) for _ in range(3))]:
        net.activate(arch)
        model = space.build(arch, task).eval()
        model.load_state_dict(net.subnet_state(arch), strict=True)
        with torch.no_grad():
            assert torch.equal(net(x), model(x))


def test_supernet_shares_blocks_across_allocations():
    space = small()
    net = space.single_path_supernet(TASKS["segmentation"])
    assert [len(s) for s in net.stages] == [10, 10, 11, 11]
    a, b = space.arch((1, 1, 3, 11)), space.arch((10, 2, 2, 2))
    assert "stages.3.10.body.0.0.weight" in net.subnet_state(a)
    assert "stages.3.2.body.0.0.weight" not in net.subnet_state(b)
    assert "stages.0.9.body.0.0.weight" in net.subnet_state(b)
    shared = net.subnet_state(a)["stages.2.1.body.1.0.weight"]
    assert shared.data_ptr() == net.stages[2][1].body[1].conv.weight.data_ptr()
    with pytest.raises(TypeError, match="takes no options"):
        space.single_path_supernet(TASKS["segmentation"], width=8)


def test_reallocation_levels():
    space = CRResNetSpace(blocks=8)
    levels = space.reallocation()
    assert levels.allocation.name == "alloc" and len(levels.allocation.choices) == 9
    assert [d.name for d in levels.dilations] == [f"d{k}" for k in range(8)]
    assert levels.baseline == space.preset("baseline") == space.arch((2, 2, 2, 2))
    assert [d.name for d in CRResNetSpace().decisions()][1:3] == ["d00", "d01"]
    assert len(CRResNetSpace(blocks=33).reallocation().dilations) == 33


# -- text -------------------------------------------------------------------------------------
def test_describe_parse_round_trip():
    space = CRResNetSpace()
    arch = space.arch((3, 4, 6, 3), (1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1))
    assert space.describe(arch) == "3-4-6-3 d:111-2111-111113-111"
    rng = np.random.default_rng(1)
    for a in [arch, *(space.sample(rng) for _ in range(5))]:
        assert space.parse(space.describe(a)) == a == space.parse(json.dumps(a))
    resnet50 = CRResNetSpace.presets()["resnet50-alloc"]
    assert space.parse("resnet50-alloc") == space.parse("baseline") == resnet50
    assert set(CRResNetSpace(blocks=8).preset_names()) == {"baseline"}
    with pytest.raises(KeyError):
        CRResNetSpace(blocks=8).preset("resnet50-alloc")


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"blocks": 5},
        {"blocks": "16"},
        {"block": "bottle"},
        {"width": 0},
        {"stem_stride": 3},
        {"stem_stride": True},
        {"head": "psp"},
        {"head_channels": -1},
    ],
)
def test_bad_options(options):
    with pytest.raises(ValueError, match="cr-resnet: ") as err:
        CRResNetSpace(**options)
    assert "\n" not in str(err.value)
    with pytest.raises(TypeError):
        CRResNetSpace(depth=3)


def test_bad_archs():
    space = CRResNetSpace(blocks=8)
    good = space.preset("baseline")
    bad_archs = [
        good | {"alloc": "3-4-6-3"},
        good | {"alloc": [2, 2, 2, 2]},
        good | {"d3": 4},
        {"alloc": "2-2-2-2"},
        good | {"x": 1},
    ]
    bad_texts = [
        "2-2-2-2 d:11-11-11-1",
        "3-4-6-3 d:111-1111-111111-111",
        "2-2-2-2 d:11-11-11-14",
        "nonsense",
        "{",
    ]
    for make in [
        *(lambda a=a: space.validate(a) for a in bad_archs),
        *(lambda t=t: space.parse(t) for t in bad_texts),
        lambda: space.build(good, Task("video", 3, (4, 32, 32), 5)),
    ]:
        with pytest.raises(ValueError) as err:
            make()
        assert "\n" not in str(err.value)
