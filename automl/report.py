"""Reading a finished (or running) run back: trials table, best, Pareto front, plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from automl.config import RunConfig
from automl.pareto import best, front
from automl.objectives import SpecError, parse_objective
from automl.store import StoreMissing, TrialRecord, TrialStore, default_storage, only_study
from automl.types import Objective


class ReportError(ValueError):
    """The run directory cannot be read."""


@dataclass
class RunView:
    run_dir: Path
    config: RunConfig
    objectives: tuple[Objective, ...]
    records: list[TrialRecord]
    scorings: list[TrialRecord] = field(default_factory=list)  # supernet scorings (TrialStore.scorings)

    def front(self, objectives: Sequence[Objective] | None = None) -> list[TrialRecord]:
        return front(self.records, objectives or self.objectives)

    def best(self) -> TrialRecord | None:
        return best(self.records, self.objectives[0])


def open_run(run_dir: str | Path, objectives: Sequence[str] | None = None) -> RunView:
    """Load a run directory's config and trials; ``objectives`` overrides the run's own."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file():
        raise ReportError(f"{path} is not a run directory (no config.yaml)")
    try:
        config = RunConfig.from_file(path / "config.yaml")
    except SpecError as exc:
        raise ReportError(f"{path}: its config.yaml cannot be read: {exc}") from None
    storage = config.storage or default_storage(str(path))
    study_name = config.study_name or path.resolve().name  # the run's folder name, also for "."
    try:
        parsed = tuple(parse_objective(o) for o in (objectives or config.objectives))
    except SpecError as exc:
        raise ReportError(str(exc)) from None
    if not parsed:
        raise ReportError(f"{path}: the run declares no objectives; pass --objective METRIC:max|min")
    try:  # read-only: looking at a run never creates or changes its store
        store = TrialStore.open_existing(storage, study_name, parsed, read_only=True)
    except StoreMissing as exc:
        # a run written before config.yaml kept its study name, in a copied or renamed folder
        only = only_study(storage) if config.study_name is None else None
        if only is None:
            raise ReportError(f"cannot read the trials of {path}: {exc}") from None
        store = TrialStore.open_existing(storage, only, parsed, read_only=True)
    records = store.records()
    if objectives:
        measured = {m for r in records if r.state == "complete" for m in r.metrics}
        unknown = [o.metric for o in parsed if measured and o.metric not in measured]
        if unknown:
            raise ReportError(f"--objective {', '.join(unknown)}: no completed trial of {path} has it; its metrics: "
                              f"{', '.join(sorted(measured))}")
    return RunView(path, config, parsed, records, store.scorings())


def scorings_table(scorings: Sequence[TrialRecord], top: int):  # -> rich.table.Table
    """The ``top`` best scorings of each kind (their note), best first."""
    from rich.table import Table

    table = Table(title=f"supernet scorings ({len(scorings)}; weights inherited from the supernet, not trials)")
    metrics: list[str] = []
    for r in scorings:
        metrics.extend(m for m in r.metrics if m not in metrics)
    for column in ("kind", "#", *metrics, "architecture"):
        table.add_column(column, justify="left" if column in ("kind", "architecture") else "right", no_wrap=column != "architecture")
    kinds = list(dict.fromkeys(r.proposal.get("note", "") for r in scorings))
    for kind in kinds:
        group = sorted((r for r in scorings if r.proposal.get("note", "") == kind),
                       key=lambda r: (-(r.values[0] if r.values else float("-inf")), r.number))
        for r in group[:top]:
            table.add_row(kind, str(r.number), *[_fmt(r.metrics.get(m)) for m in metrics], r.arch_str or r.key)
    return table


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def trials_table(view: RunView, records: Sequence[TrialRecord], title: str):  # -> rich.table.Table
    from rich.table import Table

    metrics: list[str] = [o.metric for o in view.objectives]
    for r in records:
        metrics.extend(m for m in r.metrics if m not in metrics)
    on_front = {r.number for r in view.front()}
    table = Table(title=title, show_lines=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("architecture", overflow="fold")
    for r in records:
        state = r.state if r.state != "complete" else ("infeasible" if r.violation > 0 else "ok")
        if r.number in on_front:
            state += " *"
        arch = r.arch_str or r.key
        if r.state != "complete" and r.error:
            arch = f"{arch}  [{r.error[:80]}]"
        table.add_row(
            str(r.number), state, *[_fmt(r.metrics.get(m)) for m in metrics], f"{r.duration_s:.2f}", arch
        )
    return table


def plot_front(view: RunView, out: Path, objectives: Sequence[Objective] | None = None) -> Path:
    """Write the trials, their Pareto front and the run's reference network (where it was
    trained) as PNG (matplotlib) or HTML (plotly); what is drawn: :mod:`automl.front_plot`."""
    from automl import front_plot, reference

    objectives = tuple(objectives or view.objectives)
    if not 1 <= len(objectives) <= 3:
        raise ReportError(f"a front plot shows 1 to 3 objectives, got {len(objectives)}")
    pool = [r for r in view.records if r.state == "complete" and all(o.metric in r.metrics for o in objectives)]
    if not pool:
        raise ReportError(f"{view.run_dir}: no completed trial has {[o.metric for o in objectives]}")
    members = {r.number for r in front(view.records, objectives)}
    write = {".png": front_plot.write_png, ".html": front_plot.write_html, ".htm": front_plot.write_html}.get(out.suffix.lower())
    if write is None:
        raise ReportError(f"--out {out}: unsupported format {out.suffix or '(none)'}; use .png or .html")
    plots = front_plot.panels(pool, members, objectives, reference.load(view.run_dir))
    write(plots, out, front_plot.title(view.run_dir.resolve().name, len(pool), len(members)))
    return out
