"""The seg-unet test space: decisions, shapes for any input size, and what each decision builds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from automl.types import Task
from search_spaces.seg_unet import BLOCKS, SegUNetSpace

SPACE = SegUNetSpace()


def arch(**kw):
    base = {"depth": 2, "width": 8, "block1": "conv3", "block2": "conv3", "block3": "conv3", "skip": "on"}
    return {**base, **kw}


def test_decisions_and_size():
    names = [d.name for d in SPACE.decisions()]
    assert names == ["depth", "width", "block1", "block2", "block3", "skip"]
    assert SPACE.size() == 3 * 3 * 3**3 * 2
    assert SPACE.offers == frozenset({"decisions"})
    assert SPACE.default_task == Task(kind="segmentation", in_channels=3, input_size=(32, 32), num_classes=5)


@pytest.mark.parametrize("depth,skip", list(itertools.product((1, 2, 3), ("on", "off"))))
@pytest.mark.parametrize("size", [(32, 32), (33, 47), (17, 9)])
def test_output_matches_input_size(depth, skip, size):
    model = SPACE.build(arch(depth=depth, skip=skip, block2="sep3", block3="dil3"))
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)


def test_every_block_and_width_builds_and_trains():
    task = Task(kind="segmentation", in_channels=1, input_size=(15, 15), num_classes=3)
    for block, width in zip(BLOCKS, (8, 16, 24)):
        model = SPACE.build(arch(depth=3, width=width, block1=block, block2=block, block3=block), task)
        out = model(torch.randn(2, 1, 15, 15))
        assert out.shape == (2, 3, 15, 15)
        out.mean().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_decisions_change_the_network():
    def n_params(a):
        return sum(p.numel() for p in SPACE.build(a).parameters())

    assert n_params(arch(depth=3)) > n_params(arch(depth=2)) > n_params(arch(depth=1))
    assert n_params(arch(width=16)) > n_params(arch(width=8))
    assert n_params(arch(skip="on")) > n_params(arch(skip="off"))  # the fuse conv sees the concatenated skip
    sep = SPACE.build(arch(block1="sep3"))
    assert any(isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1 for m in sep.modules())
    dil = SPACE.build(arch(block1="dil3"))
    assert any(isinstance(m, nn.Conv2d) and m.dilation == (2, 2) for m in dil.modules())


def test_skip_off_has_no_concatenation():
    model = SPACE.build(arch(depth=2, skip="off")).eval()
    assert [up.skip for up in model.decoder] == [False]
    assert model.decoder[0].fuse[0].in_channels == 8


def test_sample_mutate_validate():
    rng = np.random.default_rng(0)
    a = SPACE.sample(rng)
    assert SPACE.validate(a) == a
    b = SPACE.mutate(a, rng)
    assert sum(a[k] != b[k] for k in a) == 1
    with pytest.raises(ValueError, match="depth=4"):
        SPACE.build(arch(depth=4))
    with pytest.raises(ValueError, match="segmentation"):
        SPACE.build(arch(), Task(kind="classification"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_built_model_is_plain_and_scriptable():
    model = SPACE.build(arch(depth=3, block2="sep3")).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 21, 19)
    torch.testing.assert_close(scripted(x), model(x))
