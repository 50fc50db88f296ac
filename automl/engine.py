"""The one loop: ask -> (duplicate? serve it) -> claim in the store -> submit -> record -> tell.

An executor drives an :class:`Engine` through two calls: :meth:`Engine.next` gives the next
:class:`~automl.trial.TrialSpec` to run (or :data:`WAIT` while the in-flight limit is reached or
another process holds the architecture, or ``None`` when the search is over), and
:meth:`Engine.finish` records a :class:`~automl.trial.TrialOutcome` and tells the controller.
The local executor calls them in a plain loop; the Ray executor from a Tune ``Searcher``.

* Duplicates: a proposal whose architecture was already evaluated is answered from the store
  at once and costs no budget; one whose architecture is running waits for that trial.
* Budget: distinct evaluated architectures (running ones count), failed and pruned included.
  With a deadline (``--time-limit``) no trial starts after it, once one has started.
* Replay (resume): :meth:`Engine.replay` feeds the stored results in the order they were told
  through the same ask pattern (up to ``max_in_flight`` asks ahead), so a deterministic
  controller ends in the state it had; proposals asked but never told (trials a killed process
  left running) are the first to run when the search continues.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from automl.objectives import Constraint, total_violation
from automl.store import Heartbeat, TrialRecord, TrialStore
from automl.trial import TrialOutcome, TrialSpec
from automl.types import Objective, Proposal, arch_key
from controllers.base import Controller, as_proposal
from search_spaces.base import SearchSpace

WAIT = "wait"  # Engine.next: nothing to run now, ask again after a trial finishes


@dataclass
class _Running:
    spec: TrialSpec
    trial: optuna.Trial
    proposal: Proposal
    key: str
    arch_str: str
    waiters: list[Proposal] = field(default_factory=list)


class Engine:
    """Loop state shared by every executor (see the module docstring)."""

    def __init__(
        self,
        controller: Controller,
        space: SearchSpace,
        store: TrialStore,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint],
        hidden: set[str],
        budget: int,
        *,
        max_in_flight: int = 1,
        shared_store: bool = True,
        log: Callable[[str], Any] | None = None,
        on_record: Callable[[TrialRecord, list[TrialRecord]], Any] | None = None,
        heartbeat: float = 10.0,
        deadline: float | None = None,
    ) -> None:
        self.controller, self.space, self.store = controller, space, store
        self.objectives, self.constraints, self.hidden = tuple(objectives), tuple(constraints), hidden
        self.budget = int(budget)
        self.deadline = deadline  # time.time() after which no trial starts (--time-limit; one runs at least)
        self.max_in_flight = max(1, int(max_in_flight))
        self.shared_store = shared_store
        self.log = log or (lambda msg: None)
        self.on_record = on_record
        self.records: list[TrialRecord] = []
        self.cache: dict[str, TrialRecord] = {}
        self.running: dict[str, _Running] = {}
        self.by_number: dict[int, str] = {}
        self.archs: dict[int, dict[str, Any]] = {}  # trial number -> arch (recorded and started trials)
        self.watching: dict[str, tuple[int, list[Proposal]]] = {}  # held by another process
        self.carry: deque[Proposal] = deque()  # asked during replay, never told: run them first
        self.duplicates = 0
        self.streak = 0
        self.max_streak = max(1000, 20 * self.budget)
        self.size = space.size()
        self.stopped = "budget spent"
        self.done = False
        self.heartbeat = Heartbeat(store, heartbeat) if shared_store else None

    # -- replay ---------------------------------------------------------------------------------
    def replay(self, records: list[TrialRecord]) -> int:
        """Feed stored results (in told order) to the fresh controller; returns how many diverged."""
        queue = deque(records)
        pending: dict[str, list[Proposal]] = {}
        order: list[str] = []
        exhausted = False
        while queue:
            while len(order) < self.max_in_flight and not exhausted:
                p = as_proposal(self.controller.ask())
                if p is None:
                    exhausted = True
                    break
                key = arch_key(self.space.validate(p.arch))
                if key in self.cache:
                    self.controller.tell(p, self.cache[key].result(self.hidden))
                    self.duplicates += 1
                    continue
                if key not in pending:
                    order.append(key)
                pending.setdefault(key, []).append(p)
            rec = queue[0]
            if rec.key not in pending:
                break
            queue.popleft()
            order.remove(rec.key)
            self._remember(rec)
            for p in pending.pop(rec.key):
                self.controller.tell(p, rec.result(self.hidden))
        diverged = len(queue)
        for rec in queue:  # a non-deterministic controller: tell the rest as they are
            self._remember(rec)
            self.controller.tell(Proposal(dict(rec.arch), parent=rec.proposal.get("parent")), rec.result(self.hidden))
        for key in order:  # asked but never told: the first proposals of the live search
            for p in pending[key]:
                if key in self.cache:
                    self.controller.tell(p, self.cache[key].result(self.hidden))
                else:
                    self.carry.append(p)
        if exhausted:  # the carried proposals still run (next() takes them first)
            self.done, self.stopped = True, "controller finished"
        return diverged

    def _remember(self, rec: TrialRecord) -> None:
        self.cache[rec.key] = rec
        self.archs[rec.number] = rec.arch
        self.records.append(rec)

    # -- the loop -------------------------------------------------------------------------------
    def next(self) -> TrialSpec | str | None:
        """The next trial to run, :data:`WAIT`, or None when the search is over."""
        self._poll_watched()
        while self.carry or not self.done:
            if len(self.records) + len(self.running) >= self.budget:
                self.stopped = "budget spent"
                break
            if self.deadline is not None and time.time() >= self.deadline and (self.records or self.running):
                self.stopped = "time limit reached"
                break
            if self.size is not None and len(self.cache) + len(self.running) >= self.size:
                self.stopped = f"space exhausted ({self.size} architectures)"
                break
            if len(self.running) >= self.max_in_flight:
                return WAIT
            p = self.carry.popleft() if self.carry else as_proposal(self.controller.ask())
            if p is None:
                self.done, self.stopped = True, "controller finished"
                break
            arch = self.space.validate(p.arch)
            key = arch_key(arch)
            if key in self.cache:
                self.duplicates += 1
                self.streak += 1
                self.controller.tell(p, self.cache[key].result(self.hidden))
                if self.streak > self.max_streak:
                    self.done, self.stopped = True, f"controller proposed {self.streak} evaluated architectures in a row"
                continue
            if key in self.running or key in self.watching:
                self.duplicates += 1
                (self.running[key].waiters if key in self.running else self.watching[key][1]).append(p)
                continue
            self.streak = 0
            spec = self._start(p, arch, key)
            if spec is not None:
                return spec
        return WAIT if self.watching else None

    def _start(self, p: Proposal, arch: dict[str, Any], key: str) -> TrialSpec | None:
        arch_str = self.space.describe(arch)
        arch_str = arch_str if arch_str != key else ""
        trial = self.store.start(arch, arch_str, p.describe())
        if self.shared_store:
            holder = self.store.claim(trial, key)
            if holder is not None:  # another process holds it: its result answers this proposal
                self.duplicates += 1
                self.watching[key] = (holder, [p])
                self._poll_watched()
                return None
        spec = TrialSpec(trial.number, arch, p.parent, p.inherit, self.parent_arch(p.parent))
        self.archs[trial.number] = arch
        self.running[key] = _Running(spec, trial, p, key, arch_str)
        self.by_number[trial.number] = key
        if self.heartbeat is not None:
            self.heartbeat.add(trial)
        return spec

    def parent_arch(self, number: int | None) -> dict[str, Any] | None:
        """The architecture of trial ``number`` (a proposal's parent) as a plain dict: from this
        process's trials, else from the store (another process's trial); None if unknown."""
        if number is None:
            return None
        arch = self.archs.get(number)
        if arch is None:
            arch = self.store.arch(number)
            if arch is not None:
                self.archs[number] = arch
        return dict(arch) if arch is not None else None

    def _poll_watched(self) -> None:
        for key, (number, proposals) in list(self.watching.items()):
            state, rec = self.store.status(number)
            if state == "running":
                continue
            del self.watching[key]
            if rec is None:  # interrupted, given up, or its process died: evaluate it here
                self.carry.extend(proposals)
                continue
            self._remember(rec)
            for p in proposals:
                self.controller.tell(p, rec.result(self.hidden))

    @property
    def in_flight(self) -> int:
        return len(self.running)

    def finish(self, outcome: TrialOutcome) -> TrialRecord:
        """Record a finished trial and tell the controller (and any proposal waiting on it)."""
        key = self.by_number.pop(outcome.number)
        run = self.running.pop(key)
        if self.heartbeat is not None:
            self.heartbeat.remove(run.trial)
        arch, metrics, state, error = run.spec.arch, dict(outcome.metrics), outcome.state, outcome.error
        values: tuple[float, ...] | None = None
        violation = 0.0
        if state == "complete":
            try:
                values, violation = self._score(metrics)
            except (KeyError, ValueError) as exc:
                state, error = "failed", f"{type(exc).__name__}: {exc}"
        if state == "complete":
            self.store.complete(run.trial, metrics, values, violation, outcome.duration_s)  # type: ignore[arg-type]
        else:
            self.store.fail(run.trial, error, outcome.duration_s, metrics, pruned=state == "pruned",
                            traceback=outcome.traceback)
            if state == "failed":
                self.log(f"trial {outcome.number} failed: {error}")
        rec = TrialRecord(outcome.number, arch, key, state, metrics, values, violation, outcome.duration_s, error,
                          run.arch_str, time.time_ns(), run.proposal.describe(),
                          outcome.traceback if state != "complete" else "")
        self._remember(rec)
        result = rec.result(self.hidden)
        self.controller.tell(run.proposal, result)
        for p in run.waiters:
            self.controller.tell(p, result)
        if self.on_record is not None:
            self.on_record(rec, self.records)
        return rec

    def interrupt(self, why: str = "interrupted") -> None:
        """Mark every running trial interrupted (Ctrl-C): resume evaluates them again."""
        for run in list(self.running.values()):
            try:
                self.store.fail(run.trial, why, 0.0, interrupted=True)
            except Exception:  # noqa: BLE001 - already finished elsewhere
                pass
        self.running.clear()
        self.by_number.clear()

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def _score(self, metrics: dict[str, float]) -> tuple[tuple[float, ...], float]:
        missing = [o.metric for o in self.objectives if o.metric not in metrics]
        if missing:
            raise KeyError(f"evaluators returned no {missing} (got {sorted(metrics)})")
        values = tuple(float(metrics[o.metric]) for o in self.objectives)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"objective values are not finite: {values}")
        return values, total_violation(self.constraints, metrics)

