"""The ``darts`` space: DARTS / NASNet normal and reduction cells (Liu et al. 2019).

An architecture is a genotype in flat arch JSON (:mod:`search_spaces.darts.genotype`): for each
cell type and each intermediate node ``j`` (states ``2 .. steps+1``) two inputs ``< j`` and two
ops. ``sample``/``mutate`` produce nodes with two *distinct* inputs and no 'none' op (what the
DARTS decoding yields); ``validate``/``build`` accept any well-formed genotype, including
repeated inputs, other node counts and output sets, and ops beyond the searched ones
(NASNet-A). The pair order inside a node is kept (DARTS lists the stronger edge first); the
two orders build the same network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace, choices_by_block
from search_spaces.darts.genotype import (
    CELLS,
    arch_to_genotype,
    genotype_to_arch,
    key,
    parse_genotype,
)
from search_spaces.darts.network import DartsNetwork
from search_spaces.darts.ops import PRIMITIVES, check_op, op_block
from search_spaces.darts.presets import PRESETS
from search_spaces.darts.supernet import DartsSupernet


class DartsSpace(SearchSpace):
    """DARTS cell space. See the module docstring for the arch format.

    Options: ``ops`` (searched ops, α columns in this order; default the DARTS PRIMITIVES; any
    name of :mod:`search_spaces.darts.ops` or a standard 2D catalogue block), ``steps`` (4
    nodes), ``multiplier`` (4 output nodes); for ``build``: ``C`` (36), ``layers`` (20),
    ``auxiliary`` (False; DARTS trains with it, weight 0.4), ``drop_path_prob`` (0.0; DARTS
    ramps 0.2 · epoch / epochs through the network's ``drop_path_prob`` attribute).
    ``supernet(task, **options)`` takes the :class:`DartsSupernet` options (``C`` 16,
    ``layers`` 8, ``sampling``, ``tau``, ``partial_channels``, ``edge_norm``).
    """

    name: ClassVar[str] = "darts"
    description: ClassVar[str] = "DARTS/NASNet normal + reduction cells (2 inputs and 2 ops per node)"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "graph", "supernet"})
    default_task: ClassVar[Task] = Task("classification", 3, (32, 32), 10)
    default_evaluators: ClassVar[tuple[Any, ...]] = ("train", "latency")
    quick_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "darts": {
            "controller": {"epochs": 2, "batch_size": 32, "supernet": {"C": 8, "layers": 5}},
            "space": {"C": 8, "layers": 5},
            "evaluators": [{"name": "train", "epochs": 2, "save_weights": True},
                           {"name": "latency", "min_run_time": 0.1}],
            "budget": 1,
        },
    }

    def __init__(
        self,
        ops: Sequence[str] = PRIMITIVES,
        steps: int = 4,
        multiplier: int = 4,
        C: int = 36,  # noqa: N803 - the paper's name
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.ops = tuple(check_op(str(op)) for op in ops)
        self.choice_ops = tuple(op for op in self.ops if op != "none")
        if not self.choice_ops or len(set(self.ops)) != len(self.ops):
            raise ValueError(f"darts: ops must be distinct and include one besides 'none', got {list(ops)}")
        if steps < 1 or not 1 <= multiplier <= steps:
            raise ValueError(f"darts: need steps >= 1 and 1 <= multiplier <= steps, got {steps}, {multiplier}")
        if C < 2 or C % 2 or layers < 1:
            raise ValueError(f"darts: C must be even and >= 2 and layers >= 1, got C={C}, layers={layers}")
        if not 0.0 <= drop_path_prob < 1.0:
            raise ValueError(f"darts: drop_path_prob must lie in [0, 1), got {drop_path_prob}")
        self.steps, self.multiplier = int(steps), int(multiplier)
        self.C, self.layers = int(C), int(layers)
        self.auxiliary, self.drop_path_prob = bool(auxiliary), float(drop_path_prob)

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Published cells (``darts-v2``, ``nasnet-a``) as arch JSON for the default multiplier 4."""
        return {name: genotype_to_arch(g, 4) for name, g in PRESETS.items()}

    def preset(self, name: str) -> dict[str, Any]:
        """A preset as arch JSON of this space (explicit concat when the multiplier differs)."""
        if name not in PRESETS:
            raise KeyError(f"unknown darts preset {name!r}; known: {sorted(PRESETS)}")
        return genotype_to_arch(PRESETS[name], self.multiplier)

    # -- decisions --------------------------------------------------------------------------
    def block_choices(self) -> dict[str, dict[str, Any]]:
        """The catalogue blocks behind the searched ops (``sep_conv``, ``dil_conv`` by default;
        any block named in ``ops``), each with an arch whose every op is that block."""
        return choices_by_block(self, self.choice_ops, op_block)

    def decisions(self) -> tuple[Decision, ...]:
        out = []
        for kind in CELLS:
            for node in range(2, self.steps + 2):
                for slot in (0, 1):
                    out.append(Decision(key(kind, node, slot, "in"), tuple(range(node))))
                    out.append(Decision(key(kind, node, slot, "op"), self.choice_ops))
        return tuple(out)

    def size(self) -> int:
        """Distinct cell pairs (two distinct inputs per node, pair order ignored)."""
        per_cell = math.prod(math.comb(j, 2) * len(self.choice_ops) ** 2 for j in range(2, self.steps + 2))
        return per_cell**2

    def validate(self, arch: Arch) -> dict[str, Any]:
        return genotype_to_arch(arch_to_genotype(arch, self.multiplier), self.multiplier)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        arch: dict[str, Any] = {}
        for kind in CELLS:
            for node in range(2, self.steps + 2):
                inputs = rng.choice(node, size=2, replace=False)
                for slot in (0, 1):
                    arch[key(kind, node, slot, "in")] = int(inputs[slot])
                    arch[key(kind, node, slot, "op")] = self.choice_ops[int(rng.integers(len(self.choice_ops)))]
        return arch

    def mutate(self, arch: Arch, rng: np.random.Generator) -> dict[str, Any]:
        """Change one input or op; inputs stay distinct within the node, ops avoid 'none'."""
        child = self.validate(arch)
        moves: list[tuple[str, list[Any]]] = []
        for name, value in child.items():
            if name.endswith("_concat"):
                continue
            kind, node_s, slot_s = name.split("_")
            node, slot = int(node_s[4:]), int(slot_s[-1])
            if slot_s.startswith("op"):
                options = [op for op in self.choice_ops if op != value]
            else:
                other = child[key(kind, node, 1 - slot, "in")]
                options = [i for i in range(node) if i not in (value, other)]
            if options:
                moves.append((name, options))
        if not moves:
            raise ValueError("darts: no decision of this arch has another valid value")
        name, options = moves[int(rng.integers(len(moves)))]
        child[name] = options[int(rng.integers(len(options)))]
        return child

    # -- networks ---------------------------------------------------------------------------
    def build(self, arch: Arch, task: Task | None = None) -> DartsNetwork:
        task = task or self.default_task
        if task.kind != "classification" or len(task.input_size) != 2:
            raise ValueError(f"darts builds 2D classification networks, not {task.kind} {task.input_size}")
        if self.auxiliary and self.layers >= 3:
            side = min(math.ceil(math.ceil(s / 2) / 2) for s in task.input_size)
            if side < 8:
                raise ValueError(f"darts: the auxiliary head needs >= 8x8 features at 2/3 depth, got {side}")
        return DartsNetwork(
            arch_to_genotype(arch, self.multiplier),
            C=self.C,
            layers=self.layers,
            num_classes=task.num_classes,
            in_channels=task.in_channels,
            auxiliary=self.auxiliary,
            drop_path_prob=self.drop_path_prob,
        )

    def supernet(self, task: Task | None = None, **options: Any) -> DartsSupernet:
        """The DARTS search network (see :class:`DartsSupernet` for the options)."""
        task = task or self.default_task
        if task.kind != "classification" or len(task.input_size) != 2:
            raise ValueError(f"darts supernet: 2D classification only, not {task.kind} {task.input_size}")
        return DartsSupernet(self, task, ops=self.ops, steps=self.steps, multiplier=self.multiplier, **options)

    def graph(self, arch: Arch) -> nx.DiGraph:
        """Both cells: nodes ``"<cell>:c_{k-2}"``, ``"<cell>:c_{k-1}"``, ``"<cell>:<j>"`` and
        ``"<cell>:c_{k}"`` (output); edges carry ``op`` (ops of one (src, dst) pair joined by
        '+', as NASNet-A reads one state twice) and ``ops`` (list); output edges ``op="concat"``."""
        g = arch_to_genotype(arch, self.multiplier)
        graph = nx.DiGraph()
        for kind in CELLS:
            pairs, concat = g.cell(kind)
            names = [f"{kind}:c_{{k-2}}", f"{kind}:c_{{k-1}}"] + [f"{kind}:{j}" for j in range(2, len(pairs) // 2 + 2)]
            for state, n in enumerate(names):
                graph.add_node(n, cell=kind, state=state)
            out = f"{kind}:c_{{k}}"
            graph.add_node(out, cell=kind, state="out", merge="concat")
            for n, (op, i) in enumerate(pairs):
                src, dst = names[i], names[2 + n // 2]
                ops = [*graph.edges[src, dst]["ops"], op] if graph.has_edge(src, dst) else [op]
                graph.add_edge(src, dst, op="+".join(ops), ops=ops)
            for i in concat:
                graph.add_edge(names[i], out, op="concat", ops=["concat"])
        return graph

    # -- text -------------------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        """The quark0/darts genotype text, e.g. ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)``."""
        return str(arch_to_genotype(arch, self.multiplier))

    def parse(self, text: str) -> dict[str, Any]:
        """A genotype text (:meth:`describe`), a preset name or arch JSON."""
        text = text.strip()
        if text in PRESETS:
            return self.preset(text)
        if text.startswith("Genotype("):
            return genotype_to_arch(parse_genotype(text), self.multiplier)
        return super().parse(text)
