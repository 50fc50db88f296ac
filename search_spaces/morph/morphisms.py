"""Auto-Keras network morphisms on ``morph`` architectures (pure JSON edits).

Each keeps the ids of existing layers and numbers new layers from ``max id + 1``, so that
:mod:`search_spaces.morph.transfer` finds every layer's weights by id and makes the child
compute the parent's function:

* :func:`deeper`: after a relu on the main chain insert [conv k (identity), bn (identity),
  relu]; the relu's readers read the new relu instead;
* :func:`wider`: set a conv's filters to more (Auto-Keras: twice as many, up to ``max_width``);
* :func:`skip`: for relus ``a`` before ``b`` on the main chain insert ``add``/``concat`` of
  ``(b, a)`` after ``b``; ``b``'s readers read the merge instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from search_spaces.morph.arch import KERNELS, MERGES, Layer, by_id, main_chain, next_id

KINDS = ("deeper", "wider", "skip")


def _copy(arch: Mapping[str, Any]) -> list[Layer]:
    return [{k: list(v) if k == "inputs" else v for k, v in x.items()} for x in arch["layers"]]


def _insert_after(arch: Mapping[str, Any], target: int, new: list[Layer]) -> dict[str, Any]:
    """``new`` (a chain whose first layer reads ``target``) placed right after ``target``; every
    other reader of ``target`` reads the chain's last layer instead."""
    new_ids = {x["id"] for x in new}
    out: list[Layer] = []
    for x in _copy(arch):
        if "inputs" in x and x["id"] not in new_ids:
            x["inputs"] = [new[-1]["id"] if i == target else i for i in x["inputs"]]
        out.append(x)
        if x["id"] == target:
            out.extend({k: list(v) if k == "inputs" else v for k, v in y.items()} for y in new)
    return {"layers": out}


def deeper(arch: Mapping[str, Any], after: int, kernel: int = 3) -> dict[str, Any]:
    """Insert [conv ``kernel`` x channels, bn, relu] after layer ``after`` (a relu)."""
    layers = by_id(arch)
    if layers.get(after, {}).get("type") != "relu":
        raise ValueError(f"morph: deeper needs a relu layer, got layer {after}")
    if kernel not in KERNELS:
        raise ValueError(f"morph: deeper kernel must be one of {KERNELS}, got {kernel!r}")
    filters = _channels_at(arch, after)
    n = next_id(arch)
    return _insert_after(arch, after, [
        {"id": n, "type": "conv", "filters": filters, "kernel": kernel, "inputs": [after]},
        {"id": n + 1, "type": "bn", "inputs": [n]},
        {"id": n + 2, "type": "relu", "inputs": [n + 1]},
    ])


def wider(arch: Mapping[str, Any], conv: int, filters: int) -> dict[str, Any]:
    """Layer ``conv`` (a conv) with ``filters`` filters (more than it has)."""
    layer = by_id(arch).get(conv, {})
    if layer.get("type") != "conv" or filters <= layer["filters"]:
        raise ValueError(f"morph: wider needs a conv layer and more filters, got layer {conv} -> {filters}")
    return {"layers": [dict(x, filters=filters) if x["id"] == conv else x for x in _copy(arch)]}


def skip(arch: Mapping[str, Any], a: int, b: int, kind: str = "add") -> dict[str, Any]:
    """Insert ``kind`` (add or concat) of ``(main=b, skip=a)`` right after ``b``."""
    if kind not in MERGES:
        raise ValueError(f"morph: skip kind must be one of {MERGES}, got {kind!r}")
    order = {x["id"]: p for p, x in enumerate(arch["layers"])}
    if a not in order or b not in order or order[a] >= order[b]:
        raise ValueError(f"morph: a skip needs two layers a before b, got {a} -> {b}")
    return _insert_after(arch, b, [{"id": next_id(arch), "type": kind, "inputs": [b, a]}])


def _channels_at(arch: Mapping[str, Any], lid: int) -> int:
    """Filters of the conv that sets layer ``lid``'s channels (the input's when none; the
    caller checks the width against the real task)."""
    layers = by_id(arch)
    x = layers[lid]
    while x["type"] not in ("conv", "input"):
        x = layers[x["inputs"][0]]
    return x["filters"] if x["type"] == "conv" else 0


# -- where each morphism applies --------------------------------------------------------------
def relus_on_chain(arch: Mapping[str, Any]) -> list[int]:
    """The relus of the main chain, input to head."""
    layers = by_id(arch)
    return [i for i in main_chain(arch) if layers[i]["type"] == "relu"]


def deeper_sites(arch: Mapping[str, Any]) -> list[int]:
    """Relus on the main chain whose channels a conv sets (not the image's)."""
    return [i for i in relus_on_chain(arch) if _channels_at(arch, i) > 0]


def wider_sites(arch: Mapping[str, Any], max_width: int) -> list[int]:
    """Convs with fewer than ``max_width`` filters."""
    return [x["id"] for x in arch["layers"] if x["type"] == "conv" and x["filters"] < max_width]


def skip_sites(arch: Mapping[str, Any]) -> list[tuple[int, int]]:
    """Pairs ``(a, b)`` of relus on the main chain with ``a`` before ``b`` (so that ``a``'s map
    is at least as big as ``b``'s, by a power of 2)."""
    relus = relus_on_chain(arch)
    return [(a, b) for i, a in enumerate(relus) for b in relus[i + 1:]]


def random_morph(arch: Mapping[str, Any], kind: str, rng: np.random.Generator, max_width: int) -> dict[str, Any] | None:
    """One random morphism of ``kind``; ``None`` when it applies nowhere."""
    if kind == "deeper":
        sites = deeper_sites(arch)
        if not sites:
            return None
        return deeper(arch, sites[int(rng.integers(len(sites)))], KERNELS[int(rng.integers(len(KERNELS)))])
    if kind == "wider":
        sites = wider_sites(arch, max_width)
        if not sites:
            return None
        conv = by_id(arch)[sites[int(rng.integers(len(sites)))]]
        return wider(arch, conv["id"], min(2 * conv["filters"], max_width))
    if kind == "skip":
        pairs = skip_sites(arch)
        if not pairs:
            return None
        a, b = pairs[int(rng.integers(len(pairs)))]
        return skip(arch, a, b, MERGES[int(rng.integers(len(MERGES)))])
    raise ValueError(f"morph: unknown morphism {kind!r}; known: {', '.join(KINDS)}")
