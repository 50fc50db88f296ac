"""The ``darts`` controller: bilevel differentiable search of a supernet (docs/algorithms.md §4, §5, §8).

Liu et al. 2019 (DARTS) with the PC-DARTS and GDAS relaxations as ``method`` and the
ProxylessNAS expected-latency penalty. :class:`~controllers.oneshot.base.OneShotController`
builds ``space.supernet(task, **supernet_options())`` and ``prepare`` calls
:meth:`DartsController.search`, which

1. splits the training data into disjoint halves A (weights) and B (architecture) by a
   permutation seeded with the run seed;
2. per epoch sets the cosine weight learning rate (and GDAS τ), then per batch takes an
   architecture step on a B batch (after ``warmup_epochs``; first order, or second order with
   the unrolled virtual step and a finite-difference Hessian-vector product) followed by a
   weight step on an A batch;
3. reports the epoch (log line / rich bar, TensorBoard) and checkpoints to
   ``checkpoint_dir/supernet.pt``; a later call with the same directory resumes at the next
   epoch and, on the CPU, ends in exactly the state of an uninterrupted search;
4. returns ``supernet.candidates(top_k)``, best first; with a latency target, candidates whose
   predicted latency exceeds it are dropped (or, when none meets it, reported).

Under ``torchrun --nproc-per-node N`` the search is data-parallel
(:mod:`controllers.oneshot.distributed`): each process trains on its shard of every batch,
gradients are averaged, and all processes derive the same architectures.

Deviations from the reference code: persistent batch streams instead of a fresh iterator per
step; each step computes only the gradients it updates; the second-order virtual step works in
place instead of copying the network and restores BatchNorm statistics; on CUDA the forward
uses bf16 autocast (the finite differences stay fp32).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from controllers.oneshot import checkpoint as ckpt
from controllers.oneshot.base import OneShotController, SearchData
from controllers.oneshot.batches import Augmenter, CyclingBatches, gather, place, split_indices
from controllers.oneshot.latency import predicted_latency, within_target
from controllers.oneshot.darts_options import METHODS, DartsOptions
from controllers.oneshot.distributed import Replicas, check_batch
from controllers.oneshot.group import GroupSearch, run_group_search
from controllers.oneshot.recipes import resolve as recipe_options
from controllers.oneshot.report import Meter, Progress, format_line, undecided_warning, write_tensorboard
from controllers.oneshot.bilevel import BilevelTrainer
from automl.augment import crop_size
from automl.types import Arch, Task, arch_key
from controllers.base import PrepareContext


_LATER_OPTIONS: dict[str, Any] = {"steps_per_epoch": None, "crop_size": None, "search_parts": "auto",
                                  "stop_at_skips": None, "stop_when_stable": None}


class DartsController(OneShotController):
    """Differentiable architecture search (DARTS / PC-DARTS / GDAS) over a space's supernet.

    Options left unset come from the paper of the method in use (:mod:`.recipes`; on
    ``seg-hierarchical`` with ``method=darts``: Auto-DeepLab's), else DARTS CIFAR-10: ``epochs``
    50, ``batch_size`` 64, ``w_lr`` 0.025 cosine to ``w_lr_min`` 0.001, ``w_weight_decay`` 3e-4,
    ``w_nesterov`` false (GDAS: true),
    ``arch_lr`` 3e-4, ``arch_betas`` (0.5, 0.999), ``arch_weight_decay`` 1e-3,
    ``warmup_epochs`` 0 (epochs without α/β steps), ``step_order`` arch_first|weights_first;
    always: ``w_momentum`` 0.9, ``grad_clip`` 5, ``order`` 1|2, ``method``
    darts|pcdarts|gdas (``partial_channels`` K=4 for PC-DARTS; ``tau_max`` 10 → ``tau_min``
    0.1 for GDAS), ``top_k`` 1, ``latency_target_ms`` (None = no penalty), ``latency_loss``
    mul|add, ``latency_weight`` 0.2, ``latency_beta`` 0.3, ``amp`` (bf16 on CUDA), ``augment``
    (true: both halves get the training transform on the fly, :mod:`automl.augment`),
    ``crop_size`` (segmentation: the side of that transform's random crop, Auto-DeepLab 321 on
    ``seg-hierarchical``; None keeps the images' size; a side is never padded up past the image's),
    ``search_parts`` (the data the halves split: ``train``, ``train+val`` = the whole training
    set as in DARTS' 25k/25k on CIFAR-10, or ``auto``: train+val when the dataset keeps a
    separate ``test`` part, else train, so the evaluators' validation part stays unseen),
    ``steps_per_epoch`` (a cap; None: one pass over half A), DARTS+ early stopping (Liang et
    al. 2019; both off: the planned epochs), checked after each epoch that updated α:
    ``stop_at_skips`` (its criterion 1, with 2: the search ends once decoding gives a (normal)
    cell with that many skip connections or more, counted before any ``max_skips`` limit) and
    ``stop_when_stable`` (its criterion 2, with 10: once the derived architecture has stayed the
    same for that many epochs; deviation: DARTS+ watches the ranking of α over the learnable ops,
    which the derived architecture summarises for every space alike), and
    ``supernet``: extra keyword options for ``space.supernet`` (e.g. ``{C: 16, layers: 8}``).
    """

    name: ClassVar[str] = "darts"
    description: ClassVar[str] = "differentiable search of a supernet: DARTS (1st/2nd order), PC-DARTS, GDAS; latency-aware"
    requires: ClassVar[frozenset[str]] = frozenset({"supernet"})
    data_parallel: ClassVar[bool] = True  # searches with several torchrun processes

    def __init__(
        self,
        epochs: int | None = None,
        batch_size: int | None = None,
        w_lr: float | None = None,
        w_lr_min: float | None = None,
        w_momentum: float = 0.9,
        w_weight_decay: float | None = None,
        w_nesterov: bool | None = None,
        grad_clip: float = 5.0,
        arch_lr: float | None = None,
        arch_betas: tuple[float, float] | None = None,
        arch_weight_decay: float | None = None,
        order: int = 1,
        warmup_epochs: int | None = None,
        method: str = "darts",
        partial_channels: int = 4,
        tau_max: float = 10.0,
        tau_min: float = 0.1,
        top_k: int = 1,
        latency_target_ms: float | None = None,
        latency_weight: float = 0.2,
        latency_loss: str = "mul",
        latency_beta: float = 0.3,
        amp: bool = True,
        augment: bool = True,
        step_order: str | None = None,
        crop_size: int | None = None,
        search_parts: str = "auto",
        steps_per_epoch: int | None = None,
        stop_at_skips: int | None = None,
        stop_when_stable: int | None = None,
        supernet: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._given = {"epochs": epochs, "batch_size": batch_size, "w_lr": w_lr, "w_lr_min": w_lr_min,
                       "w_weight_decay": w_weight_decay, "w_nesterov": w_nesterov, "arch_lr": arch_lr, "arch_betas": arch_betas,
                       "arch_weight_decay": arch_weight_decay, "warmup_epochs": warmup_epochs, "step_order": step_order,
                       "crop_size": crop_size}
        self._fixed = {"w_momentum": w_momentum, "grad_clip": grad_clip, "order": order, "method": method,
                       "partial_channels": partial_channels, "tau_max": tau_max, "tau_min": tau_min, "top_k": top_k,
                       "latency_target_ms": latency_target_ms, "latency_weight": latency_weight,
                       "latency_loss": latency_loss, "latency_beta": latency_beta, "amp": amp, "augment": augment,
                       "search_parts": search_parts, "steps_per_epoch": steps_per_epoch, "stop_at_skips": stop_at_skips,
                       "stop_when_stable": stop_when_stable, "supernet": supernet or {}}
        self.options, self.sources = self._options(None)
        self.seed = 0
        self.trainer: BilevelTrainer | None = None
        self.split: tuple[torch.Tensor, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self.derived_key: str | None = None  # the architecture α/β derived after the last α epoch (DARTS+)
        self.latency_report: list[dict[str, Any]] = []

    def _options(self, space_settings: Mapping[str, Any] | None) -> tuple[DartsOptions, dict[str, str]]:
        """The options: given ones, else the papers' (:mod:`controllers.oneshot.recipes`)."""
        method = self._fixed["method"]
        if method not in METHODS:
            raise ValueError(f"darts: method must be one of {', '.join(METHODS)}, got {method!r}")
        settings, sources = recipe_options(method, self._given, space_settings)
        return DartsOptions(**settings, **self._fixed), sources

    def bind(self, space: Any, task: Task, objectives: Any, seed: int) -> None:
        """The space's paper settings (``space.paper_settings["darts"]``) join the defaults, then
        the supernet is built (see :class:`OneShotController`)."""
        settings = space.paper_settings.get(self.name) if space is not None else None
        if settings:
            self.options, self.sources = self._options(settings)
        check_batch(self.options.batch_size)  # several torchrun processes share each batch
        super().bind(space, task, objectives, seed)
        if self.options.stop_at_skips is not None and self.supernet is not None:
            try:
                self.supernet.decoded_skips()
            except TypeError:
                raise ValueError(f"darts: stop_at_skips needs a supernet that decodes a cell with skip connections "
                                 f"(darts, nb201, seg-hierarchical); space {space.name!r} has none") from None

    def check_group(self, processes: int) -> None:
        """ValueError (one line) unless the global batch splits over ``processes`` group members."""
        check_batch(self.options.batch_size, processes)

    def prepare(self, ctx: PrepareContext) -> None:
        """The search (see :class:`OneShotController`); with ``ctx.call_group`` (``--executor ray
        --workers N``) it runs on that many data-parallel processes (:mod:`.group`), and this
        process derives from their final checkpoint."""
        if not (ctx.call_group is not None and ctx.group_size > 1 and ctx.dataset is not None):
            super().prepare(ctx)
            return
        scratch = None if ctx.checkpoint_dir is not None else Path(tempfile.mkdtemp(prefix="automl-darts-"))
        try:
            super().prepare(self._search_in_group(ctx, Path(ctx.checkpoint_dir or scratch)))
        finally:
            if scratch is not None:  # no run directory: nothing to keep
                shutil.rmtree(scratch, ignore_errors=True)

    def _search_in_group(self, ctx: PrepareContext, folder: Path) -> PrepareContext:
        """Run the search on the group, store rank 0's final checkpoint in ``folder``; the context
        to derive from it. Rank 0's lines reach ``ctx.log`` as ``rank 0: ...``; the returned
        context's log drops the lines rank 0 already said (the settings, the data split, the
        derivation's warnings), which deriving from the checkpoint says again."""
        n, o = ctx.group_size, self.options
        if ctx.dataset_ref is None:
            raise ValueError("darts: a data-parallel search needs the run's dataset by reference")
        check_batch(o.batch_size, n)
        path = ckpt.path_in(folder)
        assert path is not None and ctx.call_group is not None
        log = ctx.log
        if log is not None:
            log(f"darts: data-parallel search on {n} Ray Train workers (global batch {o.batch_size} = "
                f"{n} x {o.batch_size // n}; one set of weights and α/β)")
        job = GroupSearch(controller=self, dataset=ctx.dataset_ref, parts=self.search_parts(ctx.dataset),
                          device=ctx.device, checkpoint_path=str(path),
                          checkpoint=path.read_bytes() if path.is_file() else None)
        relayed: set[str] = set()

        def relay(line: str) -> None:
            relayed.add(line)
            log(f"rank 0: {line}")  # type: ignore[misc]

        final = ctx.call_group(run_group_search, job, log=relay if log else None)
        if final is None:
            raise ValueError("darts: the data-parallel search returned no checkpoint")
        if not (path.is_file() and path.read_bytes() == final):  # rank 0 on this machine wrote it already
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".group")
            tmp.write_bytes(final)
            os.replace(tmp, path)
        # the derivation below repeats rank 0's settings, data and derivation lines: say them once
        unseen = (lambda line: None if line in relayed else log(line)) if log else None
        return dataclasses.replace(ctx, checkpoint_dir=folder, log=unseen)

    def search_parts(self, dataset: Any) -> tuple[str, ...]:
        return self.options.parts(tuple(getattr(dataset, "parts", ("train",))))

    def settings_line(self) -> str:
        """Which paper each option not given comes from, e.g. ``batch_size 256 (pcdarts)``."""
        parts = [f"{k} {getattr(self.options, k)!r} ({src})" for k, src in self.sources.items()
                 if src != "given" and getattr(self.options, k) is not None]
        return "darts settings: " + (", ".join(parts) if parts else "all given")

    def supernet_options(self) -> dict[str, Any]:
        """The relaxation of ``method`` plus the ``supernet`` passthrough options."""
        return {**self.options.supernet, **self.options.relaxation()}

    # -- the search ---------------------------------------------------------------------------
    def search(
        self,
        supernet: Any,
        data: SearchData,
        *,
        device: str = "cpu",
        checkpoint_dir: Any = None,
        writer: Any = None,
        log: Callable[[str], Any] | None = None,
        latency_lut: Mapping[str, float] | None = None,
    ) -> list[Arch]:
        """Run the bilevel optimisation (resuming from ``checkpoint_dir``) and derive archs.

        ``log`` receives one line per epoch (and warnings); without it a rich progress bar is
        shown on a terminal. ``writer`` is a TensorBoard ``SummaryWriter`` (or alike).
        """
        o = self.options
        images, targets = data.images, data.targets
        if len(images) != len(targets):
            raise ValueError(f"darts: {len(images)} images but {len(targets)} targets")
        replicas = Replicas.join(device)  # one of several torchrun processes: a data-parallel search
        trainer = self.trainer = BilevelTrainer(supernet, o, device=device if replicas is None else replicas.device,
                                                ignore_index=data.ignore_index, latency_lut=latency_lut,
                                                replicas=replicas)
        a_idx, b_idx = self.split = split_indices(len(images), self.seed)
        streams = {"A": CyclingBatches(a_idx, o.batch_size, self.seed + 1),
                   "B": CyclingBatches(b_idx, o.batch_size, self.seed + 2)}
        if replicas is not None:
            check_batch(min(s.batch_size for s in streams.values()), replicas.world)
        steps = math.ceil(len(a_idx) / streams["A"].batch_size)
        if o.steps_per_epoch is not None:
            steps = min(steps, o.steps_per_epoch)
        path = ckpt.path_in(checkpoint_dir)
        fingerprint = self._fingerprint(supernet, len(images))
        augmenter = Augmenter(o.augment, self.seed + 3, data.ignore_index, o.crop_size)
        start = self._resume(path, fingerprint, trainer, streams, augmenter)
        if replicas is not None:
            replicas.align(trainer.net)
        images, targets = place(images, targets, trainer.device)
        fetch = lambda idx: gather(images, targets, idx, trainer.device, trainer.channels_last, data.stats)
        batch = lambda s: (augmenter(fetch(next(streams[s]))) if replicas is None
                           else replicas.local_batch(next(streams[s]), fetch, augmenter))

        if log is not None:
            log(self.settings_line())
            log(f"search data: {data.source}, {len(images):,} samples -> halves {len(a_idx):,} (weights) / "
                f"{len(b_idx):,} (architecture)" + _crop_note(o, images, targets))
        progress = Progress(log, o.epochs, start)
        if min(s.batch_size for s in streams.values()) < o.batch_size:
            progress.message(f"darts: note: batch_size {o.batch_size} is larger than the halves ({len(a_idx):,} / "
                             f"{len(b_idx):,} samples); each batch is a whole half, {steps} step(s) an epoch")
        try:
            for epoch in range(start, o.epochs):
                metrics = self._epoch(trainer, batch, epoch, steps)
                stop = self._early_stop(supernet, metrics, epoch)
                self.history.append(metrics)
                if writer is not None:
                    write_tensorboard(writer, supernet, metrics, epoch)
                if path is not None:
                    ckpt.save(path, {"fingerprint": fingerprint, "epoch": epoch + 1, **trainer.state_dict(),
                                     "streams": {k: s.state_dict() for k, s in streams.items()},
                                     "split": {"A": a_idx, "B": b_idx}, "rng": ckpt.rng_state(self.rng),
                                     "augment": augmenter.state_dict(), "history": self.history,
                                     "derived_key": self.derived_key, "stopped": stop is not None})
                progress.epoch(format_line(epoch, o.epochs, metrics))
                if stop is not None:
                    progress.message(stop)
                    break
            derived = self._derive(supernet, latency_lut, progress)
            if replicas is not None and not replicas.same([arch_key(a) for a in derived]):
                raise RuntimeError("darts: the processes derived different architectures (their α/β diverged)")
            return derived
        finally:
            progress.close()
            if replicas is not None:
                replicas.close()

    def _epoch(self, trainer: BilevelTrainer, batch: Callable[[str], Any], epoch: int, steps: int) -> dict[str, float]:
        """Train one epoch; its metrics (losses, accuracies, lr, τ, E[LAT])."""
        o = self.options
        trainer.set_epoch(epoch)
        trainer.net.train()
        update_arch = epoch >= o.warmup_epochs
        train, val = Meter(), Meter()
        for _ in range(steps):
            batch_a = batch("A")
            val_stats, train_stats = trainer.search_step(batch_a, batch("B") if update_arch else None)
            if val_stats is not None:
                val.add(val_stats)
            train.add(train_stats)
        if not update_arch:  # val proxy during warm-up: one B batch, no update
            val.add(trainer.evaluate(batch("B")))
        if trainer.replicas is not None:  # the global batches' metrics; one checkpoint for all processes
            trainer.replicas.sum_meters(train, val)
            trainer.replicas.average_running_stats(trainer.net)
        metrics = {"lr": trainer.lr, "arch_updated": float(update_arch)}
        metrics["train_loss"], metrics["train_acc"] = train.summary()
        metrics["val_loss"], metrics["val_acc"] = val.summary()
        if not (math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])):
            raise FloatingPointError(f"darts: the loss diverged in epoch {epoch + 1} (train {metrics['train_loss']}, "
                                     f"val {metrics['val_loss']}); lower w_lr/arch_lr")
        if o.method == "gdas":
            metrics["tau"] = o.tau_at(epoch)
        if trainer.lut is not None:
            with torch.no_grad():
                metrics["expected_latency_ms"] = float(trainer.expected_latency())
        return metrics

    def _early_stop(self, supernet: Any, metrics: dict[str, float], epoch: int) -> str | None:
        """DARTS+ (``stop_at_skips``, ``stop_when_stable``): after an epoch that updated α, the
        decoded cell's skips and the epochs the derived architecture has held go into
        ``metrics``; the line announcing the stop once either reaches its limit."""
        o = self.options
        if not metrics["arch_updated"]:
            return None
        when = f"darts: early stop (DARTS+) after epoch {epoch + 1}/{o.epochs}"
        if o.stop_when_stable is not None:
            key = arch_key(supernet.derive())  # the same key: the last epoch was an α epoch too
            held = self.history[-1]["derived_held_epochs"] + 1 if key == self.derived_key else 0.0
            self.derived_key, metrics["derived_held_epochs"] = key, held
        if o.stop_at_skips is not None:
            skips = metrics["decoded_skips"] = float(supernet.decoded_skips())
            if skips >= o.stop_at_skips:
                return (f"{when}: the decoded cell has {skips:.0f} skip connection{'s' if skips != 1 else ''} "
                        f"(stop_at_skips={o.stop_at_skips})")
        if o.stop_when_stable is not None and metrics["derived_held_epochs"] >= o.stop_when_stable:
            return (f"{when}: the derived architecture has not changed for {metrics['derived_held_epochs']:.0f} epochs "
                    f"(stop_when_stable={o.stop_when_stable})")
        return None

    def _derive(self, supernet: Any, lut: Mapping[str, float] | None, progress: Progress) -> list[Arch]:
        """``top_k`` candidates, best first; filtered by the hard latency target when set."""
        o = self.options
        warning = undecided_warning(supernet.arch_distributions())
        if warning is not None:
            progress.message(warning)
        target = o.latency_target_ms
        if target is None or lut is None:
            return list(supernet.candidates(o.top_k))[: o.top_k]
        pool = list(supernet.candidates(max(4 * o.top_k, 16)))
        latencies = [predicted_latency(supernet, a, lut) for a in pool]
        chosen, ok = within_target(pool, latencies, target, o.top_k)
        self.latency_report = [{"arch": a, "latency_ms": lat, "feasible": lat <= target}
                               for a, lat in zip(pool, latencies, strict=True)]
        if not ok:
            progress.message(f"darts: WARNING no derived architecture meets latency_target_ms={target:g} "
                             f"(best of {len(pool)} candidates: {min(latencies):.4g} ms); returning the top {o.top_k} anyway")
        elif latencies[0] > target:
            progress.message(f"darts: the top derived architecture predicts {latencies[0]:.4g} ms > target "
                             f"{target:g} ms; returning the best candidate(s) within the target instead")
        return chosen

    # -- checkpoint ---------------------------------------------------------------------------
    def _fingerprint(self, supernet: Any, n: int) -> dict[str, Any]:
        # Options added after checkpoints were first written count only when set, so an older
        # checkpoint of the same search still resumes.
        opts = {k: v for k, v in dataclasses.asdict(self.options).items()
                if k not in ("top_k", "amp") and not (k in _LATER_OPTIONS and v == _LATER_OPTIONS[k])}
        return {"options": repr(sorted(opts.items())), "samples": n, "seed": self.seed,
                "supernet": type(supernet).__name__}

    def _resume(self, path: Any, fingerprint: dict[str, Any], trainer: BilevelTrainer,
                streams: dict[str, CyclingBatches], augmenter: Augmenter) -> int:
        """Load the checkpoint when present; the first epoch still to run."""
        self.history, self.derived_key = [], None
        payload = None if path is None else ckpt.load(path, fingerprint)
        if trainer.replicas is not None:  # rank 0 holds the checkpoint: every process continues from it
            payload = trainer.replicas.broadcast_object(payload)
        if payload is None:
            torch.manual_seed(self.seed)  # Gumbel noise and other draws inside the supernet
            return 0
        trainer.load_state_dict(payload)
        for key, stream in streams.items():
            stream.load_state_dict(payload["streams"][key])
        assert self.split is not None
        if not all(torch.equal(payload["split"][k], s) for k, s in zip("AB", self.split, strict=True)):
            raise ValueError(f"darts: {path} holds another data split; use another checkpoint_dir")
        ckpt.set_rng_state(payload["rng"], self.rng)
        augmenter.load_state_dict(payload["augment"])
        self.history = list(payload["history"])
        self.derived_key = payload.get("derived_key")
        return self.options.epochs if payload.get("stopped") else int(payload["epoch"])  # stopped: DARTS+


def _crop_note(o: DartsOptions, images: torch.Tensor, targets: torch.Tensor) -> str:
    """``; random crops 32x32 (crop_size 321 cut to the images' 32x32)`` where the segmentation
    crop is larger than the images (Auto-DeepLab's 321 on small data); empty otherwise."""
    if not o.augment or o.crop_size is None or targets.dim() != 3 or images.dim() != 4:
        return ""
    size = (int(targets.shape[-2]), int(targets.shape[-1]))  # the masks' H, W: the images'
    h, w = crop_size(size, (o.crop_size, o.crop_size))
    if (h, w) == (o.crop_size, o.crop_size):
        return ""
    return f"; random crops {h}x{w} (crop_size {o.crop_size} cut to the images' {size[0]}x{size[1]})"
