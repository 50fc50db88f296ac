"""The ``nb201`` space: 6 edges x 5 ops = 15,625 cells (NAS-Bench-201 / NATS-Bench TSS)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx

from automl.types import Arch, Decision, Task
from search_spaces.base import LutEntry, SearchSpace
from search_spaces.nb201 import lut
from search_spaces.nb201.network import EDGE_LIST, EDGES, OPS, NB201Network
from search_spaces.nb201.supernet import NB201Supernet


_STRING = re.compile(r"^\|(.+)\|\+\|(.+)\|\+\|(.+)\|$")


class NB201Space(SearchSpace):
    """NAS-Bench-201 cell space; architectures are ``{"op_e01": op, ..., "op_e23": op}``.

    Options: ``channels`` (stem width, 16), ``cells_per_stage`` (5). ``build`` honours the
    task's input channels and classes; the input size is free (global pooling).
    """

    name: ClassVar[str] = "nb201"
    description: ClassVar[str] = "NAS-Bench-201 cell: 6 edges x {none, skip, conv1x1, conv3x3, avgpool3x3}"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "graph", "lut", "supernet"})
    default_task: ClassVar[Task] = Task("classification", 3, (32, 32), 10)
    default_evaluators: ClassVar[tuple[Any, ...]] = ("nb201-table",)
    # A supernet search needs data (digits by default, not the table's CIFAR-10), so the derived
    # cell is trained and measured on that data; with --dataset cifar10:PATH pass
    # --evaluator nb201-table to look it up instead.
    quick_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "darts": {
            "controller": {"epochs": 3, "batch_size": 32},
            "evaluators": [{"name": "train", "epochs": 2}, {"name": "cost"}],
            "budget": 1,
        },
    }

    def __init__(self, channels: int = 16, cells_per_stage: int = 5) -> None:
        super().__init__()
        if channels < 1 or cells_per_stage < 1:
            raise ValueError("nb201: channels and cells_per_stage must be positive integers")
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)

    def decisions(self) -> tuple[Decision, ...]:
        return tuple(Decision(e, OPS) for e in EDGES)

    def build(self, arch: Arch, task: Task | None = None) -> NB201Network:
        task = task or self.default_task
        if task.kind != "classification":
            raise ValueError(f"nb201 builds classification networks, not {task.kind!r}")
        arch = self.validate(arch)
        return NB201Network(
            [arch[e] for e in EDGES],
            num_classes=task.num_classes,
            in_channels=task.in_channels,
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
        )

    def graph(self, arch: Arch) -> nx.DiGraph:
        """The cell DAG: tensors 0..3 (input 0, output 3, sums between), one edge per non-``none``
        op, labelled ``op`` (its layers read from the name, :mod:`search_spaces.op_layers`)."""
        arch = self.validate(arch)
        g = nx.DiGraph(inputs=[0], outputs=[3])
        g.add_nodes_from(range(4))
        for (i, j), e in zip(EDGE_LIST, EDGES, strict=True):
            if arch[e] != "none":
                g.add_edge(i, j, op=arch[e])
        return g

    def supernet(self, task: Task | None = None, **options: Any) -> Any:
        """The weight-sharing NB201 network (DARTS / GDAS / PC-DARTS relaxations of the cell)."""
        task = task or self.default_task
        if task.kind != "classification":
            raise ValueError(f"nb201 supernets are for classification, not {task.kind!r}")
        options.setdefault("channels", self.channels)
        options.setdefault("cells_per_stage", self.cells_per_stage)
        return NB201Supernet(self, task, **options)

    # -- latency look-up tables -----------------------------------------------------------------
    def lut_entries(self, task: Task | None = None) -> dict[str, LutEntry]:
        return lut.lut_entries(task or self.default_task, self.channels, self.cells_per_stage)

    def lut_keys(self, arch: Arch, task: Task | None = None) -> list[str]:
        return lut.lut_keys(self.validate(arch), EDGES, task or self.default_task, self.channels, self.cells_per_stage)

    # -- the official string ------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        return to_arch_str(self.validate(arch))

    def parse(self, text: str) -> dict[str, Any]:
        text = text.strip()
        if text.startswith("|"):
            return from_arch_str(text)
        return super().parse(text)


def to_arch_str(arch: Mapping[str, Any]) -> str:
    """``{"op_e01": ...}`` -> ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    nodes = []
    for j in (1, 2, 3):
        nodes.append("|" + "|".join(f"{arch[f'op_e{i}{j}']}~{i}" for i in range(j)) + "|")
    return "+".join(nodes)


def from_arch_str(text: str) -> dict[str, Any]:
    """Inverse of :func:`to_arch_str`; raises ValueError with the accepted form."""
    m = _STRING.match(text.strip())
    if not m:
        raise ValueError(
            f"not a NAS-Bench-201 arch string: {text!r} (expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
        )
    arch: dict[str, Any] = {}
    for j, group in enumerate(m.groups(), start=1):
        items = group.split("|")
        if len(items) != j:
            raise ValueError(f"node {j} of {text!r} must have {j} inputs")
        for item in items:
            op, _, src = item.partition("~")
            if op not in OPS or not src.isdigit() or int(src) >= j:
                raise ValueError(f"bad edge {item!r} in {text!r}; ops are {list(OPS)}")
            arch[f"op_e{src}{j}"] = op
    return {e: arch[e] for e in EDGES}
