"""``train``: train the built network on ``ctx.dataset`` and report validation metrics.

Classification and video (one label per clip ``[N, C, T, H, W]``) report ``val_acc`` (top-1 in [0, 1]); segmentation reports ``val_miou`` (mean
over classes of TP / (TP + FP + FN) from the confusion matrix of all validation pixels, classes
absent from both prediction and truth left out) and ``val_pixel_acc``; pixels equal to the
dataset's ``ignore_index`` count for nothing (PASCAL VOC convention). Logits whose size differs
from the mask are resized bilinearly (output-stride networks such as DeepLab). A model that returns
a tuple in training mode (deep supervision, DARTS' auxiliary head) adds 0.4 x the loss of every
output after the first (:data:`AUX_WEIGHT`).

Training stops at the first non-finite loss (checked every step on the CPU, every
:data:`NONFINITE_CHECK_EVERY` steps on CUDA) and the trial fails with that reason.

Budget: ``epochs``, ``steps`` (optimizer steps) and/or ``seconds`` (wall time from the start of
training, validation included); training stops at the first one reached, default one epoch.
Under the run's ``--time-limit`` (``ctx.deadline``) an ``epochs`` budget becomes the whole epochs
that fit in the time left: after the first epoch the evaluator divides that time by the first
epoch's (validation included) and the cosine spans that many epochs from then on (the first ran
on the schedule of ``epochs``), so a repeat that fits the same count gives the same numbers;
training also stops at the limit should later epochs run slower. Without ``epochs`` the time left
caps ``seconds``. A reference trained for a time-limited trial's epochs (``ctx.epochs``) runs
exactly those epochs in place of the whole budget.
The learning rate follows a per-step cosine (SGDR without restarts, Loshchilov & Hutter 2017)
over that budget, after an optional linear warm-up; with a time budget it follows whichever of
steps and time has progressed further, so it reaches zero when the time runs out. After each epoch the validation metric goes
to ``ctx.report(epoch, value)``; ``True`` raises :class:`TrialPruned` (Optuna median /
successive-halving pruners). The returned metrics and saved weights are those of the best
epoch (``select="best"``) or of the last (``select="last"``); the model is left holding them.
``patience`` stops training early after that many epochs without a validation-loss drop greater
than ``min_delta`` (Auto-Keras: 5 epochs, 1e-4); the cosine still spans the whole budget.

Weight inheritance (``inherit_weights``): a trial proposed with ``inherit="parent"`` starts from
the parent trial's saved ``weights.pt``, loaded into the freshly built network by the space's
``transfer(parent_arch, parent_state, arch, model)`` (same-name same-shape tensors by default, a
function-preserving morphism in spaces that have one), and may train for ``inherit_epochs``
instead of ``epochs``. Every trial's weights are then kept, since any trial may become a parent.
A parent without weights (failed, or trained without saving) is no error: the child trains from
scratch. The metric ``inherited`` (1 or 0) says which happened.

On CUDA, ``amp`` turns on autocast (``bf16``, ``fp16`` with a GradScaler, or ``auto``: bf16
where supported, else fp16); it is off by default because the small candidates of a search are
launch-bound: on an H200, bf16 trained a depth-2 seg-unet at 0.8-0.9x the fp32 speed
(benchmarks/train_overhead.py), and it is ignored on CPU. ``channels_last`` (off by default)
trains and validates images in the NHWC layout on any device: on the 2-core CPU it took the
zero-flag seg-hierarchical demo's 12-epoch retrain of its found net from 85.0 to 71.8 s
(``train_seconds``; 4-channel maps, where BatchNorm and the convolutions run faster in NHWC). A
seed gives the same metrics every time in either layout on CPU, but not the same as in the other
layout (rounding differs).

Both optimizers use PyTorch's fused kernels where the parameters allow (floating point, one CPU
or CUDA device): on the 2-core CPU, AdamW's step over the demo's found net (238 tensors) took
1.0 ms instead of 7.3 and a whole training step 151 ms instead of 168 (benchmarks/train_step.py).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from evaluators.base import EvalContext, EvaluationError, Evaluator, TrialPruned
from automl.augment import augment, flip
from automl.metrics import confusion, summary
from automl.types import Arch, Task

Batch = tuple[torch.Tensor, torch.Tensor]
PRIMARY = {"classification": "val_acc", "segmentation": "val_miou", "video": "val_acc"}  # video: clip labels


class TrainEvaluator(Evaluator):
    """Short supervised training: SGD / AdamW, cosine schedule, per-epoch validation and pruning.

    Options: ``epochs`` / ``steps`` / ``seconds`` (budget; default 1 epoch), ``batch_size`` 64,
    ``eval_batch_size`` 256, ``optimizer`` sgd|adamw, ``lr`` (0.05 | 1e-3), ``momentum`` 0.9,
    ``nesterov``, ``weight_decay`` (5e-4 | 0.01), ``schedule`` cosine|constant,
    ``warmup_epochs`` 0, ``label_smoothing`` 0, ``grad_clip`` (max global norm, off),
    ``amp`` off|auto|bf16|fp16, ``channels_last``, ``augment`` off|flip|full (training batches
    only: a per-sample horizontal flip, or the whole training transform of :mod:`automl.augment`:
    pad-crop + flip, or random scale + crop + flip for segmentation; ``true`` = full; ``flip`` is
    refused for video), ``select`` best|last, ``save_weights``
    (``ctx.trial_dir / "weights.pt"``, a CPU ``state_dict``): ``front`` (default) keeps the
    weights of the trials on the run's Pareto front (the run removes the others'), ``true``
    every trial's, ``false`` none; ``deterministic`` (PyTorch's reproducibility settings on
    CUDA: deterministic algorithms, cuDNN deterministic, no cuDNN benchmark,
    ``CUBLAS_WORKSPACE_CONFIG``; the CPU is reproducible from the seed without it);
    ``patience`` (stop after that many epochs without a ``val_loss`` drop greater than
    ``min_delta``, default 1e-4; off by default, Auto-Keras uses 5); ``inherit_weights``
    (start a trial proposed with ``inherit="parent"`` from its parent's ``weights.pt`` through
    ``space.transfer``; reports ``inherited`` 1/0; keeps every trial's weights, so it cannot be
    combined with ``save_weights: false``); ``inherit_epochs`` (the epoch budget of trials that
    did inherit weights; default ``epochs``). A dataset with a held-out ``test`` part (CIFAR-10's
    test batch) also gets ``test_acc`` / ``test_miou`` / ``test_loss`` of the selected weights,
    measured once after training: the number on data no search step saw.
    """

    name = "train"
    description = "train on the run's dataset and report val_acc (classification) or val_miou (segmentation)"
    needs_model = True
    provides = ("val_acc", "val_miou", "val_pixel_acc", "val_loss", "train_loss", "train_seconds", "epochs_run",
                "inherited", "test_acc", "test_miou", "test_pixel_acc", "test_loss")
    needs_dataset = True

    def __init__(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        seconds: float | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float | None = None,
        schedule: str = "cosine",
        warmup_epochs: float = 0.0,
        label_smoothing: float = 0.0,
        grad_clip: float | None = None,
        amp: str | bool = "off",
        channels_last: bool = False,
        augment: str | bool = "off",
        select: str = "best",
        save_weights: bool | Literal["front"] = "front",
        deterministic: bool = False,
        patience: int | None = None,
        min_delta: float = 1e-4,
        inherit_weights: bool = False,
        inherit_epochs: int | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(f"evaluator 'train' has no option {sorted(unknown)}; options: {', '.join(OPTIONS)}")
        if epochs is None and steps is None and seconds is None:
            epochs = 1
        self.epochs = _int("epochs", epochs, 1, optional=True)
        self.steps = _int("steps", steps, 1, optional=True)
        self.seconds = _number("seconds", seconds, 0.0, math.inf, optional=True, open_low=True)
        self.batch_size = _int("batch_size", batch_size, 1)
        self.eval_batch_size = _int("eval_batch_size", eval_batch_size, 1)
        self.optimizer = _choice("optimizer", optimizer, ("sgd", "adamw"))
        default_lr, default_wd = {"sgd": (0.05, 5e-4), "adamw": (1e-3, 0.01)}[self.optimizer]
        self.lr = _number("lr", default_lr if lr is None else lr, 0.0, math.inf, open_low=True)
        self.momentum = _number("momentum", momentum, 0.0, 1.0, open_high=True)
        self.nesterov = _bool("nesterov", nesterov)
        self.weight_decay = _number("weight_decay", default_wd if weight_decay is None else weight_decay, 0.0, math.inf)
        self.schedule = _choice("schedule", schedule, ("cosine", "constant"))
        self.warmup_epochs = _number("warmup_epochs", warmup_epochs, 0.0, math.inf)
        self.label_smoothing = _number("label_smoothing", label_smoothing, 0.0, 1.0, open_high=True)
        self.grad_clip = _number("grad_clip", grad_clip, 0.0, math.inf, optional=True, open_low=True)
        amp = {True: "auto", False: "off"}.get(amp, amp) if isinstance(amp, bool) else amp
        self.amp = _choice("amp", amp, ("auto", "bf16", "fp16", "off"))
        self.channels_last = _bool("channels_last", channels_last)
        augment = {True: "full", False: "off"}[augment] if isinstance(augment, bool) else augment
        self.augment = _choice("augment", augment, ("off", "flip", "full"))
        self.select = _choice("select", select, ("best", "last"))
        if save_weights != "front":
            save_weights = _bool("save_weights", save_weights)
        self.patience = _int("patience", patience, 1, optional=True)
        self.min_delta = _number("min_delta", min_delta, 0.0, math.inf)
        self.inherit_weights = _bool("inherit_weights", inherit_weights)
        self.inherit_epochs = _int("inherit_epochs", inherit_epochs, 1, optional=True)
        if self.inherit_weights and save_weights is False:
            raise ValueError("train: inherit_weights needs saved weights (a child may name any trial as its parent); "
                             "drop save_weights: false")
        if self.inherit_epochs is not None and not self.inherit_weights:
            raise ValueError("train: inherit_epochs applies to trials that inherit weights; set inherit_weights: true")
        self.save_weights = bool(save_weights)
        # the run removes the weights of trials off the front, unless any trial may become a parent
        self.weights_on_front_only = save_weights == "front" and not self.inherit_weights
        self.deterministic = _bool("deterministic", deterministic)
        if self.deterministic:  # cuBLAS reads it when CUDA starts: set before the first trial
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    def objective_for(self, task: Task) -> str | None:
        return f"{PRIMARY[task.kind]}:max" if task.kind in PRIMARY else None

    def setup(self, space: Any, task: Task) -> None:
        if self.augment == "flip" and task.kind == "video":
            raise ValueError("train: augment 'flip' would mirror clips, reversing the motion that labels video classes; "
                             "accepted for video: off, full (a random crop of every frame alike)")

    # -- public ------------------------------------------------------------------------------
    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        data = ctx.dataset
        if data is None or not hasattr(data, "batches"):
            raise EvaluationError("train: ctx.dataset is not set; the run must load a dataset (e.g. digits, shapes)")
        kind = data.task.kind
        if kind not in PRIMARY:
            raise EvaluationError(f"train: dataset {data.spec!r} is {kind}; accepted: {', '.join(PRIMARY)}")
        if ctx.task.kind != kind:
            raise EvaluationError(f"train: the task is {ctx.task.kind} but dataset {data.spec!r} is {kind}")
        if not isinstance(model, nn.Module):
            raise EvaluationError(f"train: needs an nn.Module, got {type(model).__name__}")
        device = torch.device(ctx.device)
        started = time.perf_counter()
        fork = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork, device_type=device.type if fork else "cuda"), \
                deterministic_kernels(self.deterministic):
            torch.manual_seed(ctx.seed)
            inherited = self._inherit(arch, model, ctx)
            epochs = self.inherit_epochs if inherited and self.inherit_epochs is not None else self.epochs
            steps, seconds, fit_within = self.steps, self.seconds, None
            if ctx.epochs is not None:  # a reference matched to a trial: exactly its epochs
                epochs, steps, seconds = ctx.epochs, None, None
            elif ctx.deadline is not None:  # --time-limit: end by it (one step at least)
                left = max(ctx.deadline - time.time(), 1e-3)
                left = min(seconds, left) if seconds else left
                if epochs:  # whole epochs, as many as fit, planned once: a repeat gives the same numbers
                    fit_within, seconds = left, None
                else:
                    seconds = left
            metrics = self._fit(model, data, ctx, device, epochs, steps, seconds, fit_within)
        metrics["train_seconds"] = time.perf_counter() - started
        if self.inherit_weights:
            metrics["inherited"] = float(inherited)
        return metrics

    def _inherit(self, arch: Arch, model: nn.Module, ctx: EvalContext) -> bool:
        """Load the parent trial's saved weights into ``model`` through ``ctx.space.transfer``;
        False (train from scratch) when off, not asked for, or the parent left no weights."""
        if not self.inherit_weights or ctx.inherit != "parent" or ctx.parent_dir is None:
            return False
        path = ctx.parent_dir / "weights.pt"
        if not path.is_file():  # a failed or pruned parent, or one trained before inheritance was on
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            taken = ctx.space.transfer(ctx.parent_arch, state, arch, model)
        except Exception as exc:  # a damaged file, or a transfer that does not fit this child
            raise EvaluationError(f"train: cannot inherit the weights of trial {ctx.parent} ({path}): "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        return bool(taken)

    # -- training ----------------------------------------------------------------------------
    def _fit(
        self, model: nn.Module, data: Any, ctx: EvalContext, device: torch.device, epochs: int | None,
        steps: int | None, seconds: float | None, fit_within: float | None = None,
    ) -> dict[str, float]:
        kind, num_classes = data.task.kind, data.task.num_classes
        primary = PRIMARY[kind]
        cuda = device.type == "cuda"
        channels_last = self.channels_last and len(data.task.input_size) == 2
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(device=device, memory_format=fmt)
        amp_dtype = _amp_dtype(self.amp, cuda)
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        ignore = data.ignore_index if kind == "segmentation" and data.ignore_index is not None else -100
        criterion = nn.CrossEntropyLoss(ignore_index=ignore, label_smoothing=self.label_smoothing)
        optimizer = self._make_optimizer(model)
        base_lrs = [group["lr"] for group in optimizer.param_groups]
        generator = torch.Generator().manual_seed(ctx.seed)
        transform = self._transform(ctx.seed, ignore)

        batch_size = min(self.batch_size, data.num_samples("train"))
        per_epoch = data.num_samples("train") // batch_size
        max_epochs = epochs or (math.ceil(steps / per_epoch) if steps else math.inf)
        limits = [n for n in (steps, epochs * per_epoch if epochs else None) if n]
        planned = min(limits) if limits else 0  # steps the cosine spans (0: seconds only)
        warmup = self.warmup_epochs * per_epoch
        params = [p for p in model.parameters() if p.requires_grad]

        step, epoch, done, resize = 0, 0, False, False
        best: dict[str, float] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        best_loss, stale = math.inf, 0  # early stopping on val_loss (patience)
        start = time.perf_counter()
        while epoch < max_epochs and not done:
            model.train()
            losses: list[torch.Tensor] = []  # summed once per epoch: no per-step sync or extra kernel
            for x, y in data.batches("train", batch_size, shuffle=True, generator=generator, device=device, drop_last=True):
                if transform is not None:
                    x, y = transform(x, y)
                if channels_last:
                    x = x.contiguous(memory_format=fmt)
                elapsed = time.perf_counter() - start
                factor = self._lr_factor(step, elapsed, planned, warmup, seconds)
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
                with _autocast(amp_dtype):
                    raw = model(x)
                    out = _logits(raw)
                    if step == 0:
                        resize = _check_output(out, y, kind, num_classes)
                    if resize:
                        out = F.interpolate(out, size=y.shape[-2:], mode="bilinear", align_corners=False)
                    loss = criterion(out, y) + _aux_loss(raw, y, criterion)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if self.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(params, self.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    if self.grad_clip:
                        nn.utils.clip_grad_norm_(params, self.grad_clip)
                    optimizer.step()
                losses.append(loss.detach())
                step += 1
                if not cuda or step % NONFINITE_CHECK_EVERY == 0:  # CPU: every step; CUDA: a sync every few
                    _check_finite(torch.stack(losses[-(1 if not cuda else NONFINITE_CHECK_EVERY):]), step, epoch, self.lr)
                if (steps and step >= steps) or (seconds and elapsed >= seconds) or (fit_within and elapsed >= fit_within):
                    done = True  # fit_within: a guard, when later epochs run slower than the first
                    break
            epoch += 1
            train_loss = float(torch.stack(losses).float().mean())
            if not math.isfinite(train_loss):
                raise EvaluationError(f"train: loss is {train_loss} at epoch {epoch} (lr={self.lr}); training diverged")
            metrics = _validate(model, data, self.eval_batch_size, device, fmt, amp_dtype, resize)
            metrics["train_loss"] = train_loss
            self._log(ctx.tensorboard(), epoch, metrics, primary, optimizer.param_groups[0]["lr"])
            if self.select == "last" or best is None or metrics[primary] > best[primary]:
                best, best_state = {**metrics, "epoch": epoch}, _clone_state(model)
            if ctx.report(epoch, metrics[primary]):
                raise TrialPruned(f"pruned after epoch {epoch} at {primary}={metrics[primary]:.4f}")
            if seconds and time.perf_counter() - start >= seconds:
                done = True
            if fit_within and epoch == 1:  # the epochs that fit, from the first one's time (validation included)
                fits = max(1, int(fit_within / max(time.perf_counter() - start, 1e-9)))
                if fits < max_epochs:
                    max_epochs = fits
                    planned = min(n for n in (steps, fits * per_epoch) if n)
            if self.patience is not None:
                if metrics["val_loss"] < best_loss - self.min_delta:
                    best_loss, stale = metrics["val_loss"], 0
                else:
                    stale += 1
                    done = done or stale >= self.patience
        assert best is not None and best_state is not None
        model.load_state_dict(best_state)
        model.to(memory_format=torch.contiguous_format).eval()
        if self.save_weights:
            self._save(ctx, {k: v.to("cpu", memory_format=torch.contiguous_format) for k, v in best_state.items()})
        result = {k: v for k, v in best.items() if k != "epoch"}
        result["epochs_run"] = float(epoch)
        if "test" in getattr(data, "parts", ()):  # a held-out part (CIFAR-10's test batch): scored once
            result.update(_validate(model, data, self.eval_batch_size, device, fmt, amp_dtype, resize, part="test"))
        return result

    def _transform(self, seed: int, ignore_index: int) -> Callable[[torch.Tensor, torch.Tensor], Batch] | None:
        """The training batches' augmentation (None when off), drawing from its own generator so
        that the order of the batches is the same with and without it."""
        if self.augment == "off":
            return None
        generator = torch.Generator().manual_seed(seed + 1)
        if self.augment == "flip":
            return lambda x, y: flip(x, y, generator)
        return lambda x, y: augment(x, y, generator, ignore_index=ignore_index)

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise EvaluationError("train: the model has no trainable parameters")
        # The fused kernels update every tensor in one call (PyTorch's CPU default loops over them).
        fused = {"fused": True} if _fusable(params) else {}
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                nesterov=self.nesterov and self.momentum > 0, **fused,
            )
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, **fused)

    def _lr_factor(self, step: int, elapsed: float, planned: int, warmup: float, seconds: float | None) -> float:
        """Multiplier of the base lr: linear warm-up, then cosine over the budget's progress."""
        if warmup and step < warmup:
            return (step + 1) / warmup
        if self.schedule == "constant":
            return 1.0
        progress = step / planned if planned else 0.0
        if seconds:
            progress = max(progress, elapsed / seconds)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def _log(self, writer: Any, epoch: int, metrics: dict[str, float], primary: str, lr: float) -> None:
        if writer is None:
            return
        writer.add_scalar("train/loss", metrics["train_loss"], epoch)
        writer.add_scalar("train/lr", lr, epoch)
        for key, value in metrics.items():
            if key.startswith("val_"):
                writer.add_scalar(f"val/{key[4:]}", value, epoch)

    def _save(self, ctx: EvalContext, state: dict[str, torch.Tensor]) -> None:
        folder = ctx.trial_dir
        if folder is None:
            if self.weights_on_front_only:  # the default: nothing to keep without a run directory
                return
            warnings.warn("train: save_weights=True but ctx has no run_dir; weights not saved", stacklevel=3)
            return
        tmp = folder / f".weights.pt.{os.getpid()}.tmp"  # a child reading it never sees half a file
        try:
            torch.save(state, tmp)
            os.replace(tmp, folder / "weights.pt")
        finally:
            tmp.unlink(missing_ok=True)


