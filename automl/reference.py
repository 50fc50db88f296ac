"""A reference network trained the same way as the search's best, and the one line comparing them.

``reference`` (config key, ``--reference``; a space may bring one with its quick settings) names
``SPACE:PRESET`` or a ``PRESET`` of the searched space, e.g. ``seg-unet:unet``. After the search
the run evaluates it as one more trial outside the study: the run's evaluators with their
options, its dataset, seed and device, where trials run (:meth:`Executor.call`), with its files
under ``RUN_DIR/reference/`` and its outcome in ``RUN_DIR/reference/reference.json`` (a resumed
run reuses it). Under ``--time-limit`` the reference is not cut short: its training evaluators run
the epochs the best trial ran before the limit (``epochs_run``), so both nets see the same epochs.
The CLI and ``automl show`` then print :func:`comparison`: the best trial against the reference on
the objectives and on latency / parameters / epochs where both have them.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl import registry
from automl.store import TrialRecord
from automl.trial import TrialOutcome, TrialSpec, Workbench, run_trial
from automl.types import Objective, Task

FILE = "reference.json"
# besides the objectives, the metrics a comparison shows where both networks have them
SHOWN = ("latency_ms", "params_M", "epochs_run")


class ReferenceSpecError(ValueError):
    """The reference spec names no known space or preset, or one that cannot do the run's task."""


@dataclass(frozen=True)
class Reference:
    """A resolved reference: the space (name, options) and the preset's architecture."""

    spec: str
    space: str
    options: dict[str, Any]
    preset: str
    arch: dict[str, Any]

    @classmethod
    def resolve(cls, spec: str, space_name: str, space_options: Mapping[str, Any], task: Task) -> Reference:
        """``SPACE:PRESET`` (that space at its defaults) or ``PRESET`` (the searched space with the
        run's options); one-line :class:`ReferenceSpecError` when it does not resolve."""
        name, _, preset = spec.rpartition(":")
        options = dict(space_options) if not name or name == space_name else {}
        name = name or space_name
        try:
            space = registry.create("space", name, options)
        except registry.RegistryError as exc:
            raise ReferenceSpecError(f"reference {spec!r}: {exc}") from None
        try:
            arch = space.preset(preset)
        except (KeyError, ValueError) as exc:
            raise ReferenceSpecError(f"reference {spec!r}: {exc.args[0] if exc.args else exc}") from None
        if space.default_task.kind != task.kind:
            raise ReferenceSpecError(f"reference {spec!r}: space {name!r} builds {space.default_task.kind} networks but this "
                                 f"run's task is {task.kind}")
        return cls(spec, name, options, preset, arch)

    def workbench(self, wb: Workbench, run_dir: Path | None, epochs: int | None = None) -> Workbench:
        """The run's workbench with this space, writing under ``run_dir/reference``, with no
        deadline; ``epochs``: what its training evaluators run instead of their budget."""
        return dataclasses.replace(wb, space=(self.space, dict(self.options)), token=uuid.uuid4().hex,
                                   run_dir=str(run_dir / "reference") if run_dir is not None else None,
                                   deadline=None, epochs=epochs)

    def evaluate(self, wb: Workbench, run_dir: Path | None, call: Any = None,
                 log: Callable[[str], None] = lambda msg: None, best: TrialRecord | None = None) -> dict[str, Any]:
        """Train and measure the reference (through ``call``, e.g. an executor's; in-process
        without) and write its outcome; a finished earlier outcome of the same spec is reused.
        Under a time limit (``wb.deadline``) it trains for the epochs ``best`` ran before it."""
        done = load(run_dir)
        if done is not None and done.get("spec") == self.spec and done.get("state") == "complete":
            return done
        epochs = matched_epochs(best) if wb.deadline is not None else None
        log(f"training the reference {self.spec} as the trials were trained"
            + (f", for the {epochs} epochs the best trial ran within the time limit" if epochs else ""))
        job = self.workbench(wb, run_dir, epochs)
        spec = TrialSpec(number=0, arch=dict(self.arch))
        outcome: TrialOutcome = call(run_trial, job, spec) if call is not None else run_trial(job, spec)
        out = {"spec": self.spec, "space": self.space, "preset": self.preset, "arch": self.arch,
               "state": outcome.state, "metrics": outcome.metrics, "error": outcome.error,
               "seconds": round(outcome.duration_s, 3)}
        if run_dir is not None:
            (run_dir / "reference").mkdir(parents=True, exist_ok=True)
            (run_dir / "reference" / FILE).write_text(json.dumps(out, indent=1))
        return out


def matched_epochs(best: TrialRecord | None) -> int | None:
    """The epochs ``best`` trained (its ``epochs_run``; a last epoch cut short counts whole)."""
    value = best.metrics.get("epochs_run") if best is not None else None
    return max(1, round(value)) if value is not None and value == value else None


def load(run_dir: Path | None) -> dict[str, Any] | None:
    """The reference outcome a run wrote, or None."""
    path = run_dir / "reference" / FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def comparison(best: TrialRecord | None, reference: Mapping[str, Any], objectives: Sequence[Objective]) -> str:
    """One line: the best trial vs the reference on the objectives (then latency, parameters)."""
    if reference.get("state") != "complete":
        return f"reference {reference.get('spec')}: {reference.get('state')} ({reference.get('error') or 'no result'})"
    ref = reference.get("metrics", {})
    if best is None:
        return f"reference {reference['spec']}: " + _metrics(ref, [o.metric for o in objectives] + list(SHOWN), ref)
    names = [o.metric for o in objectives] + [m for m in SHOWN if m not in {o.metric for o in objectives}]
    shown = [m for m in names if m in best.metrics and m in ref]
    verdict = ""
    o = objectives[0]
    if o.metric in best.metrics and o.metric in ref:
        ahead = best.metrics[o.metric] > ref[o.metric] if o.direction == "max" else best.metrics[o.metric] < ref[o.metric]
        verdict = f"  -> the found net is {'ahead' if ahead else 'behind'} on {o.metric}"
    return (f"found net (trial {best.number}): {_metrics(best.metrics, shown, ref)}  |  reference "
            f"{reference['spec']}: {_metrics(ref, shown, ref)}{verdict}")


def _metrics(values: Mapping[str, float], names: Sequence[str], present: Mapping[str, float]) -> str:
    return ", ".join(f"{m} {values[m]:.4g}" for m in names if m in values and m in present) or "no shared metric"
