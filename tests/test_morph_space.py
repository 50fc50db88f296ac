"""The ``morph`` space (Auto-Keras network morphisms): the layer graph, every morphism keeps the
function through the weight transfer, neighbors' limits, validation, builds and the graph form."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
import torch

from automl import registry
from automl.types import Task, arch_key
from search_spaces.morph import MorphSpace, deeper, skip, wider
from search_spaces.morph.morphisms import KINDS, random_morph, relus_on_chain

SMALL = Task("classification", 3, (16, 16), 10)
SEG = Task("segmentation", 3, (16, 16), 5)


def randomised(space: MorphSpace, arch: dict, task: Task, seed: int) -> torch.nn.Module:
    """A built network in eval mode with random weights, BN affine and running statistics."""
    torch.manual_seed(seed)
    net = space.build(arch, task)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return net.eval()


def relative_gap(space: MorphSpace, parent: dict, child: dict, task: Task = SMALL, seed: int = 0,
                 **options: float) -> float:
    """max |f_child - f_parent| / max |f_parent| after transferring a random parent's weights."""
    net = randomised(space, parent, task, seed)
    torch.manual_seed(seed + 1)
    child_net = space.build(child, task).eval()
    taken = space.transfer(parent, net.state_dict(), child, child_net, **options)
    assert taken > 0
    x = torch.randn(3, task.in_channels, *task.input_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y, y_child = net(x), child_net(x)
    assert y.shape == y_child.shape
    return float((y - y_child).abs().max() / y.abs().max())


def test_start_networks_are_auto_keras_seed_nets():
    space = MorphSpace()
    cnn = space.sample(np.random.default_rng(0))
    assert space.describe(cnn) == "input " + "conv3x64 bn relu pool " * 3 + "head"
    assert cnn == space.sample(np.random.default_rng(1)) == MorphSpace.presets()["cnn"] == space.preset("cnn")
    resnet = MorphSpace(start="resnet", width=8).start_arch
    assert [x["type"] for x in resnet["layers"]].count("add") == 3
    assert space.offers == {"graph", "neighbors"} and not space.decisions()
    with pytest.raises(KeyError):
        space.preset("vgg")
    for arch, task in ((cnn, space.default_task), (resnet, SEG), (cnn, SEG)):
        net = space.build(arch, task)
        assert space.num_params(arch, task) == sum(p.numel() for p in net.parameters())
    assert space.build(cnn)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("seed", range(10))
def test_random_morph_sequences_keep_the_function(seed):
    """1..6 random morphisms from a start net: every step, and the whole sequence at once,
    keeps the outputs (1e-3 relative with Auto-Keras's noise, 1e-5 without)."""
    space = MorphSpace(start=("cnn", "resnet")[seed % 2], width=8, max_width=64)
    rng = np.random.default_rng(seed)
    start = arch = space.sample(rng)
    for step in range(int(rng.integers(1, 7))):
        child = space.mutate(arch, rng)
        assert relative_gap(space, arch, child, seed=seed * 10 + step) <= 1e-3
        assert relative_gap(space, arch, child, seed=seed * 10 + step, noise=0.0) <= 1e-5
        arch = child
    assert relative_gap(space, start, arch, task=SEG if seed % 3 == 0 else SMALL, seed=seed, noise=0.0) <= 1e-5


@pytest.mark.parametrize("start", ["cnn", "resnet"])
@pytest.mark.parametrize("morph", ["deeper1", "deeper3", "deeper5", "wider", "wider-last", "add", "concat",
                                   "add-across-pools", "concat-across-pools"])
def test_each_morphism_keeps_the_function(start, morph):
    space = MorphSpace(start=start, width=8)
    arch = space.start_arch
    relus = relus_on_chain(arch)
    convs = [x["id"] for x in arch["layers"] if x["type"] == "conv"]
    if morph.startswith("deeper"):
        child = deeper(arch, relus[1], int(morph[-1]))
    elif morph.startswith("wider"):
        conv = convs[-1] if morph == "wider-last" else convs[0]
        child = wider(arch, conv, 2 * next(x["filters"] for x in arch["layers"] if x["id"] == conv))
    else:
        kind = morph.split("-")[0]
        a, b = (relus[0], relus[-1]) if morph.endswith("pools") else (relus[0], relus[1])
        child = skip(arch, a, b, kind)
    child = space.validate(child)
    assert relative_gap(space, arch, child) <= 1e-3
    assert relative_gap(space, arch, child, noise=0.0) <= 1e-5
    assert relative_gap(space, arch, child, task=SEG, noise=0.0) <= 1e-5


def test_new_layers_are_identity_initialised_and_ids_stay_stable():
    space = MorphSpace(width=8)
    arch = space.start_arch
    child = skip(deeper(arch, 3, 3), 3, 7, "concat")
    ids = {x["id"] for x in arch["layers"]}
    assert ids < {x["id"] for x in child["layers"]}
    assert {x["id"] for x in child["layers"]} - ids == {14, 15, 16, 17}  # max id + 1 ...
    parent_net, child_net = space.build(arch, SMALL), space.build(child, SMALL)
    assert set(parent_net.state_dict()) <= set(child_net.state_dict())
    assert all(k.startswith("layers.L") for k in child_net.state_dict())
    space.transfer(arch, parent_net.state_dict(), child, child_net, noise=0.0)
    state = child_net.state_dict()
    w = state["layers.L14.weight"]  # the deeper conv: identity kernel
    assert torch.equal(w[:, :, 1, 1], torch.eye(8)) and float(w.abs().sum()) == 8.0
    assert torch.equal(state["layers.L15.weight"], torch.ones(8))
    assert float(state["layers.L15.running_mean"].abs().sum()) == 0
    concat = state["layers.L17.weight"][:, :, 0, 0]  # [I | 0]
    assert torch.equal(concat, torch.cat([torch.eye(8), torch.zeros(8, 8)], 1))
    added = skip(arch, 3, 7, "add")
    added_net = space.build(added, SMALL)
    space.transfer(arch, parent_net.state_dict(), added, added_net, noise=0.0)
    assert float(added_net.state_dict()["layers.L14.weight"].abs().sum()) == 0.0  # zero projection
    noisy = space.build(added, SMALL)
    space.transfer(arch, parent_net.state_dict(), added, noisy)
    assert 0 < float(noisy.state_dict()["layers.L14.weight"].abs().max()) <= 0.5e-4


def test_wider_copies_filters_and_zeroes_the_readers():
    space = MorphSpace(width=8)
    arch = space.start_arch
    child = wider(arch, 5, 16)
    parent_net, child_net = randomised(space, arch, SMALL, 0), space.build(child, SMALL)
    taken = space.transfer(arch, parent_net.state_dict(), child, child_net, noise=0.0)
    p, c = parent_net.state_dict(), child_net.state_dict()
    assert taken == len(p)  # every parent tensor is used
    assert torch.equal(c["layers.L5.weight"], torch.cat([p["layers.L5.weight"]] * 2))
    assert torch.equal(c["layers.L6.running_var"], torch.cat([p["layers.L6.running_var"]] * 2))
    assert torch.equal(c["layers.L9.weight"][:, :8], p["layers.L9.weight"])
    assert float(c["layers.L9.weight"][:, 8:].abs().sum()) == 0.0
    assert torch.equal(c["layers.L6.num_batches_tracked"], p["layers.L6.num_batches_tracked"])


def test_a_changed_layer_keeps_its_own_initialisation():
    space = MorphSpace(width=8)
    arch = space.start_arch
    other = json.loads(json.dumps(arch))
    other["layers"][5]["kernel"] = 5  # not a morph: same id, other kernel
    parent_net = space.build(arch, SMALL)
    child_net = space.build(other, SMALL)
    before = child_net.state_dict()["layers.L5.weight"].clone()
    taken = space.transfer(arch, parent_net.state_dict(), other, child_net)
    assert taken == len(parent_net.state_dict()) - 2
    assert torch.equal(child_net.state_dict()["layers.L5.weight"], before)


def test_neighbors_are_distinct_and_keep_the_limits():
    space = MorphSpace(width=8)
    rng = np.random.default_rng(0)
    arch = space.start_arch
    out = space.neighbors(arch, rng, limit=8)
    keys = [arch_key(a) for a in out]
    assert 1 <= len(out) <= 8 and len(set(keys)) == len(keys) and arch_key(arch) not in keys
    assert [arch_key(a) for a in space.neighbors(arch, np.random.default_rng(0), 8)] == keys  # seeded
    assert space.neighbors(arch, rng, limit=0) == []
    n = len(arch["layers"])
    tight = MorphSpace(width=8, max_layers=n + 1, max_width=8)  # no room for deeper (+3) nor wider
    for _ in range(5):
        for child in tight.neighbors(arch, rng, 8):
            assert len(child["layers"]) == n + 1 and {x["type"] for x in child["layers"]} & {"add", "concat"}
    wide = MorphSpace(width=8, max_width=12)
    for child in wide.neighbors(arch, rng, 8):
        assert all(x["filters"] <= 12 for x in child["layers"] if x["type"] == "conv")
    few = MorphSpace(width=8, max_params=space.num_params(arch) + 100)
    assert all(few.num_params(c) <= few.max_params for c in few.neighbors(arch, rng, 8))
    grown = arch
    for _ in range(12):  # repeated neighbours keep within the limits
        grown = wide.neighbors(grown, rng, 4)[0]
        assert wide.validate(grown) == grown
    stuck = MorphSpace(width=8, max_width=8, max_layers=n)
    assert stuck.neighbors(arch, rng) == []
    with pytest.raises(ValueError, match="no morphism"):
        stuck.mutate(arch, rng)


def test_random_morph_of_each_kind():
    space = MorphSpace(width=8)
    arch = space.start_arch
    rng = np.random.default_rng(3)
    for kind in KINDS:
        child = random_morph(arch, kind, rng, space.max_width)
        assert child is not None and space.validate(child) == child and arch_key(child) != arch_key(arch)
    assert random_morph(arch, "wider", rng, 8) is None
    with pytest.raises(ValueError):
        random_morph(arch, "shallower", rng, 8)


def _bad(edit):
    arch = MorphSpace(width=8).start_arch
    arch = json.loads(json.dumps(arch))
    edit(arch["layers"])
    return arch


BAD = {
    "unknown type": (lambda ls: ls[2].update(type="dropout"), "unknown type"),
    "bad input id": (lambda ls: ls[2].update(inputs=[99]), "not an earlier layer"),
    "not topological": (lambda ls: ls[2].update(inputs=[5]), "topological"),
    "missing head": (lambda ls: ls.pop(), "head"),
    "missing input": (lambda ls: ls.pop(0), "input"),
    "two inputs on conv": (lambda ls: ls[1].update(inputs=[0, 0]), "list of 1"),
    "even kernel": (lambda ls: ls[1].update(kernel=2), "kernel"),
    "zero filters": (lambda ls: ls[1].update(filters=0), "filters"),
    "unknown key": (lambda ls: ls[1].update(stride=2), "unknown key"),
    "duplicate id": (lambda ls: ls[2].update(id=1), "twice"),
    "unused output": (lambda ls: ls[5].update(inputs=[3]), "not used"),
    "upsampling skip": (lambda ls: ls.insert(9, {"id": 20, "type": "add", "inputs": [7, 8]})
                        or ls[9 + 1].update(inputs=[20]), "bigger to smaller"),
    "merge with itself": (lambda ls: ls.insert(4, {"id": 20, "type": "add", "inputs": [3, 3]})
                          or ls[5].update(inputs=[20]), "itself"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_rejects_bad_graphs_in_one_line(case):
    edit, message = BAD[case]
    with pytest.raises(ValueError, match=message) as err:
        MorphSpace(width=8).validate(_bad(edit))
    assert len(str(err.value).splitlines()) == 1 and str(err.value).startswith("morph: ")


def test_validate_rejects_limits_and_shapes():
    space = MorphSpace(width=8, max_layers=20, max_width=16)
    arch = space.start_arch
    for bad, message in (({"layers": []}, "non-empty"), ({"layer": []}, "unknown key"), ([1], "mapping"),
                         (deeper(deeper(deeper(arch, 3), 7), 11), "max_layers"), (wider(arch, 1, 32), "filters")):
        with pytest.raises(ValueError, match=message) as err:
            space.validate(bad)
        assert len(str(err.value).splitlines()) == 1


def test_builds_classification_and_segmentation_and_refuses_other_tasks():
    space = MorphSpace(width=8)
    arch = skip(skip(space.start_arch, 3, 11, "concat"), 3, 7, "add")  # skips across pools
    for size in ((16, 16), (15, 13), (8, 8)):
        net = space.build(arch, Task("segmentation", 1, size, 4)).eval()
        assert net(torch.randn(2, 1, *size)).shape == (2, 4, *size)
        net = space.build(arch, Task("classification", 1, size, 7)).eval()
        assert net(torch.randn(2, 1, *size)).shape == (2, 7)
    for task, message in ((Task("video", 3, (4, 16, 16), 10), "video"), (Task("classification", 3, (16,), 10), "2D"),
                          (Task("classification", 3, (4, 16), 10), "below 1x1")):
        with pytest.raises(ValueError, match=message) as err:
            space.build(arch, task)
        assert len(str(err.value).splitlines()) == 1


def test_graph_form():
    space = MorphSpace(width=8)
    arch = skip(deeper(skip(space.start_arch, 3, 11, "concat"), 7, 5), 3, 7, "add")
    g = space.graph(arch)
    assert nx.is_directed_acyclic_graph(g)
    sources = [n for n in g if g.in_degree(n) == 0]
    sinks = [n for n in g if g.out_degree(n) == 0]
    assert sources == [0] and sinks == [arch["layers"][-1]["id"]] and g.nodes[0]["label"] == "input"
    assert all("op" in d for _, _, d in g.edges(data=True))
    assert g.number_of_edges() == len(arch["layers"]) - 1 + 2  # one per layer, two per merge
    merges = {n: d["merge"] for n, d in g.nodes(data=True) if "merge" in d}
    assert sorted(merges.values()) == ["add", "concat"]
    concat = next(n for n, m in merges.items() if m == "concat")
    skip_edge = g.edges[3, concat]
    assert skip_edge["op"] == "skip-concat"
    assert skip_edge["layers"] == [{"type": "conv", "filters": 8, "kernel": 1, "stride": 1}] and skip_edge["pool"] == 4
    assert g.edges[0, 1]["layers"] == [{"type": "conv", "filters": 8, "kernel": 3, "stride": 1}]
    ops = {d["op"] for _, _, d in g.edges(data=True)}
    assert {"conv3x3x8", "conv5x5x8", "bn", "relu", "maxpool2", "head", "wire", "skip-add"} <= ops


def test_describe_parse_round_trip():
    space = MorphSpace(width=8)
    rng = np.random.default_rng(5)
    arch = space.start_arch
    for _ in range(8):
        arch = space.mutate(arch, rng)
        text = space.describe(arch)
        assert space.parse(text) == arch
        assert space.parse(json.dumps(arch)) == arch
    assert "<" in text and ":" in text
    for bad in ("input conv3x8 bn relu pool wobble head", "input conv2x8 head", "input bn<7 head"):
        with pytest.raises(ValueError) as err:
            space.parse(bad)
        assert len(str(err.value).splitlines()) == 1


def test_space_options_are_checked_in_one_line():
    for options, message in (({"start": "vgg"}, "start"), ({"width": 0}, "width"), ({"depth": 1.5}, "depth"),
                             ({"width": 128, "max_width": 64}, "filters"), ({"max_params": 1000}, "max_params"),
                             ({"depth": 100}, "max_layers")):
        with pytest.raises(ValueError, match=message) as err:
            MorphSpace(**options)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(registry.RegistryError):
        registry.create("space", "morph", {"start": "vgg"})
    space = registry.create("space", "morph", {"start": "resnet", "width": 8, "depth": 2})
    assert isinstance(space, MorphSpace) and space.describe(space.sample(np.random.default_rng(0))).count("add") == 2
