"""The two phases of computation reallocation, each a picklable job (CR-NAS Algorithm 1).

A :class:`PhaseJob` holds everything one phase needs (its supernet, the data and the split, the
options), so :func:`run_phase` runs in the controller's process or, under the Ray executor, as
a Ray task with one trial's resources. A phase

1. trains its single-path supernet for ``train.epochs`` epochs on the arch-train part (with the
   training transform of :mod:`automl.augment` unless ``augment`` is off), one
   uniformly drawn sub-network per step (``searched`` decisions drawn, ``fixed`` kept),
   checkpointing every epoch to ``checkpoint`` (a resumed job continues at the next epoch);
2. ``stage``: scores every architecture of ``candidates`` on the whole arch-validation part;
   ``spatial``: beam search over the ``searched`` decisions in order (:mod:`.beam`), a prefix
   scored by the mean metric over ``completions`` uniform completions, each on one arch-val
   minibatch (the same completions and minibatches for every prefix of a position), then
   scores the final beam on the whole arch-validation part.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automl.batching import RESIDENT_BYTES, Stats
from automl.types import Arch, Decision
from controllers.oneshot import checkpoint as ckpt
from controllers.oneshot.batches import Augmenter, Batch, CyclingBatches, gather
from controllers.oneshot.beam import BeamResult, beam_search
from controllers.oneshot.report import Progress
from controllers.oneshot.single_path import (
    SinglePathTrainer,
    TrainOptions,
    uniform_sampler,
)


@dataclass
class PhaseJob:
    """One phase of the search (see the module docstring)."""

    name: str  # "stage" | "spatial"
    supernet: Any
    images: torch.Tensor
    targets: torch.Tensor
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    kind: str
    num_classes: int
    ignore_index: int
    train: TrainOptions
    batch_size: int
    searched: tuple[Decision, ...]
    fixed: dict[str, Any]
    seed: int
    device: str = "cpu"
    checkpoint: Path | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # stage: what to score
    beam_width: int = 3
    completions: int = 4
    augment: bool = True  # the training transform on the arch-train batches (automl.augment)
    stats: Stats | None = None  # (mean, std) normalising uint8 images per batch; None: float images


@dataclass
class PhaseOutcome:
    """Per-epoch history, the scored architectures (arch, metrics, seconds) and the beam."""

    history: list[dict[str, float]]
    scores: list[tuple[dict[str, Any], dict[str, float], float]]
    beam: BeamResult | None = None
    resumed_at: int = 0


def run_phase(job: PhaseJob, log: Callable[[str], Any] | None = None) -> PhaseOutcome:
    """Train the phase's supernet (resuming from its checkpoint), then score (see the module docstring)."""
    device = torch.device(job.device)
    trainer = SinglePathTrainer(job.supernet, job.train, kind=job.kind, num_classes=job.num_classes,
                                device=device, ignore_index=job.ignore_index)
    rng = np.random.default_rng(job.seed)
    stream = CyclingBatches(job.train_idx, job.batch_size, job.seed + 1)
    augmenter = Augmenter(job.augment, job.seed + 3, job.ignore_index)
    history: list[dict[str, float]] = []
    start = 0
    payload = None if job.checkpoint is None else ckpt.load(job.checkpoint, job.fingerprint)
    if payload is not None:
        trainer.load_state_dict(payload["trainer"])
        stream.load_state_dict(payload["stream"])
        augmenter.load_state_dict(payload["augment"])
        ckpt.set_rng_state(payload["rng"], rng)
        history, start = list(payload["history"]), int(payload["epoch"])
    else:
        torch.manual_seed(job.seed)
    sample = uniform_sampler(job.searched, job.fixed, rng)
    steps = math.ceil(len(job.train_idx) / stream.batch_size)
    batch = lambda idx: gather(job.images, job.targets, idx, device, stats=job.stats)
    progress = Progress(log, job.train.epochs, start, label=f"cr {job.name} supernet")
    try:
        for epoch in range(start, job.train.epochs):
            t0 = time.perf_counter()
            metrics = trainer.epoch(epoch, (augmenter(batch(next(stream))) for _ in range(steps)), sample)
            metrics["seconds"] = time.perf_counter() - t0
            history.append(metrics)
            if job.checkpoint is not None:
                ckpt.save(job.checkpoint, {"fingerprint": job.fingerprint, "epoch": epoch + 1,
                                           "trainer": trainer.state_dict(), "stream": stream.state_dict(),
                                           "augment": augmenter.state_dict(),
                                           "rng": ckpt.rng_state(rng), "history": history})
            progress.epoch(f"cr {job.name} supernet epoch {epoch + 1}/{job.train.epochs}  loss {metrics['loss']:.4f}"
                           f"  lr {metrics['lr']:.4g}  ({metrics['seconds']:.1f} s)")
    finally:
        progress.close()
    val_batches = _val_batches(job, batch)
    if job.name == "stage":
        return PhaseOutcome(history, _score_all(trainer, job.candidates, val_batches, log), resumed_at=start)
    result = _beam(trainer, job, val_batches, log)
    final = [dict(zip([d.name for d in job.searched], prefix, strict=True)) | job.fixed for prefix, _ in result.beam]
    return PhaseOutcome(history, _score_all(trainer, final, val_batches, None), result, resumed_at=start)


