"""``seg-unet``: the encoder-decoder family space (U-Net, UNet++, Attention U-Net, ICNet, PAN,
DeepLab-ASPP, Panoptic-FPN semantic branch, DLA as presets).

Decisions (every one categorical):

=====================  ==========================================================================
``depth``              encoder levels {2, 3, 4}; each after the first halves the resolution
``width``, ``widen``   channels of level 0 {8, 16, 24, 32} and the factor per level {1.5, 2}
                       (level i: ``width * widen**i`` rounded to an even number)
``block1..block4``     the block of each level (:data:`~.encoder.ENCODER_BLOCKS`)
``skip1..skip3``       the skip type of levels 0..2 (:data:`~.skips.SKIPS`)
``context``            the module on the deepest features (:data:`~.context.CONTEXTS`)
``aggregation``        how a decoder step merges (:data:`~.decoder.AGGREGATIONS`)
``coord``              CoordConv-style x/y channels at the stem {off, on}
``cascade``            ICNet input branches {1, 2, 3} (1: none)
``deep_supervision``   auxiliary logits in training {off, on}
=====================  ==========================================================================

Decisions the network cannot use are ignored: ``blockK`` for K > ``depth``, ``skipK`` for
K > ``depth - 1`` (the bottom has no skip), every skip with ``aggregation=fpn`` (FPN's laterals are
its skips), and ``aggregation`` at levels whose skip is ``gau``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from torch import nn

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace
from search_spaces.seg_unet.context import CONTEXTS
from search_spaces.seg_unet.decoder import AGGREGATIONS
from search_spaces.seg_unet.encoder import ENCODER_BLOCKS
from search_spaces.seg_unet.network import Layout, SegUNet
from search_spaces.seg_unet.presets import BLOCK_CHOICES, MAX_DEPTH, PRESETS
from search_spaces.seg_unet.skips import SKIPS

SWITCH = ("off", "on")
GROUPS = {"blocks": "block", "skips": "skip"}  # describe() writes these decisions as one a/b/c field


def level_widths(depth: int, width: int, widen: float) -> tuple[int, ...]:
    """Channels per level: ``width * widen**i`` rounded to an even number."""
    return tuple(2 * round(width * widen**i / 2) for i in range(depth))


class SegUNetSpace(SearchSpace):
    """The encoder-decoder family: depth, widths, a catalogue block per level, skip types, context,
    aggregation, coordinate channels, ICNet cascade and deep supervision."""

    name: ClassVar[str] = "seg-unet"
    description: ClassVar[str] = (
        "encoder-decoder family: depth, widths, catalogue block per level, skip type per level, context "
        "module, decoder aggregation, coord channels, ICNet cascade, deep supervision"
    )
    offers: ClassVar[frozenset[str]] = frozenset({"decisions"})
    default_task: ClassVar[Task] = Task(kind="segmentation", in_channels=3, input_size=(32, 32), num_classes=5)

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Eight published networks at small scale (:mod:`search_spaces.seg_unet.presets`); ``unet``
        is the reference the segmentation searches are measured against."""
        return {name: dict(arch) for name, arch in PRESETS.items()}

    def block_choices(self) -> dict[str, dict[str, Any]]:
        """Each catalogue block the space can choose, in a depth-3 U-Net otherwise plain."""
        return {name: self.validate(arch) for name, arch in BLOCK_CHOICES.items()}

    def decisions(self) -> list[Decision]:
        return [
            Decision("depth", (2, 3, 4)),
            Decision("width", (8, 16, 24, 32)),
            Decision("widen", (1.5, 2)),
            *(Decision(f"block{i}", ENCODER_BLOCKS) for i in range(1, MAX_DEPTH + 1)),
            *(Decision(f"skip{i}", SKIPS) for i in range(1, MAX_DEPTH)),
            Decision("context", CONTEXTS),
            Decision("aggregation", AGGREGATIONS),
            Decision("coord", SWITCH),
            Decision("cascade", (1, 2, 3)),
            Decision("deep_supervision", SWITCH),
        ]

    def validate(self, arch: Arch) -> dict[str, Any]:
        """The base checks, with each value replaced by its choice (``2.0`` -> ``2``: one identity)."""
        checked = super().validate(arch)
        return {d.name: d.choices[d.choices.index(checked[d.name])] for d in self.decisions()}

    def layout(self, arch: Arch) -> Layout:
        """The parts of ``arch`` the network uses."""
        a = self.validate(arch)
        depth = int(a["depth"])
        return Layout(
            widths=level_widths(depth, int(a["width"]), float(a["widen"])),
            blocks=tuple(a[f"block{i}"] for i in range(1, depth + 1)),
            skips=tuple(a[f"skip{i}"] for i in range(1, depth)),
            context=a["context"],
            aggregation=a["aggregation"],
            coord=a["coord"] == "on",
            cascade=int(a["cascade"]),
            deep_supervision=a["deep_supervision"] == "on",
        )

    def build(self, arch: Arch, task: Task | None = None) -> nn.Module:
        layout = self.layout(arch)
        task = task or self.default_task
        if task.kind != "segmentation" or len(task.input_size) != 2:
            raise ValueError(f"{self.name}: builds 2D segmentation networks, not a {task.kind} task {task.input_size}")
        return SegUNet(task.in_channels, task.num_classes, layout)

    # -- text --------------------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        """``depth=3 width=24 widen=2 blocks=conv3/conv3/conv3/(conv3) skips=... context=...``;
        values in parentheses are ignored by the network (levels beyond the depth, skips under FPN)."""
        a = self.validate(arch)
        depth = int(a["depth"])
        used = {"block": depth, "skip": 0 if a["aggregation"] == "fpn" else depth - 1}
        fields, grouped = [], set()
        for d in self.decisions():
            prefix = d.name.rstrip("0123456789")
            if prefix not in used:
                fields.append(f"{d.name}={a[d.name]}")
            elif prefix not in grouped:
                grouped.add(prefix)
                count = MAX_DEPTH if prefix == "block" else MAX_DEPTH - 1
                values = [str(a[f"{prefix}{i}"]) if i <= used[prefix] else f"({a[f'{prefix}{i}']})"
                          for i in range(1, count + 1)]
                fields.append(f"{prefix}s={'/'.join(values)}")
        return " ".join(fields)

    def parse(self, text: str) -> dict[str, Any]:
        """Inverse of :meth:`describe`; JSON is accepted too."""
        text = text.strip()
        if text.startswith("{"):
            return self.validate(json.loads(text))
        raw: dict[str, str] = {}
        for field in text.split():
            key, sep, value = field.partition("=")
            if not sep:
                raise ValueError(f"{self.name}: cannot read {field!r}; expected KEY=VALUE fields as describe() writes them")
            if key in GROUPS:
                for i, v in enumerate(value.split("/"), start=1):
                    raw[f"{GROUPS[key]}{i}"] = v.strip("()")
            else:
                raw[key] = value
        by_text = {d.name: {str(c): c for c in d.choices} for d in self.decisions()}
        return self.validate({k: by_text.get(k, {}).get(v, v) for k, v in raw.items()})
