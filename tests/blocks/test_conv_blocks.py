"""Property tests for the 'Convolutions and cell operations' table of docs/algorithms.md Block notes.

The generic checks (shapes at stride 1/2, gradients, determinism, export) are in
``test_catalogue.py``; here each block's own property (property in the last column of docs/algorithms.md Block notes) is tested.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_spaces.blocks import create_block


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _grad_support(block: torch.nn.Module, c_in: int, size: int) -> tuple[int, int]:
    """Height and width of the input region that one central output pixel depends on.

    (The extent: a dilated conv's support is a sparse grid spanning it.)

    All weights are made positive and the input is positive, so ReLUs pass everything, eval BN
    is a positive scale and no contributions cancel: the gradient support is the receptive field.
    """
    block.eval()
    with torch.no_grad():
        for p in block.parameters():
            p.abs_().add_(0.01)
    x = (torch.rand(1, c_in, size, size) + 0.1).requires_grad_(True)
    out = block(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    nz = x.grad[0].abs().sum(0) > 0
    rows, cols = nz.any(1).nonzero(), nz.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


# --- conv / dil_conv / sep_conv: receptive field (k-1)d+1 ----------------------------------------


@pytest.mark.parametrize("k,d", [(1, 1), (3, 1), (3, 2), (5, 3)])
def test_conv_receptive_field(k, d):
    block = create_block("conv", 4, 4, dilation=d, kernel_size=k)
    assert _grad_support(block, 4, 31) == ((k - 1) * d + 1,) * 2


def test_conv_is_relu_conv_bn_with_affine_option():
    block = create_block("conv", 4, 6, kernel_size=5, affine=False)
    assert [type(m).__name__ for m in block] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert block[1].kernel_size == (5, 5) and block[1].bias is None
    assert not block[2].affine
    with pytest.raises(ValueError):
        create_block("conv", 4, 6, kernel_size=4)


@pytest.mark.parametrize("k,rate,d", [(3, 2, 1), (5, 2, 1), (3, 2, 2), (3, 1, 3)])
def test_dil_conv_receptive_field(k, rate, d):
    block = create_block("dil_conv", 4, 6, dilation=d, kernel_size=k, rate=rate)
    assert block[1].groups == 4 and block[2].kernel_size == (1, 1)  # depthwise then pointwise
    assert _grad_support(block, 4, 31) == ((k - 1) * rate * d + 1,) * 2


@pytest.mark.parametrize("k,d", [(3, 1), (5, 1), (3, 2)])
def test_sep_conv_receptive_field_two_units(k, d):
    block = create_block("sep_conv", 4, 6, dilation=d, kernel_size=k)
    # two stacked (k, d) units: each adds (k-1)d
    assert _grad_support(block, 4, 31) == (2 * (k - 1) * d + 1,) * 2


def test_sep_conv_stride_on_first_unit_only():
    block = create_block("sep_conv", 4, 6, stride=2, affine=False)
    first, second = block[0][1], block[1][1]
    assert first.stride == (2, 2) and second.stride == (1, 1)
    assert block[0][3].num_features == 4 and block[1][3].num_features == 6
    assert not any(m.affine for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert block(torch.randn(1, 4, 9, 11)).shape == (1, 6, 5, 6)


# --- factorized_conv -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("mid", [True, False])
def test_factorized_conv_fewer_params_than_kxk(k, mid):
    def n_params(m):
        return sum(p.numel() for p in m.parameters())

    fact = create_block("factorized_conv", 16, 16, kernel_size=k, mid_bn_relu=mid)
    full = create_block("conv", 16, 16, kernel_size=k)
    assert n_params(fact) < n_params(full)
    x = torch.randn(1, 16, 15, 13)
    for s in (1, 2):
        a = create_block("factorized_conv", 16, 16, stride=s, kernel_size=k, mid_bn_relu=mid)
        b = create_block("conv", 16, 16, stride=s, kernel_size=k)
        assert a(x).shape == b(x).shape
    # still a k x k receptive field
    assert _grad_support(
        create_block("factorized_conv", 4, 4, kernel_size=k, mid_bn_relu=mid), 4, 21
    ) == (k, k)


# --- inception -----------------------------------------------------------------------------------


@pytest.mark.parametrize("factorize", [False, True])
def test_inception_output_channels_are_sum_of_branches(factorize):
    widths = (2, 6, 4, 8)
    block = create_block(
        "inception", 8, sum(widths), branch_channels=widths, factorize_5x5=factorize
    ).eval()
    x = torch.randn(2, 8, 9, 10)
    out = block(x)
    assert out.shape == (2, sum(widths), 9, 10)
    start = 0
    for branch, w in zip(block.branches, widths, strict=True):
        torch.testing.assert_close(out[:, start : start + w], branch(x))
        start += w
    kernels = [m.kernel_size for m in block.branches[2].modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == ([(1, 1), (3, 3), (3, 3)] if factorize else [(1, 1), (5, 5)])
    with pytest.raises(ValueError):
        create_block("inception", 8, 10, branch_channels=widths)


# --- blaze / double_blaze ------------------------------------------------------------------------


def _zero_last_bn(block):
    bn = block.body[-1]
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()


def _blaze_identity(name):
    block = create_block(name, 6, 6).eval()
    assert isinstance(block.body[0], torch.nn.Conv2d) and block.body[0].kernel_size == (5, 5)
    assert block.body[0].groups == 6
    x = torch.randn(2, 6, 9, 7)
    torch.testing.assert_close(block.shortcut(x), x, rtol=0, atol=0)
    _zero_last_bn(block)  # residual branch outputs 0 -> block is ReLU(identity)
    torch.testing.assert_close(block(x), F.relu(x), rtol=0, atol=0)
    # strided + widening: 2x2 max-pool and zero channel padding
    wide = create_block(name, 6, 10, stride=2).eval()
    _zero_last_bn(wide)
    out = wide(x.abs())
    assert out.shape == (2, 10, 5, 4)
    torch.testing.assert_close(
        out[:, :6], F.max_pool2d(x.abs(), 2, 2, ceil_mode=True), rtol=0, atol=0
    )
    assert (out[:, 6:] == 0).all()


def test_blaze_identity_path_at_stride_1():
    _blaze_identity("blaze")


def test_double_blaze_identity_path_at_stride_1():
    _blaze_identity("double_blaze")
    block = create_block("double_blaze", 8, 96)
    assert block.body[1].out_channels == 24  # BlazeFace bottleneck width c_out / 4


# --- octave_conv ---------------------------------------------------------------------------------


def test_octave_conv_alpha_zero_equals_plain_conv():
    block = create_block("octave_conv", 5, 7, dilation=2, alpha_in=0.0, alpha_out=0.0)
    x = torch.randn(2, 5, 11, 13)
    high, low = block(x)
    assert low is None
    torch.testing.assert_close(high, F.conv2d(x, block.weight, padding=2, dilation=2))


@pytest.mark.parametrize("stride", [1, 2])
def test_octave_conv_shapes_and_paths(stride):
    block = create_block("octave_conv", 8, 12, stride=stride)
    xh, xl = torch.randn(2, 4, 33, 47), torch.randn(2, 4, 17, 24)
    yh, yl = block(xh, xl)
    h, w = -(-33 // stride), -(-47 // stride)
    assert yh.shape == (2, 6, h, w) and yl.shape == (2, 6, -(-h // 2), -(-w // 2))
    yh2, yl2 = block((xh, xl))  # a (high, low) pair is accepted too
    assert torch.equal(yh, yh2) and torch.equal(yl, yl2)
    # without the cross paths, each frequency is a plain conv of its own (pooled) input
    with torch.no_grad():
        block.weight[:6, 4:].zero_()
        block.weight[6:, :4].zero_()
    yh, yl = block(xh, xl)

    def pool(t):
        return F.avg_pool2d(F.pad(t, (0, t.shape[-1] % 2, 0, t.shape[-2] % 2), mode="replicate"), 2)

    xh_s, xl_s = (pool(xh), pool(xl)) if stride == 2 else (xh, xl)
    torch.testing.assert_close(yh, F.conv2d(xh_s, block.weight[:6, :4], padding=1))
    torch.testing.assert_close(yl, F.conv2d(xl_s, block.weight[6:, 4:], padding=1))


def test_octave_conv_first_and_last_layer():
    first = create_block("octave_conv", 8, 12, alpha_in=0.0)
    yh, yl = first(torch.randn(1, 8, 9, 9))
    assert yh.shape == (1, 6, 9, 9) and yl.shape == (1, 6, 5, 5)
    last = create_block("octave_conv", 12, 8, alpha_out=0.0)
    yh, yl = last(yh, yl)
    assert yh.shape == (1, 8, 9, 9) and yl is None
    with pytest.raises(ValueError):
        last(yh)  # alpha_in > 0 needs the low-frequency input


# --- deform_conv ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stride,d", [(1, 1), (2, 1), (1, 2)])
def test_deform_conv_zero_offsets_equal_plain_conv(stride, d):
    block = create_block("deform_conv", 3, 5, stride=stride, dilation=d)
    assert torch.equal(block.offset.weight, torch.zeros_like(block.offset.weight))
    x = torch.randn(2, 3, 11, 14)
    torch.testing.assert_close(
        block(x),
        F.conv2d(x, block.weight, stride=stride, padding=d, dilation=d),
        rtol=1e-5,
        atol=1e-5,
    )


def test_deform_conv_offsets_move_the_taps():
    block = create_block("deform_conv", 3, 4)
    x = torch.randn(1, 3, 10, 12)
    with torch.no_grad():
        block.offset.bias[0::2] = 1.0  # every tap reads one row further down
    moved = block(x)
    ref = F.conv2d(F.pad(x, (1, 1, 0, 2)), block.weight)  # x shifted up by one row, zero fill
    torch.testing.assert_close(moved, ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        block.offset.bias[0::2] = 0.5  # bilinear: halfway between the two integer positions
    plain = F.conv2d(x, block.weight, padding=1)
    torch.testing.assert_close(block(x), 0.5 * (plain + ref), rtol=1e-5, atol=1e-5)


# --- shift_conv ----------------------------------------------------------------------------------


def _reference_shift(x, dy, dx):
    """out[i, j] = x[i + dy, j + dx], zero outside (a roll with the wrapped part cleared)."""
    h, w = x.shape[-2:]
    out = torch.roll(x, shifts=(-dy, -dx), dims=(-2, -1))
    rows = (torch.arange(h) + dy >= 0) & (torch.arange(h) + dy < h)
    cols = (torch.arange(w) + dx >= 0) & (torch.arange(w) + dx < w)
    return out * (rows.view(-1, 1) & cols.view(1, -1))


def test_shift_conv_integer_shift_is_exact_roll():
    shifts = [(0, 0), (2, -1), (-3, 4), (1, 0), (0, -7), (9, 9)]
    block = create_block("shift_conv", len(shifts), 5)
    x = torch.randn(2, len(shifts), 7, 8)
    for training in (False, True):
        block.train(training)
        with torch.no_grad():
            block.shift.copy_(torch.tensor(shifts, dtype=torch.float32))
        out = block.shift_features(x)
        for c, (dy, dx) in enumerate(shifts):
            assert torch.equal(out[:, c], _reference_shift(x[:, c], dy, dx))
        # the forward pass quantises: 1.3 behaves as 1, -2.6 as -3
        with torch.no_grad():
            block.shift.add_(torch.tensor([0.3, -0.4]))
        assert torch.equal(block.shift_features(x), out)
    torch.testing.assert_close(block(x), F.conv2d(out, block.conv.weight))


def test_shift_conv_displacement_gradient_is_bilinear():
    block = create_block("shift_conv", 1, 1).train()
    with torch.no_grad():
        block.shift.copy_(torch.tensor([[0.3, 0.0]]))
    x = torch.arange(20.0).view(
        1, 1, 4, 5
    )  # rows differ by 5: d(out)/d(dy) = 5 where both rows exist
    block.shift_features(x).sum().backward()
    expected_dy = (
        5.0 * 3 * 5 - x[0, 0, 3].sum()
    )  # 3 interior row pairs; last row falls off the image
    torch.testing.assert_close(block.shift.grad[0, 0], expected_dy)
    assert torch.isfinite(block.shift_penalty()) and block.shift_penalty() > 0


# --- ternary_conv --------------------------------------------------------------------------------


def test_ternary_conv_at_most_three_values_per_filter():
    block = create_block("ternary_conv", 6, 4, dilation=2, kernel_size=3)
    w_t = block.ternary_weight()
    for f in w_t.detach():
        vals = f.unique()
        assert len(vals) <= 3
        assert torch.allclose(vals.abs().max() * torch.sign(vals), vals)  # {-a, 0, +a}
    assert (w_t == 0).any() and (w_t != 0).any()
    # the forward pass is the conv with the ternary weights; the gradient passes straight through
    x = torch.randn(2, 6, 9, 9)
    ref_w = w_t.detach().clone().requires_grad_(True)
    out = block(x)
    ref = F.conv2d(x, ref_w, padding=2, dilation=2)
    torch.testing.assert_close(out, ref)
    out.pow(2).sum().backward()
    ref.pow(2).sum().backward()
    torch.testing.assert_close(block.weight.grad, ref_w.grad)


# --- fickle_conv ---------------------------------------------------------------------------------


def test_fickle_conv_eval_deterministic_and_centre_kept():
    block = create_block("fickle_conv", 3, 4, dilation=2, drop_rate=0.5)
    x = torch.randn(2, 3, 12, 10)
    plain = F.conv2d(x, block.weight, padding=2, dilation=2)
    block.eval()
    assert torch.equal(block(x), block(x))
    torch.testing.assert_close(block(x), plain)
    block.train()
    assert not torch.allclose(block(x), plain)  # training drops hidden units
    with torch.no_grad():  # only the centre tap: never dropped, never rescaled
        centre = torch.zeros_like(block.weight)
        centre[:, :, 1, 1] = block.weight[:, :, 1, 1]
        block.weight.copy_(centre)
    for _ in range(3):
        torch.testing.assert_close(block(x), F.conv2d(x, block.weight, padding=2, dilation=2))


def test_fickle_conv_drops_off_centre_taps_per_window():
    block = create_block("fickle_conv", 1, 1, stride=2, drop_rate=0.5).train()
    with torch.no_grad():
        block.weight.zero_()
        block.weight[0, 0, 0, 0] = 1.0  # one corner tap
    x = torch.rand(1, 1, 16, 16) + 0.5
    out, kept = block(x), F.conv2d(x, block.weight, stride=2, padding=1)
    dropped = out == 0
    assert dropped.any() and (~dropped).any()  # some windows lose the tap, others keep it
    torch.testing.assert_close(out[~dropped & (kept != 0)], 2.0 * kept[~dropped & (kept != 0)])


# --- coord_channels ------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(5, 9), (33, 47)])
def test_coord_channels_adds_two_channels_in_range(h, w):
    x = torch.randn(2, 3, h, w)
    y = create_block("coord_channels", 3, 7).add_coords(x)
    assert y.shape == (2, 5, h, w)
    assert torch.equal(y[:, :3], x)
    xs, ys = y[:, 3], y[:, 4]
    for ch in (xs, ys):
        assert ch.min() == -1 and ch.max() == 1
    torch.testing.assert_close(xs[0, 0], torch.linspace(-1, 1, w))
    torch.testing.assert_close(ys[0, :, 0], torch.linspace(-1, 1, h))
    assert (xs == xs[:, :1]).all() and (
        ys == ys[:, :, :1]
    ).all()  # x varies along W only, y along H
    block = create_block("coord_channels", 3, 7, stride=2)
    assert block.conv.in_channels == 5 and block(x).shape == (2, 7, (h + 1) // 2, (w + 1) // 2)


# --- gated_residual ------------------------------------------------------------------------------


def test_gated_residual_gate_zero_gives_identity():
    block = create_block("gated_residual", 6, 6)
    x = torch.randn(3, 6, 9, 8)
    with torch.no_grad():
        block.gate[-1].weight.zero_()
        block.gate[-1].bias.copy_(torch.tensor([10.0, -10.0]))  # always off
    for training in (False, True):
        block.train(training)
        assert torch.equal(block(x), x)
    assert torch.equal(block.last_gate, torch.zeros(3))
    with torch.no_grad():
        block.gate[-1].bias.copy_(torch.tensor([-10.0, 10.0]))  # always on
    block.eval()
    torch.testing.assert_close(block(x), x + block.residual(x))


def test_gated_residual_training_gates_are_hard_samples():
    block = create_block("gated_residual", 4, 4).train()
    with torch.no_grad():
        block.gate[-1].weight.zero_()
        block.gate[-1].bias.zero_()  # p(on) = 1/2
    x = torch.randn(64, 4, 5, 5)
    block(x)
    gate = block.last_gate
    assert set(gate.tolist()) == {0.0, 1.0}
    gate.sum().backward()  # straight-through: the gate logits still get a gradient
    assert block.gate[-1].bias.grad.abs().sum() > 0


# --- dense_block ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layers,growth,bottleneck", [(1, 4, 4), (3, 5, 0), (4, 12, 4)])
def test_dense_block_channels_grow_by_growth_rate(layers, growth, bottleneck):
    c_in = 8
    x = torch.randn(2, c_in, 9, 7)
    block = create_block(
        "dense_block", c_in, 12, num_layers=layers, growth_rate=growth, bottleneck=bottleneck
    )
    feats = block.features(x)
    assert feats.shape == (2, c_in + layers * growth, 9, 7)
    assert torch.equal(feats[:, :c_in], x)  # dense connectivity keeps the input
    assert block(x).shape == (2, 12, 9, 7)  # the transition maps to c_out
    bare = create_block(
        "dense_block",
        c_in,
        c_in + layers * growth,
        num_layers=layers,
        growth_rate=growth,
        bottleneck=bottleneck,
        transition=False,
    )
    assert bare(x).shape == (2, c_in + layers * growth, 9, 7)
    with pytest.raises(ValueError):
        create_block(
            "dense_block",
            c_in,
            c_in + layers * growth + 1,
            num_layers=layers,
            growth_rate=growth,
            transition=False,
        )


# --- conv_lstm -----------------------------------------------------------------------------------


def test_conv_lstm_hidden_state_shape_preserved_across_steps():
    block = create_block("conv_lstm", 3, 6, stride=2)
    cell = block.cells[0]
    state = None
    for _ in range(4):
        state = cell(torch.randn(2, 3, 9, 11), state)
        assert state[0].shape == state[1].shape == (2, 6, 5, 6)
    out = block(torch.randn(2, 3, 4, 9, 11))
    assert out.shape == (2, 6, 4, 5, 6)


def test_conv_lstm_is_causal_and_bidirectional_mirrors():
    x = torch.randn(1, 3, 5, 6, 6)
    uni = create_block("conv_lstm", 3, 4)
    later = x.clone()
    later[:, :, 3:] = torch.randn_like(later[:, :, 3:])
    torch.testing.assert_close(
        uni(x)[:, :, :3], uni(later)[:, :, :3]
    )  # the past ignores the future
    bi = create_block("conv_lstm", 3, 8, bidirectional=True)
    bi.cells[1].load_state_dict(bi.cells[0].state_dict())
    out, out_rev = bi(x), bi(x.flip(2))
    torch.testing.assert_close(out[:, 4:], out_rev[:, :4].flip(2))
    torch.testing.assert_close(out[:, :4], out_rev[:, 4:].flip(2))
    with pytest.raises(ValueError):
        create_block("conv_lstm", 3, 7, bidirectional=True)
