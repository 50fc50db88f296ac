"""The space and controller contracts, checked for every registered space and controller.

A new space or controller registered in ``automl/registry.py`` (or through an entry point) is
tested here without writing new generic tests, as ``tests/blocks`` does for blocks.
"""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest
import torch

from automl import registry
from automl.reference import Reference
from automl.types import Objective, Proposal, Result, Task, arch_key
from controllers.base import Controller, as_proposal
from controllers.bayes.descriptor import descriptor
from controllers.oneshot.base import OneShotController
from search_spaces.base import CAPABILITIES, CapabilityError, SearchSpace

SPACES = registry.names("space")
CONTROLLERS = registry.names("controller")


def small(name: str) -> SearchSpace:
    """The space with the smallest options it declares (its quick settings), else its defaults."""
    cls = registry.resolve("space", name)
    options = next((dict(q["space"]) for q in cls.quick_settings.values() if q.get("space")), {})
    return registry.create("space", name, options)


def outputs_match(out: torch.Tensor, task: Task, batch: int) -> bool:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if task.kind == "segmentation":
        return out.shape[:2] == (batch, task.num_classes) and out.dim() == 4
    return tuple(out.shape) == (batch, task.num_classes)


@pytest.mark.parametrize("name", SPACES)
def test_space_declarations(name):
    cls = registry.resolve("space", name)
    assert issubclass(cls, SearchSpace) and cls.name == name and cls.description
    assert set(cls.offers) <= set(CAPABILITIES)
    assert isinstance(cls.default_task, Task)
    for e in cls.default_evaluators:
        registry.resolve("evaluator", e if isinstance(e, str) else e["name"])
    for controller, quick in cls.quick_settings.items():
        assert controller in CONTROLLERS
        assert set(quick) <= {"space", "controller", "evaluators", "budget", "reference", "time_limit"}
        for e in quick.get("evaluators", []):
            registry.create("evaluator", e["name"], {k: v for k, v in e.items() if k != "name"})
        registry.create("controller", controller, dict(quick.get("controller", {})))
        registry.create("space", name, dict(quick.get("space", {})))
        if quick.get("reference"):  # a reference for the space's own task resolves
            Reference.resolve(quick["reference"], name, dict(quick.get("space", {})), cls.default_task)


@pytest.mark.parametrize("name", SPACES)
def test_space_sample_validate_mutate_describe(name):
    space = small(name)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(5)]
    again = np.random.default_rng(0)
    assert [arch_key(space.sample(again)) for _ in range(5)] == [arch_key(a) for a in archs]  # seeded
    for arch in archs:
        canonical = space.validate(arch)
        assert json.loads(arch_key(canonical)) == json.loads(json.dumps(canonical))  # JSON round trip
        assert space.validate(space.parse(space.describe(canonical))) == canonical
        child = space.validate(space.mutate(canonical, rng))
        if space.size() is None or space.size() > 1:
            assert arch_key(child) != arch_key(canonical)
    with pytest.raises(ValueError):
        space.validate({"surely_not_a_decision": 1})
    if "decisions" in space.offers:
        decisions = space.decisions()
        assert decisions and 1 <= space.size() <= math.prod(len(d.choices) for d in decisions)  # canonical forms may merge


@pytest.mark.parametrize("name", SPACES)
def test_space_builds_a_plain_network_for_its_task(name):
    space = small(name)
    task = space.default_task
    arch = space.sample(np.random.default_rng(1))
    model = space.build(arch, task).eval()
    assert isinstance(model, torch.nn.Module)
    assert not any("alpha" in n or "beta" in n.split(".")[-1] for n, _ in model.named_parameters())
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(torch.randn(task.input_shape(2)))
    assert outputs_match(out, task, 2)


