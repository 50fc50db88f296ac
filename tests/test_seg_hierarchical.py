"""The seg-hierarchical (Auto-DeepLab) space: paths and Viterbi, decoding, presets, the built
network, the batched mixed ops against the plain ops, and the supernet's relaxations."""

from __future__ import annotations

import itertools
import json

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from automl.types import arch_key, Task
from search_spaces.seg_hierarchical import (
    AUTODEEPLAB_CITYSCAPES,
    CELL_OPS,
    OPS,
    SegHierarchicalSpace,
    count_paths,
    decode_cell,
    k_best_paths,
    viterbi_path,
)
from search_spaces.seg_hierarchical import fused
from search_spaces.seg_hierarchical.fused import _depthwise, conv_unit
from search_spaces.seg_hierarchical.genotype import check_path, edge_index, num_edges
from search_spaces.seg_hierarchical.mixed import CONV_OPS, MixedSource
from search_spaces.seg_hierarchical.ops import make_op
from search_spaces.seg_hierarchical.paths import all_paths, path_log_prob, transition_mask

TINY = dict(layers=3, filter_multiplier=2, retrain_filter_multiplier=2, stem_channels=(4, 4, 8), aspp_channels=8)
TASK = Task("segmentation", 3, (32, 32), 3)


def tiny_space(**kw) -> SegHierarchicalSpace:
    return SegHierarchicalSpace(**{**TINY, **kw})


def random_beta(layers: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(layers, 4, 3, generator=g) * 2
    mask = torch.from_numpy(transition_mask(layers))
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)


class CountConvs:
    """Counts ``F.conv2d`` calls (every conv of the package and of nn.Conv2d goes through it) and
    the 1x1 depthwise convs the fused unit does as per-channel products instead."""

    def __enter__(self):
        self.convs = 0
        self.original = nn.functional.conv2d
        self.depthwise = fused._depthwise

        def counted(*args, **kwargs):
            self.convs += 1
            return self.original(*args, **kwargs)

        def counted_product(x, weight, *args, **kwargs):
            self.convs += weight.shape[-2:] == (1, 1)  # the other sizes reach F.conv2d
            return self.depthwise(x, weight, *args, **kwargs)

        nn.functional.conv2d = counted
        fused._depthwise = counted_product
        return self

    def __exit__(self, *exc):
        nn.functional.conv2d = self.original
        fused._depthwise = self.depthwise


# -- network level ------------------------------------------------------------------------------


def test_path_counts_pin_the_convention():
    assert count_paths(12) == 75_025  # layer 1 at stride 4 or 8
    assert count_paths(12, first_levels=(0,)) == 28_657  # the paper's "2.9 x 10^4"
    for layers in range(1, 7):
        paths = list(all_paths(layers))
        assert len(paths) == len(set(paths)) == count_paths(layers)
        assert all(check_path(p) == p for p in paths)


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_is_a_valid_path_and_the_brute_force_argmax(seed):
    beta = random_beta(12, seed)
    path = viterbi_path(beta)
    assert len(path) == 12 and path[0] in (0, 1)
    assert all(0 <= s <= 3 for s in path) and all(abs(a - b) <= 1 for a, b in zip(path, path[1:]))
    for layers in (1, 2, 5, 7):
        small = random_beta(layers, seed)
        scores = {p: path_log_prob(small, p) for p in all_paths(layers)}
        best = max(scores, key=scores.get)
        assert tuple(viterbi_path(small)) == best
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:4]
        got = k_best_paths(small, 4)
        assert [tuple(p) for _, p in got] == [p for p, _ in top]
        assert np.allclose([s for s, _ in got], [s for _, s in top])


def test_beta_favouring_same_gives_the_all_zero_path():
    beta = torch.zeros(12, 4, 3)
    beta[:, :, 1] = 0.9
    beta[:, :, 0] = beta[:, :, 2] = 0.05
    assert viterbi_path(beta) == [0] * 12


