"""A picklable reference to a dataset, loaded once per process.

Trials may run in other processes (the Ray executor): they get a :class:`DatasetRef` (the spec,
task kind and split seed), never the arrays, and :meth:`DatasetRef.load` reads the data the
first time a process needs it and serves the same object afterwards.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from evaluators.data.dataset import Dataset
from evaluators.data.load import load_dataset

_CACHE: dict[tuple[str, str | None, int], Dataset] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class DatasetRef:
    """``load_dataset(spec, task_kind=task_kind, seed=seed)``, by reference."""

    spec: str
    task_kind: str | None = None
    seed: int = 0

    def load(self) -> Dataset:
        key = (self.spec, self.task_kind, self.seed)
        with _LOCK:
            if key not in _CACHE:
                _CACHE[key] = load_dataset(self.spec, task_kind=self.task_kind, seed=self.seed)
            return _CACHE[key]

    def keep(self, dataset: Any) -> None:
        """Register an already loaded dataset for this reference (the driver's own copy)."""
        with _LOCK:
            _CACHE[(self.spec, self.task_kind, self.seed)] = dataset
