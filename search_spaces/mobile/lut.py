"""FBNet-style latency look-up table of the ``mobile`` space: one entry per layer configuration.

Predicted latency = stem + Σ over the searched layers + Σ over the stage attention blocks + head
(of the architecture's kind), each measured alone on its input shape (the ProxylessNAS / FBNet
additive model: it ignores what a whole-network forward shares or fuses between layers). Keys:

* ``mobile/stem/{C}x{H}x{W}/s{stem_stride}->{c}``: the 3x3 stem conv;
* ``mobile/s{stage}/{op}/{c_in}x{h}x{w}->{c_out}/s{stride}``: one layer, ``op`` being the block
  with the options it uses (``mbconv-k5-e6-se``, ``blaze-k3``, ``shift_conv``, ...) and
  ``{c_in}x{h}x{w}`` its input;
* ``mobile/s{stage}/attn-{se|gc}/{c}x{h}x{w}``: a stage-level attention block;
* ``mobile/head/{kind}/{c}x{h}x{w}->{head}->{classes}``: the head of that kind (``pool``,
  ``bilinear``, ``factorized_bilinear``, ``attention``) on the last stage's ``{c}x{h}x{w}`` output:
  1x1 head conv, pooling / bilinear pooling / attention and the classifier.

Every key depends on the task's input size and channels and on the width multiplier, so a table
is measured for one task (``automl latency-table --input-size HxW --in-channels C``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from automl.types import Arch, Task
from search_spaces.base import LutEntry
from search_spaces.mobile.network import (
    make_attention,
    make_head,
    make_layer,
    make_stem,
)
from search_spaces.mobile.plan import (
    ATTNS,
    BILINEAR_WIDTH,
    BLOCKS,
    EXPANSIONS,
    HEAD_WIDTH,
    HEADS,
    KERNELS,
    NO_KERNEL,
    STEM_WIDTH,
    WIDTHS,
    Attention,
    Layer,
    Plan,
    make_divisible,
    plan,
    stage_geometries,
)


def stem_key(p: Plan) -> str:
    h, w = p.size
    return f"mobile/stem/{p.in_channels}x{h}x{w}/s{p.stem_stride}->{p.stem}"


def head_key(p: Plan) -> str:
    c, h, w = p.head_in
    return f"mobile/head/{p.head_kind}/{c}x{h}x{w}->{p.head}->{p.num_classes}"


def layer_key(layer: Layer) -> str:
    return f"mobile/s{layer.stage}/{layer.op}/{layer.c_in}x{layer.h}x{layer.w}->{layer.c_out}/s{layer.stride}"


def attention_key(attn: Attention) -> str:
    return f"mobile/s{attn.stage}/attn-{attn.kind}/{attn.channels}x{attn.h}x{attn.w}"


def lut_keys(arch: Arch, task: Task, stem_stride: int) -> list[str]:
    p = plan(arch, task, stem_stride)
    keys = [stem_key(p)]
    for layers, attn in p.stages:
        keys += [layer_key(layer) for layer in layers]
        if attn is not None:
            keys.append(attention_key(attn))
    return [*keys, head_key(p)]


def _ops() -> Iterator[tuple[str, int, int, bool]]:
    """Every distinct (block, kernel, expansion, SE inside) a layer can have."""
    for block in BLOCKS:
        kernels = (KERNELS[0],) if block in NO_KERNEL else KERNELS
        if block == "mbconv":
            yield from ((block, k, e, se) for k, e, se in itertools.product(kernels, EXPANSIONS, (False, True)))
        else:
            yield from ((block, k, EXPANSIONS[0], False) for k in kernels)


def lut_entries(task: Task, stem_stride: int, act: str) -> dict[str, LutEntry]:
    entries: dict[str, LutEntry] = {}
    for width in WIDTHS:
        geometries = stage_geometries(width, task, stem_stride)
        last = geometries[-1]["rest"]
        for kind in HEADS:
            p = Plan(task.in_channels, tuple(task.input_size), stem_stride, make_divisible(STEM_WIDTH * width), (),
                     (last[1], last[2], last[3]), make_divisible(HEAD_WIDTH * width), task.num_classes, kind,
                     make_divisible(BILINEAR_WIDTH * width))
            entries[head_key(p)] = LutEntry(lambda p=p: make_head(p, act), (p.head_in,))
        entries[stem_key(p)] = LutEntry(lambda p=p: make_stem(p, act), ((p.in_channels, *p.size),))
        for g in geometries:
            for c_in, c_out, h, w, stride in (g["first"], g["rest"]):
                for block, k, e, se in _ops():
                    layer = Layer(g["stage"], block, k, e, se, c_in, c_out, h, w, stride)
                    entries[layer_key(layer)] = LutEntry(lambda x=layer: make_layer(x, act), ((c_in, h, w),))
            c, h, w = g["rest"][1], g["rest"][2], g["rest"][3]
            for kind in ATTNS[1:]:
                attn = Attention(g["stage"], kind, c, h, w)
                entries[attention_key(attn)] = LutEntry(lambda a=attn: make_attention(a), ((c, h, w),))
    return entries