def test_path_decoding_relative_to_uniform_has_no_boundary_bias():
    """A β that only slightly favours moving coarser everywhere: plain max-product stays at
    stride 4 (its node has 2 moves of 1/2, the others 3 of 1/3); relative to uniform it climbs."""
    from search_spaces.seg_hierarchical.paths import relative_to_uniform
    from search_spaces.seg_hierarchical.supernet import masked_softmax

    logits = torch.zeros(12, 4, 3)
    logits[:, :, 2] = 0.01
    probs = masked_softmax(logits, torch.from_numpy(transition_mask(12)))
    assert viterbi_path(probs)[:11] == [0] * 11  # stays at stride 4 (only the last move is free)
    assert viterbi_path(relative_to_uniform(probs))[:3] == [1, 2, 3]
    net = SegHierarchicalSpace(layers=12, filter_multiplier=2).supernet(TASK)
    with torch.no_grad():
        net.beta.copy_(logits)
    assert list(SegHierarchicalSpace(layers=12).genotype(net.derive()).path[:3]) == [1, 2, 3]


def test_uniform_beta_scores_every_path_alike():
    """float32's uniform softmax (0.33333334 x 3 > 0.5 x 2) must not pick the path: every path
    of a uniform β scores exactly 1 relative to uniform, and the tie rule decides."""
    from search_spaces.seg_hierarchical.paths import k_best_paths, relative_to_uniform
    from search_spaces.seg_hierarchical.supernet import masked_softmax

    probs = masked_softmax(torch.zeros(4, 4, 3), torch.from_numpy(transition_mask(4)))
    assert probs.dtype == torch.float32
    scores = k_best_paths(relative_to_uniform(probs), 50)
    assert len(scores) > 10 and {score for score, _ in scores} == {0.0}
    assert scores[0][1] == [0, 0, 0, 0]  # ties go to the lexicographically smallest path


def test_outgoing_softmaxes_sum_to_one_at_every_node():
    net = SegHierarchicalSpace(layers=6, filter_multiplier=2).supernet(TASK)
    with torch.no_grad():
        net.beta.normal_(0, 3)
        p = net.network_probs()
    for l in range(6):
        for i in range(4):
            reachable = i <= l if l > 0 else i == 0
            row = p[l, i]
            if reachable:
                assert torch.isclose(row.sum(), torch.tensor(1.0))
                assert (row[0] == 0) == (i == 0) and (row[2] == 0) == (i == 3)  # boundary: two moves
            else:
                assert row.sum() == 0
    assert transition_mask(6)[0].sum() == 2  # the stem: same or coarser


# -- cell level ---------------------------------------------------------------------------------


def test_decoding_never_yields_zero_and_picks_two_distinct_inputs():
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        logits = torch.randn(num_edges(5), len(OPS), generator=g) * 3
        if trial % 2:
            logits[:, 0] = 50.0  # 'zero' dominates every edge
        cell = decode_cell(torch.softmax(logits, -1), 5)
        for k, ((op1, i), (op2, j)) in enumerate(cell):
            assert op1 in CELL_OPS and op2 in CELL_OPS
            assert 0 <= i < j <= k + 1


@pytest.mark.parametrize("max_skips", [0, 2])
def test_skip_limit_keeps_the_strongest_skips(max_skips):
    net = tiny_space().supernet(max_skips=max_skips)
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[:, OPS.index("skip_connect")] = 3.0 + 0.1 * torch.arange(float(num_edges(5)))
        net.alpha[:, OPS.index("sep_conv_3x3")] = 2.0
    blocks = decode_cell(torch.softmax(net.alpha, -1), 5)
    assert sum(op == "skip_connect" for block in blocks for op, _ in block) == 10  # unlimited: all skips
    arch = net.derive()
    ops = [v for k, v in sorted(arch.items()) if "_op" in k]
    assert ops.count("skip_connect") == max_skips and ops.count("sep_conv_3x3") == 10 - max_skips
    if max_skips == 2:  # the strongest skips: block 5's edges from inputs 4 and 5
        assert (arch["b5_inputs"], arch["b5_op1"], arch["b5_op2"]) == ("4,5", "skip_connect", "skip_connect")
    assert net.candidates(3)[0] == arch
    assert net.decoded_skips() == 10  # DARTS+ counts the cell α decodes to, before the limit


