"""DARTS / PC-DARTS / GDAS supernets (docs/algorithms.md §4 tests) and the NAS-Bench-201 supernet."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.darts import PRIMITIVES, DartsSpace, arch_to_genotype
from search_spaces.darts.decode import limit_skips
from search_spaces.supernet.fused import depthwise_pointwise, max_pool
from search_spaces.darts.search_ops import darts_search_op
from search_spaces.supernet.mixed import EdgeInput, MixedEdge, bn_scaled
from search_spaces.darts.ops import make_op
from search_spaces.supernet.relax import Mix, channel_shuffle, gumbel_hard, make_mix, node_slices
from search_spaces.darts.supernet import DartsSupernet, SearchCell
from search_spaces.nb201 import EDGES, OPS, NB201Space
from search_spaces.nb201.network import NB201Cell
from search_spaces.nb201.supernet import NB201Supernet

SKIP = PRIMITIVES.index("skip_connect")


def small(**options: object) -> DartsSupernet:
    torch.manual_seed(0)
    return DartsSpace().supernet(C=8, layers=3, **options)


def reference_op(name: str, searched: nn.Module | None, channels: int, stride: int) -> nn.Module:
    """The plain DARTS search op (catalogue block, BN after pools) with ``searched``'s weights."""
    ref = make_op(name, channels, stride, affine=False)
    if "pool" in name:
        ref = nn.Sequential(ref, nn.BatchNorm2d(channels, affine=False))
    if searched is not None:
        ref.load_state_dict(searched.state_dict())
    return ref.double()


def onehot_mix(edges: int, ops: int, column: int) -> Mix:
    rows = torch.zeros(edges, ops, dtype=torch.double)
    rows[:, column] = 1.0
    return Mix([r.unbind() for r in rows.unbind()])


# -- α and the mixed op ---------------------------------------------------------------------------


def test_alphas_are_small_and_rows_sum_to_one() -> None:
    net = small(edge_norm=True)
    assert [tuple(p.shape) for p in net.arch_parameters()] == [(14, 8), (14, 8), (14,), (14,)]
    assert 0 < float(net.alphas_normal.detach().abs().max()) < 1e-2
    dist = net.arch_distributions()
    for kind in ("normal", "reduce"):
        assert torch.allclose(dist[kind].sum(-1), torch.ones(14))
        for s in node_slices(4):
            assert math.isclose(float(dist[f"{kind}_edges"][s].sum()), 1.0, rel_tol=1e-6)
    arch_ids = {id(p) for p in net.arch_parameters()}
    assert not any(id(p) in arch_ids for p in net.weight_parameters())


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_mixed_edge_equals_the_weighted_sum_of_reference_ops(stride: int, channels_last: bool) -> None:
    torch.manual_seed(0)
    c = 4
    edge = MixedEdge(PRIMITIVES, c, stride, darts_search_op).double()
    searched = dict(zip(edge.columns, edge.ops, strict=True))
    refs = [reference_op(n, searched.get(k), c, stride) for k, n in enumerate(PRIMITIVES)]
    x = torch.randn(2, c, 8, 8, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = F.softmax(torch.randn(len(PRIMITIVES), dtype=torch.double), -1).requires_grad_()
    ours = edge(EdgeInput(x), w.unbind())
    theirs = sum(w[k] * ref(x) for k, ref in enumerate(refs))
    assert torch.allclose(ours, theirs, atol=1e-12)
    g = torch.randn_like(ours)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(
        torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(theirs, (x, w), g), strict=True))
    for k, ref in enumerate(refs):  # a one-hot α gives exactly the chosen op ('none': zeros)
        onehot = F.one_hot(torch.tensor(k), len(PRIMITIVES)).double()
        assert torch.allclose(edge(EdgeInput(x), onehot.unbind()), ref(x), atol=1e-12), PRIMITIVES[k]


