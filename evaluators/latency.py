"""``latency``: measured forward latency of the built network on ``ctx.device``.

The network runs in eval mode under ``inference_mode`` on a random input
``[batch_size, C, *size]`` (size from the task unless ``input_size`` is given). After
``warmup`` untimed calls, ``torch.utils.benchmark.Timer`` measures it: ``blocked_autorange``
for at least ``min_run_time`` seconds, or ``repeats`` single calls when that is set (a fixed
count, for comparable work per trial). ``latency_ms`` is the median time per call (per batch)
and ``latency_iqr_ms`` the interquartile range of the measured blocks / calls. The Timer
synchronises CUDA and pins ``threads`` torch threads (default: the current count).

With ``onnxruntime=True`` the network is also exported to ONNX (``onnx_exporter``: ``dynamo``,
the ``torch.export`` based exporter, or ``torchscript``, the legacy one) and an ONNX Runtime
session (CUDA provider on a CUDA device when available, else CPU, ``threads`` intra-op threads)
is timed the same way: ``latency_ort_ms`` / ``latency_ort_iqr_ms``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.benchmark import Timer

from evaluators.base import EvalContext, EvaluationError, Evaluator
from evaluators.cost import check_input_size
from automl.types import Arch

OPTIONS = ("batch_size", "input_size", "threads", "warmup", "min_run_time", "repeats", "onnxruntime", "onnx_exporter")


class LatencyEvaluator(Evaluator):
    """Median forward latency (ms) with torch.utils.benchmark; optionally ONNX Runtime's too."""

    name = "latency"
    description = "median forward latency in ms on the run's device (torch.utils.benchmark), optionally ONNX Runtime"
    needs_model = True
    provides = ("latency_ms", "latency_iqr_ms", "latency_ort_ms", "latency_ort_iqr_ms")
    default_objective = "latency_ms:min"

    def __init__(
        self,
        *,
        batch_size: int = 1,
        input_size: tuple[int, ...] | list[int] | None = None,
        threads: int | None = None,
        warmup: int = 5,
        min_run_time: float = 0.2,
        repeats: int | None = None,
        onnxruntime: bool = False,
        onnx_exporter: str = "dynamo",
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(f"evaluator 'latency' has no option {sorted(unknown)}; options: {', '.join(OPTIONS)}")
        self.batch_size = _int("batch_size", batch_size, 1)
        self.input_size = check_input_size("latency", input_size)
        self.threads = None if threads is None else _int("threads", threads, 1)
        self.warmup = _int("warmup", warmup, 0)
        if not isinstance(min_run_time, (int, float)) or isinstance(min_run_time, bool) or not 0 < min_run_time <= 60:
            raise ValueError(f"latency: min_run_time must be seconds in (0, 60], got {min_run_time!r}")
        self.min_run_time = float(min_run_time)
        self.repeats = None if repeats is None else _int("repeats", repeats, 3)
        if not isinstance(onnxruntime, bool):
            raise TypeError(f"latency: onnxruntime must be true or false, got {onnxruntime!r}")
        self.onnxruntime = onnxruntime
        if onnx_exporter not in ("dynamo", "torchscript"):
            raise ValueError(f"latency: onnx_exporter must be dynamo or torchscript, got {onnx_exporter!r}")
        self.onnx_exporter = onnx_exporter
        if onnxruntime:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                raise ValueError("latency: onnxruntime=True needs the onnxruntime package (pip install onnxruntime)") from None

    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        if not isinstance(model, nn.Module):
            raise EvaluationError(f"latency: needs an nn.Module, got {type(model).__name__}")
        device = torch.device(ctx.device)
        threads = self.threads or torch.get_num_threads()
        shape = (self.batch_size, ctx.task.in_channels, *(self.input_size or ctx.task.input_size))
        x = torch.randn(shape, generator=torch.Generator().manual_seed(ctx.seed)).to(device)
        modes = {m: m.training for m in model.modules()}
        model.to(device).eval()
        try:
            with torch.inference_mode():
                try:
                    for _ in range(max(self.warmup, 1)):  # at least one call: errors surface here
                        model(x)
                except Exception as exc:
                    raise EvaluationError(
                        f"latency: forward on input {list(shape)} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads, label="latency")
                median, iqr = self._measure(timer)
            metrics = {"latency_ms": median * 1e3, "latency_iqr_ms": iqr * 1e3}
            if self.onnxruntime:
                median, iqr = self._measure_ort(model, x, threads)
                metrics.update(latency_ort_ms=median * 1e3, latency_ort_iqr_ms=iqr * 1e3)
        finally:
            for module, training in modes.items():
                module.training = training
        return metrics

    def _measure(self, timer: Timer) -> tuple[float, float]:
        """(median, IQR) in seconds per call: blocked_autorange, or ``repeats`` single calls."""
        if self.repeats is None:
            measurement = timer.blocked_autorange(min_run_time=self.min_run_time)
            return measurement.median, measurement.iqr
        times = np.array([timer.timeit(1).times[0] for _ in range(self.repeats)])
        q1, median, q3 = np.percentile(times, [25, 50, 75])
        return float(median), float(q3 - q1)

    def _measure_ort(self, model: nn.Module, x: torch.Tensor, threads: int) -> tuple[float, float]:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="automl-latency-") as folder:
            path = Path(folder) / "model.onnx"
            _export_onnx(model, x, path, self.onnx_exporter)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            if x.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            session = ort.InferenceSession(str(path), options, providers=providers)
        feed = {session.get_inputs()[0].name: x.cpu().numpy()}
        for _ in range(self.warmup):
            session.run(None, feed)
        timer = Timer("session.run(None, feed)", globals={"session": session, "feed": feed}, label="latency_ort")
        return self._measure(timer)


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> None:
    """Export quietly (the exporters print progress and warn about training mode, torchvision ...)."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    try:
        onnx_log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(path), dynamo=exporter == "dynamo", input_names=["input"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EvaluationError(f"latency: ONNX export ({exporter}) failed: {type(exc).__name__}: {first}") from exc
    finally:
        onnx_log.setLevel(level)


def _int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"latency: {name} must be an integer >= {minimum}, got {value!r}")
    return value
