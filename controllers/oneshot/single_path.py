"""Training and scoring a single-path supernet (CR-NAS; SPOS-style uniform path sampling).

:class:`SinglePathTrainer` takes one SGD step per batch on the sub-network a sampler draws for
that step (``supernet.activate(arch)``; every sub-network shares the supernet's weights), with
the learning rate following a cosine per epoch. :meth:`SinglePathTrainer.score` measures one
sub-network with the inherited weights: the task metric (``acc`` or ``miou``, from
:mod:`automl.metrics`) and the mean loss over given batches.

Scoring uses each batch's own BatchNorm statistics (train-mode BatchNorm; the running buffers
are restored afterwards): the running statistics of a single-path supernet average over every
path it trained, and recalibrating them per candidate (SPOS) costs extra passes per candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from automl.metrics import confusion, summary
from automl.types import Arch, Decision
from controllers.oneshot.batches import Batch


def uniform_sampler(decisions: Sequence[Decision], fixed: Mapping[str, Any],
                    rng: np.random.Generator) -> Callable[[], dict[str, Any]]:
    """Draws ``fixed`` with each of ``decisions`` replaced by a uniformly drawn choice."""

    def sample() -> dict[str, Any]:
        arch = dict(fixed)
        for d in decisions:
            arch[d.name] = d.choices[int(rng.integers(len(d.choices)))]
        return arch

    return sample


@dataclass(frozen=True)
class TrainOptions:
    """SGD with momentum, cosine learning rate from ``lr`` to ``lr_min`` over ``epochs``."""

    epochs: int
    lr: float
    lr_min: float
    momentum: float
    weight_decay: float
    grad_clip: float

    def lr_at(self, epoch: int) -> float:
        if self.epochs <= 1:
            return self.lr
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs))


class SinglePathTrainer:
    """SGD on a single-path supernet, one sampled sub-network per step."""

    def __init__(self, supernet: Any, options: TrainOptions, *, kind: str, num_classes: int,
                 device: str | torch.device = "cpu", ignore_index: int = -100) -> None:
        self.net = supernet.to(torch.device(device))
        self.options = options
        self.kind, self.num_classes = kind, int(num_classes)
        self.ignore_index = int(ignore_index)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=options.lr, momentum=options.momentum,
                                   weight_decay=options.weight_decay)

    def _logits(self, images: torch.Tensor, size: torch.Size) -> torch.Tensor:
        logits = self.net(images).float()
        if logits.dim() == 4 and logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def epoch(self, epoch: int, batches: Iterable[Batch], sample: Callable[[], Arch]) -> dict[str, float]:
        """One epoch over ``batches``, each step on a freshly sampled sub-network."""
        for group in self.opt.param_groups:
            group["lr"] = self.options.lr_at(epoch)
        self.net.train()
        total, count = 0.0, 0
        for batch in batches:
            self.net.activate(sample())
            loss = F.cross_entropy(self._logits(batch.images, batch.targets.shape[-2:]), batch.targets,
                                   ignore_index=self.ignore_index)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"cr: the supernet loss diverged in epoch {epoch + 1}; lower lr")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.options.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.options.grad_clip)
            self.opt.step()
            total, count = total + float(loss.detach()), count + 1
        return {"loss": total / max(count, 1), "lr": self.options.lr_at(epoch)}

    @torch.no_grad()
    def score(self, arch: Arch, batches: Sequence[Batch]) -> dict[str, float]:
        """The task metric (``acc`` or ``miou``) and mean ``loss`` of ``arch`` over ``batches``."""
        self.net.activate(arch)
        saved = [b.clone() for b in self.net.buffers()]
        self.net.train()  # batch statistics (see the module docstring)
        counts = torch.zeros(self.num_classes**2, dtype=torch.int64, device=next(self.net.parameters()).device)
        loss_sum, n = 0.0, 0
        try:
            for batch in batches:
                logits = self._logits(batch.images, batch.targets.shape[-2:])
                valid = int((batch.targets != self.ignore_index).sum())
                loss_sum += float(F.cross_entropy(logits, batch.targets, ignore_index=self.ignore_index,
                                                  reduction="sum"))
                n += valid
                counts += confusion(logits, batch.targets, self.num_classes, self.ignore_index)
        finally:
            for b, s in zip(self.net.buffers(), saved, strict=True):
                b.copy_(s)
        metrics = summary(counts, self.num_classes, self.kind)
        metrics["loss"] = loss_sum / max(n, 1)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"supernet": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["supernet"])
        self.opt.load_state_dict(state["opt"])
