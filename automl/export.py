"""``automl export``: a trial's network as standalone artefacts that load without automl.

Formats: TorchScript (``model.ts``, ``torch.jit.trace``; load with ``torch.jit.load``),
ONNX (``model.onnx``, ``torch.onnx.export(dynamo=True)``; run with onnxruntime) and
``torch.export`` (``model.pt2``; load with ``torch.export.load(path).module()``). Every
artefact has a dynamic batch dimension where the exporter allows it. ``model_card.json``
records the architecture, the trial's metrics, the input shape, the normalisation to apply
(``(x / 255 - mean) / std`` per channel), class names and the measured parity.

Weights come from the trial's ``weights.pt`` (``train`` evaluator with ``save_weights: true``)
or, with ``train_epochs``, from retraining the architecture on the run's dataset.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from automl import registry
from automl.objectives import parse_objective
from automl.report import ReportError, RunView, open_run
from automl.store import TrialRecord
from automl.types import Task

FORMATS = ("torchscript", "onnx", "pt2")
FILES = {"torchscript": "model.ts", "onnx": "model.onnx", "pt2": "model.pt2"}
TOLERANCE = {"torchscript": 1e-5, "pt2": 1e-5, "onnx": 1e-4}


class ExportError(ValueError):
    """The export cannot be done; one line says why and what to do."""


@dataclass
class ExportResult:
    out_dir: Path
    trial: TrialRecord
    files: dict[str, Path]
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    weights: str = ""


def _select(view: RunView, trial: str, objective: str | None) -> TrialRecord:
    if trial != "best":
        try:
            number = int(trial)
        except ValueError:
            raise ExportError(f"--trial {trial!r}: expected a trial number or 'best'") from None
        rec = next((r for r in view.records if r.number == number), None)
        if rec is None:
            raise ExportError(f"{view.run_dir} has no finished trial {number}; trials: {[r.number for r in view.records]}")
        if rec.state != "complete":
            raise ExportError(f"trial {number} did not complete ({rec.state}: {rec.error})")
        return rec
    from automl.pareto import best

    obj = parse_objective(objective) if objective else view.objectives[0]
    rec = best(view.records, obj)
    if rec is None:
        raise ExportError(f"{view.run_dir} has no feasible completed trial with metric {obj.metric!r}")
    return rec


def _dataset(view: RunView, space: Any, spec: str | None = None) -> Any:
    """The run's dataset, or ``spec`` (``--dataset``, for retraining a trial of a run that had none)."""
    spec = spec or view.config.dataset
    if not spec:
        return None
    from evaluators.data import load_dataset

    return load_dataset(spec, task_kind=space.default_task.kind, seed=view.config.seed)


def _weights(view: RunView, rec: TrialRecord, model: nn.Module, dataset: Any, space: Any, task: Task,
             train_epochs: int | None, device: str, log: Callable[[str], None]) -> str:
    path = view.run_dir / "trials" / f"{rec.number:05d}" / "weights.pt"
    if train_epochs is None and path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return str(path)
    if train_epochs is None:
        how = ("pass --train-epochs N to retrain it on the run's dataset" if dataset is not None else
               "the run trained nothing (no dataset); pass --train-epochs N --dataset SPEC to train it for export")
        raise ExportError(f"trial {rec.number} has no saved weights ({path} missing); {how}")
    if dataset is None:
        raise ExportError("--train-epochs needs data and the run has none; add --dataset SPEC (e.g. digits)")
    from evaluators.base import EvalContext
    from evaluators.train import TrainEvaluator

    log(f"retraining trial {rec.number} for {train_epochs} epoch(s) on {dataset.spec}")
    ctx = EvalContext(space=space, task=task, trial_number=rec.number, seed=view.config.seed, device=device,
                      dataset=dataset)
    metrics = TrainEvaluator(epochs=train_epochs).evaluate(rec.arch, model, ctx)
    log("retrained: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return f"retrained {train_epochs} epoch(s)"


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warnings meant for developers of torch."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _outputs(o)]


def _max_diff(a: Sequence[torch.Tensor], b: Sequence[Any]) -> float:
    return max(float((x - torch.as_tensor(y)).abs().max()) for x, y in zip(a, b, strict=True))


def export_model(model: nn.Module, example: torch.Tensor, out_dir: Path, formats: Sequence[str]) -> dict[str, Path]:
    """Write the artefacts; the batch dimension is dynamic (min 1)."""
    files: dict[str, Path] = {}
    batch = torch.export.Dim("batch", min=1, max=1024)
    with _quiet():
        if "torchscript" in formats:
            path = out_dir / FILES["torchscript"]
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(path))
            files["torchscript"] = path
        if "pt2" in formats:
            path = out_dir / FILES["pt2"]
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(path))
            files["pt2"] = path
        if "onnx" in formats:
            path = out_dir / FILES["onnx"]
            torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes=({0: batch},),
                              input_names=["input"], output_names=["logits"], verbose=False)
            files["onnx"] = path
    return files


