"""``cost``: parameters, multiply-adds and activation memory of the built network.

Conventions (one forward pass in eval mode under ``no_grad``, input ``[batch_size, C, *size]``
from the task, default batch 1):

* ``params``: distinct parameter elements (shared ones once; buffers such as BatchNorm running
  statistics excluded); ``params_M`` = ``params / 1e6``.
* ``flops_M``: multiply-accumulates (MACs) in millions = ``FlopCounterMode`` total / 2 / 1e6,
  the "FLOPs" of most NAS papers (MobileNet, MnasNet, fvcore). ``torch.utils.flop_counter``
  counts matrix products, convolutions and attention only: element-wise ops, normalisation,
  pooling and conv bias additions count zero.
* ``act_MB``: activation memory estimate = bytes of every distinct tensor the forward's aten
  ops create (views and in-place results share storage and add nothing; input, parameters and
  buffers excluded), in MB of 1e6 bytes. Nothing is assumed freed, so this is the order of
  what autograd keeps for the backward pass, above the inference peak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from evaluators.base import EvalContext, EvaluationError, Evaluator
from automl.types import Arch


class ActivationBytes(TorchDispatchMode):
    """Sums the bytes of distinct storages created by aten ops while active.

    Storages seen are kept alive until the mode is dropped, so a freed block reused by the
    allocator at the same address is still counted as a new activation.
    """

    def __init__(self, exclude: list[torch.Tensor]) -> None:
        super().__init__()
        self.total = 0
        self._seen: dict[int, torch.UntypedStorage] = {}
        for tensor in exclude:
            storage = tensor.untyped_storage()
            self._seen[storage.data_ptr()] = storage

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Mapping | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type != "meta":
                storage = leaf.untyped_storage()
                ptr = storage.data_ptr()
                if ptr not in self._seen and storage.nbytes() > 0:
                    self._seen[ptr] = storage
                    self.total += storage.nbytes()
        return out


class CostEvaluator(Evaluator):
    """Counts parameters, multiply-adds (FlopCounterMode / 2) and activation bytes of one forward."""

    name = "cost"
    description = "parameters, multiply-adds (flop_counter / 2) and activation memory of one forward pass"
    needs_model = True
    provides = ("params", "params_M", "flops_M", "act_MB")

    def __init__(
        self, *, batch_size: int = 1, input_size: tuple[int, ...] | list[int] | None = None, **unknown: Any
    ) -> None:
        if unknown:
            raise TypeError(f"evaluator 'cost' has no option {sorted(unknown)}; options: batch_size, input_size")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"cost: batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = batch_size
        self.input_size = check_input_size("cost", input_size)

    def evaluate(self, arch: Arch, model: Any, ctx: EvalContext) -> Mapping[str, float]:
        if not isinstance(model, nn.Module):
            raise EvaluationError(f"cost: needs an nn.Module, got {type(model).__name__}")
        params = count_parameters(model)
        shape = (self.batch_size, ctx.task.in_channels, *(self.input_size or ctx.task.input_size))
        device = next((p.device for p in model.parameters()), torch.device(ctx.device))
        x = torch.randn(shape, device=device)
        modes = {m: m.training for m in model.modules()}
        exclude = [x, *model.parameters(), *model.buffers()]
        try:
            model.eval()
            with torch.no_grad(), FlopCounterMode(display=False) as flops, ActivationBytes(exclude) as acts:
                model(x)
        except Exception as exc:
            raise EvaluationError(f"cost: forward on input {list(shape)} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            for module, training in modes.items():
                module.training = training
        return {
            "params": float(params),
            "params_M": params / 1e6,
            "flops_M": flops.get_total_flops() / 2 / 1e6,
            "act_MB": acts.total / 1e6,
        }


def count_parameters(model: nn.Module) -> int:
    """Distinct parameter elements (``model.parameters()`` already yields shared ones once)."""
    return sum(p.numel() for p in model.parameters())


def check_input_size(owner: str, value: Any) -> tuple[int, ...] | None:
    """The ``input_size`` option: ``None`` (the task's) or 1-3 positive ints (H, W or T, H, W)."""
    if value is None:
        return None
    if (
        isinstance(value, (tuple, list))
        and 1 <= len(value) <= 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return tuple(value)
    raise ValueError(f"{owner}: input_size must be a list of 1-3 positive integers such as [32, 32], got {value!r}")

