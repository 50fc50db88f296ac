"""The ``mobile`` space: a latency-aware MnasNet / FBNet-style classification backbone."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from automl.types import Arch, Decision, Task
from search_spaces.base import LutEntry, SearchSpace
from search_spaces.layers import ACTIVATIONS
from search_spaces.mobile import lut
from search_spaces.mobile.network import MobileNetwork
from search_spaces.mobile.plan import ATTNS, BLOCKS, HEADS, STAGES, decisions, plan
from search_spaces.mobile.presets import PRESETS

STEM_STRIDES = (1, 2)
_STAGE = re.compile(r"^([a-z_]+)/k(\d+)/e(\d+)/([a-z]+)/([+-]\d+)$")
# the catalogue block each non-default head is (block_choices)
HEAD_BLOCKS = {"bilinear_pool": "bilinear", "factorized_bilinear": "factorized_bilinear",
               "attention_estimator": "attention"}


class MobileSpace(SearchSpace):
    """Six stages of catalogue blocks between a fixed stem and a searched head, MnasNet's factorised space.

    Stem: 3x3 conv 32 (``stem_stride`` 2 as MnasNet, or 1 for tiny inputs). Stages (base width,
    layers, stride of the first layer): 16,2,1 / 24,2,2 / 32,3,2 / 64,3,2 / 96,3,1 / 160,2,2,
    widths scaled by ``width`` and rounded to multiples of 8. Head (:func:`.network.make_head`),
    decision ``head``: 1x1 conv 640 (scaled) then ``pool`` (global average pool, linear; the
    presets' head), ``bilinear`` (the catalogue ``bilinear_pool``, Lin et al. B-CNN, symmetric,
    on the head features reduced to 64 x width channels, then linear), ``factorized_bilinear``
    (the catalogue block, Li et al., mapping the head features to the logits) or ``attention``
    (the catalogue ``attention_estimator``, Jetley et al.: the last stage's output attended
    with compatibility pc, classified as ``[g_a, g]`` with g the pooled head conv).
    Decisions: ``width`` (0.5, 0.75, 1.0), ``head`` (last) and per stage ``s{i}.``
    ``block`` (mbconv, blaze, double_blaze, octave_conv, shift_conv, ternary_conv, inception,
    factorized_conv), ``kernel`` (3, 5, 7), ``expand`` (1, 3, 6: mbconv's expansion),
    ``attn`` (none; se: inside every MBConv of the stage with ratio 0.25 of its input channels,
    after the stage's last layer for other blocks; gc: after the stage's last layer) and
    ``layers`` (-1, 0, +1 on the base count). ``kernel`` is ignored by shift_conv and inception
    and ``expand`` by every block but mbconv (the architectures stay distinct; their networks and
    LUT keys are the same). ``act`` names the activation of the stem, head, MBConvs and the
    norm + act the bare-conv blocks get (:mod:`.network`). Offers ``lut`` (:mod:`.lut`).
    """

    name: ClassVar[str] = "mobile"
    description: ClassVar[str] = (
        "MnasNet/FBNet-style mobile backbone: per stage block (mbconv, blaze, octave, shift, ternary, "
        "inception ...), kernel, expansion, SE/GC, depth; width multiplier; head (pool, bilinear, "
        "factorized bilinear, attention); latency LUT"
    )
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "lut"})
    default_task: ClassVar[Task] = Task("classification", 3, (32, 32), 10)
    default_evaluators: ClassVar[tuple[Any, ...]] = ("train", "latency")

    def __init__(self, stem_stride: int = 2, act: str = "relu6") -> None:
        super().__init__()
        if isinstance(stem_stride, bool) or stem_stride not in STEM_STRIDES:
            raise ValueError(f"mobile: stem_stride must be one of 1, 2, got {stem_stride!r}")
        if not isinstance(act, str) or act.lower() not in ACTIVATIONS:
            raise ValueError(f"mobile: act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.stem_stride, self.act = stem_stride, act.lower()

    # -- decisions ------------------------------------------------------------------------------
    def decisions(self) -> tuple[Decision, ...]:
        return decisions()

    def validate(self, arch: Arch) -> dict[str, Any]:
        """Checked like every decision space, with values in their canonical type (``1`` -> ``1.0``)."""
        out = super().validate(arch)
        for d in self.decisions():
            value = out[d.name]
            if isinstance(value, bool) or value not in d.choices:  # True == 1 passes the base check
                raise ValueError(f"mobile: {d.name}={value!r} is not one of {list(d.choices)}")
            out[d.name] = d.choices[d.choices.index(value)]
        return out

    # -- presets and blocks ---------------------------------------------------------------------
    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """``mobilenetv2-like`` and ``blazeface-backbone`` (layer plans in :mod:`.presets`)."""
        return {name: dict(arch) for name, arch in PRESETS.items()}

    def block_choices(self) -> dict[str, dict[str, Any]]:
        """Every block a stage can take (all stages that block), the ``se`` / ``gc`` attention
        (every stage with it) and the three heads that are catalogue blocks (``bilinear_pool``,
        ``factorized_bilinear``, ``attention_estimator``)."""
        out = {value: self.arch_with(value) for value in (*BLOCKS, *ATTNS[1:])}
        return out | {block: self.arch_with(head) for block, head in HEAD_BLOCKS.items()}

    # -- networks -------------------------------------------------------------------------------
    def _task(self, task: Task | None) -> Task:
        task = task or self.default_task
        if task.kind != "classification" or len(task.input_size) != 2:
            raise ValueError(f"mobile: builds 2D classification networks, not a {task.kind} task of size {task.input_size}")
        return task

    def build(self, arch: Arch, task: Task | None = None) -> MobileNetwork:
        return MobileNetwork(plan(self.validate(arch), self._task(task), self.stem_stride), self.act)

    def lut_entries(self, task: Task | None = None) -> dict[str, LutEntry]:
        return lut.lut_entries(self._task(task), self.stem_stride, self.act)

    def lut_keys(self, arch: Arch, task: Task | None = None) -> list[str]:
        return lut.lut_keys(self.validate(arch), self._task(task), self.stem_stride)

    # -- presentation ---------------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        """``w1.0 mbconv/k3/e1/none/-1 mbconv/k3/e6/se/+0 ... pool``: width, then per stage
        block/kernel/expansion/attention/layer delta, then the head."""
        a = self.validate(arch)
        stages = [
            f"{a[f's{s}.block']}/k{a[f's{s}.kernel']}/e{a[f's{s}.expand']}/{a[f's{s}.attn']}/{a[f's{s}.layers']:+d}"
            for s in range(len(STAGES))
        ]
        return " ".join([f"w{a['width']}", *stages, a["head"]])

    def parse(self, text: str) -> dict[str, Any]:
        if text.lstrip().startswith("{"):
            return super().parse(text)
        parts = text.split()
        if len(parts) != 2 + len(STAGES) or not parts[0].startswith("w"):
            raise ValueError(f"mobile: expected 'wWIDTH', {len(STAGES)} stages BLOCK/kK/eE/ATTN/±L and a head "
                             f"({'|'.join(HEADS)}), got {text!r}")
        try:
            arch: dict[str, Any] = {"width": float(parts[0][1:])}
        except ValueError:
            raise ValueError(f"mobile: width {parts[0]!r} is not wWIDTH (e.g. w0.75)") from None
        arch["head"] = parts[-1]
        for s, part in enumerate(parts[1:-1]):
            m = _STAGE.match(part)
            if m is None:
                raise ValueError(f"mobile: stage {s} {part!r} is not BLOCK/kK/eE/ATTN/±L (e.g. mbconv/k3/e6/se/+0)")
            arch.update({f"s{s}.block": m[1], f"s{s}.kernel": int(m[2]), f"s{s}.expand": int(m[3]),
                         f"s{s}.attn": m[4], f"s{s}.layers": int(m[5])})
        return self.validate(arch)
