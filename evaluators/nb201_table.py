"""``nb201-table``: look an architecture up in a NAS-Bench-201 table instead of training it.

Metrics (accuracies in percent, as in the published tables):

* ``valid_acc`` — ``{dataset}_valid_acc_12ep``: the 12-epoch validation accuracy, the search
  signal of the NAS-Bench-201 protocol;
* ``test_acc`` — ``{dataset}_test_acc_200ep``: the 200-epoch test accuracy; **report-only**, it
  is stored and shown but never reaches a controller;
* ``params_M``, ``flops_M`` — from ``params_M_{dataset}`` / ``flops_M_{dataset}`` when present;
* ``latency_ms`` — with ``latency_device``, from the latency table (``nb201_latency.csv``).

Every column name can be overridden, so the same evaluator reads ``cifar100_*`` or
``imagenet16_*`` columns of a full table.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from evaluators.base import EvalContext, EvaluationError, Evaluator
from automl.types import Arch, Task
from search_spaces.base import SearchSpace

_REPO = Path(__file__).resolve().parents[1]


def find_shared_file(filename: str, env: str) -> Path | None:
    """Locate a file of the shared benchmark folder: ``$ENV`` (which must then name a file),
    else ``../shared/benchmarks`` near the repository or the working directory."""
    candidates = []
    if os.environ.get(env):
        named = Path(os.environ[env])
        if not named.is_file():
            raise ValueError(f"{env}={named} names no file; point it at the table or unset it")
        return named
    for base in (_REPO.parent, Path.cwd(), Path.cwd().parent):
        candidates.append(base / "shared" / "benchmarks" / filename)
    return next((p for p in candidates if p.is_file()), None)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "arch_str" not in reader.fieldnames:
            raise ValueError(f"{path}: not a NAS-Bench-201 table (no 'arch_str' column)")
        rows = {row["arch_str"]: row for row in reader}
    return list(reader.fieldnames), rows


def load_table(path: str | Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Columns and rows keyed by the official arch string (cached per file version)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"table not found: {p}")
    return _load(str(p.resolve()), p.stat().st_mtime)


def latency_column(device: str, columns: list[str]) -> str:
    """Resolve ``pixel3`` / ``help_gold_6226`` / a full column name to a latency column."""
    for name in (device, f"hwnasbench_{device}_latency_ms", f"help_{device}_latency_ms", f"{device}_latency_ms"):
        if name in columns:
            return name
    devices = sorted(c.removesuffix("_latency_ms") for c in columns if c.endswith("_latency_ms"))
    raise ValueError(f"nb201-table: unknown latency_device {device!r}; known: {', '.join(devices)}")


# The tasks the NAS-Bench-201 tables describe (by the prefix of their columns).
TABLE_TASKS: dict[str, Task] = {
    "cifar10": Task("classification", 3, (32, 32), 10),
    "cifar100": Task("classification", 3, (32, 32), 100),
    "imagenet16": Task("classification", 3, (16, 16), 120),
}


def _shape(task: Task) -> tuple[object, ...]:
    return task.kind, task.in_channels, tuple(task.input_size), task.num_classes


def _describe(task: Task) -> str:
    h, w = task.input_size
    return f"{task.kind}, {h}x{w}x{task.in_channels}, {task.num_classes} classes"


class NB201TableEvaluator(Evaluator):
    """Table look-up of NAS-Bench-201 accuracies, size and device latency."""

    name: ClassVar[str] = "nb201-table"
    description: ClassVar[str] = "NAS-Bench-201 table look-up (12-epoch valid, 200-epoch test, params, FLOPs, latency)"
    needs_model: ClassVar[bool] = False
    provides: ClassVar[tuple[str, ...]] = ("valid_acc", "test_acc", "params_M", "flops_M", "latency_ms")
    report_only: ClassVar[tuple[str, ...]] = ("test_acc",)
    path_options: ClassVar[tuple[str, ...]] = ("table",)
    default_objective: ClassVar[str | None] = "valid_acc:max"

    def __init__(
        self,
        table: str | None = None,
        dataset: str = "cifar10",
        valid_column: str | None = None,
        test_column: str | None = None,
        params_column: str | None = None,
        flops_column: str | None = None,
        latency_table: str | None = None,
        latency_device: str | None = None,
    ) -> None:
        found = Path(table) if table else find_shared_file("nb201_cifar10.csv", "AUTOML_NB201_TABLE")
        if found is None:
            raise ValueError(
                "nb201-table: no table given and none found at ../shared/benchmarks/nb201_cifar10.csv; "
                "pass table: PATH (or set AUTOML_NB201_TABLE)"
            )
        if not found.is_file():
            raise ValueError(f"nb201-table: table not found: {found}")
        self.table = str(found)
        self.columns, self.rows = load_table(found)
        self.valid_column = valid_column or f"{dataset}_valid_acc_12ep"
        self.test_column = test_column or f"{dataset}_test_acc_200ep"
        self.params_column = params_column or f"params_M_{dataset}"
        self.flops_column = flops_column or f"flops_M_{dataset}"
        for label, col in (("valid_column", self.valid_column), ("test_column", self.test_column)):
            if col not in self.columns:
                raise ValueError(
                    f"nb201-table: {label} {col!r} is not a column of {found.name}; columns: {', '.join(self.columns)}"
                )
        self.latency_column: str | None = None
        self.latency_rows: dict[str, dict[str, str]] = {}
        if latency_device:
            lat_path = Path(latency_table) if latency_table else find_shared_file(
                "nb201_latency.csv", "AUTOML_NB201_LATENCY_TABLE"
            )
            if lat_path is None or not lat_path.is_file():
                raise ValueError("nb201-table: latency_device given but no latency table found; pass latency_table: PATH")
            lat_columns, self.latency_rows = load_table(lat_path)
            self.latency_column = latency_column(latency_device, lat_columns)

    def setup(self, space: SearchSpace, task: Task) -> None:
        if not hasattr(space, "describe") or space.name != "nb201":
            raise ValueError(f"nb201-table evaluates the 'nb201' space only, not {space.name!r}")
        described = TABLE_TASKS.get(self.table_dataset)
        if described is not None and _shape(task) != _shape(described):
            raise ValueError(
                f"nb201-table holds {self.table_dataset} results ({_describe(described)}) but this run's data is "
                f"{_describe(task)}; score it with --evaluator train (or search on {self.table_dataset} data)"
            )

    @property
    def table_dataset(self) -> str:
        return self.valid_column.split("_", 1)[0]

    def lookup(self, arch_str: str) -> dict[str, float]:
        row = self.rows.get(arch_str)
        if row is None:
            raise EvaluationError(f"nb201-table: {arch_str} is not in {self.table}")
        out = {"valid_acc": float(row[self.valid_column]), "test_acc": float(row[self.test_column])}
        for metric, col in (("params_M", self.params_column), ("flops_M", self.flops_column)):
            if col in row:
                out[metric] = float(row[col])
        if self.latency_column:
            out["latency_ms"] = float(self.latency_rows[arch_str][self.latency_column])
        return out

    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        return self.lookup(ctx.space.describe(arch))
