"""The run loop: controller <-> evaluators over an Optuna trial store.

``Run(config).execute()`` is what ``automl search`` does and what ``benchmarks/`` call:

1. resolve and validate everything (names, options, objectives, compatibility) before any
   file is written;
2. write ``RUN_DIR/config.yaml`` and open the store (``RUN_DIR/study.db`` by default);
3. on resume, replay the stored history into a fresh controller (same seed), so it ends in the
   state it had — nothing completed is evaluated again;
4. loop: ``ask`` -> (duplicate? serve the stored result, no budget) -> evaluate -> store ->
   ``tell``, until the budget of distinct evaluated architectures is spent.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from automl import registry
from automl.config import RunConfig
from automl.devices import check_device
from automl.front import best, front
from automl.objectives import Constraint, SpecError, parse_constraint, parse_mnas, parse_objective, total_violation
from automl.store import TrialRecord, TrialStore, default_storage
from controllers.base import Controller, Objective, SearchData, WeightSharingController
from evaluators.base import EvalContext, Evaluator, TrialPruned
from evaluators.latency_lut import LatencyLUTEvaluator
from search_spaces.base import Arch, SearchSpace, Task, arch_key


class RunSetupError(ValueError):
    """The run cannot start: one line says what is wrong and what is accepted."""


@dataclass
class RunSummary:
    run_dir: Path | None
    records: list[TrialRecord]
    objectives: tuple[Objective, ...]
    stopped: str
    front: list[TrialRecord] = field(default_factory=list)
    best: TrialRecord | None = None
    duplicates: int = 0
    seconds: float = 0.0


def _objective_visible(metric: str, hidden: set[str], known: set[str] | None, what: str) -> None:
    if metric in hidden:
        raise RunSetupError(f"{what} {metric!r} is a report-only metric; controllers may not see it")
    if known is not None and metric not in known:
        raise RunSetupError(f"{what} metric {metric!r} is not produced by the evaluators; they provide: {', '.join(sorted(known))}")


def _suggested_objective(evaluators: Sequence[Any], task: Task) -> str | None:
    for ev in evaluators:
        suggest = getattr(ev, "objective_for", None)
        objective = suggest(task) if suggest else getattr(ev, "default_objective", None)
        if objective:
            return objective
    return None


class Run:
    """One search: controller, evaluators, store and budget."""

    def __init__(
        self,
        config: RunConfig,
        *,
        resume: bool = False,
        storage: str | optuna.storages.BaseStorage | None = None,
        write_files: bool = True,
        progress: bool = False,
        tensorboard: bool = True,
        evaluators: Sequence[Evaluator] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.resume = resume
        self.write_files = write_files
        self.show_progress = progress
        self.log = log or (lambda msg: None)
        try:
            self._setup(evaluators)
        except (registry.RegistryError, SpecError) as exc:
            raise RunSetupError(str(exc)) from None
        self._open(storage, tensorboard)

    # -- set-up: validation only, nothing written ----------------------------------------------
    def _setup(self, evaluators: Sequence[Evaluator] | None) -> None:
        cfg = self.config
        cfg.fill_defaults()
        self.space: SearchSpace = registry.create("space", cfg.space.name, cfg.space.options)
        self.controller: Controller = registry.create("controller", cfg.controller.name, cfg.controller.options)
        registry.check_compatible(self.space, self.controller, cfg.space.name, cfg.controller.name)
        self.evaluators: list[Evaluator] = list(evaluators) if evaluators is not None else [
            registry.create("evaluator", e.name, e.options) for e in cfg.evaluators
        ]
        self.hidden = {m for e in self.evaluators for m in getattr(e, "report_only", ())}
        provided = [set(getattr(e, "provides", ())) for e in self.evaluators]
        known = set().union(*provided) if provided and all(provided) else None
        self.mnas = parse_mnas(cfg.mnas_reward) if cfg.mnas_reward is not None else None
        if self.mnas is not None:
            for m in (self.mnas.accuracy, self.mnas.latency):
                _objective_visible(m, self.hidden, known, "mnas_reward")
            known = None if known is None else known | {"mnas_reward"}

        try:
            check_device(cfg.device)
        except ValueError as exc:
            raise RunSetupError(str(exc)) from None
        self.dataset = None
        self.task: Task = self.space.default_task
        if cfg.dataset or any(getattr(e, "needs_dataset", False) for e in self.evaluators):
            from evaluators.datasets import load_dataset

            try:
                self.dataset = load_dataset(cfg.dataset, task_kind=self.space.default_task.kind, seed=cfg.seed)
            except ValueError as exc:
                raise RunSetupError(str(exc)) from None
            self.task = self.dataset.task
            cfg.dataset = self.dataset.spec
        if not cfg.objectives:
            default = _suggested_objective(self.evaluators, self.task)
            if default is None:
                raise RunSetupError("no objective given and the evaluators suggest none; pass --objective METRIC:max|min")
            cfg.objectives = [default]
        self.objectives = tuple(parse_objective(o) for o in cfg.objectives)
        if len({o.metric for o in self.objectives}) != len(self.objectives):
            raise RunSetupError(f"objectives repeat a metric: {cfg.objectives}")
        self.constraints: tuple[Constraint, ...] = tuple(parse_constraint(c) for c in cfg.constraints)
        for o in self.objectives:
            _objective_visible(o.metric, self.hidden, known, "objective")
        for c in self.constraints:
            _objective_visible(c.metric, self.hidden, known, "constraint")
        if len(self.objectives) > 1 and not self.controller.multi_objective:
            raise RunSetupError(
                f"controller {cfg.controller.name!r} optimises a single objective; give one --objective "
                f"(got {len(self.objectives)})"
            )

        for ev in self.evaluators:
            try:
                ev.setup(self.space, self.task)
            except (ValueError, TypeError) as exc:
                raise RunSetupError(str(exc)) from None
        self.needs_model = any(getattr(e, "needs_model", True) for e in self.evaluators)
        self.supernet = None
        if isinstance(self.controller, WeightSharingController):  # built now: bad options fail before any file
            try:
                # The initial weights and α/β follow --seed; the CPU generator is restored after
                # (CUDA generators are left reseeded: nothing before the search draws from them).
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cfg.seed)
                    self.supernet = self.space.supernet(self.task, **self.controller.supernet_options())
            except (ValueError, TypeError) as exc:
                raise RunSetupError(f"space {cfg.space.name!r} supernet: {exc}") from None
        # A latency look-up table among the evaluators also drives latency-aware supernet search.
        self.latency_lut = next((e.entries for e in self.evaluators if isinstance(e, LatencyLUTEvaluator)), None)

        self.run_dir: Path | None = None
        if self.write_files:
            self.run_dir = self._resolve_run_dir()

    def _resolve_run_dir(self) -> Path:
        cfg = self.config
        if cfg.run_dir:
            path = Path(cfg.run_dir)
            if self.resume:
                if not (path / "config.yaml").is_file():
                    raise RunSetupError(f"--resume {path}: no config.yaml there, so it is not a run directory")
            elif path.exists() and any(path.iterdir()):
                raise RunSetupError(
                    f"run directory {path} already holds files; continue it with --resume {path} or pick another --run-dir"
                )
            return path
        base = Path("runs") / f"{cfg.space.name}-{cfg.controller.name}".replace(":", "_").replace("/", "_")
        path, n = base, 1
        while path.exists():
            n += 1
            path = Path(f"{base}-{n}")
        cfg.run_dir = str(path)
        return path

    # -- files and store ------------------------------------------------------------------------
    def _open(self, storage: Any, tensorboard: bool) -> None:
        created = self.run_dir is not None and not self.run_dir.exists()
        try:
            self._open_files(storage, tensorboard)
        except Exception as exc:
            if created and self.run_dir is not None:
                shutil.rmtree(self.run_dir, ignore_errors=True)  # never leave a half-written run
            if isinstance(exc, (ValueError, ImportError, OSError)) or type(exc).__module__.startswith("sqlalchemy"):
                raise RunSetupError(f"cannot open the trial store: {str(exc).splitlines()[0]}") from None
            raise

    def _open_files(self, storage: Any, tensorboard: bool) -> None:
        cfg = self.config
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                cfg.dump(self.run_dir / "config.yaml")
                if self.dataset is not None:
                    record = {"summary": self.dataset.summary(), "split": self.dataset.split_record()}
                    (self.run_dir / "dataset.json").write_text(json.dumps(record) + "\n")
        if storage is None:
            storage = cfg.storage or (default_storage(str(self.run_dir)) if self.run_dir else None)
        study_name = cfg.study_name or (self.run_dir.name if self.run_dir else "automl")
        self.store = TrialStore(storage, study_name, self.objectives, pruner=_pruner(cfg.pruner))
        self.writer = None
        if tensorboard and self.run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        self.controller.setup(self.space, self.objectives, cfg.seed)

    # -- evaluation -----------------------------------------------------------------------------
    def _reporter(self, trial: optuna.Trial) -> Callable[[int, float], bool]:
        if self.config.pruner == "none" or len(self.objectives) > 1:
            return lambda step, value: False

        def report(step: int, value: float) -> bool:
            trial.report(float(value), int(step))
            return trial.should_prune()

        return report

    def evaluate(self, arch: Arch, number: int, trial: optuna.Trial | None = None) -> dict[str, float]:
        """Run the evaluator chain on one architecture; raises on failure."""
        ctx = EvalContext(
            space=self.space,
            task=self.task,
            trial_number=number,
            seed=self.config.seed,
            device=self.config.device,
            run_dir=self.run_dir,
            dataset=self.dataset,
            report=self._reporter(trial) if trial is not None else (lambda s, v: False),
            writer=self.writer,
        )
        model = self.space.build(arch, self.task) if self.needs_model else None
        for ev in self.evaluators:
            out = ev.evaluate(arch, model, ctx)
            if not isinstance(out, Mapping):
                raise TypeError(f"evaluator {getattr(ev, 'name', ev)!r} returned {type(out).__name__}, not a dict of metrics")
            for k, v in out.items():
                try:
                    ctx.metrics[str(k)] = float(v)
                except (TypeError, ValueError):
                    raise TypeError(f"evaluator {getattr(ev, 'name', ev)!r}: metric {k!r} is not a number ({v!r})") from None
        if self.mnas is not None:
            ctx.metrics["mnas_reward"] = self.mnas(ctx.metrics)
        return ctx.metrics

    def _score(self, metrics: Mapping[str, float]) -> tuple[tuple[float, ...], float]:
        missing = [o.metric for o in self.objectives if o.metric not in metrics]
        if missing:
            raise KeyError(f"evaluators returned no {missing} (got {sorted(metrics)})")
        values = tuple(float(metrics[o.metric]) for o in self.objectives)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"objective values are not finite: {values}")
        return values, total_violation(self.constraints, metrics)

    def _run_trial(self, arch: dict[str, Any]) -> TrialRecord:
        arch_str = self.space.describe(arch)
        trial = self.store.start(arch, arch_str if arch_str != arch_key(arch) else "")
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        try:
            metrics = self.evaluate(arch, trial.number, trial)
            values, violation = self._score(metrics)
        except KeyboardInterrupt:
            self.store.fail(trial, "interrupted", time.perf_counter() - t0, interrupted=True)
            raise
        except TrialPruned as exc:
            dt = time.perf_counter() - t0
            self.store.fail(trial, f"pruned: {exc}" if str(exc) else "pruned", dt, metrics, pruned=True)
            return TrialRecord(trial.number, arch, arch_key(arch), "pruned", metrics, None, 0.0, dt, "pruned", arch_str)
        except Exception as exc:  # an evaluator error is a failed trial, not a crashed search
            dt = time.perf_counter() - t0
            error = f"{type(exc).__name__}: {exc}"
            self.store.fail(trial, error, dt, metrics)
            self.log(f"trial {trial.number} failed: {error}")
            return TrialRecord(trial.number, arch, arch_key(arch), "failed", metrics, None, 0.0, dt, error, arch_str)
        dt = time.perf_counter() - t0
        self.store.complete(trial, metrics, values, violation, dt)
        return TrialRecord(trial.number, arch, arch_key(arch), "complete", metrics, values, violation, dt, "", arch_str)

    # -- the loop -------------------------------------------------------------------------------
    def _replay(self, records: list[TrialRecord], cache: dict[str, TrialRecord]) -> int:
        """Feed stored history to the fresh controller; returns how many asks diverged."""
        queue = list(records)
        diverged = 0
        while queue:
            arch = self.controller.ask()
            if arch is None:
                break
            key = arch_key(self.space.validate(arch))
            if key in cache:
                self.controller.tell(cache[key].arch, cache[key].result(self.hidden))
                continue
            rec = queue.pop(0)
            diverged += rec.key != key
            cache[rec.key] = rec
            self.controller.tell(rec.arch, rec.result(self.hidden))
        for rec in queue:  # a non-deterministic controller: tell the rest as they are
            cache[rec.key] = rec
            self.controller.tell(rec.arch, rec.result(self.hidden))
        return diverged

    def execute(self) -> RunSummary:
        if isinstance(self.controller, WeightSharingController):
            return self._execute_weight_sharing()
        return self._execute_black_box()

    def _execute_weight_sharing(self) -> RunSummary:
        """Search the supernet once, then evaluate and store the derived architectures."""
        t_start = time.perf_counter()
        ctl = self.controller
        assert isinstance(ctl, WeightSharingController)
        cache: dict[str, TrialRecord] = {}
        records: list[TrialRecord] = []
        if self.resume:
            self.store.mark_interrupted()
            records = self.store.records()
            cache = {r.key: r for r in records}
        if self.dataset is None:
            from evaluators.datasets import load_dataset

            self.dataset = load_dataset(None, task_kind=self.task.kind, seed=self.config.seed)
        images, targets = self.dataset.tensors("train")
        data = SearchData(images=images, targets=targets,
                          ignore_index=self.dataset.ignore_index if self.dataset.ignore_index is not None else -100)
        supernet = self.supernet
        archs = ctl.search(
            supernet,
            data,
            device=self.config.device,
            checkpoint_dir=(self.run_dir / "supernet") if self.run_dir else None,
            writer=self.writer,
            log=self.log,
            latency_lut=self.latency_lut,
        )
        if self.run_dir is not None:
            from automl.drawing import draw_arch

            for i, arch in enumerate(archs):
                path = draw_arch(self.space, arch, self.run_dir / f"derived-{i}.png", title=f"derived architecture {i}")
                if path is not None:
                    self.log(f"drawing of derived architecture {i}: {path}")
        duplicates = 0
        for arch in archs:
            arch = self.space.validate(arch)
            key = arch_key(arch)
            if key in cache:
                duplicates += 1
                continue
            if len(records) >= self.config.budget:
                break
            rec = self._run_trial(arch)
            cache[key] = rec
            records.append(rec)
            self._track(rec, records)
        if self.writer is not None:
            self.writer.flush()
        return RunSummary(
            run_dir=self.run_dir,
            records=records,
            objectives=self.objectives,
            stopped=f"supernet searched; {len(archs)} derived architecture(s) evaluated",
            front=front(records, self.objectives),
            best=best(records, self.objectives[0]),
            duplicates=duplicates,
            seconds=time.perf_counter() - t_start,
        )

    def _execute_black_box(self) -> RunSummary:
        t_start = time.perf_counter()
        cfg = self.config
        cache: dict[str, TrialRecord] = {}
        records: list[TrialRecord] = []
        if self.resume:
            n = self.store.mark_interrupted()
            if n:
                self.log(f"{n} interrupted trial(s) will be evaluated again")
            records = self.store.records()
            diverged = self._replay(records, cache)
            self.log(f"resumed {len(records)} trial(s)" + (f"; {diverged} replay step(s) diverged" if diverged else ""))
        budget = cfg.budget
        size = self.space.size()
        duplicates = streak = 0
        max_streak = max(1000, 20 * budget)
        stopped = "budget spent"
        progress = _Progress(self, budget, len(records)) if self.show_progress else None
        try:
            while len(records) < budget:
                if size is not None and len(cache) >= size:
                    stopped = f"space exhausted ({size} architectures)"
                    break
                arch = self.controller.ask()
                if arch is None:
                    stopped = "controller finished"
                    break
                arch = self.space.validate(arch)
                key = arch_key(arch)
                if key in cache:
                    duplicates += 1
                    streak += 1
                    self.controller.tell(cache[key].arch, cache[key].result(self.hidden))
                    if streak > max_streak:
                        stopped = f"controller proposed {streak} evaluated architectures in a row"
                        break
                    continue
                streak = 0
                rec = self._run_trial(arch)
                cache[key] = rec
                records.append(rec)
                self.controller.tell(rec.arch, rec.result(self.hidden))
                self._track(rec, records)
                if progress:
                    progress.update(records)
        finally:
            if progress:
                progress.stop()
            if self.writer is not None:
                self.writer.flush()
        summary = RunSummary(
            run_dir=self.run_dir,
            records=records,
            objectives=self.objectives,
            stopped=stopped,
            front=front(records, self.objectives),
            best=best(records, self.objectives[0]),
            duplicates=duplicates,
            seconds=time.perf_counter() - t_start,
        )
        return summary

    def _track(self, rec: TrialRecord, records: list[TrialRecord]) -> None:
        if self.writer is None:
            return
        for k, v in rec.metrics.items():
            self.writer.add_scalar(f"trial/{k}", v, rec.number)
        top = best(records, self.objectives[0])
        if top is not None:
            o = self.objectives[0]
            self.writer.add_scalar(f"best/{o.metric}", top.metrics[o.metric], len(records))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _pruner(name: str) -> optuna.pruners.BasePruner:
    """Optuna pruner for ``--pruner`` (intermediate values come from ``ctx.report``)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


class _Progress:
    """A rich progress bar: trials done / budget, best so far, elapsed."""

    def __init__(self, run: Run, budget: int, done: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.objective = run.objectives[0]
        self.bar = Progress(
            TextColumn("[bold]search"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
        )
        self.task = self.bar.add_task("search", total=budget, completed=done, best="")
        self.bar.start()

    def update(self, records: list[TrialRecord]) -> None:
        top = best(records, self.objective)
        text = f"best {self.objective.metric}={top.metrics[self.objective.metric]:.4g}" if top else "no feasible trial yet"
        self.bar.update(self.task, completed=len(records), best=text)

    def stop(self) -> None:
        self.bar.stop()
