"""``--executor local``: trials run one after another in this process (the default; no Ray)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from automl.engine import WAIT
from automl.executors.base import Executor
from automl.trial import run_trial


class LocalExecutor(Executor):
    """The engine's loop, in-process: next -> run_trial -> finish."""

    name = "local"

    def __init__(self, poll_seconds: float = 1.0) -> None:
        self.poll_seconds = poll_seconds

    def run(self, engine: Any, workbench: Any, reporter: Callable[[Any], Callable[[int, float], bool]]) -> None:
        while True:
            spec = engine.next()
            if spec is None:
                return
            if spec == WAIT:  # another process holds an architecture this run proposed
                time.sleep(self.poll_seconds)
                continue
            trial = engine.running[engine.by_number[spec.number]].trial
            engine.finish(run_trial(workbench, spec, reporter(trial)))
