"""The evaluator contract: measure one architecture, return a dict of metrics.

An evaluator is a class with ``evaluate(arch, model, ctx) -> dict[str, float]`` or a plain
function with the same parameters (matched by name when they are called ``arch``, ``model``
and ``ctx``, positionally otherwise). Several evaluators run in a chain for each trial; each
sees the metrics of those before it in ``ctx.metrics``.

Class attributes declare what the run loop needs to know before any work:

* ``needs_model``: build the network (``model`` is ``None`` otherwise, e.g. table look-ups);
* ``provides``: metric names it returns (for listing and for validating objectives);
* ``report_only``: metrics that are stored and reported but never shown to a controller
  (the NAS-Bench-201 200-epoch test accuracy, for instance);
* ``default_objective``: the objective used when the user names none (``objective_for(task)``
  may refine it per task);
* ``needs_dataset``: the run loads its dataset (the task's default when none is given).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from automl.types import Arch, Task
from search_spaces.base import SearchSpace


class EvaluationError(RuntimeError):
    """An evaluator could not produce metrics; the trial is stored as failed with this text."""


class TrialPruned(Exception):
    """Raised from inside an evaluator when the pruner stopped the trial early."""


@dataclass
class EvalContext:
    """Everything an evaluator may use besides the architecture and the model."""

    space: SearchSpace
    task: Task
    trial_number: int = 0
    seed: int = 0
    device: str = "cpu"
    run_dir: Path | None = None
    dataset: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # Intermediate values (step, value) for pruners; returns True when the trial should stop.
    report: Callable[[int, float], bool] = lambda step, value: False
    writer: Any = None  # a TensorBoard SummaryWriter for this trial (see tensorboard()), or None
    tb_dir: Path | None = None  # where tensorboard() opens this trial's writer on first use
    parent: int | None = None  # the trial this architecture was derived from (Proposal.parent)
    inherit: str | None = None  # "parent" | "supernet" | None (Proposal.inherit)
    parent_arch: dict[str, Any] | None = None  # the parent trial's architecture (for space.transfer)
    # --time-limit: the wall-clock time (time.time()) by which training must end, or None
    deadline: float | None = None
    # the epochs a training evaluator runs instead of its own budget (a reference trained for the
    # epochs the time limit left the best trial), or None
    epochs: int | None = None

    def tensorboard(self) -> Any:
        """This trial's TensorBoard writer, opened in ``tb_dir`` on first use (None without one)."""
        if self.writer is None and self.tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.tb_dir))
        return self.writer

    @property
    def parent_dir(self) -> Path | None:
        """The parent trial's folder (its saved weights), when there is a parent and a run dir."""
        if self.run_dir is None or self.parent is None:
            return None
        return Path(self.run_dir) / "trials" / f"{self.parent:05d}"

    @property
    def trial_dir(self) -> Path | None:
        """Per-trial folder for artefacts (weights, curves); created on first use."""
        if self.run_dir is None:
            return None
        path = Path(self.run_dir) / "trials" / f"{self.trial_number:05d}"
        path.mkdir(parents=True, exist_ok=True)
        return path


class Evaluator:
    """Base class of evaluators. Options arrive as keyword arguments from the config."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True
    provides: ClassVar[tuple[str, ...]] = ()
    report_only: ClassVar[tuple[str, ...]] = ()
    default_objective: ClassVar[str | None] = None  # e.g. "val_acc:max", used when none is given
    needs_dataset: ClassVar[bool] = False
    # options that name a file: a run writes them into config.yaml as absolute paths
    path_options: ClassVar[tuple[str, ...]] = ()
    # True: the evaluator writes ``ctx.trial_dir / "weights.pt"`` for every trial and the run
    # removes the file of each trial that is not (or no longer) on the Pareto front.
    weights_on_front_only: bool = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"evaluator {self.name!r} takes no option {sorted(options)!r}")

    def setup(self, space: SearchSpace, task: Task) -> None:
        """Called once before the first trial: check compatibility, load tables."""

    def objective_for(self, task: Task) -> str | None:
        """The objective to optimise when the user names none."""
        return self.default_objective

    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        raise EvaluationError(f"evaluator {self.name!r} does not implement evaluate()")


class FunctionEvaluator(Evaluator):
    """Wraps a plain function ``f(arch, model, ctx)`` (any order if named so) as an evaluator."""

    def __init__(self, fn: Callable[..., Mapping[str, float]], needs_model: bool = True) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "function")  # type: ignore[misc]
        self.description = (inspect.getdoc(fn) or "").splitlines()[0] if inspect.getdoc(fn) else ""  # type: ignore[misc]
        self.needs_model = bool(getattr(fn, "needs_model", needs_model))  # type: ignore[misc]
        self.provides = tuple(getattr(fn, "provides", ()))  # type: ignore[misc]
        self.report_only = tuple(getattr(fn, "report_only", ()))  # type: ignore[misc]
        params = list(inspect.signature(fn).parameters)
        self._by_name = {"arch", "model", "ctx"} <= set(params)

    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        if self._by_name:
            return self.fn(arch=arch, model=model, ctx=ctx)
        return self.fn(arch, model, ctx)
