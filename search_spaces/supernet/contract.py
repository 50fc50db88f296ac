"""The weight-sharing contract: what ``SearchSpace.supernet(task, **options)`` returns.

A supernet is an ``nn.Module`` whose forward mixes every candidate of the space, weighted by
architecture parameters (DARTS α for cell edges, Auto-DeepLab β for the network level). A
differentiable controller optimises ``weight_parameters()`` on one half of the data and
``arch_parameters()`` on the other, then asks the supernet to ``derive()`` a discrete
architecture of the space, which is trained and measured like any other trial.

Relaxation options every supernet accepts (keyword arguments of ``space.supernet``):

* ``sampling="softmax"`` (DARTS: every op runs, weighted by softmax α) or ``"gumbel"`` (GDAS:
  one op per edge runs, hard Gumbel-softmax with the straight-through estimator; temperature
  set by :meth:`Supernet.set_temperature`);
* ``partial_channels=K`` (PC-DARTS: 1/K of the channels go through the mixed op; K=1 is DARTS)
  and ``edge_norm=True`` (PC-DARTS edge normalisation β over a node's inputs).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from automl.types import Arch, Task
from search_spaces.base import SearchSpace


class Supernet(nn.Module):
    """Base class of weight-sharing supernets (see the module docstring)."""

    space: SearchSpace
    task: Task

    def arch_parameters(self) -> list[nn.Parameter]:
        """α / β tensors, optimised on the validation half."""
        raise TypeError(f"{type(self).__name__} must implement arch_parameters()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every other parameter, optimised on the training half."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def derive(self) -> Arch:
        """The discrete architecture the current α/β encode (an arch of ``self.space``)."""
        raise TypeError(f"{type(self).__name__} must implement derive()")

    def candidates(self, k: int = 1) -> list[Arch]:
        """The ``k`` best distinct discrete architectures by α/β score (default: ``[derive()]``)."""
        return [self.derive()][:k]

    def decoded_skips(self) -> int:
        """Skip connections in the (normal) cell that decoding the current α gives, before any
        ``max_skips`` limit: what DARTS+ early stopping counts (``darts`` ``stop_at_skips``)."""
        raise TypeError(f"{type(self).__name__} decodes no cell of skip connections to count")

    def arch_distributions(self) -> Mapping[str, torch.Tensor]:
        """Named probability tables for logging and pictures, e.g. ``{"normal": [14, 8]}``."""
        return {}

    def set_temperature(self, tau: float) -> None:
        """Gumbel-softmax temperature (GDAS); ignored by softmax relaxations."""

    def expected_latency(self, lut: Mapping[str, float]) -> torch.Tensor:
        """Differentiable Σ p(op) · LUT[op] over the supernet (ProxylessNAS); spaces with a LUT."""
        raise TypeError(f"{type(self).__name__} has no latency model")