def test_bn_scaled_is_a_scaled_batchnorm_with_the_same_statistics() -> None:
    torch.manual_seed(0)
    for momentum in (0.1, None):
        bn = nn.BatchNorm2d(3, affine=False, momentum=momentum)
        ref = copy.deepcopy(bn)
        for _ in range(2):
            x = torch.randn(4, 3, 5, 5)
            assert torch.allclose(bn_scaled(bn, x, torch.tensor(0.3)), 0.3 * ref(x), atol=1e-6)
        assert torch.allclose(bn.running_var, ref.running_var) and bn.num_batches_tracked == 2
        bn.eval(), ref.eval()
        x = torch.randn(4, 3, 5, 5)
        assert torch.allclose(bn_scaled(bn, x, torch.tensor(2.0)), 2.0 * ref(x), atol=1e-6)


@pytest.mark.parametrize(("k", "stride", "dilation"), [(3, 1, 1), (5, 2, 1), (3, 1, 2), (5, 2, 2)])
@pytest.mark.parametrize("weights_grad", [True, False])
def test_depthwise_pointwise_matches_autograd(k: int, stride: int, dilation: int, weights_grad: bool) -> None:
    torch.manual_seed(0)
    dw = nn.Conv2d(4, 4, k, stride, dilation * (k - 1) // 2, dilation, groups=4, bias=False).double()
    pw = nn.Conv2d(4, 6, 1, bias=False).double()
    for p in (*dw.parameters(), *pw.parameters()):
        p.requires_grad_(weights_grad)
    x = torch.randn(2, 4, 9, 9, dtype=torch.double, requires_grad=True)
    ours, theirs = depthwise_pointwise(x, dw, pw), pw(dw(x))
    assert torch.allclose(ours, theirs, atol=1e-12)
    inputs = (x, dw.weight, pw.weight) if weights_grad else (x,)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(theirs, inputs, g), strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_max_pool_recomputes_indices_and_matches_autograd() -> None:
    torch.manual_seed(0)
    pool = nn.MaxPool2d(3, 2, 1)
    x = torch.randn(2, 3, 7, 7, dtype=torch.double, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        ours = max_pool(x, pool)
    assert all(t.dtype != torch.int64 for t in saved)
    g = torch.randn_like(ours)
    assert torch.equal(ours, pool(x))
    assert torch.allclose(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(pool(x), x, g)[0])


def test_mixed_edge_keeps_far_less_for_backward_than_the_plain_sum() -> None:
    torch.manual_seed(0)
    edge = MixedEdge(PRIMITIVES, 8, 1, darts_search_op)
    searched = dict(zip(edge.columns, edge.ops, strict=True))
    refs = [reference_op(n, searched.get(k), 8, 1).float() for k, n in enumerate(PRIMITIVES)]
    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    w = F.softmax(torch.randn(len(PRIMITIVES)), -1).requires_grad_()

    def saved_bytes(fn: object) -> int:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if t.untyped_storage().data_ptr() != x.untyped_storage().data_ptr():
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()  # type: ignore[operator]
        return sum(storages.values())

    ours = saved_bytes(lambda: edge(EdgeInput(x), w.unbind()))
    plain = saved_bytes(lambda: sum(w[k] * ref(x) for k, ref in enumerate(refs)))
    assert ours < 0.55 * plain


# -- decoding -------------------------------------------------------------------------------------


def test_decoding_picks_top_two_edges_and_never_none() -> None:
    net = small()
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, 0] = 5.0  # 'none' dominates every edge
        net.alphas_normal[1, PRIMITIVES.index("sep_conv_5x5")] = 3.0  # node 2: state 1
        net.alphas_normal[0, SKIP] = 2.0  # node 2: state 0
        net.alphas_normal[4, PRIMITIVES.index("dil_conv_3x3")] = 4.0  # node 3: state 2
        net.alphas_normal[2, PRIMITIVES.index("avg_pool_3x3")] = 1.0  # node 3: state 0
        net.alphas_reduce.normal_()
    g = arch_to_genotype(net.derive())
    assert g.normal[:4] == (("sep_conv_5x5", 1), ("skip_connect", 0), ("dil_conv_3x3", 2), ("avg_pool_3x3", 0))
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    for pairs in (g.normal, g.reduce):
        for n in range(4):
            (op0, i0), (op1, i1) = pairs[2 * n : 2 * n + 2]
            assert "none" not in (op0, op1) and i0 != i1 and max(i0, i1) < n + 2


def test_candidates_are_distinct_best_first_and_start_with_derive() -> None:
    net = small()
    with torch.no_grad():
        net.alphas_normal.normal_()
        net.alphas_reduce.normal_()
    cands = net.candidates(5)
    assert len({str(sorted(c.items())) for c in cands}) == 5 and cands[0] == net.derive()
    w = net.edge_weights()

    def score(arch: dict) -> float:
        g, total = arch_to_genotype(arch), 0.0
        for kind, pairs in (("normal", g.normal), ("reduce", g.reduce)):
            for n, (op, i) in enumerate(pairs):
                row = node_slices(4)[n // 2].start + i
                total += math.log(float(w[kind][row, PRIMITIVES.index(op)]))
        return total

    scores = [score(c) for c in cands]
    assert all(a >= b - 1e-9 for a, b in zip(scores, scores[1:]))


def skip_heavy(max_skips: int | None) -> DartsSupernet:
    """Skip is the best op of every normal edge, with distinct skip weights; sep3 second."""
    net = small(max_skips=max_skips)
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, SKIP] = 3.0 + 0.1 * torch.arange(14.0)  # later edges: stronger skips
        net.alphas_normal[:, PRIMITIVES.index("sep_conv_3x3")] = 2.0
        net.alphas_reduce.normal_()
    return net


def test_p_darts_skip_limit_keeps_the_strongest_skips_and_gives_the_rest_their_next_op() -> None:
    unlimited = arch_to_genotype(skip_heavy(None).derive())
    assert [op for op, _ in unlimited.normal] == ["skip_connect"] * 8
    limited = skip_heavy(2)
    g = arch_to_genotype(limited.derive())
    assert g.reduce == unlimited.reduce
    rows = [node_slices(4)[n // 2].start + i for n, (_, i) in enumerate(g.normal)]
    assert sorted(r for r, (op, _) in zip(rows, g.normal) if op == "skip_connect") == [12, 13]  # strongest skips
    assert [op for op, _ in g.normal].count("sep_conv_3x3") == 6
    assert all(g.normal[2 * n][1] != g.normal[2 * n + 1][1] for n in range(4))
    assert [op for op, _ in arch_to_genotype(skip_heavy(0).derive()).normal].count("skip_connect") == 0


def test_decoded_skips_counts_the_normal_cell_before_the_skip_limit() -> None:
    """DARTS+ early stopping counts what α decodes to, not what the P-DARTS limit lets through."""
    assert skip_heavy(None).decoded_skips() == skip_heavy(2).decoded_skips() == 8
    assert small().decoded_skips() == [op for op, _ in arch_to_genotype(small().derive()).normal].count("skip_connect")


def test_p_darts_skip_limit_holds_for_every_candidate() -> None:
    net = skip_heavy(1)
    cands = net.candidates(6)
    assert cands[0] == net.derive() and len(cands) == 6
    assert all([op for op, _ in arch_to_genotype(c).normal].count("skip_connect") <= 1 for c in cands)


def test_p_darts_skip_limit_needs_another_op() -> None:
    with pytest.raises(ValueError, match="max_skips needs an op other than none and skip_connect"):
        DartsSpace(ops=("none", "skip_connect")).supernet(C=4, layers=3, max_skips=1)
    with pytest.raises(ValueError, match="max_skips=0 cannot be met"):
        limit_skips(torch.full((14, 2), 0.5), ("none", "skip_connect"), 4, 0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_p_darts_skip_limit_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="max_skips must be an integer >= 0 or null"):
        small(max_skips=bad)


def test_edge_norm_ranks_edges_by_alpha_times_beta() -> None:
    net = small(edge_norm=True)
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, SKIP] = 1.0
        net.betas_normal.zero_()
        net.betas_normal[3:5] = 2.0  # node 3 (rows 2..4): prefer states 1 and 2
    assert {i for _, i in arch_to_genotype(net.derive()).normal[2:4]} == {1, 2}
    with torch.no_grad():
        net.betas_normal[2] = 3.0  # now state 0 wins
    assert 0 in {i for _, i in arch_to_genotype(net.derive()).normal[2:4]}


# -- PC-DARTS -----------------------------------------------------------------------------------


def test_pc_darts_with_k1_is_darts_and_keeps_channel_counts() -> None:
    x = torch.randn(2, 3, 16, 16)
    darts, k1, k4 = small(), small(partial_channels=1), small(partial_channels=4)
    assert torch.equal(darts(x), k1(x))
    shapes: dict[str, list[tuple[int, ...]]] = {"k1": [], "k4": []}
    for name, net in (("k1", k1), ("k4", k4)):
        for cell in net.cells:
            cell.register_forward_hook(lambda m, i, o, name=name: shapes[name].append(tuple(o.shape)))
        net(x)
    assert shapes["k1"] == shapes["k4"]
    assert sum(p.numel() for p in k4.weight_parameters()) < sum(p.numel() for p in k1.weight_parameters())


@pytest.mark.parametrize("reduction", [False, True])
def test_pc_darts_bypass_and_channel_shuffle(reduction: bool) -> None:
    torch.manual_seed(0)
    k, c = 4, 8
    cell = SearchCell(PRIMITIVES, 1, 1, c, c, c, reduction, False, k).double()
    s0, s1 = torch.randn(2, c, 8, 8, dtype=torch.double), torch.randn(2, c, 8, 8, dtype=torch.double)
    out = cell(s0, s1, onehot_mix(2, len(PRIMITIVES), SKIP))
    p0, p1 = cell.preprocess0(s0), cell.preprocess1(s1)
    if not reduction:
        assert torch.allclose(out, channel_shuffle(p0 + p1, k))
        return
    unshuffled = channel_shuffle(out, c // k)  # the inverse permutation
    part = c // k
    skips = [edge.ops[edge.columns.index(SKIP)] for edge in cell.nodes.edges]
    mixed = skips[0](EdgeInput(p0[:, :part]), torch.tensor(1.0)) + skips[1](EdgeInput(p1[:, :part]), torch.tensor(1.0))
    bypass = F.max_pool2d(p0[:, part:], 2) + F.max_pool2d(p1[:, part:], 2)
    assert torch.allclose(unshuffled, torch.cat([mixed, bypass], 1))


# -- GDAS ---------------------------------------------------------------------------------------


def test_gumbel_sample_is_exactly_one_hot_with_gradients() -> None:
    torch.manual_seed(0)
    alpha = (3 * torch.randn(14, 8)).requires_grad_()
    for tau in (10.0, 1.0, 0.1):
        h, onehot = gumbel_hard(alpha, tau)
        assert torch.equal(h.detach(), onehot) and torch.equal(onehot.sum(-1), torch.ones(14))
        assert h.requires_grad


def test_gdas_runs_one_op_per_edge_and_every_alpha_gets_a_gradient() -> None:
    net = small(sampling="gumbel", tau=1.0)
    drawn: dict[str, Mix] = {}
    make = net.mix

    def recording_mix(kind: str) -> Mix:
        drawn[kind] = make(kind)
        return drawn[kind]

    net.mix = recording_mix  # type: ignore[method-assign]
    calls: dict[tuple[int, int], list[int]] = {}
    for c, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.nodes.edges):
            for col, op in zip(edge.columns, edge.ops, strict=True):
                op.register_forward_hook(lambda m, i, o, c=c, e=e, col=col: calls.setdefault((c, e), []).append(col))
    loss = F.cross_entropy(net(torch.randn(2, 3, 16, 16)), torch.tensor([1, 2]))
    loss.backward()
    for c, cell in enumerate(net.cells):
        index = drawn[cell.kind].index
        assert index is not None
        for e in range(14):
            assert calls.get((c, e), []) == ([] if index[e] == 0 else [index[e]])
    assert all(bool((p.grad != 0).all()) for p in net.arch_parameters())


def test_gdas_forward_equals_the_sampled_discrete_cell() -> None:
    torch.manual_seed(0)
    cell = SearchCell(PRIMITIVES, 4, 4, 8, 8, 8, False, False, 1).double()
    alpha = torch.randn(14, 8, dtype=torch.double, requires_grad=True)
    mix = make_mix(alpha, None, node_slices(4), "gumbel", 0.5)
    assert mix.index is not None and mix.rest is not None
    onehot = torch.zeros(14, 8, dtype=torch.double)
    onehot[range(14), mix.index] = 1.0
    hard = Mix([r.unbind() for r in onehot.unbind()], index=mix.index)
    s0, s1 = torch.randn(2, 8, 6, 6, dtype=torch.double), torch.randn(2, 8, 6, 6, dtype=torch.double)
    assert torch.equal(cell(s0, s1, mix), cell(s0, s1, hard))
    with pytest.raises(ValueError):
        DartsSpace().supernet(sampling="gumbel").set_temperature(0.0)


# -- the two optimisation steps -----------------------------------------------------------------


def test_weight_and_arch_steps_compute_only_what_they_need() -> None:
    net = small(partial_channels=2, edge_norm=True)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    arch = net.arch_parameters()
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), arch)
    assert all(bool(g.abs().sum() > 0) for g in grads)
    assert all(p.grad is None for p in net.weight_parameters())
    for p in arch:
        p.requires_grad_(False)
    F.cross_entropy(net(x), y).backward()
    assert all(p.grad is not None for p in net.weight_parameters())
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 10)


