"""Weight-sharing (one-shot) controllers on the common contract.

A one-shot controller builds ``space.supernet(task, **supernet_options())`` in ``bind`` (so bad
supernet options fail before a run writes anything), trains it in ``prepare`` (checkpointed
per epoch in ``ctx.checkpoint_dir``; a resumed run continues from the last epoch), and then
proposes what it derived, best first, through ``ask`` like any other controller. The run's
evaluators retrain and measure those proposals, so they are ordinary trials: stored, on the
front, exportable.

Subclasses implement :meth:`OneShotController.search` (the supernet optimisation); the
differentiable family (DARTS, PC-DARTS, GDAS) is :mod:`controllers.oneshot.darts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from automl.batching import Concatenated, Stats
from automl.types import Arch, Objective, Proposal, Task
from controllers.base import Controller, PrepareContext
from search_spaces.base import SearchSpace


@dataclass
class SearchData:
    """In-memory training data handed to a one-shot search.

    ``images``/``targets`` are the run's training split, or its training and validation splits
    read as one (:class:`~automl.batching.Concatenated`, no copy; ``source`` names the parts); the
    controller splits them into its own halves (weights / architecture).
    ``ignore_index`` applies to segmentation targets. A dataset's images stay ``uint8`` and its
    targets compact; each batch is normalised with ``stats`` on its way to the device
    (:func:`automl.batching.to_batch`). Without ``stats`` the images are float, already normalised.
    """

    images: Any  # torch.Tensor [N, C, H, W], uint8 (with stats) or float
    targets: Any  # torch.Tensor [N] (classification) or [N, H, W] (segmentation), any integer type
    ignore_index: int = -100
    stats: Stats | None = None
    source: str = "train"

    @classmethod
    def from_dataset(cls, dataset: Any, parts: tuple[str, ...] = ("train",)) -> SearchData:
        """``parts`` of a run's dataset (``evaluators.data.Dataset``) as one set, as stored."""
        ignore = dataset.ignore_index if getattr(dataset, "ignore_index", None) is not None else -100
        if len(parts) == 1:
            images, targets = dataset.images[parts[0]], dataset.targets[parts[0]]
        else:
            images = Concatenated([dataset.images[p] for p in parts])
            targets = Concatenated([dataset.targets[p] for p in parts])
        return cls(images=images, targets=targets, ignore_index=ignore, stats=(dataset.mean, dataset.std),
                   source="+".join(parts))


class OneShotController(Controller):
    """Search a supernet once in ``prepare``, then propose the derived architectures."""

    requires: ClassVar[frozenset[str]] = frozenset({"supernet"})
    multi_objective: ClassVar[bool] = False
    needs_dataset: ClassVar[bool] = True
    prepare_label: ClassVar[str] = "supernet search"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.supernet: Any = None
        self.derived: list[Arch] = []
        self._asked = 0

    def supernet_options(self) -> dict[str, Any]:
        """Keyword options for ``space.supernet`` (relaxation, partial channels, sizes)."""
        return {}

    def bind(self, space: SearchSpace, task: Task, objectives: tuple[Objective, ...] | list[Objective], seed: int) -> None:
        """Build the supernet; its initial weights and α/β follow ``seed``. Without a space
        (``setup(None, ...)``: a caller that passes its own supernet to :meth:`search`) none is built."""
        super().bind(space, task, objectives, seed)
        if space is None:
            return
        try:
            # The CPU generator is restored after (CUDA generators are left reseeded: nothing
            # before the search draws from them).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.supernet = space.supernet(task, **self.supernet_options())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"space {space.name!r} supernet: {exc}") from None

    def prepare(self, ctx: PrepareContext) -> None:
        if ctx.dataset is None:
            raise ValueError(f"controller {self.name!r} needs a dataset to search the supernet on")
        self.derived = list(self.search(
            self.supernet,
            SearchData.from_dataset(ctx.dataset, self.search_parts(ctx.dataset)),
            device=ctx.device,
            checkpoint_dir=ctx.checkpoint_dir,
            writer=ctx.writer,
            log=ctx.log,
            latency_lut=ctx.latency_lut,
        ))
        self._asked = 0
        self.draw_derived(ctx)

    def search_parts(self, dataset: Any) -> tuple[str, ...]:
        """The dataset parts the supernet is searched on (the validation part stays the evaluators')."""
        return ("train",)

    def draw_derived(self, ctx: PrepareContext) -> None:
        """A picture of each derived architecture in the run directory (where the space draws)."""
        if ctx.draw is not None and ctx.run_dir is not None:
            for i, arch in enumerate(self.derived):
                path = ctx.draw(arch, ctx.run_dir / f"derived-{i}.png", f"derived architecture {i}")
                if path is not None and ctx.log is not None:
                    ctx.log(f"drawing of derived architecture {i}: {path}")

    def ask(self) -> Proposal | None:
        if self._asked >= len(self.derived):
            return None
        self._asked += 1
        return Proposal(self.derived[self._asked - 1], note=f"derived {self._asked - 1}")

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
        """Optimise the supernet; return the derived architecture(s), best first.

        With ``checkpoint_dir`` the supernet state is saved every epoch and a later call with
        the same directory continues from the last checkpoint.
        """
        raise TypeError(f"controller {self.name!r} does not implement search()")
