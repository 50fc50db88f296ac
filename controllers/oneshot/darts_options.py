"""Options of the ``darts`` controller, validated once with one-line errors.

Defaults here are the DARTS CIFAR-10 search settings (docs/algorithms.md §4; the controller fills
unset options from each method's paper, :mod:`controllers.oneshot.recipes`): 50 epochs, batch 64,
SGD 0.025 -> 0.001 cosine, momentum 0.9, weight decay 3e-4, clip 5; α by Adam 3e-4,
betas (0.5, 0.999), weight decay 1e-3. ``method`` selects the relaxation the supernet is built
with: ``darts`` (softmax over all ops), ``pcdarts`` (partial channels + edge normalisation),
``gdas`` (hard Gumbel-softmax, τ linear from ``tau_max`` to ``tau_min`` over the epochs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Method = Literal["darts", "pcdarts", "gdas"]
LatencyLoss = Literal["mul", "add"]
StepOrder = Literal["arch_first", "weights_first"]
SearchParts = Literal["auto", "train", "train+val"]

METHODS: tuple[str, ...] = ("darts", "pcdarts", "gdas")
LATENCY_LOSSES: tuple[str, ...] = ("mul", "add")
STEP_ORDERS: tuple[str, ...] = ("arch_first", "weights_first")
SEARCH_PARTS: tuple[str, ...] = ("auto", "train", "train+val")
# Supernet options the method sets itself; a passthrough may not override them.
METHOD_KEYS: frozenset[str] = frozenset({"sampling", "partial_channels", "edge_norm"})


def _fail(message: str) -> None:
    raise ValueError(f"darts: {message}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        _fail(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        _fail(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class DartsOptions:
    """Every knob of the bilevel search (see the module docstring for the defaults)."""

    epochs: int = 50
    batch_size: int = 64
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_nesterov: bool = False  # Nesterov momentum in the weight step (GDAS' code)
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    order: int = 1
    warmup_epochs: int = 0
    method: Method = "darts"
    partial_channels: int = 4
    tau_max: float = 10.0
    tau_min: float = 0.1
    top_k: int = 1
    latency_target_ms: float | None = None
    latency_weight: float = 0.2
    latency_loss: LatencyLoss = "mul"
    latency_beta: float = 0.3
    amp: bool = True
    augment: bool = True
    crop_size: int | None = None  # segmentation: random crop side in the search (None: the images' size)
    search_parts: SearchParts = "auto"  # the data the halves split (auto: train+val when a test part exists)
    step_order: StepOrder = "arch_first"
    steps_per_epoch: int | None = None  # at most this many steps an epoch (None: one pass over half A)
    stop_at_skips: int | None = None  # DARTS+ early stop: once the decoded (normal) cell has this many skips
    stop_when_stable: int | None = None  # DARTS+ early stop: once the derived architecture held this many epochs
    supernet: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _integer("epochs", self.epochs, 1)
        _integer("batch_size", self.batch_size, 1)
        _integer("top_k", self.top_k, 1)
        _integer("warmup_epochs", self.warmup_epochs, 0)
        if self.steps_per_epoch is not None:
            _integer("steps_per_epoch", self.steps_per_epoch, 1)
        if self.stop_at_skips is not None:
            _integer("stop_at_skips", self.stop_at_skips, 1)
        if self.stop_when_stable is not None:
            _integer("stop_when_stable", self.stop_when_stable, 1)
        if self.warmup_epochs >= self.epochs:
            _fail(f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs}): no α step would happen")
        if self.order not in (1, 2) or isinstance(self.order, bool):
            _fail(f"order must be 1 (first order) or 2 (unrolled second order), got {self.order!r}")
        if self.method not in METHODS:
            _fail(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "gdas" and self.order == 2:
            _fail("order=2 is not supported with method='gdas' (GDAS is first order; resampled Gumbel noise breaks the finite differences)")
        if not isinstance(self.w_nesterov, bool):
            _fail(f"w_nesterov must be true or false, got {self.w_nesterov!r}")
        if self.w_nesterov and self.w_momentum == 0:
            _fail("w_nesterov needs w_momentum > 0 (Nesterov momentum without momentum is undefined)")
        if self.w_nesterov and self.order == 2:
            _fail("order=2 needs w_nesterov=false: the unrolled step models plain momentum SGD (DARTS)")
        for name in ("w_lr", "arch_lr", "tau_max", "tau_min"):
            _positive(name, getattr(self, name))
        for name in ("w_lr_min", "w_momentum", "w_weight_decay", "grad_clip", "arch_weight_decay", "latency_weight"):
            _positive(name, getattr(self, name), allow_zero=True)
        if self.w_lr_min > self.w_lr:
            _fail(f"w_lr_min ({self.w_lr_min}) must be <= w_lr ({self.w_lr})")
        if self.tau_min > self.tau_max:
            _fail(f"tau_min ({self.tau_min}) must be <= tau_max ({self.tau_max})")
        betas = tuple(self.arch_betas) if isinstance(self.arch_betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            _fail(f"arch_betas must be two numbers in [0, 1), got {self.arch_betas!r}")
        object.__setattr__(self, "arch_betas", (float(betas[0]), float(betas[1])))
        _integer("partial_channels", self.partial_channels, 1)
        if self.latency_loss not in LATENCY_LOSSES:
            _fail(f"latency_loss must be 'mul' (ProxylessNAS code default) or 'add', got {self.latency_loss!r}")
        _positive("latency_beta", self.latency_beta)
        if self.latency_target_ms is not None:
            _positive("latency_target_ms", self.latency_target_ms)
            if self.latency_loss == "mul" and self.latency_target_ms <= 1.0:
                _fail(f"latency_loss='mul' needs latency_target_ms > 1 (it divides by log T), got {self.latency_target_ms!r}")
        if self.step_order not in STEP_ORDERS:
            _fail(f"step_order must be 'arch_first' (DARTS) or 'weights_first' (GDAS code), got {self.step_order!r}")
        if not isinstance(self.augment, bool):
            _fail(f"augment must be true or false, got {self.augment!r}")
        if self.search_parts not in SEARCH_PARTS:
            _fail(f"search_parts must be one of {', '.join(SEARCH_PARTS)}, got {self.search_parts!r}")
        if self.crop_size is not None:
            _integer("crop_size", self.crop_size, 1)
        if not isinstance(self.amp, bool):
            _fail(f"amp must be true or false, got {self.amp!r}")
        if not isinstance(self.supernet, Mapping) or not all(isinstance(k, str) for k in self.supernet):
            _fail(f"supernet must be a mapping of supernet option names to values, got {self.supernet!r}")
        clash = sorted(METHOD_KEYS & set(self.supernet))
        if clash:
            _fail(f"supernet options {clash} are set by method={self.method!r}; choose the method instead")
        object.__setattr__(self, "supernet", dict(self.supernet))

    def parts(self, available: tuple[str, ...]) -> tuple[str, ...]:
        """The dataset parts the halves split: ``train+val`` (the whole training set, DARTS' 25k/25k
        of CIFAR-10) when asked, or under ``auto`` when the dataset keeps a separate ``test`` part
        (so a final number on untouched data remains); else ``train`` alone, the validation part
        staying the evaluators' own."""
        whole = self.search_parts == "train+val" or (self.search_parts == "auto" and "test" in available)
        if whole and "val" not in available:
            _fail(f"search_parts={self.search_parts!r} needs a 'val' part; the dataset has {', '.join(available)}")
        return ("train", "val") if whole else ("train",)

    def relaxation(self) -> dict[str, Any]:
        """The supernet options ``method`` stands for (see ``search_spaces/supernet/contract.py``)."""
        if self.method == "pcdarts":
            return {"sampling": "softmax", "partial_channels": self.partial_channels, "edge_norm": True}
        if self.method == "gdas":
            return {"sampling": "gumbel"}
        return {"sampling": "softmax"}

    def w_lr_at(self, epoch: int) -> float:
        """Cosine annealing from ``w_lr`` (epoch 0) towards ``w_lr_min`` (T_max = epochs)."""
        cos = 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        return self.w_lr_min + (self.w_lr - self.w_lr_min) * cos

    def tau_at(self, epoch: int) -> float:
        """GDAS temperature: linear from ``tau_max`` (first epoch) to ``tau_min`` (last epoch)."""
        if self.epochs == 1:
            return self.tau_max
        return self.tau_max - (self.tau_max - self.tau_min) * epoch / (self.epochs - 1)
