"""The single-path weight-sharing contract (computation reallocation, CR-NAS).

A space that offers ``reallocation`` builds a :class:`SinglePathSupernet` with
``space.single_path_supernet(task, **options)``: one network holding every sub-network of the
space, of which exactly one runs per forward — the one chosen by :meth:`activate` (no
architecture parameters, no mixing). A stage's block *i* is the same module in every
allocation, so all sub-networks share weights; the dilation of a 3x3 convolution is a forward
setting of the same weights.

:meth:`SearchSpace.reallocation` names the two levels CR-NAS searches (a :class:`Reallocation`):
the decision that allocates blocks to stages, and the per-block dilation decisions in block
order. Every architecture of the space is ``{allocation: ..., dilation_i: ...}`` over these
decisions, and :meth:`SinglePathSupernet.subnet_state` hands the shared weights of one of them
to the standalone network ``space.build(arch, task)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from automl.types import Arch, Decision, Task


@dataclass(frozen=True)
class Reallocation:
    """The two levels of a reallocation space.

    ``allocation``: the stage-allocation decision (its choices are every valid allocation);
    ``dilations``: one decision per block, in block order (block 0 is the first block of the
    first stage); ``baseline``: the space's reference architecture (e.g. ResNet-50's [3, 4, 6, 3]
    with every dilation 1), also the value of each level while the other is searched.
    """

    allocation: Decision
    dilations: tuple[Decision, ...]
    baseline: dict[str, Any]


class SinglePathSupernet(nn.Module):
    """Base class of single-path supernets (see the module docstring)."""

    space: Any
    task: Task

    def activate(self, arch: Arch) -> None:
        """Run the sub-network of ``arch`` (an architecture of ``self.space``) from now on."""
        raise TypeError(f"{type(self).__name__} must implement activate()")

    def subnet_state(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The shared weights of ``arch`` as a state dict that ``space.build(arch, task)`` loads
        with ``load_state_dict(strict=True)``."""
        raise TypeError(f"{type(self).__name__} must implement subnet_state()")
