"""The ``cr`` controller: computation reallocation (CR-NAS, Liang et al. 2020; docs/algorithms.md §6).

On a space that offers ``realloc`` (``cr-resnet``) ``prepare`` runs the two phases of
:mod:`controllers.oneshot.cr_phases` on the run's training split, cut into an arch-train and
an arch-validation part:

1. **stage level**: a single-path supernet is trained with allocations drawn uniformly (every
   dilation 1); then *every* valid allocation is scored with the inherited weights on the
   arch-validation part, each scoring stored in the run's store (``inherit: supernet``), and
   the best is kept;
2. **spatial level**: a second, fresh supernet of the chosen allocation is trained with the
   dilations drawn uniformly; a beam search (width 3) picks the dilations block by block.

``ask`` then proposes the final beam (best first, ``top_k`` of it), the stage-only result
(chosen allocation, dilations 1) and, with ``include_baseline``, the space's baseline (ResNet-50's
[3, 4, 6, 3]): the run's evaluators retrain and measure them as ordinary trials, so the front
compares the reallocated networks with the baseline at the same budget. Both phases checkpoint
every epoch under ``ctx.checkpoint_dir`` and run as Ray tasks with one trial's resources under
``--executor ray``; a resumed run continues the training and skips the allocations already
scored.

Deviations: the paper's supernet schedule (its appendix) was not available — the defaults below
are SGD settings of the retraining (momentum 0.9, weight decay 1e-4) with a cosine learning rate;
the arch-validation part is ``arch_val_fraction`` of the training split (the paper: 5k of 135k
COCO images, 3.7 %); scorings use batch statistics (see :mod:`.single_path`); the metric is the
task's (accuracy / mIoU) instead of detection AP.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch

from automl.types import Arch, Objective, Scoring, Task, arch_key
from controllers.base import Controller, PrepareContext
from controllers.oneshot.base import OneShotController, SearchData
from controllers.oneshot.cr_phases import PhaseJob, PhaseOutcome, best_scored, run_phase
from controllers.oneshot.single_path import TrainOptions
from search_spaces.base import SearchSpace


@dataclasses.dataclass(frozen=True)
class CROptions:
    """The ``cr`` options (defaults in :class:`CRController`; checked in :meth:`check`)."""

    epochs: int
    spatial_epochs: int
    batch_size: int
    lr: float
    lr_min: float
    momentum: float
    weight_decay: float
    grad_clip: float
    arch_val_fraction: float
    beam_width: int
    completions: int
    top_k: int
    include_baseline: bool
    augment: bool

    def check(self) -> None:
        for name in ("epochs", "spatial_epochs", "batch_size", "beam_width", "completions", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if "epochs" in name else 1):
                raise ValueError(f"cr: {name} must be an integer >= {0 if 'epochs' in name else 1}, got {value!r}")
        for name in ("lr", "lr_min", "momentum", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"cr: {name} must be a number >= 0, got {value!r}")
        if not 0 < self.arch_val_fraction < 1:
            raise ValueError(f"cr: arch_val_fraction must be in (0, 1), got {self.arch_val_fraction!r}")
        if self.top_k > self.beam_width:
            raise ValueError(f"cr: top_k ({self.top_k}) cannot exceed beam_width ({self.beam_width})")

    def train(self, epochs: int) -> TrainOptions:
        return TrainOptions(epochs=epochs, lr=float(self.lr), lr_min=float(self.lr_min), momentum=float(self.momentum),
                            weight_decay=float(self.weight_decay), grad_clip=float(self.grad_clip))


class CRController(OneShotController):
    """Computation reallocation: stage allocation, then dilations, on single-path supernets.

    Options: ``epochs`` 30 (stage supernet), ``spatial_epochs`` 30, ``batch_size`` 32, ``lr``
    0.05 cosine to ``lr_min`` 0, ``momentum`` 0.9, ``weight_decay`` 1e-4, ``grad_clip`` 5,
    ``arch_val_fraction`` 0.1, ``beam_width`` 3 (CR-NAS K), ``completions`` 4 (random completions
    averaged per beam candidate), ``top_k`` 3 (final-beam archs proposed), ``include_baseline``
    true, ``augment`` true (random crop/scale + flip on the supernets' training batches).
    """

    name: ClassVar[str] = "cr"
    description: ClassVar[str] = "computation reallocation (CR-NAS): stage allocation, then dilations, on single-path supernets"
    requires: ClassVar[frozenset[str]] = frozenset({"realloc"})

    def __init__(
        self,
        epochs: int = 30,
        spatial_epochs: int = 30,
        batch_size: int = 32,
        lr: float = 0.05,
        lr_min: float = 0.0,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        grad_clip: float = 5.0,
        arch_val_fraction: float = 0.1,
        beam_width: int = 3,
        completions: int = 4,
        top_k: int = 3,
        include_baseline: bool = True,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.options = CROptions(
            epochs=epochs, spatial_epochs=spatial_epochs, batch_size=batch_size, lr=lr, lr_min=lr_min,
            momentum=momentum, weight_decay=weight_decay, grad_clip=grad_clip, arch_val_fraction=arch_val_fraction,
            beam_width=beam_width, completions=completions, top_k=top_k, include_baseline=include_baseline,
            augment=augment)
        self.options.check()
        self.levels: Any = None

    def bind(self, space: SearchSpace, task: Task, objectives: tuple[Objective, ...] | list[Objective], seed: int) -> None:
        """Check the space and build the stage supernet (bad space options fail here)."""
        Controller.bind(self, space, task, objectives, seed)
        self.levels = space.reallocation()
        try:
            self.supernet = self._supernet(seed)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"space {space.name!r} single-path supernet: {exc}") from None

    def _supernet(self, seed: int) -> Any:
        assert self.space is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.space.single_path_supernet(self.task)

    # -- the search ---------------------------------------------------------------------------
    def prepare(self, ctx: PrepareContext) -> None:
        if ctx.dataset is None:
            raise ValueError("controller 'cr' needs a dataset to train its supernets on")
        assert self.space is not None and self.task is not None
        o, levels = self.options, self.levels
        data = SearchData.from_dataset(ctx.dataset)
        train_idx, val_idx = self._split(len(data.images))
        log = ctx.log or print
        metric = "acc" if self.task.kind == "classification" else "miou"
        folder = Path(ctx.checkpoint_dir) if ctx.checkpoint_dir is not None else None
        common = {"images": data.images, "targets": data.targets, "train_idx": train_idx, "val_idx": val_idx,
                  "kind": self.task.kind, "num_classes": self.task.num_classes, "ignore_index": data.ignore_index,
                  "batch_size": o.batch_size, "device": ctx.device, "augment": o.augment, "stats": data.stats}
        fingerprint = {"options": repr(dataclasses.asdict(o)), "samples": len(data.images), "seed": self.seed,
                       "supernet": f"{type(self.supernet).__name__} "
                                   f"{sum(p.numel() for p in self.supernet.parameters())} parameters",
                       "allocations": len(levels.allocation.choices)}

        # 1. stage level: every allocation, scored with inherited weights
        stored = self._stored(ctx, "stage allocation")
        candidates = [{**levels.baseline, levels.allocation.name: a} for a in levels.allocation.choices]
        todo = [a for a in candidates if arch_key(a) not in stored]
        log(f"cr: stage level — single-path supernet over {len(candidates)} allocations, {o.epochs} epochs"
            + (f"; {len(candidates) - len(todo)} already scored" if len(todo) < len(candidates) else ""))
        stage = self._run(ctx, PhaseJob(
            name="stage", supernet=self.supernet, train=o.train(o.epochs), searched=(levels.allocation,),
            fixed=dict(levels.baseline), seed=self.seed, candidates=todo,
            checkpoint=folder / "stage.pt" if folder else None, fingerprint={**fingerprint, "phase": "stage"}, **common))
        for arch, metrics, _ in stage.scores:
            stored[arch_key(arch)] = (arch, metrics)
        self._record(ctx, stage.scores, metric, "stage allocation")
        scores = [stored[arch_key(a)] for a in candidates]
        chosen = best_scored(scores, metric)
        alloc = chosen[levels.allocation.name]
        base_alloc = levels.baseline[levels.allocation.name]
        base_score = stored[arch_key(levels.baseline)][1]
        log(f"cr: allocation {alloc} scores {metric} {stored[arch_key(chosen)][1][metric]:.4f} "
            f"(baseline {base_alloc}: {base_score[metric]:.4f})")

        # 2. spatial level: a fresh supernet of that allocation, dilations by beam search
        log(f"cr: spatial level — supernet of {alloc} with dilations {list(levels.dilations[0].choices)} per block, "
            f"{o.spatial_epochs} epochs, then a beam search (width {o.beam_width}) over {len(levels.dilations)} blocks")
        spatial = self._run(ctx, PhaseJob(
            name="spatial", supernet=self._supernet(self.seed + 1), train=o.train(o.spatial_epochs),
            searched=tuple(levels.dilations), fixed={levels.allocation.name: alloc}, seed=self.seed + 1,
            beam_width=o.beam_width, completions=o.completions,
            checkpoint=folder / "spatial.pt" if folder else None,
            fingerprint={**fingerprint, "phase": "spatial", "allocation": str(alloc)}, **common))
        done = self._stored(ctx, "spatial candidate")
        self._record(ctx, [s for s in spatial.scores if arch_key(s[0]) not in done], metric, "spatial candidate")
        if ctx.writer is not None:  # the supernets' loss curves and the allocation scores
            for phase in (stage, spatial):
                for epoch, h in enumerate(phase.history):
                    ctx.writer.add_scalar(f"cr/{'stage' if phase is stage else 'spatial'}_supernet_loss", h["loss"], epoch)
            ctx.writer.add_histogram(f"cr/allocation_{metric}", torch.tensor([m[metric] for _, m in scores]), 0)
        finals = [arch for arch, _, _ in spatial.scores][: o.top_k]
        extra = [chosen] + ([dict(levels.baseline)] if o.include_baseline else [])
        self.derived = []
        for arch in finals + extra:
            if arch_key(arch) not in {arch_key(a) for a in self.derived}:
                self.derived.append(self.space.validate(arch))
        self._asked = 0
        log("cr: proposing " + "; ".join(self.space.describe(a) for a in self.derived))
        self.draw_derived(ctx)

    def _split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded permutation cut into arch-train and arch-val (at least one sample each)."""
        if n < 2:
            raise ValueError(f"cr: the search needs at least 2 training samples, got {n}")
        n_val = min(n - 1, max(1, round(self.options.arch_val_fraction * n)))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        return perm[n_val:].clone(), perm[:n_val].clone()

    @staticmethod
    def _run(ctx: PrepareContext, job: PhaseJob) -> PhaseOutcome:
        if ctx.call is None:
            return run_phase(job, ctx.log)
        if ctx.log is not None:
            ctx.log(f"cr: {job.name} phase runs as a task with one trial's resources")
        return ctx.call(run_phase, job)

    def _stored(self, ctx: PrepareContext, note: str) -> dict[str, tuple[Arch, dict[str, float]]]:
        if ctx.scorings is None:
            return {}
        return {r.key: (r.arch, {k.removeprefix("score_"): v for k, v in r.metrics.items()})
                for r in ctx.scorings.scorings() if r.proposal.get("note") == note}

    def _record(self, ctx: PrepareContext, scores: list[tuple[dict[str, Any], dict[str, float], float]], metric: str,
                note: str) -> None:
        if ctx.scorings is None or not scores:
            return
        assert self.space is not None
        ctx.scorings.record_scorings([
            Scoring(arch, {f"score_{k}": v for k, v in metrics.items()}, metrics[metric], note=note,
                    arch_str=self.space.describe(arch), duration=seconds) for arch, metrics, seconds in scores])
