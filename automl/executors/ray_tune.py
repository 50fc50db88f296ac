"""``--executor ray``: trials in parallel on Ray Tune, on a local or an existing Ray cluster.

The engine becomes a Tune ``Searcher`` (:class:`EngineSearcher`): ``suggest`` asks the engine
for the next trial (``None`` = "nothing now" while ``--workers`` trials are in flight or
another process holds an architecture, ``FINISHED`` when the budget is spent) and
``on_trial_complete`` records the outcome in the run's Optuna store and tells the controller,
so every trial lands in the store exactly as with the local executor. Tune provides the rest:
per-trial resources (``--trial-cpus``, ``--trial-gpus``, fractions included: 0.25 puts four
trials on one GPU, each trial sees only its device through ``CUDA_VISIBLE_DEVICES``), retries
of trials whose worker process died (``FailureConfig(max_failures=--retries)``) and the ASHA
scheduler (``--scheduler asha``), which stops poor training trials from the intermediate values
the evaluators report (``ctx.report``); a stopped trial is stored as PRUNED.

Exceptions inside a trial never reach Tune: :func:`automl.trial.run_trial` turns them into a
failed outcome (and re-runs them up to ``--retries`` times itself). Workers get the picklable
:class:`~automl.trial.Workbench` once (``tune.with_parameters``) and load the dataset once per
process. Without ``--ray-address`` a local Ray starts bound to 127.0.0.1 (no dashboard, a
256 MiB object store) and is shut down after the search; Tune's own bookkeeping goes to a
temporary folder that is removed afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from automl.engine import WAIT
from automl.executors.base import Executor, ExecutorOptions
from automl.trial import TrialOutcome, TrialSpec, Workbench, run_trial

OUTCOME = "automl_outcome"  # the trial's final result: TrialOutcome as JSON
VALUE = "automl_value"  # intermediate values for ASHA (and 0 in the final result)
STEP = "automl_step"
LOCAL_OBJECT_STORE = 256 * 1024**2
GROUP_RESULT = "result.pkl"  # rank 0's return value in a call_group's Ray Train checkpoint

# Set before Ray is imported or started (values already in the environment win).
_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no CSV / JSON / TensorBoard files from Tune
    "RAY_AIR_NEW_OUTPUT": "0",  # the classic reporter honours verbose=0
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # trials keep the driver's working directory (relative paths)
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1",  # a trial without GPUs sees none (CUDA_VISIBLE_DEVICES="")
}
# A local Ray listens on loopback only with this setting, read when ray is imported (the node
# address argument alone is turned back into the routable address).
_LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _trainable(config: dict[str, Any], workbench: Workbench) -> None:
    """One Tune trial: run the spec in ``config`` and report its outcome as the final result."""
    from ray import tune

    from evaluators.base import TrialPruned

    spec = TrialSpec(**config["spec"])
    asha = bool(config.get("report"))
    stopped = False

    def report(step: int, value: float) -> bool:
        nonlocal stopped
        if asha:
            try:
                tune.report({VALUE: float(value), STEP: int(step)})
            except SystemExit:  # Tune stops a trial (ASHA) with sys.exit(0) inside report
                stopped = True
                raise TrialPruned(f"stopped by ASHA after step {step}") from None
        return False  # ASHA stops the trial itself

    outcome = run_trial(workbench, spec, report)
    if stopped:  # Tune already ended this trial; it records the pruned result itself
        sys.exit(0)
    tune.report({VALUE: 0.0, OUTCOME: json.dumps(dataclasses.asdict(outcome))})


def _threaded(fn: Callable[..., Any], threads: int, *args: Any) -> Any:
    """Run ``fn(*args)`` in a Ray worker with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


