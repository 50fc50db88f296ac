"""One trial as a unit of work: described on the driver, run on a worker, recorded by the driver.

* :class:`Workbench`: everything a worker needs for the trials of one run, picklable and sent
  once per worker: the space and evaluators as ``(name, options)`` components (or picklable
  instances), the task, a :class:`~evaluators.data.DatasetRef` (never the arrays), device,
  seed, run directory, time limit and retries.
* :class:`TrialSpec`: one trial: its store number, the architecture and where it came from
  (the parent trial, its architecture and what to inherit from it).
* :func:`run_trial`: builds the network, runs the evaluator chain and returns a
  :class:`TrialOutcome`. Failures are data: an exception, a non-finite loss, CUDA out of
  memory or a timeout makes a failed outcome with its reason (re-run up to ``retries`` times);
  a pruner's stop makes a pruned one; ``sys.exit`` inside an evaluator fails the trial too. Nothing
  but ``KeyboardInterrupt`` escapes. A failure keeps its message and the last frames of its
  traceback.

The process that runs a trial resolves the workbench once (:class:`Bench`, cached per process),
so datasets are loaded and evaluators set up once per worker, not once per trial.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from automl import registry
from automl.deadline import TrialTimeout, deadline
from automl.types import Task

Reporter = Callable[[int, float], bool]


@dataclass(frozen=True)
class Workbench:
    """The picklable description of how this run evaluates a trial (see the module docstring)."""

    space: tuple[str, dict[str, Any]]
    evaluators: tuple[Any, ...]  # (name, options) pairs, or picklable evaluator instances
    task: Task
    dataset: Any = None  # evaluators.data.DatasetRef | None
    device: str = "cpu"
    seed: int = 0
    run_dir: str | None = None
    tensorboard: bool = True
    mnas: Any = None  # automl.objectives.MnasReward | None
    timeout: float | None = None
    retries: int = 0
    threads: int | None = None  # torch threads per trial (None: leave the process's setting)
    deadline: float | None = None  # wall-clock time (time.time()) by which training ends (--time-limit)
    epochs: int | None = None  # epochs every training evaluator runs (a reference matched to a trial)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: its number in the store and the proposal's architecture and origin.

    ``parent_arch`` is the parent trial's stored architecture (a plain dict, so the spec
    pickles for Ray workers), for a weight transfer from the parent (``inherit="parent"``)."""

    number: int
    arch: dict[str, Any]
    parent: int | None = None
    inherit: str | None = None
    parent_arch: dict[str, Any] | None = None


@dataclass
class TrialOutcome:
    """What running a trial produced: ``state`` is ``complete``, ``failed`` or ``pruned``."""

    number: int
    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    duration_s: float = 0.0
    attempts: int = 1
    traceback: str = ""  # the last frames of a failure's traceback (where in the evaluator it broke)


