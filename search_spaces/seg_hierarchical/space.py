"""The ``seg-hierarchical`` space: Auto-DeepLab's cell + network-level search (Liu et al. 2019)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from automl.types import Arch, Decision, Task
from search_spaces.base import SearchSpace, choices_by_block
from search_spaces.seg_hierarchical.genotype import (
    AUTODEEPLAB_CITYSCAPES,
    CELL_OPS,
    LEVELS,
    MOVES,
    Genotype,
    arch_to_genotype,
    canonical_arch,
    decision_names,
    genotype_str,
    genotype_to_arch,
    input_pairs,
    parse_genotype_str,
)
from search_spaces.seg_hierarchical.network import SegHierarchicalNet
from search_spaces.seg_hierarchical.ops import STEM_STRIDES, stem_strides
from search_spaces.seg_hierarchical.paths import count_paths
from search_spaces.seg_hierarchical.supernet import SegHierarchicalSupernet


def _stem_stride(name: str, value: Any) -> int:
    if isinstance(value, bool) or value not in STEM_STRIDES:
        raise ValueError(f"seg-hierarchical: {name} must be one of {', '.join(map(str, STEM_STRIDES))}, got {value!r}")
    return int(value)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"seg-hierarchical: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class SegHierarchicalSpace(SearchSpace):
    """Auto-DeepLab: a cell of B blocks over 7 ops + a path of L layers over strides 4..32.

    Architectures are flat decisions (see :mod:`.genotype`): ``path_1``, ``move_2..move_L``,
    ``b{k}_inputs``, ``b{k}_op1``, ``b{k}_op2``; :meth:`genotype` gives the readable (cell, path)
    form and :meth:`describe` / :meth:`parse` its text. ``validate`` canonicalises clamped moves.

    Options: ``layers`` L (12), ``blocks`` B (5), ``filter_multiplier`` F of the search supernet
    (8, as in the paper's search), ``retrain_filter_multiplier`` F of :meth:`build` (20 =
    Auto-DeepLab-S; the paper's M/L use 32/48), ``stem_channels`` of the built stem (64, 64, 128),
    ``aspp_rates`` of the built 5-branch ASPP at output stride 16 (6, 12, 18; scaled by 16/s and,
    for images under DeepLab's 513-pixel crops, by side/513: ``blocks.multiscale.aspp_rates_at``),
    ``aspp_channels`` (256), ``decoder`` (DeepLabv3+ decoder on level-0 features, True),
    ``stem_stride`` of the search supernet (4 as in Auto-DeepLab, whose levels run at strides
    4..32) and ``retrain_stem_stride`` of :meth:`build` (default: ``stem_stride``). 2 or 1 suit
    small images, where a stride-4 level 0 leaves too few pixels for borders (levels at 2..16 or
    1..8); like the wider retrain multiplier, a retrain stride below the search's keeps the
    searched cell and path (relative levels) and gives them more pixels — a deviation from the
    paper, off by default.
    The default task is the ``shapes`` dataset at 64x64 (background + 4 shape classes).
    """

    name: ClassVar[str] = "seg-hierarchical"
    description: ClassVar[str] = "Auto-DeepLab: cell (B blocks x 7 ops) + network path over strides 4..32, ASPP head"
    offers: ClassVar[frozenset[str]] = frozenset({"decisions", "graph", "supernet"})
    default_task: ClassVar[Task] = Task("segmentation", 3, (64, 64), 5)
    default_evaluators: ClassVar[tuple[Any, ...]] = ("train", "latency")
    # Auto-DeepLab's search (docs/algorithms.md §5): the darts controller's defaults on this space
    # with method=darts; α/β start after 20 of 40 epochs (kept as a fraction when epochs change).
    paper_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "darts": {"epochs": 40, "batch_size": 2, "w_lr": 0.025, "w_lr_min": 0.001, "w_weight_decay": 3e-4,
                  "arch_lr": 3e-3, "arch_betas": (0.9, 0.999), "arch_weight_decay": 1e-3, "warmup_fraction": 0.5,
                  "crop_size": 321},
    }
    quick_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "darts": {  # a 4-layer lattice at F=4 on 32x32 shapes, retrained within a time limit (below)
            # retrained at stem stride 1 (searched at the paper's 4): on 32x32 images stride 4 leaves
            # 8x8 maps; the same derived net reached val mIoU 0.29 at stride 4 and 0.38 at stride 1.
            # Retrained twice as wide (F=8, as Auto-DeepLab retrains wider than it searches): on
            # its 4-8 channel maps the CPU's cost follows pixels more than channels, so a step
            # costs 15 % more than at F=4 (benchmarks/train_step.py) and 15 epochs gave 0.510
            # against 0.455 for F=4 at 12
            "space": {"layers": 4, "filter_multiplier": 4, "retrain_filter_multiplier": 8,
                      "stem_channels": [16, 16, 32], "aspp_channels": 32, "retrain_stem_stride": 1},
            # arch_lr 3e-2: in 5 epochs of ~13 steps at 3e-3 α/β stayed within 0.02 of uniform (the
            # derived cell was initialisation noise, 7 of its 10 edges skips); P-DARTS' skip limit
            # keeps the faster α from collapsing to skips
            "controller": {"epochs": 8, "batch_size": 16, "warmup_epochs": 3, "w_lr": 0.05, "arch_lr": 3e-2,
                           "arch_weight_decay": 1e-3, "supernet": {"max_skips": 2}},
            # AdamW at 3e-3 on batches of 8: at 1e-3 on 16 (the earlier setting) both nets stayed near
            # 0.35-0.40 val mIoU; batch 4 gave 0.545 against 0.573 (seed 0, 15 epochs) in 123 s
            # against 84. channels_last: the found net's retrain 85 -> 72 s on the CPU. At F=8 the
            # lead over the U-Net grows with epochs (seeds 0-2, README: 0.536 at 15, 0.638 at 30),
            # so the retrain takes what the time limit leaves, up to 30 epochs: the same command
            # took 2 min 16 s to 3 min 53 s at a fixed 15 epochs, by the hour and host
            "evaluators": [{"name": "train", "epochs": 30, "batch_size": 8, "lr": 3e-3, "optimizer": "adamw",
                            "channels_last": True, "save_weights": True},
                           {"name": "latency", "min_run_time": 0.1}],
            "budget": 1,
            # the search and the found net's retrain end 140 s after the start; the reference U-Net
            # then trains for the same epochs (about a sixth of the retrain's time)
            "time_limit": 140,
            "reference": "seg-unet:unet",  # a plain U-Net trained the same way, compared in one line
        },
    }

    def __init__(
        self,
        layers: int = 12,
        blocks: int = 5,
        filter_multiplier: int = 8,
        retrain_filter_multiplier: int = 20,
        stem_channels: Sequence[int] = (64, 64, 128),
        aspp_rates: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
        decoder: bool = True,
        stem_stride: int = 4,
        retrain_stem_stride: int | None = None,
    ) -> None:
        super().__init__()
        self.layers = _positive_int("layers", layers)
        self.blocks = _positive_int("blocks", blocks)
        self.filter_multiplier = _positive_int("filter_multiplier", filter_multiplier, 2)
        if self.filter_multiplier % 2:
            raise ValueError(
                f"seg-hierarchical: filter_multiplier must be even (the stem has B*F/2 filters), got {filter_multiplier}"
            )
        self.retrain_filter_multiplier = _positive_int("retrain_filter_multiplier", retrain_filter_multiplier)
        stem = tuple(stem_channels) if isinstance(stem_channels, (list, tuple)) else ()
        if len(stem) != 3:
            raise ValueError(f"seg-hierarchical: stem_channels must be three integers, got {stem_channels!r}")
        self.stem_channels = tuple(_positive_int("stem_channels", c) for c in stem)
        rates = tuple(aspp_rates) if isinstance(aspp_rates, (list, tuple)) else ()
        if not rates:
            raise ValueError(f"seg-hierarchical: aspp_rates must be a non-empty list of integers, got {aspp_rates!r}")
        self.aspp_rates = tuple(_positive_int("aspp_rates", r) for r in rates)
        self.aspp_channels = _positive_int("aspp_channels", aspp_channels)
        if not isinstance(decoder, bool):
            raise ValueError(f"seg-hierarchical: decoder must be true or false, got {decoder!r}")
        self.decoder = decoder
        self.stem_stride = _stem_stride("stem_stride", stem_stride)
        self.retrain_stem_stride = _stem_stride("retrain_stem_stride",
                                                stem_stride if retrain_stem_stride is None else retrain_stem_stride)
        self._names = decision_names(self.layers, self.blocks)
        # completions[l][s]: number of valid path suffixes from level s at layer l (uniform sampling)
        self._completions = [[1] * LEVELS]
        for _ in range(self.layers - 1):
            nxt = self._completions[0]
            row = [sum(nxt[j] for j in (s - 1, s, s + 1) if 0 <= j < LEVELS) for s in range(LEVELS)]
            self._completions.insert(0, row)

    # -- decisions --------------------------------------------------------------------------------
    def block_choices(self) -> dict[str, dict[str, Any]]:
        """``sep_conv`` (sep_conv_kxk) and ``dil_conv`` (atrous_conv_kxk) of the cell ops."""
        return choices_by_block(self, CELL_OPS, lambda op: {"sep": "sep_conv", "atrous": "dil_conv"}.get(op.split("_")[0]))

    def decisions(self) -> tuple[Decision, ...]:
        out = [Decision("path_1", (0, 1))]
        out += [Decision(f"move_{l}", MOVES) for l in range(2, self.layers + 1)]
        for k in range(1, self.blocks + 1):
            out += [
                Decision(f"b{k}_inputs", input_pairs(k - 1)),
                Decision(f"b{k}_op1", CELL_OPS),
                Decision(f"b{k}_op2", CELL_OPS),
            ]
        return tuple(out)

    def size(self) -> int:
        """Distinct networks: paths x cells (moves that clamp are not counted twice)."""
        cells = 1
        for k in range(self.blocks):
            cells *= len(input_pairs(k)) * len(CELL_OPS) ** 2
        return count_paths(self.layers) * cells

    def validate(self, arch: Arch) -> dict[str, Any]:
        return canonical_arch(arch, self.layers, self.blocks)

    def genotype(self, arch: Arch) -> Genotype:
        """The readable (cell, path) form of an architecture."""
        return arch_to_genotype(arch, self.layers, self.blocks)

    def from_genotype(self, cell: Sequence[Any], path: Sequence[int]) -> dict[str, Any]:
        """The architecture of a (cell, path) genotype, checked against this space's L and B."""
        return self.validate(genotype_to_arch(cell, path))

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform over distinct networks: the path uniform over all valid paths, the cell uniform."""
        first = [self._completions[0][s] for s in (0, 1)]
        path = [int(rng.choice(2, p=np.array(first) / sum(first)))]
        for l in range(1, self.layers):
            options = [s for s in (path[-1] - 1, path[-1], path[-1] + 1) if 0 <= s < LEVELS]
            weights = np.array([self._completions[l][s] for s in options], dtype=float)
            path.append(options[int(rng.choice(len(options), p=weights / weights.sum()))])
        cell = []
        for k in range(self.blocks):
            pairs = input_pairs(k)
            i, j = (int(v) for v in pairs[int(rng.integers(len(pairs)))].split(","))
            op1, op2 = (CELL_OPS[int(rng.integers(len(CELL_OPS)))] for _ in range(2))
            cell.append(((op1, i), (op2, j)))
        return self.from_genotype(cell, path)

    def mutate(self, arch: Arch, rng: np.random.Generator) -> dict[str, Any]:
        """One change: a block's op, a block's input pair, or one layer's level.

        A level change keeps the rest of the path, so it rewrites the moves into and out of
        that layer (two decisions); every other mutation changes exactly one decision.
        """
        g = self.genotype(arch)
        cell, path = [list(b) for b in g.cell], list(g.path)
        kinds = ["op", "level"] + (["inputs"] if self.blocks > 1 else [])
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "op":
            k, side = int(rng.integers(self.blocks)), int(rng.integers(2))
            op, src = cell[k][side]
            others = [o for o in CELL_OPS if o != op]
            cell[k][side] = (others[int(rng.integers(len(others)))], src)
        elif kind == "inputs":
            k = 1 + int(rng.integers(self.blocks - 1))  # block 1 has a single pair
            current = f"{cell[k][0][1]},{cell[k][1][1]}"
            others = [p for p in input_pairs(k) if p != current]
            i, j = (int(v) for v in others[int(rng.integers(len(others)))].split(","))
            cell[k] = [(cell[k][0][0], i), (cell[k][1][0], j)]
        else:
            options = []
            for l in range(self.layers):
                lo, hi = (0, 1) if l == 0 else (path[l - 1] - 1, path[l - 1] + 1)
                for s in range(max(lo, 0), min(hi, LEVELS - 1) + 1):
                    if s != path[l] and (l + 1 == self.layers or abs(path[l + 1] - s) <= 1):
                        options.append((l, s))
            l, s = options[int(rng.integers(len(options)))]
            path[l] = s
        return self.from_genotype(cell, path)

    # -- networks -------------------------------------------------------------------------------
    def build(self, arch: Arch, task: Task | None = None) -> SegHierarchicalNet:
        task = task or self.default_task
        if task.kind != "segmentation":
            raise ValueError(f"seg-hierarchical builds segmentation networks, not {task.kind!r}")
        g = self.genotype(arch)
        return SegHierarchicalNet(
            g.cell,
            g.path,
            in_channels=task.in_channels,
            num_classes=task.num_classes,
            filter_multiplier=self.retrain_filter_multiplier,
            stem_channels=self.stem_channels,
            aspp_rates=self.aspp_rates,
            aspp_channels=self.aspp_channels,
            decoder=self.decoder,
            stem_stride=self.retrain_stem_stride,
            input_size=task.input_size,
        )

    def supernet(
        self,
        task: Task | None = None,
        *,
        sampling: str = "softmax",
        partial_channels: int = 1,
        edge_norm: bool = False,
        checkpoint: bool = False,
        max_skips: int | None = None,
    ) -> Any:
        """The Auto-DeepLab lattice supernet at ``filter_multiplier`` (see :mod:`.supernet`)."""
        task = task or self.default_task
        if task.kind != "segmentation":
            raise ValueError(f"seg-hierarchical supernets are for segmentation, not {task.kind!r}")
        return SegHierarchicalSupernet(
            self, task, sampling=sampling, partial_channels=partial_channels, edge_norm=edge_norm, checkpoint=checkpoint,
            max_skips=max_skips,
        )

    def graph(self, arch: Arch) -> nx.DiGraph:
        """The network: stem -> cells (level, stride, channels) -> ASPP [-> decoder] -> logits.

        Edges carry ``role`` (``H(l-1)``, ``H(l-2)``, ``low-level``, ``features``) and ``resample``
        (``same``, ``down``, ``up``, ``resize``), which is also their ``op``; ``graph["cell"]`` is
        :func:`cell_graph`.
        """
        g = self.genotype(arch)
        f = self.retrain_filter_multiplier
        net = nx.DiGraph(cell=cell_graph(g), genotype=genotype_str(g))
        ss = self.retrain_stem_stride
        net.add_node("stem2", stride=stem_strides(ss)[0], channels=self.stem_channels[1])
        net.add_node("stem4", stride=ss, channels=self.stem_channels[2])
        net.add_edge("stem2", "stem4", role="features", resample="down")
        names, levels = ["stem2", "stem4"], [-1, 0]
        for l, s in enumerate(g.path):
            name = f"cell{l}"
            net.add_node(name, level=s, stride=ss * 2**s, channels=self.blocks * f * 2**s)
            move = s - levels[-1]
            net.add_edge(names[-1], name, role="H(l-1)", resample={0: "same", 1: "down", -1: "up"}[move])
            net.add_edge(names[-2], name, role="H(l-2)", resample="same" if levels[-2] == s else "resize")
            names.append(name)
            levels.append(s)
        net.add_node("aspp", channels=self.aspp_channels)
        net.add_edge(names[-1], "aspp", role="features", resample="same")
        last = "aspp"
        if self.decoder:
            low = next((f"cell{l}" for l in reversed(range(self.layers)) if g.path[l] == 0), "stem4")
            net.add_node("decoder", stride=ss, channels=self.aspp_channels)
            net.add_edge("aspp", "decoder", role="features", resample="up")
            net.add_edge(low, "decoder", role="low-level", resample="same")
            last = "decoder"
        net.add_node("logits", stride=1)
        net.add_edge(last, "logits", role="features", resample="up")
        for _, _, data in net.edges(data=True):
            data["op"] = data["resample"]
        return net

    # -- presentation ----------------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        return genotype_str(self.genotype(arch))

    def parse(self, text: str) -> dict[str, Any]:
        text = text.strip()
        if text.startswith("path="):
            g = parse_genotype_str(text)
            return self.from_genotype(g.cell, g.path)
        return super().parse(text)

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Known architectures for the default L = 12, B = 5: ``autodeeplab-cityscapes`` (TF hnasnet)."""
        g = AUTODEEPLAB_CITYSCAPES
        return {"autodeeplab-cityscapes": cls().from_genotype(g.cell, g.path)}


def cell_graph(g: Genotype) -> nx.DiGraph:
    """The cell DAG: ``H(l-2)``, ``H(l-1)``, ``B1..BB``, ``out``; edges labelled ``op``."""
    dag = nx.DiGraph()
    names = ["H(l-2)", "H(l-1)"] + [f"B{k + 1}" for k in range(len(g.cell))]
    dag.add_nodes_from(names + ["out"])
    for k, block in enumerate(g.cell):
        for op, src in block:
            dag.add_edge(names[src], names[k + 2], op=op)
        dag.add_edge(names[k + 2], "out", op="concat")
    return dag

