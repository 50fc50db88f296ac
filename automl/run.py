"""A run: one search of a space by a controller, its trials evaluated and stored.

``Run(config).execute()`` is what ``automl search`` does and what ``benchmarks/`` call:

1. resolve and validate everything (names, options, objectives, compatibility, the
   controller's ``bind``, the executor's options) before any file is written;
2. write ``RUN_DIR/config.yaml`` and open the store (``RUN_DIR/study.db`` by default);
3. ``controller.prepare`` (a supernet search for one-shot controllers, resumed from its
   checkpoint);
4. on resume, replay the stored history into the fresh controller (same seed), so it ends in
   the state it had — nothing completed is evaluated again (:meth:`automl.engine.Engine.replay`);
5. hand the :class:`~automl.engine.Engine` (the one ask/submit/record/tell loop) to the
   executor (``local`` in-process, or ``ray`` on Ray Tune) until the budget is spent.

The run names no concrete space, controller or evaluator: defaults come from what the space
declares (``default_evaluators``, ``quick_settings``), a latency table from any evaluator that
offers ``latency_table``.

Under ``torchrun --nproc-per-node N`` (a data-parallel supernet search, controllers with
``data_parallel``) rank 0 is this run; every other process is a *search worker*: it sets up
the same configuration, takes part in ``controller.prepare`` and returns, writing and printing
nothing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from automl import registry
from automl.config import RunConfig
from automl.devices import check_device
from automl.engine import Engine
from automl.executors import ExecutorOptions, make_executor
from automl.launch import launched_rank, launched_world
from automl.lock import RunBusy, RunLock
from automl.objectives import (
    Constraint,
    SpecError,
    parse_constraint,
    parse_mnas,
    parse_objective,
)
from automl.pareto import best, front
from automl.reference import Reference, ReferenceSpecError
from automl.store import StoreMissing, TrialRecord, TrialStore, absolute_sqlite, default_storage, only_study
from automl.trial import Bench, Workbench
from automl.types import Objective, Task
from controllers.base import Controller, PrepareContext
from evaluators.base import Evaluator
from search_spaces.base import SearchSpace


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
    reference: dict[str, Any] | None = None  # the reference's outcome (automl.reference), when the run has one
    # wall seconds of the run's phases, in order: the controller's prepare (by its prepare_label),
    # "trials", "reference"
    phase_seconds: dict[str, float] = field(default_factory=dict)


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
    """One search: controller, evaluators, store, executor and budget."""

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
        join: bool = False,
    ) -> None:
        self.started = time.time()  # --time-limit counts from here
        self.rank = launched_rank()  # > 0: a search worker of a torchrun launch (module docstring)
        if self.rank > 0:
            resume = join = write_files = tensorboard = progress = False
            storage, log = optuna.storages.InMemoryStorage(), None
        self.config = config
        self.resume = resume
        self.join = join
        self.role = "owner"  # or "joined": another process owns the run directory (automl.lock)
        self.write_files = write_files
        self.show_progress = progress
        self.tensorboard = tensorboard
        self.log = log or (lambda msg: None)
        self.custom_evaluators = evaluators is not None
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
        self._check_processes()
        if not self.resume:  # files named relative to here: config.yaml keeps them whole for any folder
            for e in cfg.evaluators:
                for option in getattr(registry.resolve("evaluator", e.name), "path_options", ()):
                    if isinstance(e.options.get(option), str) and e.options[option]:
                        e.options[option] = str(Path(e.options[option]).expanduser().absolute())
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
            self.executor_options = ExecutorOptions.from_config(cfg)
        except ValueError as exc:
            raise RunSetupError(str(exc)) from None

        self.dataset = None
        self.dataset_ref = None
        self.task: Task = self.space.default_task
        wants_data = any(getattr(e, "needs_dataset", False) for e in self.evaluators)
        if cfg.dataset or wants_data or getattr(self.controller, "needs_dataset", False):
            from evaluators.data import DatasetRef, load_dataset

            try:
                self.dataset = load_dataset(cfg.dataset, task_kind=self.space.default_task.kind, seed=cfg.seed)
            except ValueError as exc:
                raise RunSetupError(str(exc)) from None
            self.task = self.dataset.task
            cfg.dataset = self.dataset.spec
            self.dataset_ref = DatasetRef(self.dataset.spec, self.space.default_task.kind, cfg.seed)
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
        try:
            self.executor_options.check_run(len(self.objectives), cfg.pruner)
        except ValueError as exc:
            raise RunSetupError(str(exc)) from None

        for ev in self.evaluators:
            try:
                ev.setup(self.space, self.task)
            except (ValueError, TypeError) as exc:
                raise RunSetupError(str(exc)) from None
        self.needs_model = any(getattr(e, "needs_model", True) for e in self.evaluators)
        self.reference: Reference | None = None
        if cfg.reference:
            try:
                self.reference = Reference.resolve(cfg.reference, cfg.space.name, cfg.space.options, self.task)
            except ReferenceSpecError as exc:
                raise RunSetupError(str(exc)) from None
        try:  # builds what must exist before a run starts (one-shot: the supernet, seeded)
            self.controller.bind(self.space, self.task, self.objectives, cfg.seed)
        except (ValueError, TypeError) as exc:
            raise RunSetupError(str(exc)) from None
        # A latency look-up table among the evaluators also drives latency-aware search.
        self.latency_lut = next((t for e in self.evaluators if (t := getattr(e, "latency_table", None))), None)
        self.executor = make_executor(self.executor_options, "max" if self.objectives[0].direction == "max" else "min")
        group = self.executor.group_size()
        if group > 1 and getattr(self.controller, "data_parallel", False):
            try:  # a data-parallel search on the executor's group (Ray Train): its batch must split
                self.controller.check_group(group)
            except ValueError as exc:
                raise RunSetupError(str(exc)) from None
        try:
            if self.rank == 0:  # a local Ray or the cluster: unreachable is one line, nothing written
                self.executor.start(self.log)
        except ValueError as exc:
            raise RunSetupError(str(exc)) from None

        self.run_dir: Path | None = None
        if self.write_files:
            self.run_dir = self._resolve_run_dir()

    def _check_processes(self) -> None:
        """Several torchrun processes need a controller that searches in parallel and no --join."""
        world = launched_world()
        if world == 1:
            return
        if not getattr(self.controller, "data_parallel", False):
            raise RunSetupError(f"controller {self.config.controller.name!r} does not search with several processes "
                                f"(torchrun started {world}); only data-parallel supernet searches (darts) do; run it "
                                "as one process")
        if self.join:
            raise RunSetupError("--join adds one worker to a run; start it without torchrun")

    def _resolve_run_dir(self) -> Path:
        cfg = self.config
        if cfg.run_dir:
            path = Path(cfg.run_dir)
            if self.resume:
                if not (path / "config.yaml").is_file():
                    raise RunSetupError(f"--resume {path}: no config.yaml there, so it is not a run directory")
            elif blocking_file(path) is not None:
                raise RunSetupError(f"--run-dir {path}: {blocking_file(path)} is a file, not a folder; give a new or "
                                    "empty directory")
            elif path.exists() and any(path.iterdir()):
                raise RunSetupError(
                    f"run directory {path} already holds files; continue it with --resume {path} or pick another --run-dir"
                )
            return path.resolve()
        base = Path("runs") / f"{cfg.space.name}-{cfg.controller.name}".replace(":", "_").replace("/", "_")
        if blocking_file(base) is not None:
            raise RunSetupError(f"the default run directory {base} cannot be made: {blocking_file(base)} is a file; "
                                "give --run-dir")
        path, n = base, 1
        while path.exists():
            n += 1
            path = Path(f"{base}-{n}")
        cfg.run_dir = str(path)
        return path.resolve()

    # -- files and store ------------------------------------------------------------------------
    def _open(self, storage: Any, tensorboard: bool) -> None:
        created = None  # the outermost folder this run makes: removed again when the set-up fails
        if self.run_dir is not None and not self.run_dir.exists():
            created = self.run_dir
            while not created.parent.exists():
                created = created.parent
        self.lock: RunLock | None = None
        try:
            self._open_files(storage, tensorboard)
        except Exception as exc:
            self.executor.close()
            if self.lock is not None:
                self.lock.release()
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)  # never leave a half-written run
            if isinstance(exc, RunSetupError):
                raise
            if isinstance(exc, (ValueError, ImportError, OSError)) or type(exc).__module__.startswith("sqlalchemy"):
                given = f"--storage {self.config.storage}: " if self.config.storage else ""
                raise RunSetupError(f"{given}cannot open the trial store: {str(exc).splitlines()[0]}"
                                    + ("; accepted: an SQLAlchemy URL, e.g. sqlite:///PATH/study.db" if given else "")
                                    ) from None
            raise

    def _open_files(self, storage: Any, tensorboard: bool) -> None:
        cfg = self.config
        if storage is None:
            if not self.resume:
                cfg.storage = absolute_sqlite(cfg.storage)  # config.yaml names the file from any folder
            storage = cfg.storage or (default_storage(str(self.run_dir)) if self.run_dir else None)
        # Several processes may share a database store (--join beside a running search, Ray
        # workers of a cluster); an in-memory store belongs to this process alone.
        self.shared_store = storage is not None and not isinstance(storage, optuna.storages.InMemoryStorage)
        study_name = cfg.study_name or (self.run_dir.name if self.run_dir else "automl")
        if self.resume and not cfg.study_name:  # a run from before config.yaml kept it, copied or renamed
            study_name = only_study(storage) or study_name
        if self.resume:  # checked before anything is written: a lost store is never started over
            try:
                self.store = TrialStore.open_existing(storage, study_name, self.objectives, pruner=_pruner(cfg.pruner))
            except StoreMissing as exc:
                raise RunSetupError(f"--resume {self.run_dir}: {exc}; its trials are lost and resuming would start "
                                    "the run over; restore the store, or start a new run with another --run-dir") from None
            done = len(self.store.records())
            if cfg.budget < done:
                raise RunSetupError(f"--budget {cfg.budget} is below the {done} trials this run already has; give a "
                                    f"budget above {done} to extend it")
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock = RunLock(self.run_dir)
            try:
                self.role = self.lock.acquire(join=self.join, log=self.log)
            except RunBusy as exc:
                self.lock = None
                raise RunSetupError(str(exc)) from None
            if not self.resume:
                cfg.study_name = study_name  # kept: a copied or renamed run folder still finds its study
                cfg.dump(self.run_dir / "config.yaml")
                if self.dataset is not None:
                    record = {"summary": self.dataset.summary(), "split": self.dataset.split_record()}
                    (self.run_dir / "dataset.json").write_text(json.dumps(record) + "\n")
        if not self.resume:
            self.store = TrialStore(storage, study_name, self.objectives, pruner=_pruner(cfg.pruner))
        self.writer = None
        if tensorboard and self.run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))

    def workbench(self) -> Workbench:
        """What a worker needs to run this run's trials (picklable; see :mod:`automl.trial`)."""
        cfg = self.config
        evaluators: tuple[Any, ...] = tuple(self.evaluators) if self.custom_evaluators else tuple(
            (_portable(e.name), dict(e.options)) for e in cfg.evaluators)
        return Workbench(
            space=(_portable(cfg.space.name), dict(cfg.space.options)), evaluators=evaluators, task=self.task,
            dataset=self.dataset_ref, device=cfg.device, seed=cfg.seed,
            run_dir=str(self.run_dir) if self.run_dir else None, tensorboard=self.tensorboard, mnas=self.mnas,
            timeout=self.executor_options.trial_timeout, retries=self.executor_options.retries,
            threads=self.executor_options.trial_threads(), deadline=self.deadline,
        )

    @property
    def deadline(self) -> float | None:
        """The wall-clock time (``time.time()``) ``time_limit`` ends the search and its trials at."""
        limit = self.config.time_limit
        return self.started + limit if limit else None

    def _reporter(self, trial: optuna.Trial) -> Callable[[int, float], bool]:
        """``ctx.report`` of the local executor: intermediate values to the Optuna pruner."""
        if self.config.pruner == "none" or len(self.objectives) > 1:
            return lambda step, value: False

        def report(step: int, value: float) -> bool:
            trial.report(float(value), int(step))
            return trial.should_prune()

        return report

    def _draw(self, arch: Any, path: Path, title: str) -> Path | None:
        from automl.drawing import draw_arch

        return draw_arch(self.space, arch, path, title=title)

    # -- the search -----------------------------------------------------------------------------
    def execute(self) -> RunSummary:
        if self.rank > 0:
            return self._search_worker()
        t_start = time.perf_counter()
        cfg = self.config
        opts = self.executor_options
        progress: _Progress | None = None  # shown once prepare (which reports on its own) is done

        kept = _FrontWeights(self.run_dir, self.objectives) if self.run_dir is not None and any(
            getattr(e, "weights_on_front_only", False) for e in self.evaluators) else None

        def on_record(rec: TrialRecord, records: list[TrialRecord]) -> None:
            self._track(rec, records)
            if kept is not None:
                kept.add(rec)
            if progress:
                progress.update(records)

        engine = self.engine = Engine(
            self.controller, self.space, self.store, self.objectives, self.constraints, self.hidden, cfg.budget,
            max_in_flight=opts.max_in_flight(), shared_store=self.shared_store, log=self.log, on_record=on_record,
            deadline=self.deadline,
        )
        wb = self.workbench()
        bench = Bench(wb, space=self.space, evaluators=self.evaluators, dataset=self.dataset)
        bench.register()
        if self.dataset_ref is not None:
            self.dataset_ref.keep(self.dataset)
        executor = self.executor
        try:
            records: list[TrialRecord] = []
            reference = None
            phases: dict[str, float] = {}
            if self.resume:
                n = self.store.mark_interrupted()
                if n:
                    self.log(f"{n} interrupted trial(s) will be evaluated again")
                records = self.store.records(order="told")
            if self.deadline is not None:
                self.log(f"time limit: trials train until {cfg.time_limit:g} s after the start "
                         f"({time.strftime('%H:%M:%S', time.localtime(self.deadline))}; --time-limit)")
            t_phase = time.perf_counter()
            self.controller.prepare(PrepareContext(
                dataset=self.dataset, device=cfg.device,
                checkpoint_dir=(self.run_dir / "supernet") if self.run_dir else None, run_dir=self.run_dir,
                writer=self.writer, log=self.log, latency_lut=self.latency_lut, max_in_flight=opts.max_in_flight(),
                draw=self._draw if self.run_dir is not None else None,
                call=None if executor.in_process else executor.call, scorings=self.store,
                call_group=executor.call_group if executor.group_size() > 1 else None,
                group_size=executor.group_size(), dataset_ref=self.dataset_ref,
            ))
            phases[getattr(self.controller, "prepare_label", "set-up")] = time.perf_counter() - t_phase
            if self.lock is not None:
                self.lock.share()  # set-up done: --join workers may come in
            if kept is not None:
                kept.start(records)
            if records:
                diverged = engine.replay(records)
                self.log(f"resumed {len(records)} trial(s)" + (f"; {diverged} replay step(s) diverged" if diverged else ""))
            if self.show_progress:
                progress = _Progress(self, cfg.budget, len(engine.records))
            t_phase = time.perf_counter()
            executor.run(engine, wb, self._reporter)
            phases["trials"] = time.perf_counter() - t_phase
            if self.reference is not None and self.role == "owner" and engine.records:
                t_phase = time.perf_counter()
                reference = self.reference.evaluate(wb, self.run_dir, None if executor.in_process else executor.call,
                                                    self.log, best=best(engine.records, self.objectives[0]))
                phases["reference"] = time.perf_counter() - t_phase
        except KeyboardInterrupt:
            engine.interrupt()
            raise
        finally:
            engine.close()
            executor.close()
            if self.lock is not None:
                self.lock.release()  # the run directory is free once the search has returned
            bench.forget()
            if progress:
                progress.stop()
            if self.writer is not None:
                self.writer.flush()
        records = sorted(engine.records, key=lambda r: r.number)
        return RunSummary(
            run_dir=self.run_dir,
            records=records,
            objectives=self.objectives,
            stopped=engine.stopped,
            front=front(records, self.objectives),
            best=best(records, self.objectives[0]),
            duplicates=engine.duplicates,
            seconds=time.perf_counter() - t_start,
            reference=reference,
            phase_seconds=phases,
        )

    def _search_worker(self) -> RunSummary:
        """Rank > 0 of a torchrun launch: the supernet search with rank 0, nothing else."""
        t_start = time.perf_counter()
        self.controller.prepare(PrepareContext(dataset=self.dataset, device=self.config.device, log=self.log,
                                               latency_lut=self.latency_lut))
        return RunSummary(run_dir=None, records=[], objectives=self.objectives, stopped="search worker done",
                          seconds=time.perf_counter() - t_start)

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
        self.executor.close()
        if self.writer is not None:
            self.writer.close()
        if self.lock is not None:
            self.lock.release()


class _FrontWeights:
    """Keeps ``trials/NNNNN/weights.pt`` of the trials on the Pareto front and removes the rest
    (for evaluators with ``weights_on_front_only``). The front of all trials is the front of the
    previous front plus the new trial, so each record costs O(front²)."""

    def __init__(self, run_dir: Path, objectives: tuple[Objective, ...]) -> None:
        self.run_dir, self.objectives = run_dir, objectives
        self.front: list[TrialRecord] = []

    def start(self, records: list[TrialRecord]) -> None:
        self.front = front(records, self.objectives)

    def add(self, rec: TrialRecord) -> None:
        candidates = [*self.front, rec]
        self.front = front(candidates, self.objectives)
        kept = {r.number for r in self.front}
        for r in candidates:
            if r.number not in kept:
                folder = self.run_dir / "trials" / f"{r.number:05d}"
                (folder / "weights.pt").unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # left when the trial wrote other files
                    folder.rmdir()


def blocking_file(path: Path) -> Path | None:
    """``path`` or its nearest existing ancestor when that is not a folder (a run cannot live there)."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _portable(name: str) -> str:
    """A component name another process resolves the same way (file paths made absolute)."""
    module, sep, attr = name.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{Path(module).resolve()}:{attr}"
    return name


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
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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
