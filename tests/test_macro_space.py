"""The ``macro`` space (Zoph & Le): anchor decisions, the build rules, every sample runs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from automl.types import Objective, Task
from controllers.rl import RLController
from controllers.rl.tokens import AnchorStep, TokenPlan
from search_spaces.macro import MacroSpace

DIGITS = Task("classification", 1, (8, 8), 10)


def test_decisions_per_layer_and_anchor_sets():
    space = MacroSpace(layers=6)
    decisions = space.decisions()
    anchors = [d for d in decisions if d.anchor is not None]
    assert len(anchors) == 6 * 5 // 2 and all(d.anchor[1] < d.anchor[0] for d in anchors)
    assert len(decisions) == 6 * 3 + 15
    assert len(MacroSpace(layers=6, strides=True).decisions()) == 6 * 4 + 15
    plan = TokenPlan(decisions)
    assert plan.head_sizes == [4, 4, 4]  # filter height, filter width, filters: one head per kind
    assert [s.target for s in plan.steps if isinstance(s, AnchorStep)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("strides", [False, True])
def test_every_sample_builds_a_dag_and_runs_forward(strides):
    space = MacroSpace(layers=8, strides=strides)
    rng = np.random.default_rng(0)
    for _ in range(12):
        arch = space.sample(rng)
        g = space.graph(arch)
        assert nx.is_directed_acyclic_graph(g) and nx.has_path(g, "input", "output")
        net = space.build(arch, DIGITS).eval()
        with torch.no_grad():
            assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_build_rules_image_input_padding_and_unconsumed_outputs():
    space = MacroSpace(layers=3, strides=True)
    arch = {"L0.fh": 3, "L0.fw": 3, "L0.filters": 24, "L0.stride": 2,
            "L1.fh": 1, "L1.fw": 7, "L1.filters": 36, "L1.stride": 1, "L1.in0": 0,
            "L2.fh": 5, "L2.fw": 1, "L2.filters": 48, "L2.stride": 1, "L2.in0": 1, "L2.in1": 1}
    assert space.inputs(arch) == [[], [], [0, 1]]  # layer 1 chose nothing: it reads the image
    assert space.outputs(arch) == [2]
    net = space.build(arch, DIGITS)
    assert net.layers[2][0].in_channels == 24 + 36  # 4x4 and 8x8 maps concatenated after zero padding
    assert net.classifier.in_features == 48
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    arch["L2.in0"] = 0
    assert space.outputs(arch) == [0, 2] and space.build(arch, DIGITS).classifier.in_features == 24 + 48


def test_rl_samples_of_macro_build_and_a_fixed_seed_reproduces_them():
    space = MacroSpace(layers=6)
    samples = []
    for _ in range(2):
        c = RLController()
        c.bind(space, DIGITS, [Objective("val_acc", "max")], 5)
        samples.append([c.ask().arch for _ in range(6)])
    assert samples[0] == samples[1]
    for arch in samples[0]:
        space.validate(arch)
        assert space.build(arch, DIGITS)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_bad_options_are_one_line():
    with pytest.raises(ValueError, match="layers must be in 1..30"):
        MacroSpace(layers=0)