class Bench:
    """A workbench resolved in one process: the space and set-up evaluators, the dataset."""

    _cache: dict[str, Bench] = {}
    _lock = threading.Lock()

    def __init__(self, wb: Workbench, space: Any = None, evaluators: Sequence[Any] | None = None,
                 dataset: Any = None) -> None:
        self.wb = wb
        self.space = space if space is not None else registry.create("space", *wb.space)
        self.dataset = dataset if dataset is not None else (wb.dataset.load() if wb.dataset is not None else None)
        if evaluators is None:
            evaluators = [_evaluator(e) for e in wb.evaluators]
            for ev in evaluators:
                ev.setup(self.space, wb.task)
        self.evaluators = list(evaluators)
        self.needs_model = any(getattr(e, "needs_model", True) for e in self.evaluators)

    @classmethod
    def of(cls, wb: Workbench) -> Bench:
        """The bench of ``wb`` in this process (built on first use)."""
        with cls._lock:
            bench = cls._cache.get(wb.token)
            if bench is None:
                bench = cls._cache[wb.token] = cls(wb)
            return bench

    def register(self) -> None:
        """Serve this (driver-built) bench to trials of its workbench run in this process."""
        with self._lock:
            self._cache[self.wb.token] = self

    def forget(self) -> None:
        with self._lock:
            self._cache.pop(self.wb.token, None)

    def evaluate(self, spec: TrialSpec, report: Reporter) -> dict[str, float]:
        """Build the network (seeded) and run the evaluator chain; raises on failure."""
        from evaluators.base import EvalContext

        wb = self.wb
        run_dir = Path(wb.run_dir) if wb.run_dir else None
        ctx = EvalContext(
            space=self.space, task=wb.task, trial_number=spec.number, seed=wb.seed, device=wb.device,
            run_dir=run_dir, dataset=self.dataset, report=report,
            tb_dir=run_dir / "tb" / f"trial-{spec.number:05d}" if run_dir is not None and wb.tensorboard else None,
            parent=spec.parent, inherit=spec.inherit, parent_arch=spec.parent_arch,
            deadline=wb.deadline, epochs=wb.epochs,
        )
        try:
            model = None
            if self.needs_model:
                with torch.random.fork_rng(devices=[]):  # the same seed builds the same initial weights
                    torch.manual_seed(wb.seed)
                    model = self.space.build(spec.arch, wb.task)
            for ev in self.evaluators:
                out = ev.evaluate(spec.arch, model, ctx)
                if not isinstance(out, Mapping):
                    raise TypeError(f"evaluator {getattr(ev, 'name', ev)!r} returned {type(out).__name__}, not a dict of metrics")
                for k, v in out.items():
                    try:
                        ctx.metrics[str(k)] = float(v)
                    except (TypeError, ValueError):
                        raise TypeError(f"evaluator {getattr(ev, 'name', ev)!r}: metric {k!r} is not a number ({v!r})") from None
            if wb.mnas is not None:
                ctx.metrics["mnas_reward"] = wb.mnas(ctx.metrics)
            return ctx.metrics
        except Exception as exc:
            exc.partial_metrics = dict(ctx.metrics)  # type: ignore[attr-defined]
            raise
        finally:
            if ctx.writer is not None:
                ctx.writer.close()


def _evaluator(item: Any) -> Any:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return registry.create("evaluator", item[0], item[1])
    return item


def describe_error(exc: BaseException) -> str:
    """One line: what failed and why (CUDA out of memory and timeouts named as such)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "CUDA out of memory: " + str(exc).splitlines()[0][:300]
    if isinstance(exc, TrialTimeout):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"SystemExit: the evaluator called sys.exit({exc.code!r})"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def run_trial(wb: Workbench, spec: TrialSpec, report: Reporter | None = None, bench: Bench | None = None) -> TrialOutcome:
    """Run one trial (with retries) and return its outcome; see the module docstring."""
    from evaluators.base import TrialPruned

    bench = bench or Bench.of(wb)
    if wb.threads:
        torch.set_num_threads(int(wb.threads))
    report = report or (lambda step, value: False)
    started = time.perf_counter()
    error, metrics, trace = "", {}, ""
    attempts = 0
    for attempts in range(1, wb.retries + 2):  # noqa: B007 - the count is returned
        try:
            with deadline(wb.timeout):
                metrics = bench.evaluate(spec, report)
            return TrialOutcome(spec.number, "complete", metrics, "", time.perf_counter() - started, attempts)
        except KeyboardInterrupt:
            raise
        except TrialPruned as exc:
            metrics = getattr(exc, "partial_metrics", {})
            return TrialOutcome(spec.number, "pruned", _finite(metrics), f"pruned: {exc}" if str(exc) else "pruned",
                                time.perf_counter() - started, attempts)
        except (Exception, SystemExit) as exc:  # an evaluator error is a failed trial, not a crashed search
            error, metrics = describe_error(exc), getattr(exc, "partial_metrics", {})
            trace = last_frames(exc)
            if isinstance(exc, torch.cuda.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
    return TrialOutcome(spec.number, "failed", _finite(metrics), error + suffix, time.perf_counter() - started,
                        attempts, trace)


def last_frames(exc: BaseException, frames: int = 6) -> str:
    """The last ``frames`` frames of ``exc``'s traceback and its message (stored with the trial)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-frames)).rstrip()


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
