"""The ``mobile`` space's decisions and the layer plan an architecture expands to.

The plan is the one place that turns an architecture and a task into concrete layers (block,
widths, input resolution, stride): the network (:mod:`.network`) builds it and the latency
look-up table (:mod:`.lut`) keys it, so the two always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from automl.types import Arch, Decision, Task

# (base width, base layers, stride) per stage: MobileNetV2's 16/24/32/64/96/160 stages
# (its last 320-wide single layer is left to the head); base counts >= 2 so that -1/0/+1 differ.
STAGES: tuple[tuple[int, int, int], ...] = ((16, 2, 1), (24, 2, 2), (32, 3, 2), (64, 3, 2), (96, 3, 1), (160, 2, 2))
STEM_WIDTH = 32
HEAD_WIDTH = 640
WIDTHS = (0.5, 0.75, 1.0)
BLOCKS = (
    "mbconv", "blaze", "double_blaze", "octave_conv", "shift_conv", "ternary_conv", "inception", "factorized_conv"
)
KERNELS = (3, 5, 7)
EXPANSIONS = (1, 3, 6)
ATTNS = ("none", "se", "gc")
LAYER_DELTAS = (-1, 0, 1)
# The classification head on the last stage's output (network.make_head): today's pooled head and
# three catalogue heads -- bilinear_pool, factorized_bilinear, attention_estimator.
HEADS = ("pool", "bilinear", "factorized_bilinear", "attention")
BILINEAR_WIDTH = 64  # the bilinear head's reduced width (x width, rounded): c^2 = 1024 .. 4096 features
NO_KERNEL = frozenset({"shift_conv", "inception"})  # blocks whose kernels are fixed
SE_RATIO = 0.25  # MnasNet's SE ratio inside an MBConv


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never 10 % below ``value``."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def decisions() -> tuple[Decision, ...]:
    out = [Decision("width", WIDTHS)]
    for s in range(len(STAGES)):
        out += [Decision(f"s{s}.block", BLOCKS), Decision(f"s{s}.kernel", KERNELS),
                Decision(f"s{s}.expand", EXPANSIONS), Decision(f"s{s}.attn", ATTNS),
                Decision(f"s{s}.layers", LAYER_DELTAS)]
    return (*out, Decision("head", HEADS))


@dataclass(frozen=True)
class Layer:
    """One searched layer: a catalogue block at its geometry (input ``c_in x h x w``)."""

    stage: int
    block: str
    kernel: int
    expand: int
    se: bool  # SE inside the MBConv
    c_in: int
    c_out: int
    h: int
    w: int
    stride: int

    @property
    def op(self) -> str:
        """The block with only the options it uses, e.g. ``mbconv-k5-e6-se``, ``blaze-k3``."""
        if self.block == "mbconv":
            return f"mbconv-k{self.kernel}-e{self.expand}" + ("-se" if self.se else "")
        return self.block if self.block in NO_KERNEL else f"{self.block}-k{self.kernel}"


@dataclass(frozen=True)
class Attention:
    """A stage-level ``se`` / ``gc`` block after the stage's last layer (``channels x h x w``)."""

    stage: int
    kind: str
    channels: int
    h: int
    w: int


@dataclass(frozen=True)
class Plan:
    """Stem -> stages (layers, then an optional stage attention) -> head of one architecture.

    ``head_in`` is the last stage's output ``c x h x w``, ``head`` the head conv's width,
    ``head_kind`` one of :data:`HEADS` and ``bilinear`` the bilinear head's reduced width."""

    in_channels: int
    size: tuple[int, int]
    stem_stride: int
    stem: int
    stages: tuple[tuple[tuple[Layer, ...], Attention | None], ...]
    head_in: tuple[int, int, int]
    head: int
    num_classes: int
    head_kind: str
    bilinear: int


def stage_attention(arch: Arch, s: int) -> str:
    """The stage's attention placed after its layers: ``se`` except inside MBConv, ``gc``, ``none``."""
    attn = arch[f"s{s}.attn"]
    return "none" if attn == "se" and arch[f"s{s}.block"] == "mbconv" else attn


def plan(arch: Arch, task: Task, stem_stride: int) -> Plan:
    """Expand a validated architecture for ``task`` (2D input) into its layers."""
    width = float(arch["width"])
    h, w = (math.ceil(n / stem_stride) for n in task.input_size)
    c = make_divisible(STEM_WIDTH * width)
    stem = c
    stages: list[tuple[tuple[Layer, ...], Attention | None]] = []
    for s, (base, layers, stride) in enumerate(STAGES):
        c_out = make_divisible(base * width)
        block = arch[f"s{s}.block"]
        se = block == "mbconv" and arch[f"s{s}.attn"] == "se"
        out: list[Layer] = []
        for i in range(max(1, layers + int(arch[f"s{s}.layers"]))):
            st = stride if i == 0 else 1
            out.append(Layer(s, block, int(arch[f"s{s}.kernel"]), int(arch[f"s{s}.expand"]), se, c, c_out, h, w, st))
            c, h, w = c_out, math.ceil(h / st), math.ceil(w / st)
        attn = stage_attention(arch, s)
        stages.append((tuple(out), Attention(s, attn, c, h, w) if attn != "none" else None))
    return Plan(task.in_channels, tuple(task.input_size), stem_stride, stem, tuple(stages), (c, h, w),
                make_divisible(HEAD_WIDTH * width), task.num_classes, arch["head"],
                make_divisible(BILINEAR_WIDTH * width))


def stage_geometries(width: float, task: Task, stem_stride: int) -> list[dict[str, Any]]:
    """Per stage the geometry of its first layer and of the following ones, for ``width``."""
    h, w = (math.ceil(n / stem_stride) for n in task.input_size)
    c = make_divisible(STEM_WIDTH * width)
    out = []
    for s, (base, _, stride) in enumerate(STAGES):
        c_out = make_divisible(base * width)
        ho, wo = math.ceil(h / stride), math.ceil(w / stride)
        out.append({"stage": s, "first": (c, c_out, h, w, stride), "rest": (c_out, c_out, ho, wo, 1)})
        c, h, w = c_out, ho, wo
    return out
