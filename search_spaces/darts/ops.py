"""DARTS / NASNet cell operations by name, built from the block catalogue.

``PRIMITIVES`` is the DARTS search set in the order of quark0/darts ``genotypes.py`` (the
column order of α). ``NASNET_OPS`` adds the rest of the NASNet vocabulary (and the extra
entries of DARTS ``operations.py``) so that published genotypes such as NASNet-A
(``sep_conv_7x7``) can be built; they are not searched unless listed in a space's ``ops``.

Every op maps ``C`` channels to ``C`` channels at ``stride`` 1 or 2 and ends without bias.
The catalogue blocks ``sep_conv``, ``dil_conv``, ``factorized_conv`` and ``conv`` are exactly the
DARTS ``SepConv``, ``DilConv``, ``conv_7x1_1x7`` and ``ReLUConvBN`` (same layer order, affine
option, stride placement, no bias), and ``ops.FactorizedReduce`` / ``ops.Zero`` are the DARTS
ones (FactorizedReduce additionally accepts odd sizes), so they are reused as they are.
Any other name is looked up in the catalogue (a standard 2D block, created as
``create_block(name, C, C, stride)``; ``affine`` is passed when the block takes it).
"""

from __future__ import annotations

import re

from torch import nn

from search_spaces.blocks.ops import FactorizedReduce, Zero
from search_spaces.blocks.registry import create_block, get_block

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NASNET_OPS: tuple[str, ...] = (
    "sep_conv_7x7",
    "conv_7x1_1x7",
    "conv_3x1_1x3",
    "conv_1x1",
    "conv_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
)
KNOWN_OPS: tuple[str, ...] = PRIMITIVES + NASNET_OPS

_KXK = re.compile(r"^(sep_conv|dil_conv|conv|max_pool|avg_pool)_(\d+)x\2$")
_FACTORIZED = re.compile(r"^conv_(\d+)x1_1x\1$")


def parse_op(name: str) -> tuple[str, int]:
    """``"sep_conv_5x5"`` -> ``("sep_conv", 5)``; ``("none"|"skip_connect"|block, 0)`` otherwise."""
    m = _KXK.match(name)
    if m:
        return m.group(1), int(m.group(2))
    m = _FACTORIZED.match(name)
    if m:
        return "factorized_conv", int(m.group(1))
    return name, 0


def check_op(name: str) -> str:
    """Return ``name`` if :func:`make_op` can build it, else raise ``ValueError``.

    Accepted: the named ops above, any odd kernel size of the sized families
    (``sep_conv_9x9``, ``conv_5x1_1x5``, ...), or a standard 2D catalogue block name.
    """
    kind, k = parse_op(name)
    if name in ("none", "skip_connect") or (k > 0 and k % 2 == 1):
        return name
    try:
        spec = get_block(name)
    except KeyError:
        raise ValueError(
            f"unknown DARTS op {name!r}; known: {list(KNOWN_OPS)} or a standard 2D catalogue block"
        ) from None
    if not spec.standard_io or spec.video or not spec.supports_stride:
        raise ValueError(f"catalogue block {name!r} cannot be a cell op (needs x -> y with stride)")
    return name


def op_block(name: str) -> str | None:
    """The catalogue block op ``name`` is built from (``sep_conv_3x3`` -> ``sep_conv``), or None
    for the pools, ``skip_connect`` and ``none``."""
    kind, _ = parse_op(name)
    if kind in ("none", "skip_connect", "max_pool", "avg_pool"):
        return None
    return kind


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """The plain (retrain) module of op ``name`` at ``channels`` and ``stride``."""
    kind, k = parse_op(check_op(name))
    c = channels
    if k == 0 and kind not in ("none", "skip_connect"):  # a catalogue block by name
        extra = {"affine": affine} if "affine" in get_block(name).options else {}
        return create_block(name, c, c, stride, **extra)
    if kind == "none":
        return Zero(stride=stride)
    if kind == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    if kind == "max_pool":
        return nn.MaxPool2d(k, stride=stride, padding=k // 2)
    if kind == "avg_pool":
        return nn.AvgPool2d(k, stride=stride, padding=k // 2, count_include_pad=False)
    if kind == "sep_conv":
        return create_block("sep_conv", c, c, stride, kernel_size=k, affine=affine)
    if kind == "dil_conv":
        return create_block("dil_conv", c, c, stride, kernel_size=k, rate=2, affine=affine)
    if kind == "factorized_conv":
        return create_block(
            "factorized_conv", c, c, stride, kernel_size=k, mid_bn_relu=False, affine=affine
        )
    return create_block("conv", c, c, stride, kernel_size=k, affine=affine)