def _group_member(config: dict[str, Any]) -> None:
    """One Ray Train worker of :meth:`RayTuneExecutor.call_group`: ``fn(*args)`` with the process
    group Ray Train set up; rank 0 hands its return value back as the run's checkpoint."""
    import pickle

    import ray.train
    import torch

    torch.set_num_threads(config["threads"])
    rank = ray.train.get_context().get_world_rank()
    lines = config.get("log")  # a ray.util.queue.Queue the driver drains into its log
    if lines is None:
        value = config["fn"](*config["args"])
    else:
        value = config["fn"](*config["args"], log=lines.put if rank == 0 else None)
    if rank != 0:
        ray.train.report({}, checkpoint=None)  # every worker reports as often as rank 0 does
        return
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, GROUP_RESULT), "wb") as f:
            pickle.dump(value, f)
        ray.train.report({}, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _searcher_class() -> type:
    from ray import tune
    from ray.tune.search import Searcher

    class EngineSearcher(Searcher):
        """The run's engine as a Tune searcher (see the module docstring)."""

        def __init__(self, engine: Any, metric: str, mode: str, report: bool) -> None:
            super().__init__(metric=metric, mode=mode)
            self.engine, self.report = engine, report
            self.specs: dict[str, TrialSpec] = {}
            self.errors: dict[str, str] = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            spec = self.engine.next()
            if spec is None:
                return Searcher.FINISHED if not self.engine.in_flight else None
            if spec == WAIT:
                return None
            self.specs[trial_id] = spec
            return {"spec": dataclasses.asdict(spec), "report": self.report}

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            spec = self.specs.pop(trial_id, None)
            if spec is None:
                return
            if result and isinstance(result.get(OUTCOME), str):
                outcome = TrialOutcome(**json.loads(result[OUTCOME]))
            elif error:
                why = self.errors.pop(trial_id, "the trial's worker process died")
                outcome = TrialOutcome(spec.number, "failed", {}, f"Ray worker failed: {why}",
                                       float((result or {}).get("time_total_s", 0.0)))
            else:  # stopped by the scheduler before it finished
                step = (result or {}).get(STEP)
                outcome = TrialOutcome(spec.number, "pruned", {}, f"pruned: stopped by ASHA after step {step}",
                                       float((result or {}).get("time_total_s", 0.0)))
            self.engine.finish(outcome)

        def __getstate__(self) -> dict[str, Any]:  # Tune pickles the searcher; the engine stays here
            return {k: v for k, v in self.__dict__.items() if k not in ("engine", "lock")}

        def save(self, checkpoint_path: str) -> None:  # the store is the record; nothing to save
            pass

        def restore(self, checkpoint_path: str) -> None:
            pass

    class ErrorText(tune.Callback):
        """Keeps the reason of a trial whose worker failed, for the store."""

        def __init__(self, searcher: Any) -> None:
            self.searcher = searcher

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            text = ""
            try:
                path = getattr(trial, "error_file", None)
                if path and os.path.exists(path):
                    lines = [ln for ln in open(path).read().splitlines() if ln.strip()]
                    text = lines[-1] if lines else ""
            except OSError:
                pass
            self.searcher.errors[trial.trial_id] = text[:500] or "the trial's worker process died"

    EngineSearcher.ErrorText = ErrorText  # type: ignore[attr-defined]
    return EngineSearcher


class RayTuneExecutor(Executor):
    """Trials as Ray Tune trials (see the module docstring)."""

    name = "ray"
    in_process = False

    def __init__(self, options: ExecutorOptions, *, metric_mode: str = "max") -> None:
        self.options = options
        self.mode = metric_mode
        self.owns_ray = False
        self.storage: str | None = None

    def start(self, log: Callable[[str], Any] | None = None) -> None:
        """Start a local Ray or connect to ``--ray-address``; ValueError (one line) when not possible."""
        for k, v in _ENV.items():
            os.environ.setdefault(k, v)
        if not self.options.ray_address:
            for k, v in _LOCAL_ENV.items():
                os.environ.setdefault(k, v)
        try:
            import ray
            from ray import tune  # noqa: F401 - checks that Tune is installed
        except ImportError as exc:
            raise ValueError(f"--executor ray needs Ray Tune ({exc}); install it with pip install 'automl[ray]'") from None
        o = self.options
        if o.ray_address:
            _check_reachable(o.ray_address)
        if ray.is_initialized():  # started by the caller (a notebook, a test fixture)
            return
        if log is not None:
            log(f"connecting to the Ray cluster at {o.ray_address}" if o.ray_address else
                "starting a local Ray on 127.0.0.1 (a few seconds)")
        try:
            if o.ray_address:
                ray.init(address=o.ray_address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                _loopback_only()
                ray.init(num_cpus=os.cpu_count() or 1, num_gpus=_gpus(), include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE, _node_ip_address="127.0.0.1",
                         logging_level=logging.WARNING, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
            where = f"the Ray cluster at {o.ray_address!r}" if o.ray_address else "a local Ray"
            raise ValueError(f"cannot start {where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        self.owns_ray = True

    def run(self, engine: Any, workbench: Workbench, reporter: Callable[[Any], Callable[[int, float], bool]]) -> None:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        import ray

        if not ray.is_initialized():
            self.start()
        o = self.options
        if o.trial_gpus:
            workbench = dataclasses.replace(workbench, device="cuda")  # the trial's own GPU(s)
        asha = o.scheduler == "asha"
        searcher = _searcher_class()(engine, VALUE, self.mode, asha)
        scheduler = ASHAScheduler(metric=VALUE, mode=self.mode, time_attr=STEP, grace_period=1, max_t=10_000,
                                  reduction_factor=3) if asha else FIFOScheduler()
        self.storage = tempfile.mkdtemp(prefix="automl-tune-")
        resources = {"cpu": o.trial_cpus, "gpu": o.trial_gpus}
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, workbench=workbench), resources),
            # reuse_actors: a worker process serves trial after trial (its dataset loaded once):
            # 10-100 ms per trial instead of ~2 s for a fresh process on a 2-core machine.
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                        max_concurrent_trials=o.workers, reuse_actors=True),
            run_config=tune.RunConfig(
                name="automl", storage_path=self.storage, verbose=0,
                callbacks=[searcher.ErrorText(searcher)],
                failure_config=tune.FailureConfig(max_failures=o.retries),
                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=0, checkpoint_at_end=False),
            ),
        )
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
        tuner.fit()
        if engine.in_flight:  # Tune stopped early (Ctrl-C): those trials run again on resume
            raise KeyboardInterrupt

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as a Ray task with one trial's resources (``--trial-cpus`` threads,
        ``--trial-gpus``); its exceptions come back as they were raised."""
        import ray

        if not ray.is_initialized():
            self.start()
        o = self.options
        task = ray.remote(num_cpus=o.trial_cpus, num_gpus=o.trial_gpus, max_retries=0)(_threaded)
        try:
            return ray.get(task.remote(fn, max(1, int(o.trial_cpus)), *args))
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None

    def group_size(self) -> int:
        return self.options.workers

    def call_group(self, fn: Callable[..., Any], *args: Any, log: Callable[[str], Any] | None = None) -> Any:
        """``fn(*args)`` on ``--workers`` Ray Train workers (``TorchTrainer``: a gloo or NCCL
        process group, ``--trial-cpus`` / ``--trial-gpus`` each); rank 0's return value, passed
        back through a Ray Train checkpoint. With ``log``, rank 0's lines come back through a Ray
        queue as they are written. A worker's exception comes back as a ValueError of one line."""
        import pickle

        import ray
        import ray.train
        from ray.train.torch import TorchTrainer

        if not ray.is_initialized():
            self.start()
        o = self.options
        resources = {"CPU": o.trial_cpus, **({"GPU": o.trial_gpus} if o.trial_gpus else {})}
        storage = tempfile.mkdtemp(prefix="automl-train-")
        relay = _LogRelay(log) if log is not None else None
        trainer = TorchTrainer(
            _group_member,
            train_loop_config={"fn": fn, "args": args, "threads": max(1, int(o.trial_cpus)),
                               "log": relay.queue if relay is not None else None},
            scaling_config=ray.train.ScalingConfig(num_workers=o.workers, use_gpu=bool(o.trial_gpus),
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(name="automl-group", storage_path=storage,
                                           failure_config=ray.train.FailureConfig(max_failures=0)),
        )
        try:
            try:
                result = trainer.fit()
            except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error in its own types
                raise ValueError(f"data-parallel group of {o.workers} Ray Train workers failed: {_first_line(exc)}") from None
            if result.error is not None:
                raise ValueError(f"data-parallel group of {o.workers} Ray Train workers failed: {_first_line(result.error)}")
            if result.checkpoint is None:
                raise ValueError("data-parallel group: rank 0 returned no result")
            with result.checkpoint.as_directory() as folder, open(os.path.join(folder, GROUP_RESULT), "rb") as f:
                return pickle.load(f)
        finally:
            if relay is not None:
                relay.close()
            shutil.rmtree(storage, ignore_errors=True)

    def close(self) -> None:
        if self.storage is not None:
            shutil.rmtree(self.storage, ignore_errors=True)
            self.storage = None
        if self.owns_ray:
            import ray

            ray.shutdown()
            self.owns_ray = False


class _LogRelay:
    """A Ray queue the members put lines into and a driver thread that passes them to ``log``."""

    def __init__(self, log: Callable[[str], Any]) -> None:
        from ray.util.queue import Queue

        self.log, self.queue = log, Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, name="automl-group-log", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while True:
            try:
                line = self.queue.get(timeout=0.5)
            except Empty:
                if self.stop.is_set():
                    return
                continue
            try:
                self.log(str(line))
            except Exception as exc:  # a broken log must not drop the lines after it unseen
                print(f"automl: could not log a line of rank 0 ({type(exc).__name__}: {exc}): {line}",
                      file=sys.stderr)

    def close(self) -> None:
        """Pass on what is left, then stop the thread and the queue's actor."""
        self.stop.set()
        self.thread.join()
        self.queue.shutdown()


def _first_line(exc: BaseException) -> str:
    """The innermost error of a Ray exception chain as ``Type: first line``."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def _loopback_only() -> None:
    """Keep a local Ray on 127.0.0.1 even when ``ray`` was imported before the setting was made."""
    try:
        import ray._private.ray_constants as constants  # private: the flag the setting feeds

        constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):
        pass


def _check_reachable(address: str) -> None:
    """Fail fast for ``host:port`` / ``ray://host:port`` with nothing listening (ray.init would
    retry for minutes); ``auto`` is checked by Ray itself, at once."""
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise ValueError(f"--ray-address {address!r}: nothing answers there ({exc.strerror or exc})") from None


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0

