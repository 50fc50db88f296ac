"""Property tests of the 'Multi-scale, decoders, aggregation' blocks (docs/algorithms.md Block notes, last column).

Shapes of the non-standard blocks are checked here; the generic checks (gradients, determinism,
torch.export, ONNX) run for every block in test_catalogue.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks import create_block, get_block
from search_spaces.blocks._multiscale_ops import AggregationNode, adaptive_avg_pool, resize
from search_spaces.blocks.multiscale import ASPP, GatedSpatialConv, aspp_rates_at


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _pyramid(c: int, sizes: list[tuple[int, int]], batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, c * 2**i, h, w) for i, (h, w) in enumerate(sizes)]


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    """allclose with a message (torch.testing's first import alone costs over a second)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=tol, atol=tol), f"max |a-b| = {(a - b).abs().max().item():.3g}"


def _capture_inputs(module: nn.Module, store: list):
    return module.register_forward_hook(lambda m, args, out: store.append(args))


def _capture_outputs(module: nn.Module, store: list):
    return module.register_forward_hook(lambda m, args, out: store.append(out))


# ---------------------------------------------------------------------------------- aspp


def _impulse_offsets(conv: nn.Conv2d, size: int = 41) -> set[tuple[int, int]]:
    """Offsets (dy, dx) where a single-channel impulse reaches the output of an all-ones conv."""
    probe = nn.Conv2d(1, 1, conv.kernel_size, padding=conv.padding, dilation=conv.dilation, bias=False)
    nn.init.ones_(probe.weight)
    x = torch.zeros(1, 1, size, size)
    x[0, 0, size // 2, size // 2] = 1.0
    with torch.no_grad():
        y = probe(x)[0, 0]
    return {(int(i) - size // 2, int(j) - size // 2) for i, j in torch.nonzero(y)}


def test_aspp_branches_at_configured_rates():
    block = create_block("aspp", 4, 6, rates=(2, 3, 5))
    convs = [b.conv for b in block.branches]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (3, 3), (3, 3)]
    for conv, rate in zip(convs[1:], (2, 3, 5), strict=True):
        assert conv.dilation == (rate, rate) and conv.padding == (rate, rate)
        # the branch really samples the input at -rate, 0, +rate in both directions
        assert _impulse_offsets(conv) == {(a, b) for a in (-rate, 0, rate) for b in (-rate, 0, rate)}
    assert block.pool is not None and block.project.conv.in_channels == 5 * 6
    # dilation multiplies the rates (DeepLab: output stride 8 doubles 6/12/18)
    assert create_block("aspp", 4, 6, dilation=2).rates == (12, 24, 36)


def test_aspp_search_and_retrain_heads():
    search = ASPP.auto_deeplab_search_head(4, 6, output_stride=8)  # 1x1, 3x3 at 96/8, pooling
    assert search.rates == (12,) and len(search.branches) == 2 and search.pool is not None
    assert search.project.conv.in_channels == 3 * 6
    retrain = ASPP.deeplab_v3(4, 6, output_stride=8)
    assert retrain.rates == (12, 24, 36) and len(retrain.branches) == 4 and retrain.pool is not None
    assert ASPP.deeplab_v3(4, 6, output_stride=1, input_size=(32, 48)).rates == (6, 12, 18)
    x = torch.randn(2, 4, 33, 47)
    assert search(x).shape == (2, 6, 33, 47)
    assert create_block("aspp", 4, 6, stride=2, rates=(3,))(x).shape == (2, 6, 17, 24)


def test_aspp_rates_scale_with_stride_and_with_inputs_smaller_than_deeplab_crops():
    assert aspp_rates_at((6, 12, 18), 16) == (6, 12, 18)
    assert aspp_rates_at((6, 12, 18), 8, (513, 513)) == (12, 24, 36)  # DeepLab's crops: stride only
    assert aspp_rates_at((6, 12, 18), 4, (769, 1537)) == (24, 48, 72)
    assert aspp_rates_at((6, 12, 18), 1) == (96, 192, 288)  # no size: stride only
    assert aspp_rates_at((6, 12, 18), 1, (32, 48)) == (6, 12, 18)  # 32/513 of the stride-1 rates
    assert aspp_rates_at((6, 12, 18), 16, (64, 64)) == (1, 1, 2)
    assert aspp_rates_at((6, 12, 18), 32, (64, 64)) == (1, 1, 1)  # 0.37 / 0.75 / 1.12: never below 1


def test_aspp_image_pooling_is_global():
    block = create_block("aspp", 4, 6, rates=(), include_1x1=False).eval()
    y = block(torch.randn(2, 4, 9, 13))
    assert torch.allclose(y, y[:, :, :1, :1].expand_as(y))


def test_aspp_batch_one_training_needs_pool_norm():
    x = torch.randn(1, 4, 9, 13)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        create_block("aspp", 4, 6).train()(x)
    for pool_norm in ("gn", "none"):
        y = create_block("aspp", 4, 6, pool_norm=pool_norm).train()(x)
        assert y.shape == (1, 6, 9, 13) and torch.isfinite(y).all()


# ---------------------------------------------------------------------------------- ppm


@pytest.mark.parametrize("size", [(33, 47), (5, 7), (12, 12)])
def test_ppm_output_size_equals_input(size):
    block = create_block("ppm", 8, 12).eval()
    assert block(torch.randn(2, 8, *size)).shape == (2, 12, *size)
    strided = create_block("ppm", 8, 12, stride=2).eval()
    assert strided(torch.randn(2, 8, *size)).shape[-2:] == tuple(math.ceil(s / 2) for s in size)


def test_ppm_pooling_matches_adaptive_avg_pool():
    x = torch.randn(2, 3, 33, 47)
    for bins in (1, 2, 3, 6, 7):  # none of 2, 3, 6, 7 divides both 33 and 47
        _close(adaptive_avg_pool(x, bins), F.adaptive_avg_pool2d(x, bins))
    block = create_block("ppm", 8, 12)
    assert block.bins == (1, 2, 3, 6)
    assert block.fuse.conv.in_channels == 8 + 4 * 2  # input + 4 branches of c_in / 4


# ---------------------------------------------------------------------------------- fpn

FPN_SIZES = [(33, 47), (17, 24), (9, 12), (5, 6)]


def test_fpn_one_output_per_level_same_channels():
    block = create_block("fpn", 4, 6, semantic_channels=8, num_classes=3, extra_level=True).eval()
    feats = _pyramid(4, FPN_SIZES)
    levels, semantic = block(*feats)
    assert [tuple(p.shape) for p in levels] == [(2, 6, h, w) for h, w in [*FPN_SIZES, (3, 3)]]
    assert semantic.shape == (2, 3, 33, 47)
    # one list works too, and the semantic head's stages per level follow Panoptic FPN
    assert [len(s) for s in block.semantic] == [1, 1, 2, 3]
    plain = create_block("fpn", 4, 6, semantic_head=False).eval()
    out = plain(feats)
    assert isinstance(out, tuple) and [p.shape[1] for p in out] == [6, 6, 6, 6]


def test_fpn_top_down_flows_from_coarse_to_fine():
    block = create_block("fpn", 4, 6, semantic_head=False).eval()
    feats = _pyramid(4, FPN_SIZES)
    base = block(*feats)
    finer_changed = block(feats[0] + 1.0, *feats[1:])  # C2 only reaches P2
    assert torch.equal(finer_changed[3], base[3]) and not torch.equal(finer_changed[0], base[0])
    coarse_changed = block(*feats[:3], feats[3] + 1.0)  # C5 reaches every level
    assert all(not torch.equal(a, b) for a, b in zip(coarse_changed, base, strict=True))


# ---------------------------------------------------------------------------------- cff


def test_cascade_feature_fusion_output_at_high_branch_size():
    block = create_block("cascade_feature_fusion", 6, 10, c_high=4, num_classes=5)
    low, high = torch.randn(2, 6, 9, 12), torch.randn(2, 4, 17, 24)
    fused, aux = block.train()(low, high)
    assert fused.shape == (2, 10, 17, 24) and aux.shape == (2, 5, 17, 24)
    assert block.eval()(low, high).shape == (2, 10, 17, 24)
    assert block.low.conv.dilation == (2, 2) and block.high.conv.kernel_size == (1, 1)
    no_aux = create_block("cascade_feature_fusion", 6, 10, c_high=4, aux=False).train()
    assert no_aux(low, high).shape == (2, 10, 17, 24)


# ---------------------------------------------------------------------------------- nested_skip


def test_nested_skip_node_wiring():
    depth = 3
    block = create_block("nested_skip", 2, 3, depth=depth).eval()
    feats = _pyramid(2, [(17, 23), (9, 12), (5, 6), (3, 3)])
    seen: dict[tuple[int, int], torch.Tensor] = {}
    hooks = []
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            store: list = []
            hooks.append(_capture_inputs(block.node(i, j).convs, store))
            seen[i, j] = store
    with torch.no_grad():
        x = block.nodes(*feats)
        for h in hooks:
            h.remove()
        assert len(seen) == depth * (depth + 1) // 2
        for (i, j), store in seen.items():
            (got,) = store[0]
            node = block.node(i, j)
            expect = torch.cat(
                [*(x[i, k] for k in range(j)), node.upsample(x[i + 1, j - 1], x[i, 0].shape[-2:])], 1
            )
            assert torch.equal(got, expect), (i, j)
            assert x[i, j].shape[-2:] == feats[i].shape[-2:]
        assert torch.equal(block(*feats), block.heads[str(depth)](x[0, depth]))


def test_nested_skip_deep_supervision_heads():
    feats = _pyramid(2, [(17, 23), (9, 12), (5, 6), (3, 3), (2, 2)])
    outs = create_block("nested_skip", 2, 3, deep_supervision=True).eval()(*feats)
    assert len(outs) == 4 and all(o.shape == (2, 3, 17, 23) for o in outs)
    bilinear = create_block("nested_skip", 2, 3, upsample="bilinear").eval()
    assert bilinear(feats).shape == (2, 3, 17, 23)


# ---------------------------------------------------------------------------------- ida / hda


def _perturb_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _node_reference(node: AggregationNode, inputs: list[torch.Tensor]) -> torch.Tensor:
    bn = node.bn
    y = F.conv2d(torch.cat(inputs, 1), node.conv.weight, padding=node.conv.padding)
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    y = y * bn.weight[:, None, None] + bn.bias[:, None, None]
    return F.relu(y + inputs[0] if node.residual else y)


def test_ida_node_is_conv_of_concat_and_iterative():
    block = create_block("ida", 4, 6, residual=True)
    _perturb_bn(block)
    block.eval()
    feats = _pyramid(4, [(17, 23), (9, 12), (5, 6)])
    with torch.no_grad():
        for node in block.nodes:
            inputs = [torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)]
            _close(node(*inputs), _node_reference(node, inputs))
        # I(x1, x2, x3) = N(N(x1, x2), x3): each node sees (deeper input, running aggregate)
        y = block.proj[0](feats[0])
        for proj, node, x in zip(block.proj[1:], block.nodes, feats[1:], strict=True):
            y = _node_reference(node, [resize(proj(x), y.shape[-2:]), y])
        _close(block(*feats), y)
        assert block(*feats).shape == (2, 6, 17, 23)


def test_hda_aggregation_nodes_are_conv_of_concat():
    block = create_block("hda", 4, 6, stride=2, levels=2, level_root=True, root_residual=True)
    _perturb_bn(block)
    block.eval()
    roots = block.roots()
    assert len(roots) == 2
    # inner root: (x2, x1); last root: (x2, x1, max-pooled stage input, first subtree's output)
    assert roots[0].conv.in_channels == 2 * 6 and roots[1].conv.in_channels == 3 * 6 + 4
    seen_in, seen_out = [], []
    _capture_inputs(roots[1], seen_in)
    _capture_outputs(roots[1], seen_out)
    x = torch.randn(2, 4, 33, 47)
    with torch.no_grad():
        y = block(x)
        assert y.shape == (2, 6, 17, 24) and torch.equal(y, seen_out[0])
        inputs = list(seen_in[0])
        assert len(inputs) == 4
        _close(inputs[2], F.max_pool2d(x, 2, 2, ceil_mode=True))
        _close(y, _node_reference(roots[1], inputs))


# ---------------------------------------------------------------------------------- gscnn


def test_gated_shape_stream_gate_in_unit_interval_and_edge_one_channel():
    block = create_block("gated_shape_stream", 4, 3).eval()
    feats = _pyramid(4, [(17, 23), (9, 12), (5, 6), (3, 3)])
    gates: list[torch.Tensor] = []
    for g in block.gates:
        _capture_outputs(g.gate, gates)
    with torch.no_grad():
        shape, edge = block(*feats)
    assert shape.shape == (2, 3, 17, 23) and edge.shape == (2, 1, 17, 23)
    assert len(gates) == 3
    for alpha in [*gates, edge]:
        assert alpha.shape[1] == 1 and alpha.min() > 0 and alpha.max() < 1
    assert [g.conv.in_channels for g in block.gates] == [12, 6, 3]


def test_gated_shape_stream_regular_stream_gates_the_shape_stream():
    gate = GatedSpatialConv(3).eval()
    s, r = torch.randn(2, 3, 5, 7), torch.randn(2, 1, 5, 7)
    with torch.no_grad():
        alpha = gate.gate(torch.cat([s, r], 1))
        _close(gate(s, r), gate.conv(s * (1 + alpha)))
        assert not torch.allclose(gate(s, r), gate(s, r + 1.0))


# ---------------------------------------------------------------------------------- dual_encoder


@pytest.mark.parametrize("size", [(64, 64), (33, 47)])
def test_dual_encoder_branch_strides_16_and_4(size):
    block = create_block("dual_encoder", 3, 5, width=4).eval()
    assert block.strides == (4, 16) and len(block.local) == 2 and len(block.context) == 4
    h, w = size
    with torch.no_grad():
        fused, local, context = block(torch.randn(2, 3, h, w))
    assert local.shape == (2, 5, math.ceil(h / 4), math.ceil(w / 4))
    assert context.shape == (2, 5, math.ceil(h / 16), math.ceil(w / 16))
    assert fused.shape == (2, 10, *local.shape[-2:])
    assert torch.equal(fused[:, :5], local)


# ---------------------------------------------------------------------------------- canet


def test_dense_comparison_uses_masked_support_prototype():
    block = create_block("dense_comparison", 3, 4).eval()
    query, support = torch.randn(2, 3, 9, 13), torch.randn(2, 3, 12, 16)
    mask = torch.zeros(2, 1, 12, 16)
    mask[..., :, :6] = 1.0
    with torch.no_grad():
        out = block(query, support, mask)
        assert out.shape == (2, 4, 9, 13)
        fs = block.embed(support)
        expect = (fs * mask).sum((2, 3)) / (mask.sum((2, 3)) + block.eps * 12 * 16)
        _close(block.prototype(support, mask), expect)
        # support pixels more than the embedding's reach (2) outside the mask do not matter
        far = support.clone()
        far[..., 9:] += 5.0
        _close(block(query, far, mask), out)
        near = support.clone()
        near[..., :6] += 5.0
        assert not torch.allclose(block(query, near, mask), out)


def test_iterative_refine_output_stable_when_input_is():
    block = create_block("iterative_refine", 4, 2, iterations=6, return_all=True).eval()
    x = torch.randn(2, 4, 9, 13)
    with torch.no_grad():
        outs = block(x)
        assert len(outs) == 6 and all(o.shape == (2, 2, 9, 13) for o in outs)
        # residual branches at zero (as a zero-initialised residual): the step ignores y, so
        # the prediction is identical from the first iteration on
        zeroed = create_block("iterative_refine", 4, 2, iterations=6, return_all=True).eval()
        for unit in [zeroed.refine, *zeroed.residuals]:
            nn.init.zeros_(unit[-1].weight)
            nn.init.zeros_(unit[-1].bias)
        fixed = zeroed(x)
        assert all(torch.equal(o, fixed[0]) for o in fixed)
        # with a damped feedback (mask-channel weights halved, so the step is a contraction)
        # the iterates settle: each change is smaller than the last until float precision,
        # and after 4 iterations the output no longer moves; the limit is a fixed point
        weak = create_block("iterative_refine", 4, 2, iterations=8, return_all=True).eval()
        weak.refine[1].weight[:, 4:] *= 0.5
        it = weak(x)
        deltas = [(b - a).abs().max().item() for a, b in zip(it, it[1:])]
        assert deltas[0] > 1e-4  # the feedback does change the first refinement
        assert deltas[0] > deltas[1] > deltas[2]
        assert max(deltas[3:]) < 1e-6
        y_star = torch.softmax(it[-1], 1)
        _close(weak.step(x, y_star), it[-1])
    assert get_block("iterative_refine").standard_io and not get_block("iterative_refine").supports_stride
