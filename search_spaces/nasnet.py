"""``nasnet``: the NASNet search space (Zoph et al. 2018) — normal and reduction cells of B = 5
blocks, each choosing two inputs, two of 13 ops and a combine.

Decisions, per cell (``normal``, ``reduce``) and block ``k`` (0..4), in the TF index convention
(0 = H(l-1), 1 = H(l-2), 2 + m = block m; block ``k`` reads states ``< 2 + k``):
``{cell}.b{k}.in1``, ``.in2``, ``.op1``, ``.op2`` (the 13 NASNet ops) and ``.combine`` (add or
concat) — 50 decisions in all. A cell outputs the concatenation of the states no block read.

Networks are built with the ``darts`` space's cell machinery (DARTS preprocessing of the cell
inputs, stride 2 on the cell inputs in a reduction cell, ``FactorizedReduce`` for a strided
identity; a ``concat`` combine is mapped back to C channels by a 1x1 conv, as the paper inserts
1x1 convs where shapes must match). ``build`` adds ScheduledDropPath (TF ``nasnet_utils`` mode
"v3"): for cell ``c`` of ``C`` cells at training step ``t`` of ``total_steps`` T,
``keep = 1 - (c + 1) / C * (1 - p)`` then ``keep <- 1 - min(1, t / T) * (1 - keep)``, one
per-sample mask per op output except identities, divided by ``keep``; never in eval mode. The
network counts its own training steps (forward passes in training mode).

Preset ``nasnet-a``: the published NASNet-A cells (``space.parse("nasnet-a")``): the TF ops and
input indices exactly. Deviation: this space outputs the unread states (the paper's rule), while
TF's hand-set NASNet-A outputs also include H(l-2) in the normal cell and block 1 in the
reduction cell, which blocks read; the ``darts`` space's ``nasnet-a`` preset keeps TF's output
sets exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx
import torch

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace, choices_by_block
from search_spaces.darts.genotype import TF_OPS, Genotype, make_cell, to_nasnet_tf
from search_spaces.darts.network import DartsNetwork
from search_spaces.darts.ops import op_block
from search_spaces.darts.presets import NASNET_A_TF

BLOCKS = 5
CELLS = ("normal", "reduce")
# The 13 NASNet ops (paper, Fig. 7), named as the darts space builds them.
OPS: tuple[str, ...] = (
    "skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
    "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
)  # fmt: skip
COMBINE = ("add", "concat")


def keep_prob(cell: int, cells: int, step: int, total_steps: int, p: float) -> float:
    """ScheduledDropPath's keep probability of cell ``cell`` (0-based) at ``step``."""
    keep = 1.0 - (cell + 1) / cells * (1.0 - p)
    return 1.0 - min(1.0, step / total_steps) * (1.0 - keep)