@pytest.mark.parametrize("name", SPACES)
def test_space_capabilities_work_as_declared(name):
    space = small(name)
    arch = space.validate(space.sample(np.random.default_rng(2)))
    if "graph" in space.offers:  # the common form: tensors as nodes, every edge an op
        g = space.graph(arch)
        assert g.number_of_nodes() > 0 and nx.is_directed_acyclic_graph(g)
        assert all("op" in data for _, _, data in g.edges(data=True))
        assert all(g.nodes[n].get("merge", "add") in ("add", "concat") for n in g)
        d = descriptor(g)
        assert d.layers and all(0 <= s.u < s.v <= len(d.layers) for s in d.skips)
    if "supernet" in space.offers:
        torch.manual_seed(0)
        net = space.supernet(space.default_task)
        assert list(net.arch_parameters())
        assert space.validate(net.derive())
    if "realloc" in space.offers:
        levels = space.reallocation()
        assert space.validate(levels.baseline)
        assert {levels.allocation.name, *(d.name for d in levels.dilations)} == {d.name for d in space.decisions()}
        torch.manual_seed(0)
        net = space.single_path_supernet(space.default_task)
        net.activate(arch)
        space.build(arch, space.default_task).load_state_dict(net.subnet_state(arch), strict=True)
    if "lut" in space.offers:
        keys = space.lut_keys(arch, space.default_task)
        assert keys and set(keys) <= set(space.lut_entries(space.default_task))
    if "neighbors" in space.offers or "decisions" in space.offers:
        near = space.neighbors(arch, np.random.default_rng(0), 3)
        keys = {arch_key(space.validate(n)) for n in near}
        assert 1 <= len(near) == len(keys) <= 3 and arch_key(arch) not in keys
    for capability in set(CAPABILITIES) - set(space.offers) - {"decisions"}:
        if capability == "neighbors" and "decisions" in space.offers:
            continue  # every decision space has its mutations as neighbours
        method = {"lut": "lut_keys", "realloc": "single_path_supernet"}.get(capability, capability)
        with pytest.raises(CapabilityError):
            if capability == "neighbors":
                space.neighbors(arch, np.random.default_rng(0))
            else:
                getattr(space, method)(arch)


def pairs() -> list[tuple[str, str]]:
    out = []
    for c in CONTROLLERS:
        requires = set(registry.resolve("controller", c).requires)
        out += [(c, s) for s in SPACES if requires <= set(registry.resolve("space", s).offers)]
    return out


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_declarations(name):
    cls = registry.resolve("controller", name)
    assert issubclass(cls, Controller) and cls.name == name and cls.description
    assert set(cls.requires) <= set(CAPABILITIES)
    assert any(c == name for c, _ in pairs()), f"no registered space offers what {name!r} requires"


@pytest.mark.parametrize(("controller", "space_name"), pairs())
def test_controller_proposes_valid_archs_with_trials_pending(controller, space_name):
    space = small(space_name)
    objectives = [Objective("score", "max")]

    def proposals(seed: int) -> list[Proposal]:
        ctl = registry.create("controller", controller, {})
        ctl.bind(space, space.default_task, objectives, seed)
        if isinstance(ctl, OneShotController):  # its proposals come from prepare (tested elsewhere)
            assert ctl.supernet is not None and ctl.ask() is None
            return []
        out: list[Proposal] = []
        number = 0
        for _ in range(3):
            batch = [as_proposal(ctl.ask()) for _ in range(3)]  # three pending before any tell
            for p in reversed(batch):
                assert isinstance(p, Proposal)
                space.validate(p.arch)
                value = float(len(arch_key(p.arch)) % 7)
                ctl.tell(p, Result(values=(value,), metrics={"score": value}, trial=number))
                number += 1
            out += batch
        ctl.tell(Proposal(space.sample(np.random.default_rng(9))), Result(values=(1.0,), trial=number))  # foreign
        ctl.tell(ctl.ask(), Result(values=None, failed=True, error="boom", trial=number + 1))  # a failure
        return out

    a, b = proposals(0), proposals(0)
    assert [arch_key(p.arch) for p in a] == [arch_key(p.arch) for p in b]  # same seed, same proposals
    assert all(p.parent is None or isinstance(p.parent, int) for p in a)