# -- NAS-Bench-201 ------------------------------------------------------------------------------


def nb201(**options: object) -> NB201Supernet:
    torch.manual_seed(0)
    space = NB201Space()
    return NB201Supernet(space, space.default_task, channels=8, cells_per_stage=1, **options)


def test_nb201_derive_is_the_argmax_per_edge_none_included() -> None:
    net = nb201()
    with torch.no_grad():
        net.alphas.normal_()
        net.alphas[0] = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0])
    arch = net.derive()
    assert arch["op_e01"] == "none" and list(arch) == list(EDGES)
    assert NB201Space().validate(arch) == arch
    for e, name in enumerate(EDGES):
        assert arch[name] == OPS[int(net.alphas[e].argmax())]
    cands = net.candidates(4)
    assert cands[0] == arch and len({tuple(c.values()) for c in cands}) == 4
    assert net.decoded_skips() == sum(op == "skip_connect" for op in arch.values())
    with torch.no_grad():
        net.alphas[:, OPS.index("skip_connect")] = 9.0
    assert net.decoded_skips() == 6  # the collapse DARTS shows on NAS-Bench-201


def test_nb201_one_hot_cell_equals_the_discrete_cell() -> None:
    torch.manual_seed(0)
    ops = ["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none", "nor_conv_3x3"]
    searched = nb201().cells[0].double()
    discrete = NB201Cell(ops, 8).double()
    onehot = torch.zeros(6, 5, dtype=torch.double)
    onehot[range(6), [OPS.index(o) for o in ops]] = 1.0
    for edge, op, name in zip(searched.edges, discrete.ops, ops, strict=True):
        if name.startswith("nor_conv"):
            op[1].weight.data.copy_(edge.ops[edge.columns.index(OPS.index(name))][1].weight.data)
    x = torch.randn(2, 8, 6, 6, dtype=torch.double)
    out = searched([x], Mix([r.unbind() for r in onehot.unbind()]))[-1]
    assert torch.allclose(out, discrete(x), atol=1e-12)