class NasnetNetwork(DartsNetwork):
    """A NASNet cell stack with ScheduledDropPath (see the module docstring)."""

    def __init__(self, *args: Any, drop_path_keep_prob: float = 1.0, total_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_prob_p, self.total_steps = float(drop_path_keep_prob), int(total_steps)
        self.register_buffer("step", torch.zeros((), dtype=torch.long), persistent=False)

    def cell_drop_prob(self, index: int) -> float:
        if self.keep_prob_p >= 1.0 or not self.training:  # eval (and export) never reads the step
            return 0.0
        return 1.0 - keep_prob(index, len(self.cells), int(self.step), self.total_steps, self.keep_prob_p)

    def forward(self, x: torch.Tensor) -> Any:
        out = super().forward(x)
        if self.training:
            self.step += 1
        return out


class NasnetSpace(SearchSpace):
    """NASNet normal + reduction cells (B = 5 blocks, 13 ops, add/concat)."""

    name: ClassVar[str] = "nasnet"
    description: ClassVar[str] = "NASNet cells: 5 blocks of two inputs, two of 13 ops and add/concat; preset nasnet-a"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "graph"})
    default_task: ClassVar[Task] = Task("classification", 3, (32, 32), 10)

    def __init__(self, C: int = 16, layers: int = 6, drop_path_keep_prob: float = 0.6,  # noqa: N803
                 total_steps: int = 10_000, auxiliary: bool = False) -> None:
        super().__init__()
        if C < 1 or layers < 3 or total_steps < 1 or not 0 < drop_path_keep_prob <= 1:
            raise ValueError("nasnet: needs C >= 1, layers >= 3, total_steps >= 1 and 0 < drop_path_keep_prob <= 1")
        self.C, self.layers, self.auxiliary = int(C), int(layers), bool(auxiliary)
        self.drop_path_keep_prob, self.total_steps = float(drop_path_keep_prob), int(total_steps)

    def block_choices(self) -> dict[str, dict[str, Any]]:
        """``factorized_conv`` (conv_kx1_1xk), ``dil_conv``, ``conv`` and ``sep_conv`` of the 13 ops."""
        return choices_by_block(self, OPS, op_block)

    def decisions(self) -> tuple[Decision, ...]:
        out = []
        for cell in CELLS:
            for k in range(BLOCKS):
                states = tuple(range(2 + k))
                out += [Decision(f"{cell}.b{k}.in1", states), Decision(f"{cell}.b{k}.in2", states),
                        Decision(f"{cell}.b{k}.op1", OPS), Decision(f"{cell}.b{k}.op2", OPS),
                        Decision(f"{cell}.b{k}.combine", COMBINE)]
        return tuple(out)

    # -- arch <-> TF cell arrays and DARTS genotypes -------------------------------------------------
    def cell_arrays(self, arch: Arch, cell: str) -> tuple[list[str], list[int], list[int]]:
        """One cell as ``(ops, input indices, used states)``, inputs in the TF convention."""
        ops = [name for k in range(BLOCKS) for name in (arch[f"{cell}.b{k}.op1"], arch[f"{cell}.b{k}.op2"])]
        inputs = [int(arch[f"{cell}.b{k}.{slot}"]) for k in range(BLOCKS) for slot in ("in1", "in2")]
        used = [1 if s in inputs else 0 for s in range(2 + BLOCKS)]
        return ops, inputs, used

    def genotype(self, arch: Arch) -> tuple[Genotype, dict[str, list[str]]]:
        """The DARTS-convention genotype (0 = H(l-2)) and the combine of each block."""
        arch = self.validate(arch)
        cells = {}
        for cell in CELLS:
            ops, inputs, used = self.cell_arrays(arch, cell)
            cells[cell] = _pairs(ops, inputs, used)
        genotype = Genotype(cells["normal"][0], cells["normal"][1], cells["reduce"][0], cells["reduce"][1])
        return genotype, {cell: [arch[f"{cell}.b{k}.combine"] for k in range(BLOCKS)] for cell in CELLS}

    def build(self, arch: Arch, task: Task | None = None) -> NasnetNetwork:
        task = task or self.default_task
        if task.kind != "classification":
            raise ValueError(f"nasnet builds classification networks, not {task.kind!r}")
        genotype, combine = self.genotype(arch)
        return NasnetNetwork(genotype, C=self.C, layers=self.layers, num_classes=task.num_classes,
                             in_channels=task.in_channels, auxiliary=self.auxiliary, combine=combine,
                             drop_path_keep_prob=self.drop_path_keep_prob, total_steps=self.total_steps)

    def graph(self, arch: Arch) -> nx.DiGraph:
        """Per cell, states ``{cell}:H(l-1)``, ``{cell}:H(l-2)``, blocks and ``{cell}:out``."""
        arch = self.validate(arch)
        g = nx.DiGraph()
        for cell in CELLS:
            names = [f"{cell}:H(l-1)", f"{cell}:H(l-2)"] + [f"{cell}:b{k}" for k in range(BLOCKS)]
            g.add_nodes_from(names)
            _, inputs, used = self.cell_arrays(arch, cell)
            g.add_node(f"{cell}:out", merge="concat")
            for k in range(BLOCKS):
                g.nodes[names[2 + k]]["merge"] = arch[f"{cell}.b{k}.combine"]
                for slot, i in zip(("1", "2"), inputs[2 * k:2 * k + 2], strict=True):
                    g.add_edge(names[i], names[2 + k], op=arch[f"{cell}.b{k}.op{slot}"],
                               combine=arch[f"{cell}.b{k}.combine"])
            for s, u in enumerate(used):
                if not u:
                    g.add_edge(names[s], f"{cell}:out", op="concat")
        return g

    def describe(self, arch: Arch) -> str:
        """``normal: op~in+op~in:combine | ... ; reduce: ...`` (TF input indices)."""
        arch = self.validate(arch)
        cells = []
        for cell in CELLS:
            blocks = [f"{arch[f'{cell}.b{k}.op1']}~{arch[f'{cell}.b{k}.in1']}+{arch[f'{cell}.b{k}.op2']}~"
                      f"{arch[f'{cell}.b{k}.in2']}:{arch[f'{cell}.b{k}.combine']}" for k in range(BLOCKS)]
            cells.append(f"{cell}: " + " | ".join(blocks))
        return "; ".join(cells)

    def parse(self, text: str) -> dict[str, Any]:
        text = text.strip()
        if text in PRESETS:
            return dict(PRESETS[text])
        if not text.startswith("normal:"):
            return super().parse(text)
        arch: dict[str, Any] = {}
        try:
            for part in text.split(";"):
                cell, _, body = part.strip().partition(":")
                for k, block in enumerate(body.split("|")):
                    pair, _, combine = block.strip().rpartition(":")
                    (op1, in1), (op2, in2) = (side.split("~") for side in pair.split("+"))
                    arch.update({f"{cell}.b{k}.op1": op1, f"{cell}.b{k}.in1": int(in1), f"{cell}.b{k}.op2": op2,
                                 f"{cell}.b{k}.in2": int(in2), f"{cell}.b{k}.combine": combine})
        except ValueError:
            raise ValueError(f"nasnet: cannot read {text[:60]!r}; expected 'normal: op~in+op~in:add | ...; "
                             "reduce: ...' or a preset name") from None
        return self.validate(arch)


