"""The ``video`` space: clip classification networks ``[N, C, T, H, W] -> [N, classes]``."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from torch import nn

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace
from search_spaces.video.heads import HEADS
from search_spaces.video.network import (
    INSERT_FROM,
    INSERTS,
    PATHWAYS,
    STAGE_BLOCKS,
    STAGES,
    VideoArch,
    build_network,
)
from search_spaces.video.presets import PRESETS

TSTRIDES = (1, 2)
ALPHAS = (4, 8)
BETAS = (0.125, 0.25)
_STAGE = r"(?P<b{0}>[a-z0-9_]+)/(?P<t{0}>\d+)(?:\+(?P<i{0}>[a-z_]+))?"
_DESCRIBED = re.compile(" ".join(_STAGE.format(s) for s in range(1, STAGES + 1))
                        + r" (?P<head>[a-z_]+) (?P<pathway>[a-z]+)\(a(?P<alpha>\d+),b(?P<beta>[0-9.]+)\)$")


class VideoSpace(SearchSpace):
    """Per stage a catalogue video block and a temporal stride, non-local / GC insertion after
    stages 2-3, the head, and SlowFast's two pathways (α, β) instead of the single one.

    Decisions: ``block_1..3`` (:data:`STAGE_BLOCKS`), ``tstride_1..3`` (1, 2: I3D-style temporal
    max-pooling after the stage), ``insert_2``, ``insert_3`` (none, non_local, gc: the
    space-time forms, :mod:`.folding`), ``head`` (pool, attention_cluster, attentional_pool),
    ``pathway`` (single, slowfast), ``alpha`` (4, 8) and ``beta`` (1/8, 1/4). With
    ``pathway=slowfast`` every stage is the catalogue ``slowfast`` block, so ``block_*`` and
    ``tstride_*`` do not act (SlowFast keeps T in both pathways); with ``single``, ``alpha`` and
    ``beta`` do not. Option ``width`` (16): stage widths ``width·(1, 2, 4)``. The default task is
    the ``moving-shapes`` dataset: 8-frame 32×32 RGB clips, 8 motion classes.
    """

    name: ClassVar[str] = "video"
    description: ClassVar[str] = "clip classification: per-stage 3D block, temporal stride, non-local/GC, head, SlowFast"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions"})
    default_task: ClassVar[Task] = Task("video", 3, (8, 32, 32), 8)  # moving-shapes: T, H, W; 8 classes
    default_evaluators: ClassVar[tuple[Any, ...]] = (
        {"name": "train", "epochs": 4, "batch_size": 32, "optimizer": "adamw", "lr": 0.003},
        "cost",
        {"name": "latency", "min_run_time": 0.1},
    )

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 8:
            raise ValueError(f"video: width must be an integer >= 8, got {width!r}")
        self.width = width

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        return {name: dict(arch) for name, arch in PRESETS.items()}

    def decisions(self) -> tuple[Decision, ...]:
        stages = range(1, STAGES + 1)
        return (
            *(Decision(f"block_{s}", STAGE_BLOCKS) for s in stages),
            *(Decision(f"tstride_{s}", TSTRIDES) for s in stages),
            *(Decision(f"insert_{s}", INSERTS) for s in stages if s > INSERT_FROM),
            Decision("head", HEADS),
            Decision("pathway", PATHWAYS),
            Decision("alpha", ALPHAS),
            Decision("beta", BETAS),
        )

    def decode(self, arch: Arch) -> VideoArch:
        a = self.validate(arch)
        stages = range(1, STAGES + 1)
        return VideoArch(
            blocks=tuple(a[f"block_{s}"] for s in stages),
            tstrides=tuple(a[f"tstride_{s}"] for s in stages),
            inserts=tuple(a.get(f"insert_{s}", "none") for s in stages),
            head=a["head"], pathway=a["pathway"], alpha=a["alpha"], beta=a["beta"],
        )

    def build(self, arch: Arch, task: Task | None = None) -> nn.Module:
        task = task or self.default_task
        if task.kind != "video":
            raise ValueError(f"video: builds video networks, the task is {task.kind}")
        return build_network(self.decode(arch), task.in_channels, task.num_classes, task.input_size, self.width)

    def block_choices(self) -> dict[str, dict[str, Any]]:
        """Every catalogue block the space can put in a network, each with an arch containing it
        (from ``i3d-like``: the stage blocks, the inserts, the heads; ``slowfast-like``: slowfast)."""
        base = PRESETS["i3d-like"]
        out = {b: {**base, **{f"block_{s}": b for s in range(1, STAGES + 1)}} for b in STAGE_BLOCKS}
        out.update({i: {**base, **{f"insert_{s}": i for s in range(INSERT_FROM + 1, STAGES + 1)}}
                    for i in INSERTS if i != "none"})
        out.update({h: {**base, "head": h} for h in HEADS if h != "pool"})
        out["slowfast"] = dict(PRESETS["slowfast-like"])
        return {name: self.validate(a) for name, a in out.items()}

    def describe(self, arch: Arch) -> str:
        """Every decision, stage by stage: ``inflated_conv3d/1 r2plus1d/2+gc mict/2+non_local pool single(a8,b0.125)``
        (``block/tstride[+insert]`` per stage, the head, the pathway with alpha and beta)."""
        a = self.decode(arch)
        stages = [f"{b}/{t}" + ("" if i == "none" else f"+{i}") for b, t, i in zip(a.blocks, a.tstrides, a.inserts, strict=True)]
        return " ".join([*stages, a.head, f"{a.pathway}(a{a.alpha},b{a.beta})"])

    def parse(self, text: str) -> dict[str, Any]:
        """A :meth:`describe` text, a preset name or arch JSON."""
        text = text.strip()
        if text in PRESETS:
            return self.preset(text)
        if text[:1] == "{":
            return super().parse(text)
        match = _DESCRIBED.match(text)
        if match is None:
            raise ValueError(f"video: cannot parse {text!r}; expected e.g. {self.describe(PRESETS['i3d-like'])!r}, "
                             f"a preset ({', '.join(PRESETS)}) or arch JSON")
        arch: dict[str, Any] = {}
        for s in range(1, STAGES + 1):
            block, tstride, insert = match.group(f"b{s}"), match.group(f"t{s}"), match.group(f"i{s}")
            arch.update({f"block_{s}": block, f"tstride_{s}": int(tstride)})
            if s > INSERT_FROM:
                arch[f"insert_{s}"] = insert or "none"
            elif insert:
                raise ValueError(f"video: stage {s} takes no insert (non_local / gc follow stages {INSERT_FROM + 1}-{STAGES})")
        beta = float(match.group("beta"))
        arch.update(head=match.group("head"), pathway=match.group("pathway"), alpha=int(match.group("alpha")),
                    beta=next((b for b in BETAS if b == beta), beta))
        return self.validate(arch)
