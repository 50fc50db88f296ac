"""The seg-unet encoder-decoder family: decisions, every value built, shapes for any input size,
presets (the plain U-Net unchanged), deep supervision, catalogue coverage, text and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from automl.export import check_parity, export_model
from automl.types import Task, arch_key
from evaluators.data import load_dataset
from evaluators.train import AUX_WEIGHT, _aux_loss
from search_spaces.blocks import get_block
from search_spaces.layers import ConvNormAct
from search_spaces.seg_unet import MAX_DEPTH, SegUNetSpace

SPACE = SegUNetSpace()
UNET = SegUNetSpace.presets()["unet"]
PRESETS = ["unet", "unet++", "attention-unet", "icnet", "pan", "deeplab-aspp", "panoptic-fpn-semantic", "dla-seg"]


def arch(**kw):
    return SPACE.validate({**UNET, "width": 8, **kw})


def outputs(out):
    return out if isinstance(out, tuple) else (out,)


def test_decisions_presets_and_task():
    names = [d.name for d in SPACE.decisions()]
    assert names == ["depth", "width", "widen", "block1", "block2", "block3", "block4", "skip1", "skip2", "skip3",
                     "context", "aggregation", "coord", "cascade", "deep_supervision"]
    assert SPACE.offers == frozenset({"decisions"})
    assert SPACE.default_task == Task(kind="segmentation", in_channels=3, input_size=(32, 32), num_classes=5)
    assert list(SPACE.presets()) == PRESETS
    assert all(SPACE.preset(p) == SPACE.presets()[p] for p in PRESETS)


def test_unet_preset_is_the_plain_unet():
    """depth 3, width 24 (24/48/96), one 3x3 conv-BN-ReLU per level, concat skips, 1x1 head: the
    network the segmentation searches compare against (115,925 parameters as before the family)."""
    model = SPACE.build(UNET)
    assert [type(m) for m in model.encoder.levels] == [ConvNormAct] * 3
    assert [step.block.kind for step in model.decoder.steps] == ["concat", "concat"]
    assert [step.block.block.conv.in_channels for step in model.decoder.steps] == [96, 48]  # reduced + skip
    assert isinstance(model.head, nn.Conv2d) and len(model.aux_heads) == 0 and len(model.branches) == 0
    assert sum(p.numel() for p in model.parameters()) == 115_925


def _uses(d: str, value) -> dict:
    """Decisions that make the network use ``d=value`` (a skip needs a level below it, no FPN)."""
    if d.startswith("block"):
        return {"depth": max(2, int(d[5:]))}
    if d.startswith("skip"):
        return {"depth": int(d[4:]) + 1, "aggregation": "concat"}
    return {}


CASES = [(d.name, v) for d in SPACE.decisions() for v in d.choices]


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_every_decision_value_builds_and_trains(name, value):
    rng = np.random.default_rng(CASES.index((name, value)))
    a = SPACE.validate({**SPACE.sample(rng), "width": 8, **_uses(name, value), name: value})
    torch.manual_seed(0)
    model = SPACE.build(a, Task("segmentation", 1, (33, 45), 3))
    x = torch.randn(2, 1, 33, 45)
    outs = outputs(model(x))
    assert all(o.shape == (2, 3, 33, 45) for o in outs), SPACE.describe(a)
    sum(o.mean() for o in outs).backward()
    assert all(math.isfinite(p.grad.abs().sum().item()) for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        assert model.eval()(x[:1, :, :17, :9]).shape == (1, 3, 17, 9)


def test_decisions_change_the_network():
    def n_params(**kw):
        return sum(p.numel() for p in SPACE.build(arch(**kw)).parameters())

    assert n_params(depth=4) > n_params(depth=3) > n_params(depth=2)
    assert n_params(width=16) > n_params(width=8) and n_params(widen=2) > n_params(widen=1.5)
    assert n_params(skip1="concat") > n_params(skip1="none")  # the fuse conv sees the concatenated skip
    assert n_params(depth=2, block3="dense_block") == n_params(depth=2)  # levels beyond the depth are unused
    assert n_params(depth=2, skip2="nested") == n_params(depth=2)
    dil = SPACE.build(arch(block1="dil_conv"))
    assert any(isinstance(m, nn.Conv2d) and m.dilation == (2, 2) for m in dil.modules())


def test_block_choices_build_the_block():
    choices = SPACE.block_choices()
    assert len(choices) == 33 and "conv" in choices and "nested_skip" in choices and "fpn" in choices
    for name, a in choices.items():
        model = SPACE.build(a)
        assert any(isinstance(m, get_block(name).cls) for m in model.modules()), name
        assert model(torch.randn(2, 3, 20, 28)).shape == (2, 5, 20, 28), name


@pytest.mark.parametrize(("kw", "n_aux"), [
    ({"depth": 4}, 3), ({"depth": 2}, 1), ({"depth": 3, "cascade": 3}, 2 + 2), ({"depth": 3, "aggregation": "fpn"}, 2),
])
def test_deep_supervision_only_in_training(kw, n_aux):
    model = SPACE.build(arch(deep_supervision="on", **kw))
    x = torch.randn(2, 3, 33, 45)
    out = model.train()(x)
    assert isinstance(out, tuple) and len(out) == 1 + n_aux
    assert all(o.shape == (2, 5, 33, 45) for o in out)
    assert isinstance(model.eval()(x), torch.Tensor)
    plain = SPACE.build(arch(**kw)).train()
    assert isinstance(plain(x), torch.Tensor)


def test_aux_loss_weights_every_further_output():
    y = torch.randint(0, 5, (2, 8, 8))
    main, aux = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 4, 4)
    ce = nn.CrossEntropyLoss()
    expected = AUX_WEIGHT * ce(nn.functional.interpolate(aux, size=(8, 8), mode="bilinear"), y)
    assert torch.allclose(_aux_loss((main, aux), y, ce), expected)
    assert _aux_loss(main, y, ce) == 0.0


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_takes_a_training_step_on_shapes(preset):
    data = load_dataset("shapes", num_samples=16)
    x, y = data.batch("train", slice(0, 4))
    torch.manual_seed(0)
    model = SPACE.build(SPACE.preset(preset), data.task).train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    out = model(x)
    ce = nn.CrossEntropyLoss()
    loss = ce(outputs(out)[0], y) + _aux_loss(out, y, ce)
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item())
    assert sum(not torch.equal(b, p) for b, p in zip(before, model.parameters())) > len(before) // 2


def test_unet_exports_with_parity(tmp_path):
    """TorchScript (trace) and torch.export of the reference network; every preset and ONNX are
    checked in tests/test_seg_unet_presets.py (slow)."""
    model = SPACE.build(UNET).eval()
    x = torch.randn(2, 3, 32, 32)
    files = export_model(model, x, tmp_path, ["torchscript", "pt2"])
    parity = check_parity(model, files, {"batch2": x, "batch3": torch.randn(3, 3, 32, 32)})
    assert max(v for fmt in parity.values() for v in fmt.values()) < 1e-5


def test_describe_parse_round_trip():
    rng = np.random.default_rng(0)
    for a in [*(SPACE.preset(p) for p in PRESETS), *(SPACE.sample(rng) for _ in range(20))]:
        assert SPACE.parse(SPACE.describe(a)) == a
        assert SPACE.parse(arch_key(a)) == a
    text = SPACE.describe(UNET)
    assert text.startswith("depth=3 width=24 widen=2 blocks=conv3/conv3/conv3/(conv3) skips=concat/concat/(concat)")


def test_sample_mutate_validate():
    rng = np.random.default_rng(0)
    a = SPACE.sample(rng)
    assert SPACE.validate(a) == a
    b = SPACE.mutate(a, rng)
    assert sum(a[k] != b[k] for k in a) == 1
    assert arch_key(SPACE.validate({**UNET, "widen": 2.0})) == arch_key(UNET)  # one identity per value
    assert len([d for d in SPACE.decisions() if d.name.startswith("block")]) == MAX_DEPTH


@pytest.mark.parametrize(("call", "message"), [
    (lambda: SPACE.build({**UNET, "depth": 5}), r"depth=5 is not one of \[2, 3, 4\]"),
    (lambda: SPACE.build({**UNET, "block1": "sep3"}), r"block1='sep3' is not one of \['conv3', 'conv'"),
    (lambda: SPACE.build({"depth": 3}), "missing"),
    (lambda: SPACE.build({**UNET, "skip": "on"}), r"unknown \['skip'\]"),
    (lambda: SPACE.parse("depth=3 width"), "expected KEY=VALUE"),
    (lambda: SPACE.parse(SPACE.describe(UNET).replace("context=none", "context=psp")), "context='psp'"),
    (lambda: SPACE.build(UNET, Task(kind="classification")), "segmentation"),
])
def test_bad_arch_is_a_one_line_value_error(call, message):
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert len(str(err.value).splitlines()) == 1
