"""Activations by name: ``create_act("relu")`` -> ``nn.ReLU()``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "none": nn.Identity,
}


def create_act(name: str | None) -> nn.Module:
    """A fresh activation module for ``name`` (``None`` or ``"none"``: identity).

    Never in-place: a block's input may be another branch's input too (skips, DARTS edges).
    """
    key = "none" if name is None else str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; accepted: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]()
