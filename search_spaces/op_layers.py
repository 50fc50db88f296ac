"""The layers an operation applies, read from its name (the graph form of :mod:`search_spaces.base`).

Spaces that label graph edges with op names (``nor_conv_3x3``, ``sep_conv_5x5``, ``max_pool_3x3``,
``skip_connect`` ...) need not spell out their layers: :func:`op_layers` reads them. Each layer
is a dict with ``type`` and numeric attributes (``kernel``, ``dilation``, ``stride`` ...). Conv
families keep their own type (``conv``, ``sep_conv``, ``dil_conv``, ``fac_conv``) so that a
separable and a plain convolution count as different layers; an unknown name is one layer of
that type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Layer = dict[str, Any]

NO_OP = frozenset({"none", "zero"})
WIRES = frozenset({"concat", "wire", ""})
IDENTITY = frozenset({"skip_connect", "identity", "skip"})

_CONV = re.compile(r"^(?P<family>nor_conv|sep_conv|dil_conv|conv)_(?P<k>\d+)x(?P=k)$")
_FACTORIZED = re.compile(r"^conv_(?P<k>\d+)x1_1x(?P=k)$")
_POOL = re.compile(r"^(?P<kind>max|avg)_pool_(?P<k>\d+)x(?P=k)$")
_FAMILY = {"nor_conv": "conv", "conv": "conv", "sep_conv": "sep_conv", "dil_conv": "dil_conv"}


def op_layers(op: str) -> tuple[Layer, ...] | None:
    """The layers of op ``op`` in order; ``()`` for a plain wire, ``None`` for no op (``none``)."""
    name = str(op)
    if name in NO_OP:
        return None
    if name in WIRES:
        return ()
    if name in IDENTITY:
        return ({"type": "identity"},)
    if m := _CONV.match(name):
        family = _FAMILY[m["family"]]
        layer: Layer = {"type": family, "kernel": int(m["k"]), "stride": 1}
        if family == "dil_conv":
            layer["dilation"] = 2
        return (layer,)
    if m := _FACTORIZED.match(name):
        return ({"type": "fac_conv", "kernel": int(m["k"]), "stride": 1},)
    if m := _POOL.match(name):
        k = int(m["k"])
        return ({"type": f"{m['kind']}_pool", "kernel": k, "stride": 1, "padding": k // 2},)
    return ({"type": name},)


def edge_branches(data: Mapping[str, Any]) -> list[tuple[Layer, ...]]:
    """The parallel branches of one graph edge (its ``layers``, or its ``ops`` / ``op`` read by
    :func:`op_layers`), each a layer sequence; ops that are ``none`` give no branch."""
    if "layers" in data:
        return [tuple(dict(x) for x in data["layers"])]
    ops: Sequence[str] = data.get("ops") or [data.get("op", "")]
    return [layers for op in ops if (layers := op_layers(op)) is not None]
