"""Latency look-up-table decomposition of the NAS-Bench-201 network.

Summing isolated op timings underestimates a CPU forward by about 12 % at batch 1: in the
network every op reads the previous op's output and its own weights cold, and the 15 cells add
dispatch work. So the table is measured in context:

* ``nb201/network-of-skips/...``: the whole network with every edge an identity, end to end;
* ``nb201/<op>/stage<s>/<C>x<H>x<W>``: the cost of ``op`` instead of the identity on one edge
  of one stage's cells, measured as (network whose stage ``s`` cells have ``op`` on all six
  edges − network of skips) / 6 (``LutEntry.baseline``, ``per=6``).

Predicted latency = network of skips + Σ over stages Σ over the cell's six edges of the op's
cost at that stage (identities cost 0). Every entry is measured once per device and input size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from automl.types import Arch, Task
from search_spaces.base import LutEntry
from search_spaces.nb201.network import NB201Network

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SKIP = "skip_connect"


def _stages(task: Task, channels: int) -> list[tuple[int, int, int]]:
    h, w = task.input_size
    return [(channels * 2**s, math.ceil(h / 2**s), math.ceil(w / 2**s)) for s in range(3)]


def _reference_key(task: Task, channels: int, cells_per_stage: int) -> str:
    cin, (h, w) = task.in_channels, task.input_size
    return f"nb201/network-of-skips/{cin}x{h}x{w}->{task.num_classes}/C{channels}/N{cells_per_stage}"


def _op_key(op: str, stage: int, shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"nb201/{op}/stage{stage}/{c}x{h}x{w}"


def _network(task: Task, channels: int, cells_per_stage: int, stage_ops: list[list[str]]) -> Callable[[], nn.Module]:
    return lambda: NB201Network(stage_ops, task.num_classes, task.in_channels, channels, cells_per_stage)


def lut_entries(task: Task, channels: int, cells_per_stage: int) -> dict[str, LutEntry]:
    shape = ((task.in_channels, *task.input_size),)
    ref = _reference_key(task, channels, cells_per_stage)
    skips = [[SKIP] * 6 for _ in range(3)]
    entries = {ref: LutEntry(_network(task, channels, cells_per_stage, skips), shape)}
    for s, geometry in enumerate(_stages(task, channels)):
        for op in OPS:
            if op == SKIP:
                continue
            stage_ops = [[SKIP] * 6 for _ in range(3)]
            stage_ops[s] = [op] * 6
            entries[_op_key(op, s, geometry)] = LutEntry(
                _network(task, channels, cells_per_stage, stage_ops), shape, baseline=ref, per=6
            )
    return entries


def lut_keys(arch: Arch, edges: tuple[str, ...], task: Task, channels: int, cells_per_stage: int) -> list[str]:
    keys = [_reference_key(task, channels, cells_per_stage)]
    for s, geometry in enumerate(_stages(task, channels)):
        keys.extend(_op_key(arch[e], s, geometry) for e in edges if arch[e] != SKIP)
    return keys
