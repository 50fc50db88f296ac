"""The ``morph`` architecture: a JSON layer graph, its validation and its shape propagation.

An architecture is ``{"layers": [layer, ...]}`` in topological order; each layer is a dict with
a stable integer ``id``, a ``type`` and (all but ``input``) ``inputs``, a list of earlier ids:

=========  ==========================================================================
type       meaning
=========  ==========================================================================
input      the image (exactly one, first)
conv       ``filters``, ``kernel`` in {1, 3, 5}; stride 1, ``same`` padding, with bias
bn         batch normalisation
relu       ReLU
pool       max pooling, ``kernel`` 2, stride 2 (halves the spatial size, rounding down)
add        ``inputs = [main, skip]``: main + proj(skip); proj is a 1x1 conv owned by the node,
           applied after max-pooling the skip down to the main's size
concat     ``inputs = [main, skip]``: conv1x1(cat(main, pooled skip)) back to main's channels
head       classification: global average pool + linear; segmentation: 1x1 conv + bilinear
           upsampling to the input size (exactly one, last)
=========  ==========================================================================

Channel counts are propagated, not stored: ``conv`` sets them, every other layer keeps its
(main) input's. The spatial *level* of a tensor is the number of pools on its main path; a
merge's skip input may not have a higher level than its main input (a skip never upsamples)
and is max-pooled by ``2 ** (main level - skip level)`` to the main's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPES = ("input", "conv", "bn", "relu", "pool", "add", "concat", "head")
MERGES = ("add", "concat")
KERNELS = (1, 3, 5)
POOL_KERNEL = 2
_KEYS: dict[str, tuple[str, ...]] = {
    "input": ("id", "type"),
    "conv": ("id", "type", "filters", "kernel", "inputs"),
    "pool": ("id", "type", "kernel", "inputs"),
}
_DEFAULT_KEYS = ("id", "type", "inputs")

Layer = dict[str, Any]


def keys_of(kind: str) -> tuple[str, ...]:
    """The keys a canonical layer of type ``kind`` has, in order."""
    return _KEYS.get(kind, _DEFAULT_KEYS)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _layer(raw: Any, position: int, seen: dict[int, Layer], max_width: int | None) -> Layer:
    """One layer checked against the earlier ones (``seen``), in canonical form."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"morph: layer {position} is not a mapping: {raw!r}")  # noqa: TRY004 - the space contract
    lid, kind = raw.get("id"), raw.get("type")
    if not _int(lid) or lid < 0:
        raise ValueError(f"morph: layer {position} needs a non-negative integer id, got {lid!r}")
    if lid in seen:
        raise ValueError(f"morph: layer id {lid} is used twice")
    if kind not in TYPES:
        raise ValueError(f"morph: layer {lid} has unknown type {kind!r}; known: {', '.join(TYPES)}")
    if (kind == "input") != (position == 0):
        raise ValueError("morph: the first layer, and only it, must be the input "
                         f"(layer {lid} at position {position} is {kind})")
    allowed = keys_of(kind)
    extra = sorted(set(raw) - set(allowed))
    if extra:
        raise ValueError(f"morph: {kind} layer {lid} has unknown key(s) {extra}; allowed: {list(allowed)}")
    out: Layer = {"id": lid, "type": kind}
    if kind == "conv":
        filters, kernel = raw.get("filters"), raw.get("kernel")
        if not _int(filters) or filters < 1 or (max_width is not None and filters > max_width):
            bound = f"1..{max_width}" if max_width is not None else ">= 1"
            raise ValueError(f"morph: conv layer {lid} filters must be an integer in {bound}, got {filters!r}")
        if kernel not in KERNELS or not _int(kernel):
            raise ValueError(f"morph: conv layer {lid} kernel must be one of {KERNELS}, got {kernel!r}")
        out.update(filters=filters, kernel=kernel)
    if kind == "pool":
        kernel = raw.get("kernel", POOL_KERNEL)
        if kernel != POOL_KERNEL or not _int(kernel):
            raise ValueError(f"morph: pool layer {lid} kernel must be {POOL_KERNEL}, got {kernel!r}")
        out["kernel"] = POOL_KERNEL
    if kind == "input":
        return out
    inputs = raw.get("inputs")
    want = 2 if kind in MERGES else 1
    if not isinstance(inputs, list) or len(inputs) != want or not all(_int(i) for i in inputs):
        raise ValueError(f"morph: {kind} layer {lid} needs 'inputs': a list of {want} layer id(s), got {inputs!r}")
    for i in inputs:
        if i not in seen:
            raise ValueError(f"morph: layer {lid} reads layer {i}, which is not an earlier layer "
                             f"(unknown id or not in topological order)")
        if seen[i]["type"] == "head":
            raise ValueError(f"morph: layer {lid} reads the head {i}")
    if want == 2 and inputs[0] == inputs[1]:
        raise ValueError(f"morph: {kind} layer {lid} merges layer {inputs[0]} with itself")
    out["inputs"] = list(inputs)
    return {k: out[k] for k in allowed}