@pytest.mark.parametrize("options", [{"sampling": "gumbel"}, {"partial_channels": 2, "edge_norm": True}])
def test_nb201_supernet_options_train(options: dict) -> None:
    net = nb201(**options)
    loss = F.cross_entropy(net(torch.randn(2, 3, 16, 16)), torch.tensor([3, 4]))
    loss.backward()
    # Every α entry of the edges into the output node gets a gradient (GDAS: the zero-valued
    # weights of the ops not run); edges into a node the sample cut off from the output get none.
    assert net.alphas.grad is not None and bool((net.alphas.grad[3:] != 0).all())
    assert torch.allclose(net.arch_distributions()["cell"].sum(-1), torch.ones(6))


# -- latency ------------------------------------------------------------------------------------


def test_expected_and_arch_latency_read_the_lut_per_position() -> None:
    net = small()  # task 32x32: cell 0 normal (C 8), cells 1 and 2 reductions (C 16, 32)
    keys = net.latency_keys()
    assert "sep_conv_3x3:c8:32x32:s1" in keys and "skip_connect:c32:16x16:s2" in keys
    assert not any(k.startswith("none") for k in keys)
    lut = {k: 1.0 for k in keys}
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_reduce.zero_()
    # uniform α: each node expects 2 edges, each one of the 7 ops decoding can pick; 4 nodes, 3 cells
    assert math.isclose(net.expected_latency(lut).item(), 3 * 4 * 2, rel_tol=1e-6)
    lut = {k: float(len(k)) + (10.0 if k.endswith("s2") else 0.0) + net.ops.index(k.split(":")[0]) ** 2 for k in keys}
    arch = DartsSpace.presets()["darts-v2"]
    g = arch_to_genotype(arch)
    sites = [(g.normal, 8, 32, 32, False), (g.reduce, 16, 32, 16, True), (g.reduce, 32, 16, 8, True)]
    manual = 0.0
    for pairs, c, size_in, size_out, reduction in sites:
        for op, j in pairs:
            stride, size = (2, size_in) if reduction and j < 2 else (1, size_out if reduction else size_in)
            manual += lut[f"{op}:c{c}:{size}x{size}:s{stride}"]
    assert net.arch_latency(arch, lut) == manual
    net.expected_latency(lut).backward()
    assert bool((net.alphas_normal.grad[:, 1:] != 0).all())


