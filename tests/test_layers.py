"""``search_spaces.layers``: activations and norms by name, the ConvNormAct unit, and the blocks'
``act=`` / ``norm=`` options across the whole catalogue."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces.blocks import all_blocks
from search_spaces.layers import (
    ACTIVATIONS,
    NORMS,
    ConvNormAct,
    create_act,
    create_norm,
    gn_groups,
)

ACT_TYPES = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU, "elu": nn.ELU,
    "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity,
}
NORM_TYPES = {
    "bn": nn.BatchNorm2d, "gn": nn.GroupNorm, "ln": nn.GroupNorm, "in": nn.InstanceNorm2d, "none": nn.Identity,
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_create_act_every_name(name):
    act = create_act(name)
    assert type(act) is ACT_TYPES[name]
    assert not getattr(act, "inplace", False)
    assert create_act(name.upper()).__class__ is act.__class__
    x = torch.randn(2, 3, 4, 4)
    assert act(x).shape == x.shape


def test_create_act_none_is_identity():
    assert isinstance(create_act(None), nn.Identity)


@pytest.mark.parametrize("name", NORMS)
def test_create_norm_every_name(name):
    norm = create_norm(name, 8)
    assert type(norm) is NORM_TYPES[name]
    x = torch.randn(2, 8, 4, 4)
    assert norm(x).shape == x.shape
    if name == "gn":
        assert norm.num_groups == gn_groups(8) == 4
    if name == "ln":
        assert norm.num_groups == 1


def test_create_norm_dims():
    assert isinstance(create_norm("bn", 4, dims=1), nn.BatchNorm1d)
    assert isinstance(create_norm("bn", 4, dims=3), nn.BatchNorm3d)
    assert isinstance(create_norm("in", 4, dims=3), nn.InstanceNorm3d)
    assert not create_norm("bn", 4, affine=False).affine
    assert isinstance(create_norm(None, 4), nn.Identity)


@pytest.mark.parametrize(
    "make, accepted",
    [(lambda: create_act("mish2"), ACTIVATIONS), (lambda: create_norm("batch", 8), NORMS)],
)
def test_bad_name_is_one_line_value_error(make, accepted):
    with pytest.raises(ValueError) as info:
        make()
    msg = str(info.value)
    assert "\n" not in msg and "accepted" in msg
    assert all(name in msg for name in accepted)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_norm_act_shapes(dims, stride):
    unit = ConvNormAct(4, 6, 3, stride, dims=dims)
    x = torch.randn(2, 4, *([5, 9, 7] if dims == 3 else [9, 7]))
    y = unit(x)
    expected = [-(-s // stride) for s in x.shape[2:]]
    assert list(y.shape) == [2, 6, *expected]
    conv_type, bn_type = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    assert [type(m) for m in unit] == [conv_type, bn_type, nn.ReLU]
    assert unit.conv is unit[0] and unit.norm is unit[1]


def test_conv_norm_act_layout_and_bias():
    assert ConvNormAct(4, 6).conv.bias is None
    assert ConvNormAct(4, 6, norm="none").conv.bias is not None
    assert ConvNormAct(4, 6, norm="gn", bias=True).conv.bias is not None
    assert len(ConvNormAct(4, 6, act=None)) == 2 and len(ConvNormAct(4, 6, act="none")) == 2
    # keys of the nn.Sequential(conv, BN, ReLU) the blocks used before
    assert sorted(ConvNormAct(4, 6).state_dict()) == sorted(
        nn.Sequential(nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU()).state_dict()
    )
    dilated = ConvNormAct(4, 6, (1, 3, 5), dilation=(1, 2, 1), dims=3)
    assert dilated.conv.padding == (0, 2, 2)
    ready = nn.Conv3d(4, 6, 1)
    assert ConvNormAct(4, 6, conv=ready, dims=3, norm="gn").conv is ready


def _blocks_with(option: str):
    return [pytest.param(spec, id=spec.name) for spec in all_blocks() if option in spec.options]


def _run(spec, **kw) -> nn.Module:
    torch.manual_seed(0)
    block = spec.create(8, 12, **{**spec.test_kwargs, **kw})
    out = block(*spec.example_inputs(8, batch=2, height=9, width=11, frames=3))
    outs = out if isinstance(out, (tuple, list)) else [out]
    assert all(torch.isfinite(o).all() for o in outs if isinstance(o, torch.Tensor))
    return block


@pytest.mark.parametrize("spec", _blocks_with("act"))
def test_block_act_option(spec):
    block = _run(spec, act="silu")
    assert any(isinstance(m, nn.SiLU) for m in block.modules()), spec.name


@pytest.mark.parametrize("spec", _blocks_with("norm"))
def test_block_norm_option(spec):
    block = _run(spec, norm="gn")
    assert any(isinstance(m, nn.GroupNorm) for m in block.modules()), spec.name


def test_catalogue_blocks_take_act_and_norm():
    with_both = {s.name for s in all_blocks() if {"act", "norm"} <= set(s.options)}
    expected = {
        "inception", "factorized_conv", "blaze", "double_blaze", "dense_block", "gated_residual",
        "coord_channels", "aspp", "ppm", "fpa", "mict", "fast3d", "slowfast", "st_attention",
    }
    assert expected <= with_both, sorted(expected - with_both)
    darts_ops = {"conv", "dil_conv", "sep_conv"}  # the DARTS ops fix ReLU -> conv -> BN
    assert not darts_ops & {s.name for s in all_blocks() if "act" in s.options}