def test_alpha_rows_follow_the_noamrosenberg_edge_order():
    # docs/algorithms.md Appendix C: (edge, PRIMITIVE) of the published cell, 0 = H(l-2); TF uses edge 17 last
    pairs = [(0, 7), (1, 4), (2, 4), (3, 6), (5, 4), (8, 4), (11, 5), (13, 5), (19, 7), (17, 5)]
    alpha = torch.zeros(num_edges(5), len(OPS))
    for edge, op in pairs:
        alpha[edge, op] = 10.0
    assert tuple(decode_cell(torch.softmax(alpha, -1), 5)) == AUTODEEPLAB_CITYSCAPES.cell
    assert edge_index(4, 3, 5) == 17 and edge_index(4, 4, 5) == 18


def copy_discrete(mixed: MixedSource, edge: int, name: str) -> nn.Module:
    """The plain op of one edge with the mixed op's weights (search BN: affine off, train mode)."""
    op = make_op(name, mixed.channels, affine=False)
    names = [n for n, _, _ in CONV_OPS]
    e = mixed.edges
    if name.startswith("sep"):
        o = names.index(name)
        op[0][1].weight.data.copy_(mixed.dw1(o)[edge])
        op[0][2].weight.data.copy_(mixed.pw1[o * e + edge, :, :, None, None])
        op[1][1].weight.data.copy_(mixed.dw2(o)[edge])
        op[1][2].weight.data.copy_(mixed.pw2[o * e + edge, :, :, None, None])
    elif name.startswith("atrous"):
        o = names.index(name)
        op[1].weight.data.copy_(mixed.dw1(o)[edge])
        op[2].weight.data.copy_(mixed.pw1[o * e + edge, :, :, None, None])
    elif "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(mixed.channels, affine=False))
    return op.train()


def per_transition(x: torch.Tensor, t: int) -> torch.Tensor:
    """Channel-major [C, T, N, H, W] -> the plain [N, C, H, W] input of transition t."""
    return x[:, t].permute(1, 0, 2, 3)


@pytest.mark.parametrize("size", [(7, 6), (3, 2)])
def test_mixed_op_is_the_weighted_sum_of_the_plain_ops(size):
    torch.manual_seed(0)
    c, e, t = 3, 3, 2
    mixed = MixedSource(c, e).double()
    x = torch.randn(c, t, 2, *size, dtype=torch.float64)
    w = torch.softmax(torch.randn(e, len(OPS), dtype=torch.float64), -1)
    y = mixed(x, w[:, 4:].t(), w[:, 1:4])
    for edge, tr in itertools.product(range(e), range(t)):
        xt = per_transition(x, tr)
        ref = sum(w[edge, o] * copy_discrete(mixed, edge, n).double()(xt) for o, n in enumerate(OPS) if n != "zero")
        assert torch.allclose(y[edge, :, tr].permute(1, 0, 2, 3), ref, atol=1e-10)


@pytest.mark.parametrize("name", CELL_OPS)
def test_one_hot_alpha_makes_the_mixed_op_the_chosen_op(name):
    torch.manual_seed(1)
    mixed = MixedSource(4, 2)
    x = torch.randn(4, 3, 2, 6, 5)
    w = torch.zeros(2, len(OPS))
    w[:, OPS.index(name)] = 1.0
    soft = mixed(x, w[:, 4:].t(), w[:, 1:4])
    hard = mixed.forward_hard(x, w, [OPS.index(name)] * 2)
    for edge, tr in itertools.product(range(2), range(3)):
        ref = copy_discrete(mixed, edge, name)(per_transition(x, tr))
        assert torch.allclose(soft[edge, :, tr].permute(1, 0, 2, 3), ref, atol=1e-5)
        assert torch.allclose(hard[edge, :, tr].permute(1, 0, 2, 3), ref, atol=1e-5)


