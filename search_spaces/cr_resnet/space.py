"""The ``cr-resnet`` space: CR-NAS computation reallocation of a ResNet (Liang et al., ICLR 2020)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace
from search_spaces.cr_resnet.allocations import (
    ACCEPTED,
    RESNET50,
    Allocation,
    alloc_name,
    allocations,
    baseline_allocation,
    check_blocks,
    parse_alloc,
)
from search_spaces.cr_resnet.network import BLOCKS, HEADS, STEM_STRIDES, CRResNet
from search_spaces.cr_resnet.supernet import CRSupernet
from search_spaces.supernet.single_path import Reallocation

DILATIONS = (1, 2, 3)
_DESCRIBED = re.compile(r"^(\d+(?:-\d+){3}) d:([123]+(?:-[123]+){3})$")


def _choice(name: str, value: Any, accepted: tuple[Any, ...]) -> Any:
    if isinstance(value, bool) or value not in accepted:
        raise ValueError(
            f"cr-resnet: {name} must be one of {', '.join(map(str, accepted))}, got {value!r}"
        )
    return accepted[accepted.index(value)]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"cr-resnet: {name} must be an integer >= 1, got {value!r}")
    return value


class CRResNetSpace(SearchSpace):
    """ResNet stage allocations (tau1..tau4 summing to N) and one 3x3 dilation per block.

    Decisions: ``alloc`` (every valid allocation's name, e.g. ``"3-4-6-3"``, in
    :func:`allocations` order), then ``d00`` .. ``d{N-1}`` (dilation of block k in stage order,
    1, 2 or 3). Options: ``blocks`` N (16 = ResNet-50), ``block`` (``bottleneck`` or ``basic``),
    ``width`` (64: stage s has inner width width * 2**(s-1)), ``stem_stride`` (4 = ResNet's
    7x7/2 conv + max-pool, 2, 1), ``head`` of segmentation networks (``fpn``: FPN + Panoptic
    FPN's semantic head; ``aspp``: DeepLab ASPP on the last stage) and ``head_channels`` (128);
    classification networks always end in global average pooling + a linear layer.
    :meth:`single_path_supernet` gives the CR-NAS weight-sharing supernet (:mod:`.supernet`).
    The default task is the ``shapes`` dataset at 64x64 (background + 4 shape classes).
    """

    name: ClassVar[str] = "cr-resnet"
    description: ClassVar[str] = (
        "CR-NAS: ResNet blocks reallocated over 4 stages (N fixed) + a dilation per block"
    )
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "realloc"})
    default_task: ClassVar[Task] = Task("segmentation", 3, (64, 64), 5)
    default_evaluators: ClassVar[tuple[Any, ...]] = ("train", "latency")
    quick_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "cr": {  # basic blocks at width 8, stem stride 1 on 32x32 shapes: about 4 minutes on a 2-core CPU
            "space": {"block": "basic", "width": 8, "stem_stride": 1, "head_channels": 16},
            "controller": {"epochs": 10, "spatial_epochs": 10, "completions": 2},
            "evaluators": [{"name": "train", "epochs": 15, "batch_size": 16, "optimizer": "adamw"},
                           {"name": "latency", "min_run_time": 0.1}],
            "budget": 5,
        },
    }

    def __init__(
        self,
        blocks: int = 16,
        block: str = "bottleneck",
        width: int = 64,
        stem_stride: int = 4,
        head: str = "fpn",
        head_channels: int = 128,
    ) -> None:
        super().__init__()
        self.blocks = check_blocks(blocks)
        self.block = _choice("block", block, BLOCKS)
        self.width = _positive_int("width", width)
        self.stem_stride = _choice("stem_stride", stem_stride, STEM_STRIDES)
        self.head = _choice("head", head, HEADS)
        self.head_channels = _positive_int("head_channels", head_channels)
        self._allocs = allocations(self.blocks)
        self._alloc_names = frozenset(alloc_name(a) for a in self._allocs)
        digits = len(str(self.blocks - 1))
        self._dilation_names = tuple(f"d{k:0{digits}d}" for k in range(self.blocks))

    # -- decisions ------------------------------------------------------------------------------
    def decisions(self) -> tuple[Decision, ...]:
        return (
            Decision("alloc", tuple(alloc_name(a) for a in self._allocs)),
            *(Decision(name, DILATIONS) for name in self._dilation_names),
        )

    def validate(self, arch: Arch) -> dict[str, Any]:
        alloc = arch.get("alloc") if isinstance(arch, Mapping) else None
        if alloc is not None and (
            not isinstance(alloc, str) or alloc not in self._alloc_names
        ):
            raise ValueError(
                f"cr-resnet: alloc={alloc!r} is not a valid allocation of blocks={self.blocks} "
                f"(four counts like '3-4-6-3' summing to it; {ACCEPTED})"
            )
        return super().validate(arch)

    def reallocation(self) -> Reallocation:
        decisions = self.decisions()
        return Reallocation(
            decisions[0], decisions[1:], self.arch(baseline_allocation(self.blocks))
        )

    def arch(
        self, alloc: tuple[int, ...], dilations: tuple[int, ...] | None = None
    ) -> dict[str, Any]:
        """The architecture of an allocation and per-block dilations (default: all 1)."""
        dilations = (1,) * self.blocks if dilations is None else tuple(dilations)
        if len(dilations) != self.blocks:
            raise ValueError(
                f"cr-resnet: {len(dilations)} dilations for {self.blocks} blocks"
            )
        return self.validate(
            {
                "alloc": alloc_name(alloc),
                **dict(zip(self._dilation_names, dilations, strict=True)),
            }
        )

    def decode(self, arch: Arch) -> tuple[Allocation, tuple[int, ...]]:
        """(allocation, dilations in block order) of a valid architecture."""
        arch = self.validate(arch)
        return parse_alloc(arch["alloc"]), tuple(
            int(arch[name]) for name in self._dilation_names
        )

    # -- presets --------------------------------------------------------------------------------
    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """``resnet50-alloc`` ([3, 4, 6, 3], every dilation 1) and ``baseline`` at the default N = 16."""
        space = cls()
        return {name: space.preset(name) for name in space.preset_names()}

    def preset_names(self) -> tuple[str, ...]:
        """The presets of this space: ``resnet50-alloc`` only when N = 16."""
        return ("resnet50-alloc", "baseline") if self.blocks == 16 else ("baseline",)

    def preset(self, name: str) -> dict[str, Any]:
        """A preset as an architecture of this space."""
        if name not in self.preset_names():
            raise KeyError(
                f"unknown cr-resnet preset {name!r} for blocks={self.blocks}; known: {list(self.preset_names())}"
            )
        return self.arch(
            RESNET50 if name == "resnet50-alloc" else baseline_allocation(self.blocks)
        )

    # -- networks -------------------------------------------------------------------------------
    def network_options(self, task: Task) -> dict[str, Any]:
        """The :class:`CRResNet` options (all but depths and dilations) for ``task``."""
        if (
            task.kind not in ("classification", "segmentation")
            or len(task.input_size) != 2
        ):
            raise ValueError(
                f"cr-resnet: builds 2D classification and segmentation networks, not a {task.kind} task"
            )
        return {
            "kind": task.kind,
            "in_channels": task.in_channels,
            "num_classes": task.num_classes,
            "block": self.block,
            "width": self.width,
            "stem_stride": self.stem_stride,
            "head": self.head,
            "head_channels": self.head_channels,
            "input_size": tuple(task.input_size),
        }

    def build(self, arch: Arch, task: Task | None = None) -> CRResNet:
        alloc, dilations = self.decode(arch)
        return CRResNet(
            alloc, dilations, **self.network_options(task or self.default_task)
        )

    def single_path_supernet(
        self, task: Task | None = None, **options: Any
    ) -> CRSupernet:
        """The CR-NAS single-path supernet for ``task`` (no options: it has this space's widths)."""
        if options:
            raise TypeError(
                f"cr-resnet: single_path_supernet takes no options, got {sorted(options)}"
            )
        return CRSupernet(self, task or self.default_task)

    # -- presentation ---------------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        """``3-4-6-3 d:111-2111-111111-111``: the allocation, then the dilations grouped by stage."""
        alloc, dilations = self.decode(arch)
        groups, start = [], 0
        for depth in alloc:
            groups.append("".join(str(d) for d in dilations[start : start + depth]))
            start += depth
        return f"{alloc_name(alloc)} d:{'-'.join(groups)}"

    def parse(self, text: str) -> dict[str, Any]:
        """A :meth:`describe` text, a preset name or arch JSON."""
        text = text.strip()
        if text in self.preset_names():
            return self.preset(text)
        if text[:1] == "{":
            return super().parse(text)
        match = _DESCRIBED.match(text)
        if match is None:
            raise ValueError(
                f"cr-resnet: cannot parse {text!r}; expected e.g. '3-4-6-3 d:111-2111-111111-111', a preset or JSON"
            )
        alloc = parse_alloc(match.group(1))
        groups = match.group(2).split("-")
        if [len(g) for g in groups] != list(alloc):
            raise ValueError(
                f"cr-resnet: dilation groups of {text!r} do not match the allocation {alloc_name(alloc)}"
            )
        if alloc not in self._allocs:
            raise ValueError(
                f"cr-resnet: allocation {alloc_name(alloc)} does not sum to blocks={self.blocks}"
            )
        return self.arch(alloc, tuple(int(c) for g in groups for c in g))