OPTIONS = tuple(
    n for n, p in inspect.signature(TrainEvaluator.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY
)


# -- helpers -----------------------------------------------------------------------------------
# On CUDA the loss is checked for NaN/inf every this many steps (each check waits for the GPU).
NONFINITE_CHECK_EVERY = 8


def _check_finite(losses: torch.Tensor, step: int, epoch: int, lr: float) -> None:
    """Stop training at the first non-finite loss: the trial fails with this reason."""
    if not bool(torch.isfinite(losses).all()):
        raise EvaluationError(f"train: non-finite loss by step {step} (epoch {epoch + 1}, lr={lr}); training diverged")


def _logits(out: Any) -> torch.Tensor:
    """The main logits of a model output (tensor, first of a tuple, or ``out`` of a dict)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out:
        return _logits(out[0])
    if isinstance(out, Mapping) and "out" in out:
        return _logits(out["out"])
    raise EvaluationError(f"train: the model returned {type(out).__name__}; expected logits (a tensor)")


AUX_WEIGHT = 0.4  # PSPNet's auxiliary-loss weight (also DARTS' auxiliary_weight); UNet++ averages instead


def _aux_loss(out: Any, y: torch.Tensor, criterion: nn.Module) -> torch.Tensor | float:
    """Deep supervision: ``AUX_WEIGHT`` x the loss of each further logits of a tuple output (train mode)."""
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        return 0.0
    total: torch.Tensor | float = 0.0
    for aux in out[1:]:
        aux = _logits(aux)
        if aux.ndim == 4 and aux.shape[-2:] != y.shape[-2:]:
            aux = F.interpolate(aux, size=y.shape[-2:], mode="bilinear", align_corners=False)
        total = total + AUX_WEIGHT * criterion(aux, y)
    return total


def _check_output(out: torch.Tensor, y: torch.Tensor, kind: str, num_classes: int) -> bool:
    """Raise on logits of the wrong shape; return whether segmentation logits need resizing."""
    shape = list(out.shape)
    if kind in ("classification", "video"):
        if shape != [y.shape[0], num_classes]:
            raise EvaluationError(f"train: model output {shape} but the dataset needs [N, {num_classes}] logits")
        return False
    if out.ndim != 4 or shape[:2] != [y.shape[0], num_classes]:
        raise EvaluationError(f"train: model output {shape} but the dataset needs [N, {num_classes}, H, W] logits")
    return shape[2:] != list(y.shape[1:])


@torch.inference_mode()
def _validate(
    model: nn.Module, data: Any, batch_size: int, device: torch.device, fmt: torch.memory_format,
    amp_dtype: torch.dtype | None, resize: bool, part: str = "val",
) -> dict[str, float]:
    """Loss and metrics over the whole ``part`` (confusion matrix for mIoU), named ``{part}_...``."""
    model.eval()
    kind, num_classes = data.task.kind, data.task.num_classes
    ignore = data.ignore_index if kind == "segmentation" and data.ignore_index is not None else -100
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    counts = torch.zeros(num_classes * num_classes, device=device, dtype=torch.int64)
    for x, y in data.batches(part, batch_size, device=device):
        with _autocast(amp_dtype):
            out = _logits(model(x.contiguous(memory_format=fmt)))
        out = out.float()
        if resize:
            out = F.interpolate(out, size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss_sum += F.cross_entropy(out, y, ignore_index=ignore, reduction="sum")
        counts += confusion(out, y, num_classes, ignore)
    scores = summary(counts, num_classes, kind)
    if not scores:
        raise EvaluationError(f"train: the {part} part of {data.spec!r} has no labelled sample or pixel")
    metrics = {f"{part}_loss": float(loss_sum) / float(counts.sum())}
    metrics.update({f"{part}_{k}": v for k, v in scores.items()})
    return metrics


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights on their device (asynchronous on CUDA, no host round trip)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _amp_dtype(amp: str, cuda: bool) -> torch.dtype | None:
    if not cuda or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


# -- option checks (one line each: the option, what it got, what is accepted) -----------------
def _int(name: str, value: Any, minimum: int, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"train: {name} must be an integer >= {minimum}{' or None' if optional else ''}, got {value!r}")
    return value


def _number(
    name: str, value: Any, low: float, high: float, optional: bool = False,
    open_low: bool = False, open_high: bool = False,
) -> Any:
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        lo, hi = ("(" if open_low else "[") + f"{low:g}", f"{high:g}" + (")" if open_high else "]")
        raise ValueError(f"train: {name} must be a number in {lo}, {hi}{' or None' if optional else ''}, got {value!r}")
    return float(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"train: {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """PyTorch's reproducibility settings for one trial, restored after it: deterministic
    algorithms (ops without a deterministic kernel warn), cuDNN deterministic and not
    benchmarking. On the CPU training is already reproducible from the seed."""
    if not enabled:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"train: {name} must be true or false, got {value!r}")
    return value


def _fusable(params: list[torch.Tensor]) -> bool:
    """Whether PyTorch's fused optimizer kernels take these tensors: floating point, all on
    one CPU or CUDA device (other devices and mixed placements keep the per-tensor loop)."""
    devices = {p.device for p in params}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) for p in params))
