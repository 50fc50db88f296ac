"""A user-written evaluator: measured latency against a deployment target.

Plug it in without packaging anything:

    automl search --space nb201 --controller evolution --dataset digits \\
        --evaluator train --evaluator examples/custom_latency_evaluator.py:TargetLatency \\
        --set TargetLatency.target_ms=5 --objective val_acc:max --constraint latency_ms<=5

or register it for good through the ``automl.evaluators`` entry-point group of your package::

    [project.entry-points."automl.evaluators"]
    target-latency = "my_pkg.latency:TargetLatency"

A plain function works as well (``params_budget`` below): ``f(arch, model, ctx) -> dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.benchmark import Timer

from evaluators.base import EvalContext, EvaluationError, Evaluator


class TargetLatency(Evaluator):
    """Median batch-1 latency on the run's device and how far it is from ``target_ms``.

    Returns ``latency_ms``, ``latency_ratio`` (latency / target, < 1 meets the target) and
    ``meets_target`` (1.0 or 0.0). Use ``--constraint latency_ms<=T`` for a hard target or
    ``--mnas-reward val_acc,latency_ms,T`` for MnasNet's soft one.
    """

    name = "TargetLatency"
    description = "measured latency against a target (example of a user evaluator)"
    needs_model = True
    provides = ("latency_ms", "latency_ratio", "meets_target")

    def __init__(self, target_ms: float = 10.0, min_run_time: float = 0.1) -> None:
        if not target_ms > 0:
            raise ValueError(f"TargetLatency: target_ms must be positive, got {target_ms}")
        self.target_ms = float(target_ms)
        self.min_run_time = float(min_run_time)

    def evaluate(self, arch: Any, model: Any, ctx: EvalContext) -> dict[str, float]:
        if model is None:
            raise EvaluationError("TargetLatency needs the built model")
        device = torch.device(ctx.device)
        model = model.to(device).eval()
        x = torch.randn(1, ctx.task.in_channels, *ctx.task.input_size, device=device)
        with torch.inference_mode():
            model(x)  # warm-up
            median = Timer("model(x)", globals={"model": model, "x": x}).blocked_autorange(
                min_run_time=self.min_run_time
            ).median
        latency = median * 1e3
        return {
            "latency_ms": latency,
            "latency_ratio": latency / self.target_ms,
            "meets_target": float(latency <= self.target_ms),
        }


def params_budget(arch: Any, model: Any, ctx: EvalContext) -> dict[str, float]:
    """Parameter count in millions (a plain-function evaluator)."""
    return {"params_M": sum(p.numel() for p in model.parameters()) / 1e6}
