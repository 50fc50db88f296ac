"""Property tests of the 'Video' table of docs/algorithms.md Block notes (last column), one or more per block.

Shapes at stride 1/2, gradients, eval determinism and torch.export are covered for every block by
``test_catalogue.py``; here each block's own claim is checked on small clips.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks import create_block, get_block
from search_spaces.blocks.video import (
    CoST,
    FAST3D,
    GSTConv,
    InflatedConv3d,
    MiCTBlock,
    SlowFastBlock,
    STAttention,
    TemporalBilinear,
    TemporalTransition,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomise_bn(module: nn.Module) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def _per_frame(fn, clip: torch.Tensor) -> torch.Tensor:
    """Apply a 2D map to every frame of ``[N,C,T,H,W]`` and restack along T."""
    return torch.stack([fn(clip[:, :, t]) for t in range(clip.shape[2])], dim=2)


# ---------------------------------------------------------------- inflated_conv3d


@pytest.mark.parametrize("time_kernel", [2, 3, 5])
def test_inflated_conv3d_constant_clip_equals_conv2d(time_kernel):
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True)
    bn = nn.BatchNorm2d(6)
    _randomise_bn(bn)
    block = InflatedConv3d.from_conv2d(conv, time_kernel=time_kernel, bn=bn).eval()
    bn.eval()
    image = torch.randn(2, 4, 9, 11)
    clip = image.unsqueeze(2).expand(-1, -1, 5, -1, -1)
    with torch.no_grad():
        out = block(clip)
        ref = F.relu(bn(conv(image)))
    assert out.shape == (2, 6, 5, 5, 6)
    for t in range(5):
        torch.testing.assert_close(out[:, :, t], ref, rtol=1e-5, atol=1e-5)
    w3 = block.conv.conv.weight
    assert w3.shape == (6, 4, time_kernel, 3, 3)
    torch.testing.assert_close(w3.sum(dim=2), conv.weight)  # weights / T, repeated T times


def test_inflated_conv3d_zero_padding_exact_on_interior_frames_only():
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    block = InflatedConv3d.from_conv2d(conv, time_kernel=3, temporal_padding="zeros").eval()
    image = torch.randn(1, 3, 7, 7)
    clip = image.unsqueeze(2).expand(-1, -1, 4, -1, -1)
    with torch.no_grad():
        out = block(clip)
        ref = block.relu(block.bn(conv(image).unsqueeze(2)))[:, :, 0]
    for t in (1, 2):
        torch.testing.assert_close(out[:, :, t], ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[:, :, 0], ref, atol=1e-3)  # edge frame sees a zero frame


def test_inflated_conv3d_rejects_conv_without_same_padding():
    with pytest.raises(ValueError):
        InflatedConv3d.from_conv2d(nn.Conv2d(3, 5, 3, padding=0))
    with pytest.raises(ValueError):
        InflatedConv3d.from_conv2d(nn.Conv2d(4, 4, 3, padding=1, groups=2))


# ---------------------------------------------------------------- temporal_transition


def test_temporal_transition_channels_are_sum_of_branches():
    block = TemporalTransition(6, 14, stride=2, depths=(1, 3, 6), branch_channels=(5, 2, 7)).eval()
    _randomise_bn(block)
    assert [b.conv.weight.shape[2] for b in block.branches] == [1, 3, 6]  # temporal depths
    assert [b.conv.out_channels for b in block.branches] == [5, 2, 7]
    for frames in (1, 4, 7):
        x = torch.randn(2, 6, frames, 9, 11)
        with torch.no_grad():
            out = block(x)
            pre = block.pre(x)
            parts = [block.pool(b(pre)) for b in block.branches]
        assert out.shape == (2, 14, frames, 5, 6)
        torch.testing.assert_close(out, torch.cat(parts, dim=1))  # concat of the branches, in order
    default = TemporalTransition(8, 12)
    assert default.branch_channels == [4, 4, 4] and sum(default.branch_channels) == 12
    with pytest.raises(ValueError):
        TemporalTransition(8, 12, branch_channels=(4, 4, 5))


# ---------------------------------------------------------------- mict


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("time_stride", [1, 2])
def test_mict_shapes_align_for_any_T(frames, time_stride):
    block = MiCTBlock(4, 6, stride=2, time_stride=time_stride)
    out = block(torch.randn(2, 4, frames, 9, 11))
    assert out.shape == (2, 6, math.ceil(frames / time_stride), 5, 6)


def test_mict_without_3d_branch_is_per_frame():
    block = MiCTBlock(4, 6).eval()
    _randomise_bn(block)
    with torch.no_grad():
        block.conv3d[0].conv.weight.zero_()
    x = torch.randn(1, 4, 5, 7, 8)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        # only the 2D cross-domain residual and the serial 2D convs remain: frames independent
        torch.testing.assert_close(block(x[:, :, perm]), block(x)[:, :, perm])
        block.conv3d[0].conv.weight.normal_()
        assert not torch.allclose(block(x[:, :, perm]), block(x)[:, :, perm], atol=1e-3)


# ---------------------------------------------------------------- fast3d


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("c_in,c_out", [(8, 12), (16, 16), (1, 64), (64, 1), (3, 5)])
def test_fast3d_fewer_params_than_3x3x3(c_in, c_out, parallel):
    block = FAST3D(c_in, c_out, parallel=parallel)
    full = nn.Sequential(nn.Conv3d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm3d(c_out))
    assert _params(block) < _params(full)
    m = block.mid_channels
    assert block.spatial[0].conv.weight.shape == (m, c_in, 1, 3, 3)  # HW plane
    assert block.horizontal[0].conv.weight.shape[2:] == (3, 1, 3)  # TW plane
    assert block.vertical[0].conv.weight.shape[2:] == (3, 3, 1)  # TH plane
    out = block(torch.randn(1, c_in, 3, 5, 6))
    assert out.shape == (1, c_out, 3, 5, 6)


def test_fast3d_planes_are_applied_in_order():
    block = FAST3D(2, 3, mid_channels=2).eval()
    calls = []
    for name in ("spatial", "horizontal", "vertical"):
        getattr(block, name).register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    block(torch.randn(1, 2, 3, 5, 5))
    assert calls == ["spatial", "horizontal", "vertical"]


# ---------------------------------------------------------------- cost


@pytest.mark.parametrize("attention", [True, False])
def test_cost_view_weights_sum_to_one(attention):
    block = CoST(4, 6, attention=attention)
    if not attention:
        with torch.no_grad():
            block.view_logits.normal_()
    x = torch.randn(3, 4, 5, 7, 8)
    alpha = block.view_weights(x)
    assert alpha.shape == (3, 3, 6)
    assert (alpha > 0).all()
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(3, 6))
    # a single shared 2D kernel carries all the convolution weights
    conv_like = [p for p in block.parameters() if p.dim() >= 4]
    assert len(conv_like) == 1 and conv_like[0].shape == (6, 4, 3, 3)


def test_cost_views_share_one_kernel_on_three_planes():
    block = CoST(3, 4)
    w = block.weight
    x = torch.randn(2, 3, 5, 6, 7)
    with torch.no_grad():
        hw, tw, th = block.views(x).unbind(dim=1)
        # HW view: the 2D conv on every frame
        torch.testing.assert_close(hw, _per_frame(lambda f: F.conv2d(f, w, padding=1), x))
        # TW view: the same 2D conv on every (T, W) slice at fixed h
        for h in range(x.shape[3]):
            torch.testing.assert_close(tw[:, :, :, h], F.conv2d(x[:, :, :, h], w, padding=1))
        # TH view: the same 2D conv on every (T, H) slice at fixed w
        for col in range(x.shape[4]):
            torch.testing.assert_close(th[..., col], F.conv2d(x[..., col], w, padding=1))


# ---------------------------------------------------------------- gst


@pytest.mark.parametrize("c_out,alpha,temporal", [(16, 4, 4), (12, 4, 3), (12, 2, 6), (8, 8, 1)])
def test_gst_split_ratio_respected(c_out, alpha, temporal):
    block = GSTConv(8, c_out, alpha=alpha)
    assert block.temporal.conv.out_channels == temporal
    assert block.spatial.conv.out_channels == c_out - temporal
    assert block.spatial.conv.in_channels == 4 and block.temporal.conv.in_channels == 4  # beta=2
    assert block.spatial.conv.weight.shape[2] == 1 and block.temporal.conv.weight.shape[2] == 3
    shared = GSTConv(8, c_out, alpha=alpha, beta=1)
    assert shared.spatial.conv.in_channels == 8 and shared.temporal.conv.in_channels == 8


def test_gst_groups_behave_as_2d_and_3d():
    block = GSTConv(8, 16).eval()
    _randomise_bn(block)
    cs = block.c_spatial  # 12 spatial channels first, then 4 temporal ones
    x = torch.randn(1, 8, 5, 6, 7)
    with torch.no_grad():
        base = block(x)
        moved = x.clone()
        moved[:, :, 3] += torch.randn_like(moved[:, :, 3])  # change frame 3 only
        out = block(moved)
        # frame 2: spatial group sees only frame 2, temporal group sees frames 1..3
        torch.testing.assert_close(out[:, :cs, 2], base[:, :cs, 2])
        assert not torch.allclose(out[:, cs:, 2], base[:, cs:, 2])
        # beta=2: the temporal group reads only the second half of the input channels
        first_half = x.clone()
        first_half[:, :4] += torch.randn_like(first_half[:, :4])
        torch.testing.assert_close(block(first_half)[:, cs:], base[:, cs:])


# ---------------------------------------------------------------- slowfast


def test_slowfast_fast_path_has_alpha_frames_and_beta_channels():
    block = SlowFastBlock(16, 32, stride=2, alpha=4, beta=1 / 8)
    slow = torch.randn(2, 16, 3, 9, 11)
    fast = torch.randn(2, 2, 12, 9, 11)
    slow_out, fast_out = block(slow, fast)
    assert slow_out.shape == (2, 32, 3, 5, 6)
    assert fast_out.shape == (2, 4, 12, 5, 6)
    assert fast_out.shape[2] == 4 * slow_out.shape[2]
    assert fast_out.shape[1] * 8 == slow_out.shape[1]
    # the lateral connection is time-strided by alpha onto the slow frames, 2*beta*C channels
    assert block.lateral(fast).shape == (2, 4, 3, 9, 11)
    with pytest.raises(ValueError):
        block(slow, torch.randn(2, 2, 9, 9, 11))  # not alpha * T frames


def test_slowfast_lateral_feeds_fast_into_slow_only():
    block = SlowFastBlock(16, 32, alpha=2, beta=1 / 4).eval()
    _randomise_bn(block)
    slow, fast = torch.randn(1, 16, 2, 6, 6), torch.randn(1, 4, 4, 6, 6)
    with torch.no_grad():
        s0, f0 = block(slow, fast)
        s1, f1 = block(slow, fast + torch.randn_like(fast))
        s2, f2 = block(slow + torch.randn_like(slow), fast)
    assert not torch.allclose(s0, s1)  # fast -> slow through the lateral
    torch.testing.assert_close(f0, f2)  # no slow -> fast path
    assert f1.shape[1] == 8 and s0.shape[1] == 32


def test_slowfast_registry_example_matches_defaults():
    spec = get_block("slowfast")
    block = spec.create(8, 12)
    slow, fast = spec.example_inputs(8, batch=1, height=5, width=5, frames=2)
    s, f = block(slow, fast)
    assert s.shape == (1, 12, 2, 5, 5) and f.shape == (1, 2, 8, 5, 5)


# ---------------------------------------------------------------- temporal_bilinear


@pytest.mark.parametrize("frames", [1, 2, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_temporal_bilinear_output_T_equals_input_T(frames, stride):
    block = TemporalBilinear(4, 6, stride=stride)
    out = block(torch.randn(2, 4, frames, 9, 11))
    assert out.shape == (2, 6, frames, math.ceil(9 / stride), math.ceil(11 / stride))


def test_temporal_bilinear_couples_each_frame_with_the_next():
    block = TemporalBilinear(4, 6).eval()
    _randomise_bn(block)
    x = torch.randn(1, 4, 5, 6, 7)
    with torch.no_grad():
        base = block(x)
        moved = x.clone()
        moved[:, :, 3] += torch.randn_like(moved[:, :, 3])
        out = block(moved)
        for t in (0, 1, 4):  # frames that neither are nor precede frame 3
            torch.testing.assert_close(out[:, :, t], base[:, :, t])
        for t in (2, 3):
            assert not torch.allclose(out[:, :, t], base[:, :, t])
        # the interaction term is bilinear: scaling the clip by 2 scales it by 4
        torch.testing.assert_close(block.interaction(2 * x), 4 * block.interaction(x))


# ---------------------------------------------------------------- st_attention


def test_st_attention_temporal_weights_sum_to_one():
    block = STAttention(4, 6, stride=2).eval()
    x = torch.randn(2, 4, 5, 7, 8)
    with torch.no_grad():
        out, masks, weights = block.attend(x)
        torch.testing.assert_close(out, block(x))
    assert out.shape == (2, 6, 5, 4, 4)
    assert masks.shape == (2, 1, 5, 7, 8) and ((masks > 0) & (masks < 1)).all()
    assert weights.shape == (2, 5, 5)  # [N, steps, frames]
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 5))
    assert not torch.allclose(weights[:, 0], weights[:, 1])  # recurrent state moves the attention


def test_st_attention_regularizers():
    reg = STAttention.regularizers
    flat = torch.full((1, 1, 2, 4, 4), 0.7)
    unimodal = torch.tensor([[[0.1, 0.2, 0.4, 0.2, 0.1]]])
    bimodal = torch.tensor([[[0.4, 0.05, 0.1, 0.05, 0.4]]])
    terms = reg(flat, unimodal)
    assert terms["tv"].item() == 0 and terms["unimodal"].item() == 0
    assert terms["contrast"].item() == pytest.approx(-0.35)
    assert reg(flat, bimodal)["unimodal"].item() > 0
    edge = torch.zeros(1, 1, 1, 3, 3)
    edge[..., 1:] = 1.0  # one vertical edge of height 3
    assert reg(edge, unimodal)["tv"].item() == pytest.approx(3.0)
    quarter = torch.full((1, 1, 1, 2, 2), 0.25)
    assert reg(quarter, unimodal)["contrast"].item() == pytest.approx(0.125)
    # on the block's own outputs the terms are finite and differentiable w.r.t. the mask net
    block = STAttention(4, 6)
    _, masks, weights = block.attend(torch.randn(2, 4, 4, 6, 6))
    total = sum(reg(masks, weights).values())
    total.backward()
    assert torch.isfinite(total)
    assert block.mask[1].conv.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- attention_cluster


@pytest.mark.parametrize("hidden", [32, None])
def test_attention_cluster_output_is_heads_times_dim(hidden):
    block = create_block("attention_cluster", 8, 12, heads=3, hidden=hidden)
    x = torch.randn(2, 8, 5, 6, 7)
    out = block(x)
    assert out.shape == (2, 3 * 12)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))  # shifting: unit-norm descriptor
    a = block.attention(block.frame_features(x))
    assert a.shape == (2, 3, 5)
    torch.testing.assert_close(a.sum(dim=-1), torch.ones(2, 3))
    plain = create_block("attention_cluster", 12, 12, heads=4, shifting=False)
    assert isinstance(plain.proj, nn.Identity)
    feats = plain.frame_features(torch.randn(1, 12, 4, 3, 3))
    out = plain(torch.randn(1, 12, 4, 3, 3))
    assert out.shape == (1, 48) and feats.shape == (1, 4, 12)
    with pytest.raises(ValueError):
        create_block("attention_cluster", 8, 12, stride=2)


def test_attention_cluster_default_shifting_gets_gradients():
    # the generic tests run with shifting=False (a unit-norm output has a constant square sum)
    block = create_block("attention_cluster", 8, 12)
    with torch.no_grad():
        block.beta.add_(0.1)
    x = torch.randn(2, 8, 5, 6, 7)
    (block(x) * torch.randn(2, 8 * 12)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
