"""Short text of a ``morph`` architecture and back.

One token per layer in order: ``[ID:]OP[<IN,IN]`` with OP ``input``, ``conv{kernel}x{filters}``,
``bn``, ``relu``, ``pool``, ``add``, ``concat``, ``head``. The id is written only where it is not
the previous id + 1 (the first: 0), the inputs only where they are not the previous layer (a
merge always writes ``<main,skip>``). Auto-Keras's CNN reads
``input conv3x64 bn relu pool conv3x64 bn relu pool conv3x64 bn relu pool head``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from search_spaces.morph.arch import MERGES, POOL_KERNEL, Layer

_TOKEN = re.compile(r"^(?:(?P<id>\d+):)?(?P<op>[a-z]+(?:\d+x\d+)?)(?:<(?P<inputs>\d+(?:,\d+)*))?$")
_CONV = re.compile(r"^conv(\d+)x(\d+)$")
_PLAIN = ("input", "bn", "relu", "pool", "add", "concat", "head")


def describe_arch(arch: Mapping[str, Any]) -> str:
    tokens, prev = [], -1
    for x in arch["layers"]:
        lid, kind = x["id"], x["type"]
        token = "" if lid == prev + 1 else f"{lid}:"
        token += f"conv{x['kernel']}x{x['filters']}" if kind == "conv" else kind
        inputs = x.get("inputs")
        if inputs is not None and (kind in MERGES or inputs != [prev]):
            token += "<" + ",".join(map(str, inputs))
        tokens.append(token)
        prev = lid
    return " ".join(tokens)


def parse_arch(text: str) -> dict[str, Any]:
    """The architecture of :func:`describe_arch`'s text (not validated)."""
    layers: list[Layer] = []
    prev = -1
    for token in text.split():
        m = _TOKEN.match(token)
        if m is None:
            raise ValueError(f"morph: cannot read {token!r}; a layer is [ID:]OP[<IN,IN] (e.g. 5:conv3x64<4)")
        lid = int(m["id"]) if m["id"] is not None else prev + 1
        op = m["op"]
        layer: Layer = {"id": lid}
        if conv := _CONV.match(op):
            layer.update(type="conv", filters=int(conv[2]), kernel=int(conv[1]))
        elif op in _PLAIN:
            layer["type"] = op
            if op == "pool":
                layer["kernel"] = POOL_KERNEL
        else:
            known = "conv{k}x{filters}, " + ", ".join(_PLAIN)
            raise ValueError(f"morph: unknown layer {op!r} in {token!r}; known: {known}")
        if op != "input" or m["inputs"]:  # an input with inputs: validation names the error
            layer["inputs"] = [int(i) for i in m["inputs"].split(",")] if m["inputs"] else [prev]
        layers.append(layer)
        prev = lid
    return {"layers": layers}
