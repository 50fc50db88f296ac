"""The ``nn.Module`` of a ``morph`` architecture.

Every layer with a module sits in ``self.layers`` (an ``nn.ModuleDict``) under ``"L{id}"``, so
state-dict keys (``layers.L5.weight``) name layers by their stable id and survive morphisms.
A merge's module is its 1x1 projection (``add``: skip channels -> main channels; ``concat``:
main + skip channels -> main channels); the head's is a ``Linear`` (classification) or a 1x1
``Conv2d`` (segmentation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from automl.types import Task
from search_spaces.morph.arch import MERGES, channels, check_size, consumers, levels


def check_task(task: Task) -> None:
    """Refuse tasks the space cannot build for (one-line ``ValueError``)."""
    if task.kind not in ("classification", "segmentation"):
        raise ValueError(f"morph builds classification or segmentation networks, not {task.kind!r}")
    if len(task.input_size) != 2:
        raise ValueError(f"morph builds 2D networks; the task's input size {tuple(task.input_size)} is not (H, W)")


def make_module(layer: Mapping[str, Any], ch: Mapping[int, int], task: Task) -> nn.Module | None:
    """The module of one layer (``None`` for the input), given the channels per layer id."""
    kind = layer["type"]
    if kind == "input":
        return None
    c_in = ch[layer["inputs"][0]]
    if kind == "conv":
        k = layer["kernel"]
        return nn.Conv2d(c_in, layer["filters"], k, padding=k // 2)
    if kind == "bn":
        return nn.BatchNorm2d(c_in)
    if kind == "relu":
        return nn.ReLU()
    if kind == "pool":
        return nn.MaxPool2d(layer["kernel"])
    if kind == "add":
        return nn.Conv2d(ch[layer["inputs"][1]], c_in, 1)
    if kind == "concat":
        return nn.Conv2d(c_in + ch[layer["inputs"][1]], c_in, 1)
    if task.kind == "segmentation":
        return nn.Conv2d(c_in, task.num_classes, 1)
    return nn.Linear(c_in, task.num_classes)


class MorphNetwork(nn.Module):
    """Runs the layers in order; each output is freed after its last reader."""

    def __init__(self, arch: Mapping[str, Any], task: Task) -> None:
        super().__init__()
        check_task(task)
        check_size(arch, tuple(task.input_size))
        self.arch, self.task = arch, task
        ch, level, readers = channels(arch, task.in_channels), levels(arch), consumers(arch)
        self.layers = nn.ModuleDict()
        position = {x["id"]: p for p, x in enumerate(arch["layers"])}
        # (id, type, inputs, skip pooling factor, ids whose last reader this is)
        self.plan: list[tuple[int, str, tuple[int, ...], int, tuple[int, ...]]] = []
        for p, x in enumerate(arch["layers"]):
            module = make_module(x, ch, task)
            if module is not None:
                self.layers[f"L{x['id']}"] = module
            inputs = tuple(x.get("inputs", ()))
            factor = 2 ** (level[inputs[0]] - level[inputs[1]]) if x["type"] in MERGES else 1
            last = tuple(i for i in inputs if max(position[r] for r in readers[i]) == p)
            self.plan.append((x["id"], x["type"], inputs, factor, last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        out: dict[int, torch.Tensor] = {}
        y = x
        for lid, kind, inputs, factor, last in self.plan:
            if kind == "input":
                y = x
            else:
                module = self.layers[f"L{lid}"]
                main = out[inputs[0]]
                if kind in MERGES:
                    skip = out[inputs[1]]
                    if factor > 1:
                        skip = F.max_pool2d(skip, factor)
                    y = main + module(skip) if kind == "add" else module(torch.cat([main, skip], 1))
                elif kind == "head":
                    if self.task.kind == "segmentation":
                        y = F.interpolate(module(main), size=size, mode="bilinear", align_corners=False)
                    else:
                        y = module(F.adaptive_avg_pool2d(main, 1).flatten(1))
                else:
                    y = module(main)
                for i in last:
                    del out[i]
            out[lid] = y
        return y
