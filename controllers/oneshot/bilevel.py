"""One bilevel step at a time: the weight step and the architecture step of DARTS.

:class:`BilevelTrainer` owns the two optimisers (SGD for the weights w, Adam for α/β) and
exposes :meth:`~BilevelTrainer.weight_step` and :meth:`~BilevelTrainer.arch_step`, which the
controller loops over and ``benchmarks/supernet_speed.py`` times. Each step asks autograd only
for the gradients it updates (the reference fills every gradient in every step): the weight
step freezes α/β, the first-order architecture step freezes w, so no weight gradients are
computed and the op outputs are not kept for α/β gradients in the weight step.

On CUDA the forward runs under bf16 autocast with channels-last tensors; the finite-difference
Hessian-vector product of the second-order step runs in fp32 (ε perturbs the weights by 1e-2
in norm, below bf16 resolution).

With ``replicas`` (:mod:`controllers.oneshot.distributed`: one process of a ``torchrun`` launch,
fed its shard of each batch) every gradient is averaged over the processes before it is used,
weighted by the shard's counted targets, so all processes take the same steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from controllers.oneshot.batches import Batch
from controllers.oneshot.latency import latency_penalised
from controllers.oneshot.darts_options import DartsOptions
from controllers.oneshot.distributed import Replicas
from controllers.oneshot.unrolled import requires_grad, unrolled_arch_gradient

# GDAS: a non-finite loss means an overflowing Gumbel sample; draw again up to this often.
GUMBEL_RETRIES = 10


def to_channels_last(module: torch.nn.Module) -> None:
    """Channels-last layout for the module's 4-D parameters and buffers (``Module.to`` refuses
    a module that also holds tensors of other ranks, e.g. stacked 5-D conv weights)."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


@dataclass
class StepStats:
    """Loss and accuracy counts of one step, kept on the device until read."""

    loss: torch.Tensor
    correct: torch.Tensor
    count: torch.Tensor


