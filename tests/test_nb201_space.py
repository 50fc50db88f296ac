"""NB201 space: decisions, the official string, the macro network's size against the table."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from automl.types import Task
from search_spaces.nb201 import EDGES, OPS, NB201Space
from search_spaces.nb201.space import from_arch_str, to_arch_str

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_decisions_and_size():
    space = NB201Space()
    assert [d.name for d in space.decisions()] == list(EDGES)
    assert all(d.choices == OPS for d in space.decisions())
    assert space.size() == 5**6 == 15625


def test_arch_string_round_trip():
    space = NB201Space()
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        text = space.describe(arch)
        assert space.parse(text) == arch
        assert to_arch_str(from_arch_str(text)) == text
    arch = from_arch_str(BEST)
    assert arch["op_e01"] == "nor_conv_3x3" and arch["op_e03"] == "skip_connect" and arch["op_e23"] == "nor_conv_1x1"


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_arch_strings_are_refused(bad):
    with pytest.raises(ValueError):
        from_arch_str(bad)


def test_validate_names_the_problem():
    space = NB201Space()
    arch = dict(space.sample(np.random.default_rng(1)))
    arch["op_e01"] = "conv7"
    with pytest.raises(ValueError, match="op_e01='conv7' is not one of"):
        space.validate(arch)
    with pytest.raises(ValueError, match="missing"):
        space.validate({"op_e01": "none"})


def test_mutation_changes_exactly_one_decision():
    space = NB201Space()
    rng = np.random.default_rng(2)
    for _ in range(100):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert sum(a[k] != b[k] for k in a) == 1


def test_graph_skips_none_edges():
    g = NB201Space().graph(from_arch_str("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"))
    assert sorted(g.edges(data="op")) == [(0, 2, "skip_connect"), (2, 3, "nor_conv_3x3")]


def test_build_honours_the_task():
    space = NB201Space()
    arch = from_arch_str(BEST)
    net = space.build(arch, Task("classification", in_channels=1, input_size=(20, 28), num_classes=7)).eval()
    assert net(torch.randn(2, 1, 20, 28)).shape == (2, 7)
    with pytest.raises(ValueError, match="classification"):
        space.build(arch, Task("segmentation"))


def test_params_and_flops_match_the_published_table(shared_benchmarks):
    """>=50 random archs: params equal params_M_cifar10 (1e-4 M) and FLOPs agree with flops_M_cifar10.

    FLOP convention: ``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add, so
    multiply-adds = total / 2. NAS-Bench-201's counter (the table) also counts the classifier
    bias additions, so table = ours + num_classes / 1e6 (1e-5 M for CIFAR-10).
    """
    with open(shared_benchmarks / "nb201_cifar10.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    space = NB201Space()
    rng = np.random.default_rng(0)
    x = torch.randn(1, 3, 32, 32)
    for i in rng.choice(len(rows), 60, replace=False):
        row = rows[int(i)]
        arch = space.parse(row["arch_str"])
        assert [OPS.index(arch[e]) for e in EDGES] == [int(row[e]) for e in EDGES]
        net = space.build(arch).eval()
        params_m = sum(p.numel() for p in net.parameters()) / 1e6
        assert params_m == pytest.approx(float(row["params_M_cifar10"]), abs=1e-4)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(x)
        madds_m = counter.get_total_flops() / 2 / 1e6
        assert madds_m + 10 / 1e6 == pytest.approx(float(row["flops_M_cifar10"]), abs=1e-4)
