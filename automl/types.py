"""The shared types every package speaks: architectures, tasks, decisions, objectives, results
and proposals.

This module imports nothing of the project (and no torch), so spaces, controllers and
evaluators may all depend on it without an arrow pointing back at the app.

* ``Arch``: a JSON-serialisable mapping; its identity is :func:`arch_key` (sorted compact JSON),
  used by the trial store, the duplicate cache and the controllers alike.
* :class:`Task`: what a built network maps (input shape, output contract).
* :class:`Decision`: one named categorical choice of a space.
* :class:`Objective`: a metric and a direction; :meth:`Objective.score` orients it so that
  larger is better.
* :class:`Result`: what a controller learns about one evaluated architecture.
* :class:`Proposal`: what a controller's ``ask`` returns: the architecture plus, optionally,
  the trial it was derived from and which trained weights the new trial may start from.
* :class:`Scoring`: a measurement made with a supernet's weights, stored beside the trials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Arch = Mapping[str, Any]
Choice = str | int | float | bool
Direction = Literal["max", "min"]
Inherit = Literal["parent", "supernet"]
INHERIT: tuple[str, ...] = ("parent", "supernet")


def arch_key(arch: Arch) -> str:
    """Canonical text of an architecture: sorted, compact JSON."""
    return json.dumps(arch, sort_keys=True, separators=(",", ":"))


def arch_from_key(key: str) -> dict[str, Any]:
    return json.loads(key)


@dataclass(frozen=True)
class Decision:
    """One named categorical choice of a space.

    ``anchor = (i, j)`` marks a yes/no choice ``choices = (no, yes)`` of an *anchor set*: whether
    layer ``i`` takes the output of an earlier layer ``j < i`` as an input (Zoph & Le's skip
    connections). Controllers that know anchor sets (``rl``) sample them with attention between
    the layers' states; every other controller sees an ordinary two-way choice.
    """

    name: str
    choices: tuple[Choice, ...]
    anchor: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ValueError(f"decision {self.name!r} has no choices")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"decision {self.name!r} has repeated choices: {self.choices}")
        if self.anchor is not None and (len(self.choices) != 2 or not 0 <= self.anchor[1] < self.anchor[0]):
            raise ValueError(f"decision {self.name!r}: an anchor (i, j) needs j < i and two choices (no, yes)")


@dataclass(frozen=True)
class Task:
    """What the built network maps: input shape and output contract.

    ``kind`` is ``classification`` (logits ``[N, num_classes]``), ``segmentation``
    (logits ``[N, num_classes, H, W]``) or ``video`` (input ``[N, C, T, H, W]``).
    """

    kind: Literal["classification", "segmentation", "video"] = "classification"
    in_channels: int = 3
    input_size: tuple[int, ...] = (32, 32)
    num_classes: int = 10
    extra: Mapping[str, Any] = field(default_factory=dict)

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.in_channels, *self.input_size)


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
    failed or was pruned). ``violation`` is the total amount by which constraints are exceeded
    (0 = feasible). ``trial`` is the number of the stored trial the result comes from (a
    proposal may name it as its ``parent``); ``error`` says why a trial failed.
    """

    values: tuple[float, ...] | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    violation: float = 0.0
    failed: bool = False
    trial: int | None = None
    error: str = ""

    @property
    def feasible(self) -> bool:
        return not self.failed and self.violation <= 0.0


@dataclass(eq=False)
class Proposal:
    """An architecture a controller wants evaluated, and where it came from.

    * ``parent``: the number of the stored trial this architecture was derived from (a
      mutation's parent, a morphism's source), or None;
    * ``inherit``: which trained weights the new trial may start from: ``"parent"`` (the
      parent trial's saved weights, through the space's weight transfer) or ``"supernet"``
      (the weight-sharing supernet the controller trained in ``prepare``); None = from scratch;
    * ``note``: a few words for logs and the store (e.g. ``"derived 0"``);
    * ``meta``: the controller's own bookkeeping (e.g. a sampler's trial number); never stored.

    The run loop hands the very same object back to ``tell``, so a controller may keep
    per-proposal state by identity or in ``meta``. Equality is identity.
    """

    arch: Arch
    parent: int | None = None
    inherit: Inherit | None = None
    note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.arch, Mapping):
            raise TypeError(f"Proposal.arch must be a mapping, got {type(self.arch).__name__}")
        if self.inherit is not None and self.inherit not in INHERIT:
            raise ValueError(f"Proposal.inherit must be one of {', '.join(INHERIT)} or None, got {self.inherit!r}")
        if self.inherit == "parent" and self.parent is None:
            raise ValueError("Proposal.inherit='parent' needs a parent trial number")
        if self.parent is not None and (isinstance(self.parent, bool) or not isinstance(self.parent, int)):
            raise TypeError(f"Proposal.parent must be a trial number, got {self.parent!r}")

    def describe(self) -> dict[str, Any]:
        """The stored, JSON-able part (everything but ``meta``)."""
        return {"parent": self.parent, "inherit": self.inherit, "note": self.note}


@dataclass(frozen=True)
class Scoring:
    """A cheap measurement of an architecture with weights inherited from a supernet, made by a
    controller in ``prepare`` (CR-NAS scores every stage allocation); the store keeps it beside
    the trials (``TrialStore.record_scorings``). ``score`` is larger-is-better."""

    arch: Arch
    metrics: Mapping[str, float]
    score: float
    note: str = ""
    arch_str: str = ""
    duration: float = 0.0
