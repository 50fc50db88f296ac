"""What a run's front plot shows (:func:`panels`, no drawing) and its two renderings: PNG
(matplotlib) and HTML (plotly).

* 2 or 3 objectives: one panel of the trials in objective space with the Pareto front.
* 1 objective: the search's progress (the objective per trial, best so far) when there are two
  trials or more, and, where every trial records a cost (``latency_ms``, else ``params_M``), the
  objective against that cost with the trials' accuracy-cost front: the trade-off a user picks
  from even when only one objective was optimised. A one-trial run (the zero-flag darts demo)
  shows only the cost panel.

The run's reference network (``automl.reference``), when it was trained and has the panel's
metrics, is drawn as its own marker, so the found net is seen beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.pareto import front
from automl.store import TrialRecord
from automl.types import Objective

COSTS = ("latency_ms", "params_M")  # the cost axis of a one-objective plot, first recorded wins
GROUPS = ("front", "feasible", "infeasible", "reference")
TRIAL = "trial"  # the x axis of the progress panel


@dataclass(frozen=True)
class Point:
    coords: tuple[float, ...]
    text: str


@dataclass
class Panel:
    """One plot: its axes (metric names, or ``trial``), points per group and one line."""

    axes: tuple[str, ...]
    labels: tuple[str, ...]
    groups: dict[str, list[Point]] = field(default_factory=dict)
    line: list[tuple[float, ...]] = field(default_factory=list)
    line_label: str = ""
    steps: bool = False  # draw the line as a staircase


def panels(pool: Sequence[TrialRecord], members: set[int], objectives: Sequence[Objective],
           reference: Mapping[str, Any] | None = None) -> list[Panel]:
    """The panels of a front plot of the completed trials ``pool`` (``members``: the numbers on
    the run's front); ``reference``: a reference outcome (``reference.json``) or None."""
    ref = _reference(reference)
    if len(objectives) > 1:
        names = tuple(o.metric for o in objectives)
        panel = _scatter(pool, members, names, tuple(f"{o.metric} ({o.direction})" for o in objectives), ref)
        if len(objectives) == 2:
            ordered = sorted((r for r in pool if r.number in members), key=lambda r: r.metrics[names[0]])
            panel.line = [(r.metrics[names[0]], r.metrics[names[1]]) for r in ordered]
            panel.steps = objectives[0].direction == objectives[1].direction  # the markers name it
        return [panel]
    o = objectives[0]
    cost = next((c for c in COSTS if c != o.metric and all(c in r.metrics for r in pool)), None)
    out = []
    if cost is None or len(pool) > 1:
        out.append(_progress(pool, members, o))
    if cost is not None:
        panel = _scatter(pool, members, (cost, o.metric), (cost, f"{o.metric} ({o.direction})"), ref)
        trade = sorted(front(pool, (o, Objective(cost, "min"))), key=lambda r: r.metrics[cost])
        if len(trade) > 1:
            panel.line = [(r.metrics[cost], r.metrics[o.metric]) for r in trade]
            panel.line_label, panel.steps = f"{o.metric}-{cost} front", True
        out.append(panel)
    return out


def _reference(outcome: Mapping[str, Any] | None) -> tuple[str, Mapping[str, float]] | None:
    if not outcome or outcome.get("state") != "complete":
        return None
    return f"reference {outcome.get('spec', '')}".strip(), outcome.get("metrics") or {}


def _group(r: TrialRecord, members: set[int]) -> str:
    return "front" if r.number in members else ("infeasible" if r.violation > 0 else "feasible")


def _text(r: TrialRecord) -> str:
    return f"#{r.number} {r.arch_str or r.key}"


def _scatter(pool: Sequence[TrialRecord], members: set[int], axes: tuple[str, ...], labels: tuple[str, ...],
             ref: tuple[str, Mapping[str, float]] | None) -> Panel:
    panel = Panel(axes, labels, {g: [] for g in GROUPS})
    for r in pool:
        panel.groups[_group(r, members)].append(Point(tuple(r.metrics[a] for a in axes), _text(r)))
    if ref is not None and all(a in ref[1] for a in axes):
        panel.groups["reference"].append(Point(tuple(ref[1][a] for a in axes), ref[0]))
    return panel


def _progress(pool: Sequence[TrialRecord], members: set[int], o: Objective) -> Panel:
    """The objective per trial number with the best feasible value so far."""
    panel = Panel((TRIAL, o.metric), (TRIAL, f"{o.metric} ({o.direction})"), {g: [] for g in GROUPS})
    cur = None
    for r in sorted(pool, key=lambda r: r.number):
        v = r.metrics[o.metric]
        panel.groups[_group(r, members)].append(Point((float(r.number), v), _text(r)))
        if r.violation <= 0 and (cur is None or o.score(v) > o.score(cur)):
            cur = v
        if cur is not None:
            panel.line.append((float(r.number), cur))
    panel.line_label, panel.steps = "best so far", True
    return panel


def _named(panel: Panel, most: int = 5) -> list[Point]:
    """Points worth a label on a 2-D panel: the reference, and the front's trials (their
    numbers) when there are at most ``most`` of them."""
    named = [Point(q.coords, q.text.removeprefix("reference ")) for q in panel.groups.get("reference", [])]
    on_front = panel.groups.get("front", [])
    if len(on_front) <= most:
        named += [Point(q.coords, q.text.split(" ", 1)[0]) for q in on_front]
    return named


def title(run: str, trials: int, on_front: int) -> str:
    return f"{run}: {trials} trial{'s' if trials != 1 else ''}, {on_front} on the front"


PNG_STYLE = {"front": dict(c="#d62728", marker="*", s=80), "feasible": dict(c="#9ecae1", marker="o", s=18),
             "infeasible": dict(c="#bbbbbb", marker="x", s=18), "reference": dict(c="black", marker="D", s=40)}


def write_png(plots: Sequence[Panel], out: Path, heading: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig = plt.figure(figsize=(6.5 * len(plots), 5))
    for i, p in enumerate(plots):
        ax = fig.add_subplot(1, len(plots), i + 1, **({"projection": "3d"} if len(p.axes) == 3 else {}))
        for group, points in p.groups.items():
            if points:
                label = points[0].text if group == "reference" else group
                ax.scatter(*zip(*(q.coords for q in points), strict=True), label=label, **PNG_STYLE[group])
        if len(p.axes) == 2:
            for q in _named(p):
                ax.annotate(q.text, q.coords, textcoords="offset points", xytext=(6, -10), fontsize=8)
            ax.margins(0.08)
        if p.line:
            ax.plot(*zip(*p.line, strict=True), c="#d62728", lw=1.2, label=p.line_label or "_nolegend_",
                    drawstyle="steps-post" if p.steps else "default")
        ax.set_xlabel(p.labels[0])
        ax.set_ylabel(p.labels[1])
        if p.axes[0] == TRIAL:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(p.axes) == 3:
            ax.set_zlabel(p.labels[2])
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(heading)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


HTML_COLOR = {"front": "#d62728", "feasible": "#6baed6", "infeasible": "#aaaaaa", "reference": "black"}
HTML_SYMBOL = {"infeasible": "x", "reference": "diamond"}


def write_html(plots: Sequence[Panel], out: Path, heading: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    three_d = len(plots[0].axes) == 3
    fig = make_subplots(rows=1, cols=len(plots), specs=[[{"type": "scene" if three_d else "xy"}] * len(plots)])
    for i, p in enumerate(plots):
        for group, points in p.groups.items():
            if not points:
                continue
            coords = list(zip(*(q.coords for q in points), strict=True))
            marker = dict(color=HTML_COLOR[group], size=9 if group in ("front", "reference") else 6,
                          symbol=HTML_SYMBOL.get(group, "circle"))
            name = points[0].text if group == "reference" else group
            kind = go.Scatter3d if three_d else go.Scatter
            fig.add_trace(kind(**dict(zip("xyz", coords)), mode="markers", name=name, marker=marker,
                               text=[q.text for q in points], legendgroup=group, showlegend=i == 0 or group == "reference"),
                          row=1, col=i + 1)
        if p.line:
            fig.add_trace(go.Scatter(x=[c[0] for c in p.line], y=[c[1] for c in p.line], mode="lines", name=p.line_label,
                                     showlegend=bool(p.line_label),
                                     line=dict(color="#d62728", shape="hv" if p.steps else "linear")), row=1, col=i + 1)
        if three_d:
            fig.update_layout(scene=dict(xaxis_title=p.labels[0], yaxis_title=p.labels[1], zaxis_title=p.labels[2]))
        else:
            fig.update_xaxes(title_text=p.labels[0], row=1, col=i + 1)
            fig.update_yaxes(title_text=p.labels[1], row=1, col=i + 1)
    fig.update_layout(title=heading)
    fig.write_html(str(out), include_plotlyjs=True)