def test_supernet_trains_under_bf16_autocast() -> None:
    net = small(partial_channels=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(torch.randn(2, 3, 16, 16))
    F.cross_entropy(logits.float(), torch.tensor([0, 1])).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and bool(torch.isfinite(g).all()) for g in grads)


def test_channel_shuffle_keeps_the_memory_format() -> None:
    x = torch.arange(2 * 8 * 3 * 3, dtype=torch.float).view(2, 8, 3, 3)
    y = channel_shuffle(x, 4)
    assert y[:, :4].equal(x[:, [0, 2, 4, 6]]) and y[:, 4:].equal(x[:, [1, 3, 5, 7]])
    z = channel_shuffle(x.contiguous(memory_format=torch.channels_last), 4)
    assert z.equal(y) and z.is_contiguous(memory_format=torch.channels_last)


def test_expected_latency_cannot_be_lowered_by_growing_none() -> None:
    """Decoding never picks 'none', so the penalty renormalises over the other ops: with
    none-heavy α the expectation stays within 10 % of the derived cell's LUT latency."""
    net = small()
    keys = net.latency_keys()
    costs = {op: 1.0 + i for i, op in enumerate(o for o in net.ops if o != "none")}
    costs["sep_conv_3x3"] = 20.0  # far from the other ops' costs: only its mass can meet the derived latency
    lut = {k: costs[k.split(":")[0]] for k in keys}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for alphas in (net.alphas_normal, net.alphas_reduce):
            alphas.copy_(torch.randn(alphas.shape, generator=gen))
            alphas[:, net.ops.index("sep_conv_3x3")] += 6.0  # the op every edge derives
            alphas[:, net.ops.index("none")] += 8.0  # and 'none' above it everywhere
    expected = net.expected_latency(lut).item()
    derived = net.arch_latency(net.derive(), lut)
    assert abs(expected - derived) <= 0.1 * derived
    with torch.no_grad():
        net.alphas_normal[:, net.ops.index("none")] += 20.0
    assert net.expected_latency(lut).item() == pytest.approx(expected, rel=1e-5)
