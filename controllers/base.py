"""The controller contract: propose architectures (``ask``), learn from results (``tell``).

The run loop owns storage, evaluation and budget; a controller only sees the space, the
declared objectives and, for each architecture it proposed, a :class:`Result`. Report-only
metrics never reach it.

Resume works by *replay*: the run loop rebuilds the controller with the same seed and options
and feeds it the stored history through the same ``ask``/``tell`` sequence, so a deterministic
controller ends in exactly the state it had. Controllers with state that replay cannot rebuild
(e.g. a trained RNN) may additionally implement ``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from search_spaces.base import Arch, SearchSpace

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, e.g. ``Objective("valid_acc", "max")``."""

    metric: str
    direction: Direction = "max"

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"

    def score(self, value: float) -> float:
        """The value oriented so that larger is better."""
        return value if self.direction == "max" else -value


@dataclass(frozen=True)
class Result:
    """What a controller learns about one architecture.

    ``values`` holds one number per objective in declaration order (``None`` when the trial
    failed). ``violation`` is the total amount by which constraints are exceeded (0 = feasible).
    """

    values: tuple[float, ...] | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    violation: float = 0.0
    failed: bool = False

    @property
    def feasible(self) -> bool:
        return not self.failed and self.violation <= 0.0


class Controller:
    """Base class of black-box controllers.

    ``requires`` names the space capabilities the controller needs (see
    :data:`search_spaces.base.CAPABILITIES`); ``multi_objective`` says whether it handles more
    than one objective itself (single-objective controllers need a scalarised objective).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"decisions"})
    multi_objective: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"controller {self.name!r} takes no option {sorted(options)!r}")
        self.space: SearchSpace | None = None
        self.objectives: tuple[Objective, ...] = ()
        self.rng = np.random.default_rng(0)

    def setup(self, space: SearchSpace, objectives: Sequence[Objective], seed: int) -> None:
        """Bind to a space and objectives; called once before the first ``ask``."""
        self.space = space
        self.objectives = tuple(objectives)
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)

    def ask(self) -> Arch | None:
        """The next architecture to evaluate, or ``None`` when the controller is done."""
        raise TypeError(f"controller {self.name!r} does not implement ask()")

    def tell(self, arch: Arch, result: Result) -> None:
        """Learn the result of an architecture returned by ``ask``."""

    def state_dict(self) -> dict[str, Any]:
        """Extra state for resume beyond replay (none by default)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    # -- helpers shared by controllers ------------------------------------------------------
    def fitness(self, result: Result) -> tuple[float, ...]:
        """Objective values oriented larger-is-better; failed results rank below everything."""
        if result.values is None:
            return tuple(-math.inf for _ in self.objectives)
        return tuple(o.score(v) for o, v in zip(self.objectives, result.values, strict=True))


@dataclass
class SearchData:
    """In-memory training data handed to a weight-sharing controller.

    ``images``/``targets`` are the run's training split (the validation split stays with the
    evaluators); the controller splits them into its own two disjoint halves (weights /
    architecture). ``ignore_index`` applies to segmentation targets.
    """

    images: Any  # torch.Tensor [N, C, H, W], float
    targets: Any  # torch.Tensor [N] (classification) or [N, H, W] (segmentation), long
    ignore_index: int = -100


class WeightSharingController(Controller):
    """Controllers that search a supernet instead of proposing architectures one by one.

    The run loop calls :meth:`search` once with ``space.supernet(task, **supernet_options)``;
    the architectures it returns are then evaluated and stored like any other trials.
    ``ask``/``tell`` are not used for these controllers.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"supernet"})
    multi_objective: ClassVar[bool] = False

    def supernet_options(self) -> dict[str, Any]:
        """Keyword options for ``space.supernet`` (relaxation, partial channels, sizes)."""
        return {}

    def search(
        self,
        supernet: Any,
        data: SearchData,
        *,
        device: str = "cpu",
        checkpoint_dir: Any = None,
        writer: Any = None,
        log: Any = None,
        latency_lut: Mapping[str, float] | None = None,
    ) -> list[Arch]:
        """Optimise the supernet; return the derived architecture(s), best first.

        With ``checkpoint_dir`` the supernet state is saved every epoch and a later call with
        the same directory continues from the last checkpoint.
        """
        raise TypeError(f"controller {self.name!r} does not implement search()")
