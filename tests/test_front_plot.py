"""What the front plot shows (automl.front_plot.panels) and that both renderings write a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl import front_plot
from automl.front_plot import TRIAL, panels
from automl.store import TrialRecord
from automl.types import Objective

MIOU = Objective("val_miou", "max")
REF = {"spec": "seg-unet:unet", "state": "complete", "metrics": {"val_miou": 0.46, "latency_ms": 3.4, "params_M": 0.1}}


def rec(number: int, violation: float = 0.0, **metrics: float) -> TrialRecord:
    return TrialRecord(number=number, arch={}, key=f"k{number}", state="complete", metrics=metrics,
                       violation=violation, arch_str=f"arch{number}")


def coords(panel: front_plot.Panel, group: str) -> list[tuple[float, ...]]:
    return [q.coords for q in panel.groups[group]]


def test_one_trial_with_latency_and_reference_is_one_accuracy_latency_panel() -> None:
    """The zero-flag darts demo: the found net beside the reference, not a lone point per trial."""
    (panel,) = panels([rec(0, val_miou=0.57, latency_ms=16.1)], {0}, [MIOU], REF)
    assert panel.axes == ("latency_ms", "val_miou")
    assert coords(panel, "front") == [(16.1, 0.57)]
    assert coords(panel, "reference") == [(3.4, 0.46)]
    assert panel.groups["reference"][0].text == "reference seg-unet:unet"
    assert panel.line == []  # one trial: no trade-off to draw
    assert [q.text for q in front_plot._named(panel)] == ["seg-unet:unet", "#0"]


def test_many_trials_one_objective_show_progress_and_the_accuracy_cost_front() -> None:
    pool = [rec(0, val_miou=0.3, params_M=1.0), rec(1, val_miou=0.5, params_M=2.0),
            rec(2, val_miou=0.4, params_M=0.5), rec(3, val_miou=0.45, params_M=3.0),
            rec(4, violation=1.0, val_miou=0.9, params_M=0.1)]
    progress, cost = panels(pool, {1}, [MIOU])
    assert progress.axes == (TRIAL, "val_miou")
    assert progress.line == [(0, 0.3), (1, 0.5), (2, 0.5), (3, 0.5), (4, 0.5)]  # the infeasible 0.9 never counts
    assert coords(progress, "infeasible") == [(4, 0.9)] and coords(progress, "front") == [(1, 0.5)]
    assert cost.axes == ("params_M", "val_miou")
    assert cost.line == [(0.5, 0.4), (2.0, 0.5)]  # the feasible trials no other beats on both
    assert cost.line_label == "val_miou-params_M front" and cost.steps
    assert coords(cost, "reference") == []


def test_latency_is_the_cost_axis_before_parameters_and_only_when_every_trial_has_it() -> None:
    both = [rec(0, val_miou=0.3, latency_ms=2.0, params_M=1.0), rec(1, val_miou=0.4, latency_ms=3.0, params_M=2.0)]
    assert panels(both, {1}, [MIOU])[1].axes[0] == "latency_ms"
    partial = [rec(0, val_miou=0.3, latency_ms=2.0, params_M=1.0), rec(1, val_miou=0.4, params_M=2.0)]
    assert panels(partial, {1}, [MIOU])[1].axes[0] == "params_M"


def test_without_a_cost_metric_only_the_progress_panel() -> None:
    (panel,) = panels([rec(0, val_miou=0.3)], {0}, [MIOU], REF)
    assert panel.axes == (TRIAL, "val_miou") and coords(panel, "reference") == []


def test_two_objectives_draw_the_reference_only_where_it_has_both() -> None:
    pool = [rec(0, val_miou=0.3, latency_ms=2.0), rec(1, val_miou=0.5, latency_ms=4.0), rec(2, val_miou=0.2, latency_ms=5.0)]
    objectives = [MIOU, Objective("latency_ms", "min")]
    (panel,) = panels(pool, {0, 1}, objectives, REF)
    assert panel.axes == ("val_miou", "latency_ms")
    assert panel.line == [(0.3, 2.0), (0.5, 4.0)] and not panel.steps and panel.line_label == ""
    assert coords(panel, "reference") == [(0.46, 3.4)] and coords(panel, "feasible") == [(0.2, 5.0)]
    (panel,) = panels([rec(0, val_miou=0.3, flops_M=1.0)], {0}, [MIOU, Objective("flops_M", "min")], REF)
    assert coords(panel, "reference") == []  # the reference has no flops_M


@pytest.mark.parametrize("outcome", [None, {**REF, "state": "failed"}, {"spec": "x", "state": "complete"}])
def test_a_reference_that_did_not_finish_is_not_drawn(outcome) -> None:
    (panel,) = panels([rec(0, val_miou=0.5, latency_ms=1.0)], {0}, [MIOU], outcome)
    assert coords(panel, "reference") == []


def test_title_counts_trials() -> None:
    assert front_plot.title("run", 1, 1) == "run: 1 trial, 1 on the front"
    assert front_plot.title("run", 3, 2) == "run: 3 trials, 2 on the front"


@pytest.mark.parametrize("suffix", [".png", ".html"])
@pytest.mark.parametrize("objectives", [[MIOU], [MIOU, Objective("latency_ms", "min")],
                                        [MIOU, Objective("latency_ms", "min"), Objective("params_M", "min")]])
def test_both_renderings_write_every_layout(tmp_path: Path, suffix: str, objectives: list[Objective]) -> None:
    pool = [rec(i, val_miou=0.1 * i, latency_ms=1.0 + i, params_M=2.0 - 0.1 * i) for i in range(4)]
    plots = panels(pool, {3}, objectives, REF)
    out = tmp_path / f"front{suffix}"
    write = front_plot.write_png if suffix == ".png" else front_plot.write_html
    write(plots, out, front_plot.title("run", len(pool), 1))
    assert out.stat().st_size > 1000
    if suffix == ".html":
        html = out.read_text()
        assert "reference seg-unet:unet" in html and "#3 arch3" in html
