"""Property tests of the 'Attention and context' blocks (property in the last column of docs/algorithms.md Block notes).

Shapes at stride 1/2, gradients, determinism and export are covered for every block by
``test_catalogue.py``; here each block's own property is checked, plus the shapes of the
non-standard (two-input / pooled-output) blocks.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from search_spaces.blocks import create_block, get_block

H, W = 9, 13  # odd sizes on purpose


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomise(block: torch.nn.Module) -> torch.nn.Module:
    """Perturb every parameter (breaks zero initialisations) and switch to eval mode."""
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block.eval()


# --- se -------------------------------------------------------------------------------------


def test_se_output_is_input_times_gate():
    block = _randomise(create_block("se", 6, 6))
    x = torch.randn(2, 6, H, W)
    gate = block.gate(x)
    assert gate.shape == (2, 6, 1, 1)
    assert (gate > 0).all() and (gate < 1).all()
    torch.testing.assert_close(block(x), x * gate)


def test_se_projects_when_widths_differ():
    block = _randomise(create_block("se", 4, 6, stride=2))
    x = torch.randn(2, 4, H, W)
    p = block.proj(x)
    torch.testing.assert_close(block(x), p * block.gate(p))
    assert block(x).shape == (2, 6, 5, 7)


# --- non_local ------------------------------------------------------------------------------


@pytest.mark.parametrize("sub_sample", [False, True])
def test_non_local_zero_init_is_identity(sub_sample):
    block = create_block("non_local", 6, 6, sub_sample=sub_sample)
    x = torch.randn(2, 6, H, W)
    for mode in (block.train, block.eval):
        mode()
        torch.testing.assert_close(block(x), x)
    _randomise(block)  # once trained, the block is no longer the identity
    out = block(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


# --- gc -------------------------------------------------------------------------------------


def test_gc_context_invariant_to_spatial_permutation():
    block = _randomise(create_block("gc", 6, 6))
    x = torch.randn(2, 6, H, W)
    perm = torch.randperm(H * W)
    xp = x.flatten(2)[:, :, perm].view_as(x)
    ctx = block.context(x)
    assert ctx.shape == (2, 6, 1, 1)
    torch.testing.assert_close(block.context(xp), ctx)
    # add fusion: the block is x + context, so it commutes with the permutation
    torch.testing.assert_close(block(xp), block(x).flatten(2)[:, :, perm].view_as(x))
    torch.testing.assert_close(block(x), x + ctx)


def test_gc_zero_init_is_identity():
    block = create_block("gc", 6, 6).eval()
    x = torch.randn(2, 6, H, W)
    torch.testing.assert_close(block(x), x)


# --- attention_gate -------------------------------------------------------------------------


@pytest.mark.parametrize("sub_sample", [1, 2])
def test_attention_gate_coefficients_in_unit_interval_at_skip_size(sub_sample):
    block = _randomise(create_block("attention_gate", 4, 6, sub_sample=sub_sample))
    x, g = get_block("attention_gate").example_inputs(4, batch=2, height=H, width=W)
    assert g.shape == (2, 8, 5, 7)
    alpha = block.coefficients(x, g)
    assert alpha.shape == (2, 1, H, W)
    assert (alpha > 0).all() and (alpha < 1).all()
    out = block(x, g)
    assert out.shape == (2, 6, H, W)
    torch.testing.assert_close(out, block.out(x * alpha))
    # the gate depends on the gating signal
    assert not torch.allclose(block.coefficients(x, torch.randn_like(g)), alpha)


# --- fpa ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(33, 47), (9, 13), (1, 1), (16, 16)])
@pytest.mark.parametrize("mid_channels", [1, 5])
def test_fpa_output_spatial_size_equals_input(size, mid_channels):
    block = create_block("fpa", 3, 5, mid_channels=mid_channels).eval()
    x = torch.randn(1, 3, *size)
    assert block(x).shape == (1, 5, *size)
    assert block.attention(x, size).shape == (1, mid_channels, *size)


def test_fpa_is_attention_times_master_plus_pooled():
    block = _randomise(create_block("fpa", 3, 5))
    x = torch.randn(2, 3, H, W)
    m = block.master(x)
    expect = m * block.attention(x, (H, W)) + block.pooled(x.mean((2, 3), keepdim=True))
    torch.testing.assert_close(block(x), expect)


# --- gau ------------------------------------------------------------------------------------


def test_gau_channel_weights_from_high_level_only():
    block = _randomise(create_block("gau", 4, 6))
    low, high = get_block("gau").example_inputs(4, batch=2, height=H, width=W)
    weights = block.channel_weights(high)  # takes the high level only
    assert weights.shape == (2, 6, 1, 1)
    # globally pooled: any spatial shuffle of the high level gives the same weights
    perm = torch.randperm(high.shape[2] * high.shape[3])
    torch.testing.assert_close(block.channel_weights(high.flatten(2)[:, :, perm].view_as(high)), weights)
    # the forward pass uses exactly these weights on the low-level branch, whatever low is
    up = block.up(F.interpolate(high, size=(H, W), mode="bilinear", align_corners=False))
    for lo in (low, 3 * torch.randn_like(low)):
        out = block(lo, high)
        assert out.shape == (2, 6, H, W)
        torch.testing.assert_close(out, F.relu(up + block.low(lo) * weights))


# --- self_attention -------------------------------------------------------------------------


def _sa_inputs(block, n=2, k=9, ho=4, wo=5, rel=4, c_out=8):
    q = torch.randn(n, rel, ho, wo)
    keys = torch.randn(n, rel, k, ho, wo)
    values = torch.randn(n, c_out, k, ho, wo)
    rel_pos = torch.randn(1, 2, k, ho, wo)
    return q, keys, values, rel_pos


@pytest.mark.parametrize("relation", ["subtraction", "summation", "hadamard", "concatenation", "dot_product"])
def test_self_attention_pairwise_invariant_to_neighbour_permutation(relation):
    block = _randomise(create_block("self_attention", 6, 8, kernel_size=3, rel_channels=4, relation=relation))
    q, keys, values, rel_pos = _sa_inputs(block)
    perm = torch.randperm(9)
    ref = block.attend(q, keys, values, rel_pos)
    got = block.attend(q, keys[:, :, perm], values[:, :, perm], rel_pos[:, :, perm])
    torch.testing.assert_close(got, ref)


def test_self_attention_patchwise_depends_on_neighbour_order():
    block = _randomise(create_block("self_attention", 6, 8, variant="patchwise", kernel_size=3, rel_channels=4))
    q, keys, values, _ = _sa_inputs(block)
    perm = torch.roll(torch.arange(9), 1)
    ref = block.attend(q, keys, values)
    got = block.attend(q, keys[:, :, perm], values[:, :, perm])
    assert not torch.allclose(got, ref, atol=1e-4)


@pytest.mark.parametrize("variant", ["pairwise", "patchwise"])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_self_attention_variants_shapes(variant, stride, dilation):
    block = create_block("self_attention", 6, 12, stride=stride, dilation=dilation, variant=variant, kernel_size=3)
    x = torch.randn(2, 6, H, W)
    assert block(x).shape == (2, 12, math.ceil(H / stride), math.ceil(W / stride))


def test_self_attention_pairwise_weights_sum_to_one_over_footprint():
    # with beta = identity-like constant values, the pairwise output equals the constant
    block = _randomise(create_block("self_attention", 6, 8, kernel_size=3, rel_channels=4))
    q, keys, _, rel_pos = _sa_inputs(block)
    values = torch.full((2, 8, 9, 4, 5), 2.5)
    torch.testing.assert_close(block.attend(q, keys, values, rel_pos), torch.full((2, 8, 4, 5), 2.5))


# --- mhsa -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
def test_mhsa_matches_scaled_dot_product_attention(stride):
    block = _randomise(create_block("mhsa", 6, 8, stride=stride, heads=2))
    x = torch.randn(2, 6, H, W)
    q, k, v = block.qkv(x)
    ho, wo = math.ceil(H / stride), math.ceil(W / stride)
    assert q.shape == (2, 2, ho * wo, 4) and k.shape == (2, 2, H * W, 4)
    ref = F.scaled_dot_product_attention(q, k, v)  # [N, heads, L, d]
    ref = block.out(ref.transpose(2, 3).reshape(2, 8, ho, wo))
    torch.testing.assert_close(block(x), ref, rtol=1e-5, atol=1e-5)


def test_mhsa_positional_encoding_breaks_permutation_equivariance():
    x = torch.randn(1, 6, H, W)
    perm = torch.randperm(H * W)

    def shuffle(t):
        return t.flatten(2)[:, :, perm].view_as(t)

    plain = _randomise(create_block("mhsa", 6, 8, positional="none"))
    torch.testing.assert_close(plain(shuffle(x)), shuffle(plain(x)), rtol=1e-5, atol=1e-5)
    sine = _randomise(create_block("mhsa", 6, 8))
    assert not torch.allclose(sine(shuffle(x)), shuffle(sine(x)), atol=1e-4)


# --- attention_estimator --------------------------------------------------------------------


@pytest.mark.parametrize("compatibility", ["pc", "dp"])
def test_attention_estimator_maps_sum_to_one(compatibility):
    block = _randomise(create_block("attention_estimator", 4, 6, compatibility=compatibility))
    local, g = get_block("attention_estimator").example_inputs(4, batch=2, height=H, width=W)
    g_a, a = block(local, g)
    assert g_a.shape == (2, 6) and a.shape == (2, 1, H, W)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=(1, 2, 3)), torch.ones(2))
    projected = block.project_local(local)
    torch.testing.assert_close(g_a, (projected * a).sum(dim=(2, 3)))


def test_attention_estimator_global_feature_matters_only_for_dot_product():
    local, g = torch.randn(2, 6, H, W), torch.randn(2, 6)
    pc = _randomise(create_block("attention_estimator", 6, 6, compatibility="pc"))
    dp = _randomise(create_block("attention_estimator", 6, 6, compatibility="dp"))
    # pc: <u, l_i + g> = <u, l_i> + const, which the softmax over space cancels
    torch.testing.assert_close(pc(local, g)[1], pc(local, 5 * torch.randn_like(g))[1])
    assert not torch.allclose(dp(local, g)[1], dp(local, 5 * torch.randn_like(g))[1])


# --- spatial_attention_module ---------------------------------------------------------------


def test_spatial_attention_module_weights_in_unit_interval():
    block = _randomise(create_block("spatial_attention_module", 4, 6, stride=2))
    x = torch.randn(2, 4, H, W)
    rpn = block.context(x)
    w = block.weights(rpn)
    assert w.shape == (2, 6, 5, 7)
    assert (w > 0).all() and (w < 1).all()
    torch.testing.assert_close(block(x), block.proj(x) * w)
    # an external RPN map can drive the re-weighting instead of the built-in branch
    other = torch.randn_like(rpn)
    torch.testing.assert_close(block(x, other), block.proj(x) * block.weights(other))


# --- context_enhancement --------------------------------------------------------------------


def test_context_enhancement_output_at_c4_resolution():
    block = _randomise(create_block("context_enhancement", 4, 6))
    c4, c5 = get_block("context_enhancement").example_inputs(4, batch=2, height=33, width=47)
    assert c5.shape[-2:] == (17, 24)
    out = block(c4, c5)
    assert out.shape == (2, 6, 33, 47)
    up5 = F.interpolate(block.lateral5(c5), size=(33, 47), mode="bilinear", align_corners=False)
    glb = block.glb(c5.mean((2, 3), keepdim=True))
    torch.testing.assert_close(out, block.lateral4(c4) + up5 + glb)


# --- bilinear_pool / factorized_bilinear ----------------------------------------------------


def test_bilinear_pool_identical_streams_equal_gram_over_hw():
    block = create_block("bilinear_pool", 5, 5, normalize=False)
    x = torch.randn(2, 5, H, W)
    flat = x.flatten(2)
    gram = torch.stack([f @ f.T for f in flat]) / (H * W)
    torch.testing.assert_close(block(x), gram.flatten(1))
    torch.testing.assert_close(block(x, x), gram.flatten(1))


def test_bilinear_pool_normalised_descriptor():
    block = _randomise(create_block("bilinear_pool", 4, 6))
    a, b = get_block("bilinear_pool").example_inputs(4, batch=2, height=H, width=W)
    z = block(a, b)
    assert z.shape == (2, 36)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    raw = (block.proj_a(a).flatten(2) @ block.proj_b(b).flatten(2).transpose(1, 2)).flatten(1) / (H * W)
    expect = F.normalize(torch.sign(raw) * raw.abs().sqrt(), dim=1)
    torch.testing.assert_close(z, expect, rtol=1e-4, atol=1e-5)
    # orderless: shuffling the positions of both streams together changes nothing
    perm = torch.randperm(H * W)
    torch.testing.assert_close(
        block(a.flatten(2)[:, :, perm].view_as(a), b.flatten(2)[:, :, perm].view_as(b)), z
    )


def test_factorized_bilinear_equals_low_rank_form_of_gram():
    block = _randomise(create_block("factorized_bilinear", 5, 3, rank=4))
    x = torch.randn(2, 5, H, W)
    flat = x.flatten(2)
    gram = torch.stack([f @ f.T for f in flat]) / (H * W)  # identical streams: Gram / HW
    F_ = block.factors.weight.view(3, 4, 5)  # F_c: rank x c_in
    w_full = F_.transpose(1, 2) @ F_  # [c_out, c_in, c_in], rank <= 4
    quad = torch.einsum("kij,nij->nk", w_full, gram)
    expect = block.linear(x.mean((2, 3))) + quad
    out = block(x)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, expect, rtol=1e-4, atol=1e-5)


def test_factorized_bilinear_drop_factor_only_in_training():
    block = _randomise(create_block("factorized_bilinear", 5, 3, drop_factor=0.5))
    x = torch.randn(2, 5, H, W)
    torch.testing.assert_close(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))


# --- attentional_pool -----------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2])
def test_attentional_pool_low_rank_matches_explicit_product(rank):
    block = _randomise(create_block("attentional_pool", 5, 3, rank=rank))
    x = torch.randn(2, 5, H, W)
    X = x.flatten(2).transpose(1, 2)  # [N, HW, f]
    a = block.top_down.weight.view(3, rank, 5)
    b = block.bottom_up.weight.view(rank, 5)
    w_full = torch.einsum("kpi,pj->kij", a, b)  # W_k = sum_p a_kp b_p^T, [K, f, f]
    second_order = X.transpose(1, 2) @ X  # X^T X, [N, f, f]
    explicit = torch.einsum("nij,kij->nk", second_order, w_full) + block.bias  # Tr(X^T X W_k^T)
    out = block(x)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, explicit, rtol=1e-4, atol=1e-4)
    top, bottom = block.attention_maps(x)
    assert top.shape == (2, 3, rank, H, W) and bottom.shape == (2, 1, rank, H, W)