def check_parity(model: nn.Module, files: dict[str, Path], inputs: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Max abs difference between the in-framework model and each loaded artefact."""
    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        refs = {name: _outputs(model(x)) for name, x in inputs.items()}
    for fmt, path in files.items():
        out[fmt] = {}
        with _quiet():
            if fmt == "torchscript":
                loaded = torch.jit.load(str(path))
                run = lambda x: _outputs(loaded(x))  # noqa: E731
            elif fmt == "pt2":
                module = torch.export.load(str(path)).module()
                run = lambda x: _outputs(module(x))  # noqa: E731
            else:
                import onnxruntime as ort

                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                name = session.get_inputs()[0].name
                run = lambda x: session.run(None, {name: x.numpy()})  # noqa: E731
            with torch.no_grad():
                for label, x in inputs.items():
                    out[fmt][label] = _max_diff(refs[label], run(x))
    return out


def export_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    trial: str = "best",
    objective: str | None = None,
    formats: Sequence[str] = FORMATS,
    train_epochs: int | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = lambda m: None,
    dataset_spec: str | None = None,
) -> ExportResult:
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown format(s) {bad}; accepted: {', '.join(FORMATS)}, all")
    try:
        view = open_run(run_dir)
    except ReportError as exc:
        raise ExportError(str(exc)) from None
    rec = _select(view, trial, objective)
    cfg = view.config
    try:
        space = registry.create("space", cfg.space.name, cfg.space.options)
    except registry.RegistryError as exc:
        raise ExportError(str(exc)) from None
    if "build" not in dir(space):
        raise ExportError(f"space {cfg.space.name!r} cannot build networks")
    if dataset_spec is not None and train_epochs is None:
        raise ExportError("--dataset is for retraining: give it with --train-epochs N")
    try:
        dataset = _dataset(view, space, dataset_spec)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    task = dataset.task if dataset is not None else space.default_task
    model = space.build(rec.arch, task)
    out = Path(out_dir) if out_dir is not None else view.run_dir / "export" / f"trial-{rec.number}"
    weights = _weights(view, rec, model, dataset, space, task, train_epochs, device, log)
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()

    gen = torch.Generator().manual_seed(0)
    inputs = {"random": torch.randn(2, task.in_channels, *task.input_size, generator=gen)}
    if dataset is not None:
        part = "val" if "val" in dataset.parts else dataset.parts[0]
        inputs["real"] = dataset.batch(part, slice(0, 8))[0]
    files = export_model(model, inputs["random"], out, formats)  # batch 2: a size-1 dim would be specialised
    parity = check_parity(model, files, inputs)

    card = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(view.run_dir),
        "trial": rec.number,
        "space": {"name": cfg.space.name, "options": cfg.space.options},
        "arch": rec.arch,
        "arch_str": rec.arch_str or None,
        "metrics": rec.metrics,
        "objectives": [str(o) for o in view.objectives],
        "task": task.kind,
        "input_shape": ["batch", task.in_channels, *task.input_size],
        "num_classes": task.num_classes,
        "normalisation": (
            {"scale": 1 / 255, "mean": list(dataset.mean), "std": list(dataset.std),
             "formula": "(uint8_image / 255 - mean) / std, per channel"}
            if dataset is not None else None
        ),
        "class_names": list(dataset.class_names) if dataset is not None else None,
        "ignore_index": getattr(dataset, "ignore_index", None) if dataset is not None else None,
        "weights": weights,
        "files": {fmt: p.name for fmt, p in files.items()},
        "load": {
            "torchscript": "torch.jit.load('model.ts')",
            "pt2": "torch.export.load('model.pt2').module()",
            "onnx": "onnxruntime.InferenceSession('model.onnx')",
        },
        "parity_max_abs_diff": parity,
        "torch": torch.__version__,
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return ExportResult(out, rec, files, parity, weights)
