"""The single-path supernet of the ``cr-resnet`` space (CR-NAS weight sharing).

Each stage holds the most blocks it has in any valid allocation; an allocation runs the first
tau_s blocks of stage s, so a stage's block i is the same module in every allocation. A block's
dilation is set on its shared 3x3 convs (``dilation`` / ``padding``) before the forward: the
same weights at another rate. Module names are those of the standalone network
(``stem``, ``stages.<s>.<i>``, ``head``), so :meth:`CRSupernet.subnet_state` is a key filter.
"""

from __future__ import annotations

from typing import Any

import torch

from automl.types import Arch, Task
from search_spaces.cr_resnet.allocations import allocations
from search_spaces.cr_resnet.network import CRResNet
from search_spaces.supernet.single_path import SinglePathSupernet


class CRSupernet(SinglePathSupernet, CRResNet):
    """Every allocation and dilation of ``space`` in one network; the baseline runs until
    :meth:`activate` chooses another."""

    def __init__(self, space: Any, task: Task) -> None:
        """``space``: the :class:`~search_spaces.cr_resnet.space.CRResNetSpace` (not imported: it imports this)."""
        valid = allocations(space.blocks)
        depths = [max(alloc[s] for alloc in valid) for s in range(4)]
        super().__init__(depths, [1] * sum(depths), **space.network_options(task))
        self.space = space
        self.task = task
        self.activate(space.reallocation().baseline)

    def activate(self, arch: Arch) -> None:
        """Run the first tau_s blocks of each stage s, block k (in stage order) at ``arch``'s d_k."""
        alloc, dilations = self.space.decode(arch)
        self.active = list(alloc)
        self.set_dilations(dilations)

    def subnet_state(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The supernet's state without the blocks beyond ``arch``'s allocation (see the contract)."""
        alloc, _ = self.space.decode(arch)

        def kept(key: str) -> bool:
            parts = key.split(".")
            return parts[0] != "stages" or int(parts[2]) < alloc[int(parts[1])]

        return {key: value for key, value in self.state_dict().items() if kept(key)}
