"""Latency look-up-table decomposition of the NAS-Bench-201 network.

The network's forward is the stem, 15 cells, two residual reductions and the head. A cell runs
all six edge ops (``none`` is a multiply by zero, as in NAS-Bench-201's ``InferCell``) and
three additions. Summing isolated module timings misses what running them in sequence costs
(cache traffic, allocation, dispatch: about 0.3-0.7 ms, 6-12 %, on a 2-core CPU at batch 1),
so the table holds one measured *reference network* whose 90 edges are all identities, and
every op as its replacement cost (op minus identity at that stage, ``LutEntry.baseline``).
Predicted latency = reference network + Σ over the 15 cells Σ over non-identity edges of the
op's cost. The stem, reductions, head and a cell of identities are also in the table, for
reading, but the prediction does not use them. Keys: ``nb201/<part>/<C>x<H>x<W>[...]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from search_spaces.base import Arch, LutEntry, Task
from search_spaces.nb201.network import NB201Cell, NB201Network, ResidualReduction, make_op

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class Head(nn.Module):
    """BN + ReLU + global pool + linear: the network's classifier head."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.lastact(x), 1), 1))


def _stages(task: Task, channels: int) -> list[tuple[int, int, int]]:
    h, w = task.input_size
    out = []
    for s in range(3):
        out.append((channels * 2**s, math.ceil(h / 2**s), math.ceil(w / 2**s)))
    return out


def lut_entries(task: Task, channels: int, cells_per_stage: int) -> dict[str, LutEntry]:
    cin, (h, w) = task.in_channels, task.input_size
    entries: dict[str, LutEntry] = {
        f"nb201/stem/{cin}x{h}x{w}->{channels}": LutEntry(
            lambda: nn.Sequential(nn.Conv2d(cin, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)),
            ((cin, h, w),),
        )
    }
    stages = _stages(task, channels)
    for i, (c, sh, sw) in enumerate(stages):
        skip = f"nb201/skip_connect/{c}x{sh}x{sw}"
        entries[skip] = LutEntry(_op_factory("skip_connect", c), ((c, sh, sw),))
        for op in OPS:
            if op != "skip_connect":
                entries[f"nb201/{op}-vs-skip/{c}x{sh}x{sw}"] = LutEntry(_op_factory(op, c), ((c, sh, sw),), baseline=skip)
        entries[f"nb201/cell-of-skips/{c}x{sh}x{sw}"] = LutEntry(_cell_factory(c), ((c, sh, sw),))
        if i > 0:
            pc, ph, pw = stages[i - 1]
            entries[f"nb201/reduction/{pc}x{ph}x{pw}"] = LutEntry(_reduction_factory(pc, c), ((pc, ph, pw),))
    c, sh, sw = stages[-1]
    entries[f"nb201/head/{c}x{sh}x{sw}->{task.num_classes}"] = LutEntry(
        lambda: Head(c, task.num_classes), ((c, sh, sw),)
    )
    entries[_reference_key(task, channels, cells_per_stage)] = LutEntry(
        lambda: NB201Network(["skip_connect"] * 6, task.num_classes, cin, channels, cells_per_stage), ((cin, h, w),)
    )
    return entries


def _reference_key(task: Task, channels: int, cells_per_stage: int) -> str:
    cin, (h, w) = task.in_channels, task.input_size
    return f"nb201/network-of-skips/{cin}x{h}x{w}->{task.num_classes}/C{channels}/N{cells_per_stage}"


def _op_factory(op: str, c: int) -> Callable[[], nn.Module]:
    return lambda: make_op(op, c)


def _cell_factory(c: int) -> Callable[[], nn.Module]:
    return lambda: NB201Cell(["skip_connect"] * 6, c)


def _reduction_factory(c_in: int, c_out: int) -> Callable[[], nn.Module]:
    return lambda: ResidualReduction(c_in, c_out)


def lut_keys(arch: Arch, edges: tuple[str, ...], task: Task, channels: int, cells_per_stage: int) -> list[str]:
    keys = [_reference_key(task, channels, cells_per_stage)]
    for c, sh, sw in _stages(task, channels):
        cell = [f"nb201/{arch[e]}-vs-skip/{c}x{sh}x{sw}" for e in edges if arch[e] != "skip_connect"]
        keys.extend(cell * cells_per_stage)
    return keys
