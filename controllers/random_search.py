"""Random search: uniform samples from the space (the baseline every NAS paper must beat)."""

from __future__ import annotations

from typing import ClassVar

from controllers.base import Controller
from automl.types import Proposal


class RandomSearch(Controller):
    """Draws architectures uniformly with ``space.sample``; ignores results."""

    name: ClassVar[str] = "random"
    description: ClassVar[str] = "uniform random sampling from the space"
    requires: ClassVar[frozenset[str]] = frozenset()
    multi_objective: ClassVar[bool] = True

    def ask(self) -> Proposal | None:
        assert self.space is not None, "bind() first"
        return Proposal(self.space.sample(self.rng))
