"""Executors run an :class:`~automl.engine.Engine`'s trials: ``local`` (in-process, one at a time,
no Ray) or ``ray`` (Ray Tune: trials in parallel on a local or remote Ray cluster)."""

from automl.executors.base import EXECUTORS, SCHEDULERS, Executor, ExecutorOptions, make_executor

__all__ = ["EXECUTORS", "SCHEDULERS", "Executor", "ExecutorOptions", "make_executor"]
