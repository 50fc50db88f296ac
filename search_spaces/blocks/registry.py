"""The block catalogue: every archived building block, registered by name.

A block is an ``nn.Module`` class registered with :func:`register_block`. The registry keeps
what a search space, the CLI (``automl blocks``), the docs generator and the generic tests need:
the paper, the kind, the keyword options and how to make example inputs.

Standard 2D blocks follow ``Block(c_in, c_out, stride=1, dilation=1, **kw)`` and map
``[N, c_in, H, W]`` to ``[N, c_out, ceil(H/stride), ceil(W/stride)]``; standard video blocks map
``[N, c_in, T, H, W]`` to ``[N, c_out, T, ceil(H/stride), ceil(W/stride)]``. Blocks with another
signature (two inputs, several outputs) set ``standard_io=False``, describe it in
``signature`` and give an ``example`` factory; their own tests check their shapes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Kind = Literal["conv", "attention", "context", "decoder", "video"]
KINDS: tuple[str, ...] = ("conv", "attention", "context", "decoder", "video")

# example(c_in, batch, height, width, frames) -> tuple of input tensors
ExampleFactory = Callable[[int, int, int, int, int], tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class BlockSpec:
    """What the catalogue knows about one block."""

    name: str
    cls: type[nn.Module]
    kind: str
    paper: str
    summary: str
    signature: str = "x -> y"
    standard_io: bool = True
    supports_stride: bool = True
    video: bool = False
    example: ExampleFactory | None = None
    onnx: bool = True
    onnx_reason: str = ""
    torch_export: bool = True
    export_reason: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    test_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options beyond ``c_in, c_out, stride, dilation`` with their defaults."""
        sig = inspect.signature(self.cls.__init__)
        out: dict[str, Any] = {}
        for p in list(sig.parameters.values())[1:]:
            if p.name in ("c_in", "c_out", "stride", "dilation") or p.kind in (
                p.VAR_POSITIONAL,
                p.VAR_KEYWORD,
            ):
                continue
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
        return out

    def create(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1, **kw: Any) -> nn.Module:
        params = {**self.defaults, **kw}
        return self.cls(c_in, c_out, stride=stride, dilation=dilation, **params)

    def example_inputs(
        self, c_in: int, batch: int = 2, height: int = 16, width: int = 16, frames: int = 4
    ) -> tuple[torch.Tensor, ...]:
        if self.example is not None:
            return self.example(c_in, batch, height, width, frames)
        if self.video:
            return (torch.randn(batch, c_in, frames, height, width),)
        return (torch.randn(batch, c_in, height, width),)


_REGISTRY: dict[str, BlockSpec] = {}


def register_block(
    name: str,
    *,
    kind: str,
    paper: str,
    summary: str = "",
    **spec: Any,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: add a block to the catalogue under ``name``."""
    if kind not in KINDS:
        raise ValueError(f"block {name!r}: kind {kind!r} is not one of {KINDS}")

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"block {name!r} is registered twice")
        doc = (cls.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = BlockSpec(
            name=name,
            cls=cls,
            kind=kind,
            paper=paper,
            summary=summary or (doc[0] if doc else ""),
            **spec,
        )
        return cls

    return deco


CATALOGUE_MODULES: tuple[str, ...] = (
    "search_spaces.blocks.conv",
    "search_spaces.blocks.attention",
    "search_spaces.blocks.multiscale",
    "search_spaces.blocks.video",
    "search_spaces.blocks.video_factorized",
    "search_spaces.blocks.mobile",
)


def _load_all() -> None:
    """Import every module that registers blocks (once)."""
    import importlib

    for module in CATALOGUE_MODULES:
        importlib.import_module(module)


def get_block(name: str) -> BlockSpec:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown block {name!r}; known blocks: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def block_names(kind: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def all_blocks() -> Sequence[BlockSpec]:
    _load_all()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def create_block(name: str, c_in: int, c_out: int, stride: int = 1, dilation: int = 1, **kw: Any) -> nn.Module:
    return get_block(name).create(c_in, c_out, stride=stride, dilation=dilation, **kw)