def _val_batches(job: PhaseJob, batch: Callable[[torch.Tensor], Batch]) -> Sequence[Batch]:
    """The arch-validation minibatches: converted once when they fit in ``RESIDENT_BYTES`` as
    ``float32`` / ``int64``, else again at every read (a Cityscapes-sized part stays compact)."""
    rows = [job.val_idx[i : i + job.batch_size] for i in range(0, len(job.val_idx), job.batch_size)]
    per_sample = job.images[0].numel() * 4 + job.targets[0].numel() * 8
    if len(job.val_idx) * per_sample <= RESIDENT_BYTES:
        return [batch(r) for r in rows]
    return _Lazy(rows, batch)


class _Lazy(Sequence[Batch]):
    """Batches made from their rows at each read."""

    def __init__(self, rows: list[torch.Tensor], batch: Callable[[torch.Tensor], Batch]) -> None:
        self.rows, self.batch = rows, batch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Batch:  # type: ignore[override]
        return self.batch(self.rows[i])


def _score_all(trainer: SinglePathTrainer, archs: Sequence[dict[str, Any]], batches: Sequence[Batch],
               log: Callable[[str], Any] | None) -> list[tuple[dict[str, Any], dict[str, float], float]]:
    out = []
    every = max(1, len(archs) // 10)
    for i, arch in enumerate(archs):
        t0 = time.perf_counter()
        out.append((arch, trainer.score(arch, batches), time.perf_counter() - t0))
        if log is not None and ((i + 1) % every == 0 or i + 1 == len(archs)):
            log(f"cr: scored {i + 1}/{len(archs)} allocations with the supernet's weights")
    return out


def _beam(trainer: SinglePathTrainer, job: PhaseJob, val_batches: Sequence[Batch],
          log: Callable[[str], Any] | None) -> BeamResult:
    """Beam search over ``job.searched`` in order; CR-NAS's averaged random completions."""
    rng = np.random.default_rng(job.seed + 7)
    names = [d.name for d in job.searched]
    metric = "acc" if job.kind == "classification" else "miou"
    draws: dict[int, list[tuple[tuple[Any, ...], Batch]]] = {}

    def completions(position: int) -> list[tuple[tuple[Any, ...], Batch]]:
        if position not in draws:  # shared by every prefix of this position
            draws[position] = [(tuple(d.choices[int(rng.integers(len(d.choices)))] for d in job.searched),
                                val_batches[int(rng.integers(len(val_batches)))]) for _ in range(job.completions)]
        return draws[position]

    def score(prefix: tuple[Any, ...]) -> float:
        total = 0.0
        for rest, b in completions(len(prefix) - 1):
            arch = dict(job.fixed) | dict(zip(names, prefix + rest[len(prefix):], strict=True))
            total += trainer.score(arch, [b])[metric]
        return total / job.completions

    def on_step(position: int, beam: list[tuple[tuple[Any, ...], float]]) -> None:
        if log is not None:
            log(f"cr: beam position {position + 1}/{len(names)} ({names[position]}): best "
                f"{''.join(map(str, beam[0][0]))} {metric} {beam[0][1]:.4f}")

    return beam_search([d.choices for d in job.searched], score, width=job.beam_width, on_step=on_step)


def best_scored(scores: Sequence[tuple[Arch, dict[str, float]]], metric: str) -> Arch:
    """The architecture with the highest ``metric`` (lower loss breaks ties, then order)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i][1][metric], scores[i][1]["loss"], i))
    return scores[order[0]][0]
