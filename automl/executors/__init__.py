"""Executors run an :class:`~automl.engine.Engine`'s trials: ``local`` (in-process, one at a time,
no Ray) or ``ray`` (Ray Tune: trials in parallel on a local or remote Ray cluster)."""

from automl.executors.base import EXECUTORS, SCHEDULERS, Executor, ExecutorOptions

__all__ = ["EXECUTORS", "SCHEDULERS", "Executor", "ExecutorOptions", "make_executor"]


def make_executor(options: ExecutorOptions, mode: str = "max") -> Executor:
    """The executor ``options`` name; ``mode`` (max|min) orients the scheduler's metric."""
    if options.executor == "ray":
        from automl.executors.ray_tune import RayTuneExecutor  # Ray is imported only here

        return RayTuneExecutor(options, metric_mode=mode)
    from automl.executors.local import LocalExecutor

    return LocalExecutor()
