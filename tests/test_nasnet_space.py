"""The ``nasnet`` space: 50 decisions, the NASNet-A preset against the TF arrays,
ScheduledDropPath, every sample builds, the RL controller emits it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from automl.types import Objective, Task
from controllers.rl import RLController
from search_spaces.darts.network import drop_path
from search_spaces.darts.presets import NASNET_A_TF
from search_spaces.nasnet import NasnetSpace, keep_prob, tf_arrays

DIGITS = Task("classification", 1, (8, 8), 10)


def small(**kw) -> NasnetSpace:
    return NasnetSpace(C=4, layers=3, **kw)


def test_fifty_decisions_and_block_inputs_below_two_plus_k():
    decisions = small().decisions()
    assert len(decisions) == 50
    for d in decisions:
        if d.name.endswith((".in1", ".in2")):
            k = int(d.name.split(".b")[1].split(".")[0])
            assert d.choices == tuple(range(2 + k))
    c = RLController()
    c.bind(small(), DIGITS, [Objective("val_acc", "max")], 0)
    for _ in range(5):
        arch = c.ask().arch
        assert len(arch) == 50 and small().validate(arch) == arch


def test_the_nasnet_a_preset_gives_back_the_tf_arrays():
    space = small()
    arrays = tf_arrays(space, space.parse("nasnet-a"))
    for cell in ("normal", "reduce"):
        ops, indices, _ = NASNET_A_TF[cell]
        assert arrays[cell][:2] == (list(ops), list(indices))
    # the paper's output rule: every state no block reads (TF's arrays also output H(l-2) in the
    # normal cell and block 1 in the reduction cell, which blocks do read)
    assert arrays["normal"][2] == [1, 1, 0, 0, 0, 0, 0] and arrays["reduce"][2] == [1, 1, 1, 1, 0, 0, 0]


def test_scheduled_drop_path_keep_probability():
    p, cells, total = 0.6, 6, 100
    assert all(keep_prob(c, cells, 0, total, p) == 1.0 for c in range(cells))
    assert keep_prob(cells - 1, cells, total, total, p) == pytest.approx(p)
    assert keep_prob(cells - 1, cells, 5 * total, total, p) == pytest.approx(p)
    by_cell = [keep_prob(c, cells, 50, total, p) for c in range(cells)]
    by_step = [keep_prob(3, cells, t, total, p) for t in range(0, 150, 10)]
    assert by_cell == sorted(by_cell, reverse=True) and by_step == sorted(by_step, reverse=True)


def test_drop_path_is_off_in_eval_and_unbiased_in_training():
    x = torch.ones(20000, 1, 1, 1)
    assert drop_path(x, 0.4).mean().item() == pytest.approx(1.0, abs=0.03)  # mask-averaged output = input
    net = small(drop_path_keep_prob=0.5, total_steps=1).build(small().parse("nasnet-a"), DIGITS)
    net.train()
    net(torch.randn(4, 1, 8, 8))  # one step: the schedule is at its end now
    assert net.cell_drop_prob(len(net.cells) - 1) == pytest.approx(0.5)
    net.eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))  # eval never drops


@pytest.mark.parametrize("seed", range(4))
def test_every_sample_builds_and_runs(seed):
    space = small()
    arch = space.sample(np.random.default_rng(seed))
    g = space.graph(arch)
    assert nx.is_directed_acyclic_graph(g)
    net = space.build(arch, DIGITS)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_an_eval_network_exports_with_torch_export():
    net = small().build(small().parse("nasnet-a"), DIGITS).eval()
    x = torch.randn(2, 1, 8, 8)
    program = torch.export.export(net, (x,))  # the drop-path schedule is never read in eval mode
    assert torch.allclose(program.module()(x), net(x), atol=1e-5)


def test_concat_combine_keeps_the_channel_count():
    space = small()
    arch = space.parse("nasnet-a")
    arch.update({f"normal.b{k}.combine": "concat" for k in range(5)})
    net = space.build(arch, DIGITS)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert len(net.cells[0].fuse) == 5


def test_describe_reads_like_the_cells_and_parses_back():
    space = small()
    arch = space.parse("nasnet-a")
    text = space.describe(arch)
    assert text.startswith("normal: sep_conv_5x5~0+sep_conv_3x3~1:add | sep_conv_5x5~1+sep_conv_3x3~1:add")
    assert "; reduce: sep_conv_5x5~0+sep_conv_7x7~1:add" in text
    assert space.parse(text) == arch
    with pytest.raises(ValueError, match="nasnet: cannot read"):
        space.parse("normal: sep_conv_5x5 | nonsense")
