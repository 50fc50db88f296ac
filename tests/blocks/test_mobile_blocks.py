"""Property tests of the mobile blocks (``mbconv``); generic checks are in ``test_catalogue.py``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces.blocks import create_block
from search_spaces.blocks.attention import SqueezeExcitation
from search_spaces.blocks.mobile import MBConv


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_mbconv_identity_path_when_stride_1_and_same_width():
    block = create_block("mbconv", 8, 8, expansion=6).eval()
    with torch.no_grad():
        block.project.norm.weight.zero_()  # the residual branch now outputs 0 (bias is 0 too)
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(block(x), x)
    assert not create_block("mbconv", 8, 8, stride=2).residual
    assert not create_block("mbconv", 8, 16).residual


@pytest.mark.parametrize(("stride", "size", "out"), [(1, 9, 9), (2, 9, 5), (2, 1, 1)])
def test_mbconv_shapes(stride, size, out):
    block = create_block("mbconv", 4, 12, stride=stride, kernel_size=7, expansion=3)
    assert block(torch.randn(2, 4, size, size)).shape == (2, 12, out, out)


def test_mbconv_expansion_1_has_no_expand_conv_and_a_linear_projection():
    block = MBConv(16, 24, expansion=1)
    assert isinstance(block.expand, nn.Identity)
    assert block.depthwise.conv.groups == 16 and block.depthwise.conv.in_channels == 16
    assert len(block.project) == 2  # conv + norm, no activation
    wide = MBConv(16, 24, expansion=6)
    assert wide.expand.conv.out_channels == 96 and wide.depthwise.conv.groups == 96


def test_mbconv_se_width_comes_from_the_input_channels():
    block = MBConv(16, 16, expansion=6, se_ratio=0.25)
    assert isinstance(block.se, SqueezeExcitation)
    assert block.se.fc1.in_channels == 96 and block.se.fc1.out_channels == 4  # int(16 * 0.25)
    assert isinstance(MBConv(16, 16).se, nn.Identity)
    assert MBConv(2, 2, se_ratio=0.1).se.fc1.out_channels == 1


def test_mbconv_dilation_and_activation_options():
    block = MBConv(4, 4, kernel_size=3, dilation=2, act="silu", norm="gn")
    assert block.depthwise.conv.dilation == (2, 2) and isinstance(block.depthwise[2], nn.SiLU)
    assert block(torch.randn(1, 4, 7, 7)).shape == (1, 4, 7, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"expansion": 0}, "expansion"), ({"kernel_size": 4}, "kernel_size"), ({"se_ratio": 2.0}, "se_ratio"),
     ({"act": "nope"}, "activation")],
)
def test_mbconv_bad_options_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        MBConv(4, 4, **kwargs)
    assert len(str(err.value).splitlines()) == 1
