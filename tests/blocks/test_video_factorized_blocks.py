"""Property tests of ``r2plus1d`` (search_spaces/blocks/video_factorized.py)."""

from __future__ import annotations

import pytest
import torch

from search_spaces.blocks import create_block
from search_spaces.blocks.video_factorized import r2plus1d_mid_channels


@pytest.mark.parametrize(("c_in", "c_out"), [(8, 12), (64, 64), (3, 64), (128, 256)])
def test_r2plus1d_matches_the_params_of_the_3d_conv(c_in, c_out):
    block = create_block("r2plus1d", c_in, c_out)
    m = block.mid_channels
    assert m == r2plus1d_mid_channels(c_in, c_out) == (3 * 9 * c_in * c_out) // (9 * c_in + 3 * c_out)
    weights = block.spatial.conv.weight.numel() + block.temporal.conv.weight.numel()
    full = 27 * c_in * c_out
    assert full - (9 * c_in + 3 * c_out) < weights <= full  # the floor loses less than one mid channel


def test_r2plus1d_factorises_space_then_time_and_strides_time():
    block = create_block("r2plus1d", 4, 6, stride=2, time_stride=2)
    assert tuple(block.spatial.conv.kernel_size) == (1, 3, 3) and tuple(block.temporal.conv.kernel_size) == (3, 1, 1)
    assert block(torch.randn(2, 4, 5, 9, 9)).shape == (2, 6, 3, 5, 5)
