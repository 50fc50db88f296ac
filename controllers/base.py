"""The controller contract: propose architectures (``ask``), learn from results (``tell``).

One contract for every controller family (black-box, reinforcement learning, Bayesian,
weight-sharing):

1. ``bind(space, task, objectives, seed)`` once, before anything is written: check the space
   and the task, build what must exist before a run starts (a supernet), raise ``ValueError``
   with one line on bad options;
2. ``prepare(ctx)`` once, optionally: long work before the first ``ask`` (a supernet search,
   checkpointed in ``ctx.checkpoint_dir`` so that a resumed run continues it);
3. ``ask() -> Proposal | None``: the next architecture (``None`` = finished). The run loop may
   ask up to ``ctx.max_in_flight`` times before it tells anything (pending trials), and hands
   each proposal back to ``tell`` exactly once, in the order results arrive;
4. ``tell(proposal, result)``: the result of one proposal (report-only metrics removed).

The run loop owns storage, evaluation and budget. Resume works by *replay*: the loop rebuilds
the controller with the same seed and options and feeds it the stored history through the same
ask/tell sequence (results in their stored order), so a deterministic controller ends in the
state it had. State replay cannot rebuild (a trained policy network) goes through
``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from automl.types import Arch, Objective, Proposal, Result, Task
from search_spaces.base import SearchSpace


@dataclass
class PrepareContext:
    """What ``Controller.prepare`` may use; built by the run loop.

    ``dataset`` is the run's dataset object (``tensors("train")`` gives the training split;
    the validation split stays with the evaluators). ``latency_lut`` is the latency look-up
    table an evaluator of the run offers (its ``latency_table`` attribute), if any.
    ``draw(arch, path, title)`` writes a picture of an architecture (None where not possible).
    ``call(fn, *args)``, when given, runs ``fn(*args)`` with the resources of one trial elsewhere
    (a Ray task under the Ray executor; ``fn`` and its arguments must pickle); None = run here.
    ``scorings`` is the run's store (``record_scorings`` / ``scorings``: cheap measurements made
    with supernet weights, kept beside the trials), or None without a store.
    ``call_group(fn, *args, log=None)``, when given, runs ``fn(*args)`` on ``group_size`` processes
    joined in one ``torch.distributed`` process group (Ray Train under ``--executor ray --workers
    N``) and returns rank 0's value (with ``log``: ``fn(*args, log=...)``, rank 0's lines reaching
    ``log`` as they come); ``dataset_ref`` is the dataset by reference for such processes.
    """

    dataset: Any = None
    device: str = "cpu"
    checkpoint_dir: Path | None = None
    run_dir: Path | None = None
    writer: Any = None
    log: Callable[[str], Any] | None = None
    latency_lut: Mapping[str, float] | None = None
    max_in_flight: int = 1
    draw: Callable[[Arch, Path, str], Any] | None = None
    call: Callable[..., Any] | None = None
    scorings: Any = None
    call_group: Callable[..., Any] | None = None
    group_size: int = 1
    dataset_ref: Any = None


class Controller:
    """Base class of controllers (see the module docstring for the contract).

    ``requires`` names the space capabilities the controller needs (see
    :data:`search_spaces.base.CAPABILITIES`); ``multi_objective`` says whether it handles more
    than one objective itself.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"decisions"})
    multi_objective: ClassVar[bool] = False
    prepare_label: ClassVar[str] = "set-up"  # what prepare() does, for the run's time breakdown

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"controller {self.name!r} takes no option {sorted(options)!r}")
        self.space: SearchSpace | None = None
        self.task: Task | None = None
        self.objectives: tuple[Objective, ...] = ()
        self.seed = 0
        self.rng = np.random.default_rng(0)

    def bind(self, space: SearchSpace, task: Task, objectives: Sequence[Objective], seed: int) -> None:
        """Attach to a space, task and objectives; called once before anything is written."""
        self.space = space
        self.task = task
        self.objectives = tuple(objectives)
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)

    def setup(self, space: SearchSpace, objectives: Sequence[Objective], seed: int) -> None:
        """``bind`` with the space's default task (for scripts and tests)."""
        self.bind(space, space.default_task if space is not None else Task(), objectives, seed)

    def prepare(self, ctx: PrepareContext) -> None:
        """Optional work before the first ``ask`` (none by default)."""

    def ask(self) -> Proposal | None:
        """The next proposal, or ``None`` when the controller is done."""
        raise TypeError(f"controller {self.name!r} does not implement ask()")

    def tell(self, proposal: Proposal, result: Result) -> None:
        """Learn the result of a proposal returned by ``ask`` (or of a foreign one on replay)."""

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


def initial_names(initial: str | Sequence[str] | None, controller: str) -> tuple[str, ...]:
    """The ``initial`` option of a controller (``"unet,attention-unet"`` or a list) as preset names."""
    if initial is None:
        return ()
    names = initial.split(",") if isinstance(initial, str) else list(initial)
    out = tuple(str(n).strip() for n in names if str(n).strip())
    if not out or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{controller}: initial must be preset names, e.g. 'unet,attention-unet', got {initial!r}")
    return out


def initial_proposals(space: SearchSpace, names: Sequence[str], controller: str) -> list[Proposal]:
    """The space's presets ``names`` as the first proposals of a search (``note="preset NAME"``);
    one-line ``ValueError`` naming the known presets for an unknown name."""
    out = []
    for name in names:
        try:
            out.append(Proposal(space.preset(name), note=f"preset {name}"))
        except KeyError as e:
            raise ValueError(f"{controller}: initial: {e.args[0]}") from None
    return out


def as_proposal(value: Proposal | Arch | None) -> Proposal | None:
    """A controller's ``ask`` answer as a :class:`Proposal` (a bare architecture is wrapped)."""
    if value is None or isinstance(value, Proposal):
        return value
    if isinstance(value, Mapping):
        return Proposal(dict(value))
    raise TypeError(f"ask() returned {type(value).__name__}; expected a Proposal, an architecture mapping or None")