class BilevelTrainer:
    """The weight and architecture updates of a differentiable search over ``supernet``."""

    def __init__(self, supernet: Any, options: DartsOptions, *, device: str | torch.device = "cpu",
                 ignore_index: int = -100, latency_lut: Mapping[str, float] | None = None,
                 mixed_precision: bool | None = None, replicas: Replicas | None = None) -> None:
        """``mixed_precision`` (bf16 autocast + channels-last) defaults to ``options.amp`` on CUDA
        and off elsewhere; True forces it on any device (CPU bf16: for tests and benchmarks).
        ``replicas``: the other processes of a data-parallel search (None: this one alone)."""
        self.options = options
        self.replicas = replicas
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.amp = bool(options.amp and cuda) if mixed_precision is None else bool(mixed_precision)
        self.channels_last = self.amp
        self.net = supernet.to(self.device)
        if self.channels_last:
            to_channels_last(self.net)
        self.arch = list(supernet.arch_parameters())
        if not self.arch:
            raise ValueError(f"darts: {type(supernet).__name__}.arch_parameters() is empty")
        arch_ids = {id(p) for p in self.arch}
        self.weights = [p for p in supernet.weight_parameters() if id(p) not in arch_ids]
        self.w_opt = torch.optim.SGD(self.weights, lr=options.w_lr, momentum=options.w_momentum,
                                     weight_decay=options.w_weight_decay, nesterov=options.w_nesterov)
        self.a_opt = torch.optim.Adam(self.arch, lr=options.arch_lr, betas=options.arch_betas,
                                      weight_decay=options.arch_weight_decay)
        # BatchNorm running statistics: restored after the virtual passes of the second order.
        self.state = [b for b in supernet.buffers() if b.is_floating_point()]
        self.ignore_index = int(ignore_index)
        self.lut = self._check_lut(supernet, latency_lut)

    def _check_lut(self, supernet: Any, lut: Mapping[str, float] | None) -> Mapping[str, float] | None:
        """The LUT when the supernet can use it; without a target a useless LUT is dropped."""
        target = self.options.latency_target_ms
        if target is not None and lut is None:
            raise ValueError("darts: latency_target_ms needs a latency LUT (none was given to search())")
        if lut is None:
            return None
        try:
            with torch.no_grad():
                supernet.expected_latency(lut)
        except (TypeError, KeyError) as exc:
            if target is not None:
                raise ValueError(f"darts: latency_target_ms needs the supernet's expected latency: "
                                 f"{type(exc).__name__}: {exc}") from None
            return None  # the LUT was only for logging E[LAT]
        return lut

    # -- schedule -----------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The current weight learning rate (ξ of the second-order step)."""
        return float(self.w_opt.param_groups[0]["lr"])

    def set_epoch(self, epoch: int) -> None:
        """Cosine weight learning rate and (GDAS) Gumbel temperature of ``epoch``."""
        for group in self.w_opt.param_groups:
            group["lr"] = self.options.w_lr_at(epoch)
        if self.options.method == "gdas":
            self.net.set_temperature(self.options.tau_at(epoch))

    # -- losses -------------------------------------------------------------------------------
    def _ce(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if logits.dim() == 4 and logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(logits, targets, ignore_index=self.ignore_index)

    def _stats(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> StepStats:
        with torch.no_grad():
            pred = logits.argmax(1)
            if pred.shape != targets.shape:  # segmentation logits at another resolution
                pred = F.interpolate(logits.float(), size=targets.shape[-2:], mode="bilinear",
                                     align_corners=False).argmax(1)
            valid = targets != self.ignore_index
            return StepStats(loss.detach().float(), ((pred == targets) & valid).sum(), valid.sum())

    def loss(self, batch: Batch, *, amp: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the supernet on ``batch`` (GDAS: resampled while not finite)."""
        use_amp = self.amp if amp is None else amp
        tries = GUMBEL_RETRIES if self.options.method == "gdas" else 1
        for _ in range(tries):
            with torch.autocast(self.device.type, dtype=torch.bfloat16) if use_amp else nullcontext():
                logits = self.net(batch.images)
            loss = self._ce(logits, batch.targets)
            if tries == 1 or self._all_finite(loss):
                return loss, logits
        raise FloatingPointError(f"darts: GDAS loss not finite after {tries} Gumbel samples")

    def _all_finite(self, loss: torch.Tensor) -> bool:
        finite = torch.isfinite(loss)
        return bool(finite) if self.replicas is None else self.replicas.all_true(finite)

    def _average(self, tensors: list[torch.Tensor | None], batch: Batch) -> None:
        """Average gradients over the processes, weighted by ``batch``'s counted targets."""
        if self.replicas is not None:
            self.replicas.average_(tensors, (batch.targets != self.ignore_index).sum())

    def expected_latency(self) -> torch.Tensor | None:
        """E[LAT] of the supernet under the LUT (differentiable in α), or None without one."""
        if self.lut is None:
            return None
        return self.net.expected_latency(self.lut)

    def arch_objective(self, ce: torch.Tensor) -> torch.Tensor:
        """The validation loss α minimises: cross-entropy, latency-penalised when a target is set."""
        target = self.options.latency_target_ms
        if target is None:
            return ce
        o = self.options
        return latency_penalised(ce, self.expected_latency(), target, form=o.latency_loss,
                                 weight=o.latency_weight, beta=o.latency_beta)

    # -- steps --------------------------------------------------------------------------------
    def weight_step(self, batch: Batch) -> StepStats:
        """SGD on w for one training batch (α/β frozen), gradient norm clipped."""
        with requires_grad(self.arch, False):
            loss, logits = self.loss(batch)
            self.w_opt.zero_grad(set_to_none=True)
            loss.backward()
        self._average([p.grad for p in self.weights], batch)
        if self.options.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.weights, self.options.grad_clip)
        self.w_opt.step()
        self.w_opt.zero_grad(set_to_none=True)  # free the gradients before the next forward
        return self._stats(loss, logits, batch.targets)

    def arch_step(self, batch_train: Batch, batch_val: Batch) -> StepStats:
        """Adam on α/β for one validation batch; second order also uses ``batch_train``.

        Returns the validation loss/accuracy counts (second order: measured at w')."""
        self.a_opt.zero_grad(set_to_none=True)
        if self.options.order == 1:
            with requires_grad(self.weights, False):
                ce, logits = self.loss(batch_val)
                self.arch_objective(ce).backward()
            self._average([a.grad for a in self.arch], batch_val)
        else:
            grads, ce, logits = self.second_order_gradient(batch_train, batch_val, self.lr)
            for a, g in zip(self.arch, grads, strict=True):
                a.grad = g
        self.a_opt.step()
        return self._stats(ce, logits, batch_val.targets)

    def search_step(self, batch_a: Batch, batch_b: Batch | None) -> tuple[StepStats | None, StepStats]:
        """One step of the search: the architecture step on ``batch_b`` (skipped when None, as in
        the warm-up epochs), then the weight step on ``batch_a`` (the other way round with
        ``step_order="weights_first"``); (val stats, train stats)."""
        if self.options.step_order == "weights_first":  # GDAS's code: w, then α at the new w
            train = self.weight_step(batch_a)
            return (self.arch_step(batch_a, batch_b) if batch_b is not None else None), train
        val = self.arch_step(batch_a, batch_b) if batch_b is not None else None
        return val, self.weight_step(batch_a)

    def second_order_gradient(self, batch_train: Batch, batch_val: Batch,
                              xi: float) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The unrolled α gradient with virtual learning rate ``xi``, the CE at w', its logits."""
        seen: dict[str, torch.Tensor] = {}

        def val_loss() -> torch.Tensor:
            ce, seen["logits"] = self.loss(batch_val)
            seen["ce"] = ce
            return self.arch_objective(ce)

        train_loss: Callable[[], torch.Tensor] = lambda: self.loss(batch_train)[0]  # noqa: E731
        buffers = {id(p): s["momentum_buffer"] for p, s in self.w_opt.state.items()
                   if s.get("momentum_buffer") is not None}
        grads, _ = unrolled_arch_gradient(
            train_loss, val_loss, self.weights, self.arch, xi=xi, momentum=self.options.w_momentum,
            weight_decay=self.options.w_weight_decay, buffers=buffers, state=self.state,
            hvp_loss=lambda: self.loss(batch_train, amp=False)[0],
            average_train=lambda ts: self._average(ts, batch_train), average_val=lambda ts: self._average(ts, batch_val))
        return grads, seen["ce"].detach(), seen["logits"].detach()

    @torch.no_grad()
    def evaluate(self, batch: Batch) -> StepStats:
        """Loss and accuracy on ``batch`` without any update (the val proxy during warm-up)."""
        loss, logits = self.loss(batch)
        return self._stats(loss, logits, batch.targets)

    # -- checkpoint ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"supernet": self.net.state_dict(), "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["supernet"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
