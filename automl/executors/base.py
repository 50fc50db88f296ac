"""The executor contract and the options every executor shares (checked once, one-line errors)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

EXECUTORS: tuple[str, ...] = ("local", "ray")
SCHEDULERS: tuple[str, ...] = ("none", "asha")


@dataclass(frozen=True)
class ExecutorOptions:
    """``--executor``, ``--workers``, ``--ray-address``, ``--trial-cpus``, ``--trial-gpus``,
    ``--trial-timeout``, ``--retries``, ``--scheduler``."""

    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    trial_cpus: float = 1.0
    trial_gpus: float = 0.0
    trial_timeout: float | None = None
    retries: int = 0
    scheduler: str = "none"
    device: str = "cpu"

    @classmethod
    def from_config(cls, cfg: Any) -> ExecutorOptions:
        """The options of a ``RunConfig`` (its keys of the same names), checked."""
        opts = cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})
        opts.check()
        return opts

    def check(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {self.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        if _bad_int(self.workers, 1):
            raise ValueError(f"workers must be an integer >= 1, got {self.workers!r}")
        if _bad_int(self.retries, 0):
            raise ValueError(f"retries must be an integer >= 0, got {self.retries!r}")
        if _bad_number(self.trial_cpus) or self.trial_cpus <= 0:
            raise ValueError(f"trial-cpus must be a number > 0, got {self.trial_cpus!r}")
        if _bad_number(self.trial_gpus) or self.trial_gpus < 0:
            raise ValueError(f"trial-gpus must be a number >= 0 (0.25 puts four trials on one GPU), got {self.trial_gpus!r}")
        if self.trial_gpus > 1 and self.trial_gpus != int(self.trial_gpus):
            raise ValueError(f"trial-gpus above 1 must be a whole number of GPUs, got {self.trial_gpus!r}")
        if self.trial_timeout is not None and (_bad_number(self.trial_timeout) or self.trial_timeout <= 0):
            raise ValueError(f"trial-timeout must be a number of seconds > 0, got {self.trial_timeout!r}")
        if self.executor == "local":
            given = [name for name, bad in (("--workers", self.workers != 1), ("--ray-address", self.ray_address),
                                            ("--trial-gpus", self.trial_gpus), ("--scheduler", self.scheduler != "none"))
                     if bad]
            if given:
                raise ValueError(f"{', '.join(given)} {'need' if len(given) > 1 else 'needs'} --executor ray (the local executor runs one trial at a time "
                                 "in this process)")
        if self.executor == "ray" and self.device.startswith("cuda") and not self.trial_gpus:
            raise ValueError(f"--device {self.device} under --executor ray needs --trial-gpus (e.g. 1, or 0.25 for "
                             "four trials per GPU): each trial sees only the GPUs Ray gives it")
        if self.trial_gpus and not self.device.startswith("cuda"):
            raise ValueError(f"--trial-gpus {self.trial_gpus:g} needs --device cuda (got --device {self.device})")

    def check_run(self, objectives: int, pruner: str) -> None:
        """Checks that need the run's objectives and pruner."""
        if self.executor == "ray" and pruner != "none":
            raise ValueError(f"--pruner {pruner} works with the local executor; under --executor ray use "
                             "--scheduler asha to stop poor trials")
        if pruner != "none" and objectives > 1:
            raise ValueError(f"--pruner {pruner} stops trials by one intermediate value; give one --objective "
                             f"(got {objectives}) or --pruner none")
        if self.scheduler == "asha" and objectives > 1:
            raise ValueError("--scheduler asha stops trials by one metric; give one --objective")

    def max_in_flight(self) -> int:
        return self.workers if self.executor == "ray" else 1

    def trial_threads(self) -> int | None:
        """torch threads of one trial: ``--trial-cpus`` under Ray (never fewer than 1)."""
        return max(1, int(self.trial_cpus)) if self.executor == "ray" else None


class Executor(ABC):
    """Runs the trials an :class:`~automl.engine.Engine` hands out until it says the search is over."""

    name = ""
    in_process = True  # trials run in this process (False: elsewhere, see call)

    def start(self, log: Callable[[str], Any] | None = None) -> None:
        """Acquire what the executor needs (a Ray connection); ValueError (one line) when not possible."""

    @abstractmethod
    def run(self, engine: Any, workbench: Any, reporter: Callable[[Any], Callable[[int, float], bool]]) -> None:
        """Drive ``engine``; ``reporter(optuna_trial)`` gives ``ctx.report`` for in-process pruning."""

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the resources of one trial, where trials run (a controller's supernet
        training goes through this): here, in this process."""
        return fn(*args)

    def group_size(self) -> int:
        """Processes a :meth:`call_group` runs on (1: no data-parallel group)."""
        return 1

    def call_group(self, fn: Callable[..., Any], *args: Any, log: Callable[[str], Any] | None = None) -> Any:
        """``fn(*args)`` on :meth:`group_size` processes that share one ``torch.distributed``
        process group (Ray Train under the Ray executor); rank 0's return value. With ``log``,
        each member runs ``fn(*args, log=...)`` and the lines rank 0 passes reach ``log`` here
        while the group runs. Here: once, in this process."""
        return fn(*args, log=log) if log is not None else fn(*args)

    def close(self) -> None:
        """Release what the executor started (a local Ray instance)."""


def _bad_int(value: Any, minimum: int) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < minimum


def _bad_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