def test_zero_costs_nothing_and_gives_zeros():
    mixed = MixedSource(2, 2)
    x = torch.randn(2, 1, 2, 4, 4)
    w = torch.zeros(2, len(OPS))
    w[:, 0] = 1.0
    with CountConvs() as counter:
        y = mixed.forward_hard(x, w, [0, 0])
    assert counter.convs == 0 and torch.all(y == 0)


def test_fused_unit_gradients_match_finite_differences():
    torch.manual_seed(0)
    dt = torch.float64
    u = torch.randn(1, 2, 1, 2, 4, 3, dtype=dt, requires_grad=True)
    k1 = torch.randn(2, 2, 1, 3, 3, dtype=dt, requires_grad=True)
    k2 = torch.randn(1, 2, 1, 3, 1, dtype=dt, requires_grad=True)
    pw = torch.randn(3, 2, 2, dtype=dt, requires_grad=True)
    scale = torch.rand(3 * 2 * 1, dtype=dt, requires_grad=True)

    def unit(u, k1, k2, pw, scale):
        return conv_unit(u, [(k1, 1), (k2, 2)], pw, scale)

    assert torch.autograd.gradcheck(unit, (u, k1, k2, pw, scale), eps=1e-6, atol=1e-6)
    per_group = torch.randn(3, 2, 1, 2, 4, 3, dtype=dt, requires_grad=True)
    def per_group_unit(u, k1, pw):
        return conv_unit(u, [(k1, 1), (k1[:1], 2)], pw)

    assert torch.autograd.gradcheck(per_group_unit, (per_group, k1, pw), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(("padding", "stride"), [((0, 0), 1), ((1, 2), 1), ((0, 0), 2), ((2, 1), 3)])
def test_a_1x1_depthwise_conv_is_the_per_channel_product(padding, stride):
    torch.manual_seed(0)
    x, w = torch.randn(1, 5, 6, 7, dtype=torch.float64), torch.randn(5, 1, 1, 1, dtype=torch.float64)
    ref = F.conv2d(x, w, padding=padding, stride=stride, groups=5)
    assert torch.equal(_depthwise(x, w, padding, 1, stride), ref)


def test_fused_unit_gradients_on_a_1x1_map_match_finite_differences():
    """The deepest levels: 1x1 maps, so 1x1 (cropped) kernels and 1x1 kernel gradients."""
    torch.manual_seed(2)
    dt = torch.float64
    u = torch.randn(1, 2, 2, 3, 1, 1, dtype=dt, requires_grad=True)
    k1 = torch.randn(2, 2, 1, 1, 1, dtype=dt, requires_grad=True)
    pw = torch.randn(2, 3, 2, dtype=dt, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, k1, pw: conv_unit(u, [(k1, 2)], pw), (u, k1, pw), eps=1e-6, atol=1e-6)


# -- the space ----------------------------------------------------------------------------------


def test_preset_is_the_published_architecture():
    space = SegHierarchicalSpace()
    arch = SegHierarchicalSpace.presets()["autodeeplab-cityscapes"]
    g = space.genotype(arch)
    assert list(g.path) == [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]
    assert g.cell == (
        (("atrous_conv_5x5", 0), ("sep_conv_3x3", 1)),
        (("sep_conv_3x3", 0), ("atrous_conv_3x3", 1)),
        (("sep_conv_3x3", 0), ("sep_conv_3x3", 3)),  # B3 = sep3(B2) + sep3(H(l-2))
        (("sep_conv_5x5", 2), ("sep_conv_5x5", 4)),  # B4 = sep5(B3) + sep5(B1)
        (("sep_conv_5x5", 3), ("atrous_conv_5x5", 5)),  # B5 = sep5(B2) + atr5(B4) (TF)
    )
    assert space.validate(arch) == arch and json.loads(json.dumps(arch)) == arch
    assert space.parse(space.describe(arch)) == arch
    small = SegHierarchicalSpace(retrain_filter_multiplier=2, stem_channels=(4, 4, 8), aspp_channels=8)
    out = small.build(arch, Task("segmentation", 3, (33, 47), 5))(torch.randn(2, 3, 33, 47))
    assert out.shape == (2, 5, 33, 47)


def test_decisions_sample_mutate_and_validate():
    space = SegHierarchicalSpace()
    names = [d.name for d in space.decisions()]
    assert names[:2] == ["path_1", "move_2"] and len(names) == 12 + 15
    assert space.size() == 75_025 * (1 * 3 * 6 * 10 * 15) * 49**5
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        arch = space.sample(rng)
        assert space.validate(arch) == arch
        seen.add(arch_key(arch))
        child = space.mutate(arch, rng)
        assert space.validate(child) == child and child != arch
        g, h = space.genotype(arch), space.genotype(child)
        changed = sum(a != b for a, b in zip(g.path, h.path)) + sum(a != b for a, b in zip(g.cell, h.cell))
        assert changed == 1
    assert len(seen) == 30
    clamped = {**space.presets()["autodeeplab-cityscapes"], "move_10": 1}  # level 3 -> 3: a clamped move
    assert space.validate(clamped)["move_10"] == 0
    with pytest.raises(ValueError, match="b2_inputs"):
        space.validate({**clamped, "b2_inputs": "1,1"})
    with pytest.raises(ValueError, match="missing"):
        space.validate({"path_1": 0})


def test_graph_follows_the_path():
    space = SegHierarchicalSpace()
    g = space.graph(space.presets()["autodeeplab-cityscapes"])
    assert nx.is_directed_acyclic_graph(g)
    assert [g.nodes[f"cell{l}"]["stride"] for l in range(12)] == [4, 4, 4, 8, 16, 8, 16, 16, 32, 32, 16, 8]
    assert g.edges["cell2", "cell3"]["resample"] == "down" and g.edges["cell4", "cell5"]["resample"] == "up"
    assert g.has_edge("cell2", "decoder")  # the last stride-4 cell feeds the decoder (TF: Cell_2)
    assert g.graph["cell"].number_of_edges() == 2 * 5 + 5


@pytest.mark.parametrize("decoder", [True, False])
@pytest.mark.parametrize("size", [(33, 47), (17, 9)])
def test_build_gives_logits_at_the_input_size(decoder, size):
    space = tiny_space(decoder=decoder, layers=4)
    arch = space.from_genotype(AUTODEEPLAB_CITYSCAPES.cell, [1, 2, 3, 2])
    model = space.build(arch, Task("segmentation", 2, size, 4))
    assert (model.decoder is not None) == decoder
    assert model(torch.randn(2, 2, *size)).shape == (2, 4, *size)


@pytest.mark.parametrize(("stem", "retrain"), [(4, None), (2, None), (1, None), (4, 1)])
def test_stem_stride_sets_the_level_resolutions_of_supernet_and_built_network(stem, retrain):
    space = tiny_space(stem_stride=stem, retrain_stem_stride=retrain)
    built = retrain or stem
    model = space.build(space.from_genotype(AUTODEEPLAB_CITYSCAPES.cell, [0, 1, 2]), TASK)
    sizes = {}
    for l, cell in enumerate(model.cells):
        cell.register_forward_hook(lambda m, i, out, l=l: sizes.__setitem__(l, tuple(out.shape[-2:])))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert sizes == {l: (32 // (built * 2**s),) * 2 for l, s in enumerate([0, 1, 2])}
    g = space.graph(space.from_genotype(AUTODEEPLAB_CITYSCAPES.cell, [0, 1, 2]))
    assert [g.nodes[f"cell{l}"]["stride"] for l in range(3)] == [built, 2 * built, 4 * built]
    net = space.supernet(TASK)
    assert net.stem1(net.stem0(torch.randn(1, 3, 32, 32))).shape[-1] == 32 // stem
    assert net.lut_sites[0][1] == (32 // built,) * 2  # latency keys follow the built network
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_a_stem_stride_outside_4_2_1_is_refused():
    with pytest.raises(ValueError, match="retrain_stem_stride must be one of 4, 2, 1, got 8"):
        tiny_space(retrain_stem_stride=8)


def test_build_exports_with_torch_export():
    space = tiny_space()
    model = space.build(space.sample(np.random.default_rng(3)), TASK).eval()
    x = torch.randn(1, 3, 33, 47)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)


# -- the supernet -------------------------------------------------------------------------------


def test_supernet_forward_backward_reaches_alpha_beta_and_weights():
    torch.manual_seed(0)
    space = tiny_space()
    net = space.supernet(TASK)
    assert [p.shape for p in net.arch_parameters()] == [(20, 8), (3, 4, 3)]
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    nn.functional.cross_entropy(out, torch.randint(0, 3, (2, 32, 32))).backward()
    assert net.alpha.grad.abs().sum() > 0 and torch.all(net.alpha.grad[:, 1:] != 0)
    valid = torch.from_numpy(transition_mask(3))
    assert torch.all(net.beta.grad[valid] != 0) and torch.all(net.beta.grad[~valid] == 0)
    assert all(p.grad is not None for p in net.weight_parameters())
    arch = net.derive()
    assert space.validate(arch) == arch
    dist = net.arch_distributions()
    assert dist["cell"].shape == (20, 8) and dist["network"].shape == (3, 4, 3)
    cands = net.candidates(3)
    assert len({arch_key(a) for a in cands}) == 3 and cands[0] == arch


def test_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        net = tiny_space().supernet(TASK, checkpoint=ckpt)
        net(x).square().mean().backward()
        grads.append(torch.cat([net.alpha.grad.flatten(), net.beta.grad.flatten()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def forced_gdas(op: str) -> tuple[nn.Module, int, torch.Tensor]:
    torch.manual_seed(0)
    net = tiny_space().supernet(TASK, sampling="gumbel")
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[:, OPS.index(op)] = 60.0  # beats any Gumbel noise
    with CountConvs() as counter:
        out = net(torch.randn(2, 3, 32, 32))
    return net, counter.convs, out


def test_gdas_runs_exactly_one_op_per_edge():
    sources = sum(len(list(range(min(l + 2, 4)))) for l in range(3)) * (5 + 1)  # nodes x cell states
    _, skip, _ = forced_gdas("skip_connect")
    _, zero, _ = forced_gdas("zero")
    _, sep, _ = forced_gdas("sep_conv_3x3")
    _, atrous, _ = forced_gdas("atrous_conv_5x5")
    assert skip == zero  # weight-free ops run no conv
    assert sep - skip == 2 * sources and atrous - skip == sources  # one unit per separable stage
    soft = tiny_space().supernet(TASK)
    with CountConvs() as soft_counter:
        soft(torch.randn(2, 3, 32, 32))
    assert soft_counter.convs - skip == 3 * sources  # all four conv ops in three kernels per state
    torch.manual_seed(0)
    net = tiny_space().supernet(TASK, sampling="gumbel")
    net.set_temperature(0.5)
    hard, chosen = net.sample_ops()
    assert torch.equal(hard.detach(), nn.functional.one_hot(chosen, len(OPS)).float())
    net(torch.randn(2, 3, 32, 32)).square().mean().backward()
    assert torch.all(net.alpha.grad != 0)  # straight-through: every α of every edge


def test_partial_channels_and_edge_norm():
    torch.manual_seed(0)
    space = tiny_space(filter_multiplier=4)
    net = space.supernet(TASK, partial_channels=2, edge_norm=True)
    assert len(net.arch_parameters()) == 3
    mixed_params = sum(p.numel() for n, p in net.named_parameters() if ".mixed." in n)
    full = sum(p.numel() for n, p in space.supernet(TASK).named_parameters() if ".mixed." in n)
    assert mixed_params < full / 2  # the mixed ops see C/2 channels
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    out.square().mean().backward()
    assert torch.all(net.gamma.grad != 0)
    assert net.arch_distributions()["edges"].shape == (20,)
    with pytest.raises(ValueError, match="partial_channels"):
        space.supernet(TASK, partial_channels=3)


def test_expected_latency_is_differentiable_and_meets_the_arch_latency_when_saturated():
    space = tiny_space(layers=4)
    task = Task("segmentation", 3, (33, 47), 3)
    net = space.supernet(task, edge_norm=True)
    keys = net.latency_keys()
    assert len(keys) == 4 * len(CELL_OPS) and "sep_conv_3x3:c2:9x12:s1" in keys  # 33x47 -> 9x12 at stride 4
    lut = {k: 1.0 + i for i, k in enumerate(keys)}
    net.expected_latency(lut).backward()
    picked = [i for i, op in enumerate(OPS) if op != "zero"]  # decoding never picks 'zero': renormalised away
    assert torch.all(net.alpha.grad[:, picked] != 0) and torch.all(net.alpha.grad[:, OPS.index("zero")] == 0)
    assert torch.all(net.gamma.grad != 0)
    assert net.beta.grad.abs().sum() > 0
    g = space.genotype(space.from_genotype(AUTODEEPLAB_CITYSCAPES.cell, [1, 2, 2, 3]))  # saturate α, γ, β on it
    with torch.no_grad():
        net.alpha.zero_(), net.gamma.zero_(), net.beta.zero_()
        for k, block in enumerate(g.cell):
            for op, src in block:
                net.alpha[edge_index(k, src, 5), OPS.index(op)] = 40.0
                net.gamma[edge_index(k, src, 5)] = 40.0
        prev = 0
        for l, s in enumerate(g.path):
            net.beta[l, prev, s - prev + 1] = 40.0
            prev = s
    arch = net.derive()
    assert space.genotype(arch) == g
    assert net.expected_latency(lut).item() == pytest.approx(net.arch_latency(arch, lut), rel=1e-4)
    with torch.no_grad():  # 'zero' above every op on every edge: neither the decoding nor the expectation moves
        net.alpha[:, OPS.index("zero")] += 60.0
    assert net.derive() == arch
    assert net.expected_latency(lut).item() == pytest.approx(net.arch_latency(arch, lut), rel=1e-4)
    with pytest.raises(KeyError, match="latency_keys"):
        net.arch_latency(arch, {})


def test_built_aspp_rates_follow_the_input_size():
    def dilations(net: nn.Module) -> list[int]:
        return [branch[0].dilation[0] for branch in net.aspp.branches if branch[0].kernel_size == (3, 3)]

    space = tiny_space(retrain_stem_stride=1)
    arch = space.validate({**space.sample(np.random.default_rng(3)), "path_1": 0, "move_2": 0, "move_3": 0})
    assert list(space.genotype(arch).path) == [0, 0, 0]  # the last cell at stride 1: 16x the stride-16 rates
    small = space.build(arch, Task("segmentation", 3, (32, 32), 5))
    assert dilations(small) == [6, 12, 18]  # not 96/192/288 on a 32x32 map
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 5, 32, 32)
    assert dilations(space.build(arch, Task("segmentation", 3, (513, 513), 5))) == [96, 192, 288]
