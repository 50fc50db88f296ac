"""The ``darts`` space: genotypes <-> arch JSON, presets, sampling, graph and the built network."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from automl.types import arch_key, Task
from search_spaces.darts import DARTS_V2, NASNET_A, DartsSpace, arch_to_genotype, genotype_to_arch
from search_spaces.darts.genotype import Genotype, key, parse_genotype, to_nasnet_tf
from search_spaces.darts.network import drop_path
from search_spaces.darts.ops import check_op
from search_spaces.darts.presets import NASNET_A_TF

SMALL = {"C": 8, "layers": 4}


def _pairs(arch: dict, kind: str, node: int) -> list[tuple[str, int]]:
    return [(arch[key(kind, node, s, "op")], arch[key(kind, node, s, "in")]) for s in (0, 1)]


def test_decisions_follow_the_darts_cell() -> None:
    space = DartsSpace()
    names = [d.name for d in space.decisions()]
    assert len(names) == 2 * 4 * 4 and len(set(names)) == len(names)
    by_name = {d.name: d.choices for d in space.decisions()}
    assert by_name["normal_node2_in0"] == (0, 1)
    assert by_name["reduce_node5_in1"] == (0, 1, 2, 3, 4)
    assert "none" not in by_name["normal_node3_op0"] and len(by_name["normal_node3_op0"]) == 7


def test_darts_v2_round_trips_through_arch_json_and_text() -> None:
    arch = genotype_to_arch(DARTS_V2)
    assert set(arch) == {d.name for d in DartsSpace().decisions()}  # default concat: no extra key
    # docs/algorithms.md Appendix C: normal node 5 = [skip(0), dil3(2)], reduce node 3 = [skip(2), max3(1)]
    assert _pairs(arch, "normal", 5) == [("skip_connect", 0), ("dil_conv_3x3", 2)]
    assert _pairs(arch, "reduce", 3) == [("skip_connect", 2), ("max_pool_3x3", 1)]
    assert arch_to_genotype(json.loads(json.dumps(arch))) == DARTS_V2
    space = DartsSpace()
    assert space.parse(space.describe(arch)) == arch
    assert space.parse("darts-v2") == arch == DartsSpace.presets()["darts-v2"]
    text = "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0)], normal_concat=range(2, 3), " \
           "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])"
    assert parse_genotype(text).normal_concat == (2,)


def test_nasnet_a_decodes_to_the_tf_arrays() -> None:
    # Hand-converted from the TF cell (0 = H(l-1) -> DARTS 1, 1 = H(l-2) -> DARTS 0).
    assert NASNET_A.normal[:4] == (("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0))
    assert NASNET_A.reduce[6:] == (("skip_connect", 3), ("avg_pool_3x3", 2), ("sep_conv_3x3", 2), ("max_pool_3x3", 1))
    assert NASNET_A.normal_concat == (0, 2, 3, 4, 5, 6) and NASNET_A.reduce_concat == (3, 4, 5, 6)
    for kind in ("normal", "reduce"):
        ops, idx, used = to_nasnet_tf(*NASNET_A.cell(kind))
        assert (tuple(ops), tuple(idx), tuple(used)) == NASNET_A_TF[kind]
    arch = DartsSpace.presets()["nasnet-a"]
    assert arch["normal_concat"] == [0, 2, 3, 4, 5, 6] and arch_to_genotype(arch) == NASNET_A


@pytest.mark.parametrize("name", ["darts-v2", "nasnet-a"])
def test_presets_build_run_and_export(name: str) -> None:
    torch.manual_seed(0)
    space = DartsSpace(**SMALL)
    net = space.build(space.preset(name)).eval()
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 10)
    exported = torch.export.export(net, (x,))
    assert torch.allclose(exported.module()(x), net(x), atol=1e-5)
    if name == "nasnet-a":  # normal cells output H(l-2) and 5 blocks: 6C channels
        assert net.cells[0].multiplier == 6 and net.cells[1].multiplier == 4


def test_build_honours_task_aux_head_and_drop_path() -> None:
    torch.manual_seed(0)
    space = DartsSpace(C=8, layers=6, auxiliary=True, drop_path_prob=0.3)
    net = space.build(space.preset("darts-v2"), Task("classification", 1, (32, 32), 7))
    x = torch.randn(3, 1, 32, 32)
    logits, aux = net.train()(x)
    assert logits.shape == aux.shape == (3, 7)
    net.eval()
    assert torch.equal(net(x), net(x))  # no drop path, no aux in eval mode
    with pytest.raises(ValueError, match="auxiliary"):
        space.build(space.preset("darts-v2"), Task("classification", 3, (16, 16), 10))


def test_drop_path_zeroes_or_rescales_whole_samples() -> None:
    torch.manual_seed(0)
    x = torch.ones(4000, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_sample = y.flatten(1)
    kept = (per_sample == 1 / 0.75).all(1)
    assert torch.all(kept | (per_sample == 0).all(1))
    assert abs(kept.float().mean().item() - 0.75) < 0.03


def test_sample_and_mutate_give_valid_distinct_input_cells() -> None:
    space = DartsSpace()
    rng = np.random.default_rng(0)
    for _ in range(100):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        for a in (arch, child):
            assert space.validate(a) == a
            for kind, node in itertools.product(("normal", "reduce"), range(2, 6)):
                (op0, i0), (op1, i1) = _pairs(a, kind, node)
                assert i0 != i1 and max(i0, i1) < node and "none" not in (op0, op1)
        assert sum(arch[k] != child[k] for k in arch) == 1


def test_size_counts_distinct_cells() -> None:
    space = DartsSpace(ops=("none", "skip_connect", "sep_conv_3x3"), steps=2, multiplier=2)
    rng = np.random.default_rng(1)
    cells = set()
    for _ in range(3000):
        a = space.sample(rng)
        cells.add(tuple(frozenset(_pairs(a, "normal", n)) for n in (2, 3)))
    assert len(cells) == int(round(space.size() ** 0.5)) == (1 * 4) * (3 * 4)


def test_validate_names_the_problem() -> None:
    space = DartsSpace()
    arch = space.preset("darts-v2")
    with pytest.raises(ValueError, match="node 3 may read states 0..2"):
        space.validate({**arch, "normal_node3_in0": 3})
    with pytest.raises(ValueError, match="unknown DARTS op"):
        space.validate({**arch, "reduce_node2_op1": "conv_9x8"})
    with pytest.raises(ValueError, match="unknown keys"):
        space.validate({**arch, "extra": 1})
    with pytest.raises(ValueError, match="missing"):
        space.validate({k: v for k, v in arch.items() if k != "normal_node4_in1"})
    with pytest.raises(ValueError):
        DartsSpace(ops=("none",))
    assert check_op("sep_conv_9x9") == "sep_conv_9x9"


def test_multiplier_changes_the_default_concat() -> None:
    space = DartsSpace(multiplier=3)
    arch = space.preset("darts-v2")
    assert arch["normal_concat"] == [2, 3, 4, 5]  # explicit: DARTS_V2 keeps 4 outputs
    assert arch_to_genotype(arch, 3) == DARTS_V2
    assert arch_key(space.validate(arch)) == arch_key(arch)


def test_graph_has_both_cells_and_merges_repeated_inputs() -> None:
    space = DartsSpace()
    g = space.graph(space.preset("darts-v2"))
    assert g.number_of_nodes() == 2 * 7
    assert g.edges["normal:2", "normal:5"]["op"] == "dil_conv_3x3"
    assert g.edges["reduce:5", "reduce:c_{k}"]["op"] == "concat"
    g = space.graph(space.preset("nasnet-a"))
    assert g.edges["normal:c_{k-2}", "normal:3"]["op"] == "sep_conv_5x5+sep_conv_3x3"
    assert g.has_edge("normal:c_{k-2}", "normal:c_{k}") and not g.has_edge("reduce:2", "reduce:c_{k}")


def test_genotype_text_is_the_darts_form() -> None:
    g = Genotype((("sep_conv_3x3", 1), ("skip_connect", 0)), (2,), (("max_pool_3x3", 0), ("max_pool_3x3", 1)), (2,))
    assert str(g) == (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0)], normal_concat=[2], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])"
    )


def test_ops_can_come_from_the_block_catalogue() -> None:
    torch.manual_seed(0)
    space = DartsSpace(ops=("none", "skip_connect", "conv", "sep_conv_7x7"), C=4, layers=3)
    net = space.supernet(C=4, layers=3)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    arch = net.derive()
    assert {arch[d.name] for d in space.decisions() if "_op" in d.name} <= {"skip_connect", "conv", "sep_conv_7x7"}
    assert space.build(arch)(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown DARTS op"):
        DartsSpace(ops=("none", "no_such_block"))
