"""Shared by the benchmarks that retrain architectures the way a run evaluates its trials."""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from automl import registry
from automl.pareto import best
from automl.report import ReportError, open_run
from automl.run import Run
from automl.trial import Bench, TrialSpec, Workbench, run_trial


def bench_of(run: Run, *evaluators: tuple[str, dict[str, Any]],
             space: tuple[str, dict[str, Any]] | None = None) -> Bench:
    """A bench that evaluates like ``run``'s trials (same task, dataset and device), on the run's
    space or on ``space`` (name, options), e.g. a reference network's."""
    name, options = space or (run.config.space.name, dict(run.config.space.options))
    built = run.space if space is None else registry.create("space", name, options)
    made = [registry.create("evaluator", ev, opts) for ev, opts in evaluators]
    for ev in made:
        ev.setup(built, run.task)
    wb = Workbench(space=(name, dict(options)), evaluators=tuple(made), task=run.task, device=run.config.device,
                   tensorboard=False)
    return Bench(wb, space=built, evaluators=made, dataset=run.dataset)


def measure(bench: Bench, arch: dict[str, Any], seed: int) -> dict[str, float]:
    """The metrics of ``bench``'s evaluators on ``arch``, built and trained with ``seed``."""
    wb = dataclasses.replace(bench.wb, seed=seed)
    out = run_trial(wb, TrialSpec(seed, arch), bench=Bench(wb, bench.space, bench.evaluators, bench.dataset))
    if out.state != "complete":
        raise SystemExit(f"benchmark trial failed ({bench.space.describe(arch)}, seed {seed}): {out.error}")
    return out.metrics


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def machine(device: str) -> dict[str, Any]:
    """The facts a benchmark's JSON records about where it ran."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(), "device": device}


def search_best(run_dir: str, space: str) -> tuple[str, dict[str, Any]]:
    """``("search best (trial K of N)", arch)``: the best trial of a finished ``automl search`` run
    of ``space`` by its first objective (SystemExit naming the problem otherwise)."""
    try:
        view = open_run(run_dir)
    except ReportError as exc:
        raise SystemExit(f"--search-run: {exc}") from None
    if view.config.space.name != space:
        raise SystemExit(f"--search-run {run_dir} searched space {view.config.space.name!r}, not {space}")
    rec = best(view.records, view.objectives[0])
    if rec is None:
        raise SystemExit(f"--search-run {run_dir} has no completed trial with {view.objectives[0].metric}")
    return f"search best (trial {rec.number} of {len(view.records)})", dict(rec.arch)
