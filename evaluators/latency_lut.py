"""Latency look-up tables for your own device, and the ``latency-lut`` evaluator.

``build_lut`` measures every block configuration a space can produce (``space.lut_entries``)
once on a device, with ``torch.utils.benchmark`` (median of ``blocked_autorange``); the
``latency-lut`` evaluator then predicts an architecture's latency as the sum over its parts
(``space.lut_keys``), the ProxylessNAS / FBNet additive model, in microseconds of work and no
forward pass. It ignores operator fusion and framework overhead between blocks, which
``benchmarks/latency.py`` quantifies (Spearman, MAPE against measured latency).

The JSON file: ``{"space", "options", "task", "device", "batch_size", "threads", "torch",
"entries": {key: ms}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.benchmark import Timer

from evaluators.base import EvalContext, EvaluationError, Evaluator
from automl.types import Arch, Task
from search_spaces.base import SearchSpace


def median_ms(fn: Callable[[], Any], threads: int, min_run_time: float, device: torch.device) -> float:
    """Median milliseconds per call of ``fn`` (warm-up, then ``blocked_autorange``)."""
    for _ in range(3):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timer = Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def build_lut(
    space: SearchSpace,
    task: Task,
    *,
    device: str = "cpu",
    batch_size: int = 1,
    threads: int | None = None,
    min_run_time: float = 0.2,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Measure each entry of ``space.lut_entries(task)``; returns the JSON-ready table."""
    dev = torch.device(device)
    threads = threads or torch.get_num_threads()
    entries = space.lut_entries(task)
    out: dict[str, float] = {}
    gen = torch.Generator().manual_seed(0)
    bases = {e.baseline for e in entries.values() if e.baseline}
    if any(b not in entries or entries[b].baseline for b in bases):
        raise ValueError(f"{space.name}: LUT baselines must be plain entries of the table: {sorted(bases)}")
    for i, (key, entry) in enumerate(sorted(entries.items())):
        module = entry.factory().to(dev).eval()
        inputs = [torch.randn((batch_size, *shape), generator=gen).to(dev) for shape in entry.input_shapes]
        with torch.inference_mode():
            out[key] = median_ms(lambda m=module, xs=inputs: m(*xs), threads, min_run_time, dev)
        if progress:
            progress(i + 1, len(entries), key)
    for key, entry in entries.items():  # replacement costs: relative to their baseline entry
        if entry.baseline is not None:
            out[key] = (out[key] - out[entry.baseline]) / entry.per
    return {
        "space": space.name,
        "task": {**asdict(task), "extra": dict(task.extra)},
        "device": device,
        "batch_size": batch_size,
        "threads": threads,
        "torch": torch.__version__,
        "entries": out,
    }


def predict(space: SearchSpace, arch: Arch, task: Task, entries: Mapping[str, float]) -> float:
    """Σ LUT[key] over the architecture's parts; ``KeyError`` names a missing key."""
    keys = space.lut_keys(arch, task)
    missing = sorted({k for k in keys if k not in entries})
    if missing:
        raise KeyError(missing[0])
    return float(sum(entries[k] for k in keys))


class LatencyLUTEvaluator(Evaluator):
    """Predicted latency (ms) from a look-up table made by ``automl latency-table``."""

    name: ClassVar[str] = "latency-lut"
    description: ClassVar[str] = "latency predicted by summing a measured look-up table (automl latency-table)"
    needs_model: ClassVar[bool] = False
    provides: ClassVar[tuple[str, ...]] = ("latency_ms",)
    default_objective: ClassVar[str | None] = "latency_ms:min"
    path_options: ClassVar[tuple[str, ...]] = ("lut",)

    def __init__(self, lut: str | None = None, metric: str = "latency_ms") -> None:
        if not lut:
            raise ValueError("latency-lut: option 'lut' is required: the JSON written by `automl latency-table`")
        path = Path(lut)
        if not path.is_file():
            raise ValueError(f"latency-lut: LUT file not found: {path}")
        try:
            data = json.loads(path.read_text())
            self.entries = {str(k): float(v) for k, v in data["entries"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"latency-lut: {path} is not a LUT written by `automl latency-table`") from None
        self.space_name = data.get("space")
        self.device = data.get("device", "?")
        self.metric = metric
        self.provides = (metric,)  # type: ignore[misc]

    @property
    def latency_table(self) -> dict[str, float]:
        """The table, offered to latency-aware controllers (the run loop looks for this name)."""
        return self.entries

    def setup(self, space: SearchSpace, task: Task) -> None:
        if "lut" not in space.offers:
            raise ValueError(f"latency-lut: space {space.name!r} offers no latency look-up decomposition")
        if self.space_name and self.space_name != space.name:
            raise ValueError(f"latency-lut: the LUT was measured for space {self.space_name!r}, not {space.name!r}")
        needed = set(space.lut_entries(task))  # descriptions only: nothing is built or measured here
        missing = sorted(needed - set(self.entries))
        if missing:
            raise ValueError(f"latency-lut: the LUT lacks {len(missing)} of the {len(needed)} entries this run needs "
                             f"(e.g. {missing[0]!r}; this run: input {task.in_channels}x"
                             f"{'x'.join(map(str, task.input_size))}, {task.num_classes} classes); measure one for it "
                             "with `automl latency-table` (--input-size, --in-channels, --num-classes, --set space.*)")

    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        try:
            return {self.metric: predict(ctx.space, arch, ctx.task, self.entries)}
        except KeyError as exc:
            raise EvaluationError(
                f"latency-lut: no entry {exc.args[0]!r} in the LUT (measured on {self.device}); "
                "regenerate it with `automl latency-table` for this space and input size"
            ) from None