def _pairs(ops: list[str], inputs: list[int], used: list[int]) -> tuple[tuple[tuple[str, int], ...], tuple[int, ...]]:
    """TF-convention cell (0 = H(l-1)) -> DARTS ``(pairs, concat)`` (0 = H(l-2))."""
    def swap(i: int) -> int:
        return {0: 1, 1: 0}.get(i, i)

    pairs = [(op, swap(i)) for op, i in zip(ops, inputs, strict=True)]
    concat = sorted(swap(s) for s, u in enumerate(used) if not u)
    return make_cell(pairs, concat, len(concat))


def _nasnet_a() -> dict[str, Any]:
    arch: dict[str, Any] = {}
    for cell, (ops, inputs, _) in NASNET_A_TF.items():
        for k in range(BLOCKS):
            for slot, n in (("1", 2 * k), ("2", 2 * k + 1)):
                arch[f"{cell}.b{k}.in{slot}"] = int(inputs[n])
                arch[f"{cell}.b{k}.op{slot}"] = TF_OPS[ops[n]]
            arch[f"{cell}.b{k}.combine"] = "add"
    return arch


PRESETS: Mapping[str, dict[str, Any]] = {"nasnet-a": _nasnet_a()}


def tf_arrays(space: NasnetSpace, arch: Arch) -> dict[str, tuple[list[str], list[int], list[int]]]:
    """The TF NASNet arrays of ``arch`` per cell, through the genotype (for checks against TF)."""
    genotype, _ = space.genotype(arch)
    return {cell: to_nasnet_tf(*genotype.cell(cell)) for cell in CELLS}