def validate_arch(arch: Any, max_layers: int | None = None, max_width: int | None = None) -> dict[str, Any]:
    """``arch`` in canonical form, or a one-line ``ValueError`` naming what is wrong."""
    if not isinstance(arch, Mapping):
        raise ValueError(  # noqa: TRY004 - the space contract: a bad architecture is a ValueError
            f"morph: an architecture is a mapping {{'layers': [...]}}, got {type(arch).__name__}")
    extra = sorted(set(arch) - {"layers"})
    if extra:
        raise ValueError(f"morph: unknown key(s) {extra}; an architecture is {{'layers': [...]}}")
    raw = arch.get("layers")
    if not isinstance(raw, list) or not raw:
        raise ValueError("morph: 'layers' must be a non-empty list of layers")
    if max_layers is not None and len(raw) > max_layers:
        raise ValueError(f"morph: {len(raw)} layers exceed max_layers={max_layers}")
    seen: dict[int, Layer] = {}
    layers: list[Layer] = []
    for position, item in enumerate(raw):
        layer = _layer(item, position, seen, max_width)
        seen[layer["id"]] = layer
        layers.append(layer)
    if layers[-1]["type"] != "head" or sum(x["type"] == "head" for x in layers) != 1:
        raise ValueError("morph: the last layer, and only it, must be the head")
    used = {i for x in layers for i in x.get("inputs", ())}
    unused = [x["id"] for x in layers[:-1] if x["id"] not in used]
    if unused:
        raise ValueError(f"morph: the output of layer(s) {unused} is not used by any layer")
    canonical = {"layers": layers}
    levels(canonical)  # raises on a skip from a coarser to a finer resolution
    return canonical


# -- queries on a canonical architecture ---------------------------------------------------------
def by_id(arch: Mapping[str, Any]) -> dict[int, Layer]:
    return {x["id"]: x for x in arch["layers"]}


def next_id(arch: Mapping[str, Any]) -> int:
    """The id a new layer gets: one more than the largest."""
    return max(x["id"] for x in arch["layers"]) + 1


def consumers(arch: Mapping[str, Any]) -> dict[int, list[int]]:
    """Per layer id, the ids of the layers that read it (in order)."""
    out: dict[int, list[int]] = {x["id"]: [] for x in arch["layers"]}
    for x in arch["layers"]:
        for i in x.get("inputs", ()):
            out[i].append(x["id"])
    return out


def main_chain(arch: Mapping[str, Any]) -> list[int]:
    """Ids from the input to the head, following each layer's first (main) input back."""
    layers = by_id(arch)
    chain = [arch["layers"][-1]["id"]]
    while "inputs" in layers[chain[-1]]:
        chain.append(layers[chain[-1]]["inputs"][0])
    return chain[::-1]


def levels(arch: Mapping[str, Any]) -> dict[int, int]:
    """Per layer id, the number of 2x2 pools between the input and its output (main path)."""
    out: dict[int, int] = {}
    for x in arch["layers"]:
        if x["type"] == "input":
            out[x["id"]] = 0
            continue
        main = out[x["inputs"][0]]
        if x["type"] in MERGES:
            skip = out[x["inputs"][1]]
            if skip > main:
                raise ValueError(f"morph: {x['type']} layer {x['id']} joins a skip from layer {x['inputs'][1]} "
                                 f"(1/{2 ** skip} resolution) to a bigger map (layer {x['inputs'][0]}, "
                                 f"1/{2 ** main}); skips may only go from bigger to smaller maps")
        out[x["id"]] = main + (x["type"] == "pool")
    return out


def channels(arch: Mapping[str, Any], in_channels: int) -> dict[int, int]:
    """Per layer id, the channels of its output (the head's: its input's)."""
    out: dict[int, int] = {}
    for x in arch["layers"]:
        if x["type"] == "input":
            out[x["id"]] = in_channels
        elif x["type"] == "conv":
            out[x["id"]] = x["filters"]
        else:
            out[x["id"]] = out[x["inputs"][0]]
    return out


def check_size(arch: Mapping[str, Any], input_size: tuple[int, ...]) -> None:
    """Refuse pools that would shrink ``input_size`` below 1x1 (one-line ``ValueError``)."""
    depth = levels(arch)
    deepest = max(depth, key=depth.__getitem__)
    if any(s >> depth[deepest] < 1 for s in input_size):
        raise ValueError(f"morph: {depth[deepest]} pools (up to layer {deepest}) shrink a "
                         f"{'x'.join(map(str, input_size))} input below 1x1")


def num_params(arch: Mapping[str, Any], in_channels: int, num_classes: int) -> int:
    """Trainable parameters of the built network, counted from the graph (BN: weight + bias;
    the head's count is the same for classification and segmentation)."""
    ch = channels(arch, in_channels)
    total = 0
    for x in arch["layers"]:
        if x["type"] == "input":
            continue
        c_in = ch[x["inputs"][0]]
        if x["type"] == "conv":
            total += x["kernel"] ** 2 * c_in * x["filters"] + x["filters"]
        elif x["type"] == "bn":
            total += 2 * c_in
        elif x["type"] == "add":
            total += ch[x["inputs"][1]] * c_in + c_in
        elif x["type"] == "concat":
            total += (c_in + ch[x["inputs"][1]]) * c_in + c_in
        elif x["type"] == "head":
            total += c_in * num_classes + num_classes
    return total


def widest(arch: Mapping[str, Any]) -> int:
    """The largest conv filter count (0 without convs)."""
    return max((x["filters"] for x in arch["layers"] if x["type"] == "conv"), default=0)
