"""Known mobile networks as points of the ``mobile`` space (its six stages, see :mod:`.plan`).

``mobilenetv2-like`` -- MobileNetV2 (Sandler et al. 2018, Table 2: t, c, n, s =
1,16,1,1 / 6,24,2,2 / 6,32,3,2 / 6,64,4,2 / 6,96,3,1 / 6,160,3,2 / 6,320,1,1): inverted
residuals with expansion 1 in the first stage and 6 after, 3x3 depthwise, ReLU6 (the space's
default ``act``), no SE, width 1.0. Layer counts 1, 2, 3, 4, 3, 3 are exactly its first six
stages (deltas -1, 0, 0, +1, 0, +1 on the bases 2, 2, 3, 3, 3, 2); its single 320-wide layer is
left out (the space's head is a 1x1 conv to 640, head ``pool``: average pool, linear as
MobileNetV2's). Stem 32 and stage strides as MobileNetV2.

``blazeface-backbone`` -- BlazeFace's feature extractor (Bazarevsky et al. 2019, Table 4):
5x5 conv 24 /2, then 5 single BlazeBlocks (24, 24, 48 /2, 48, 48) and 6 double BlazeBlocks
(96 /2 with a 24 bottleneck, 96, 96, 96 /2, 96, 96), 5x5 depthwise kernels, ReLU, no attention.
Here: stage 0 two single blocks, stage 1 three single blocks (the first /2), stages 2 and 3 three
double blocks each (the first /2), so 5 single + 6 double with BlazeFace's strides. Deviations:
the space's widths (16, 24, 32, 64 at width 1.0 rather than 24, 48, 96, 96) and its 3x3 stem;
the space always has six stages, so stages 4 and 5 keep their minimum of double blocks (2 and 1)
beyond BlazeFace's 6, and the classification head (``pool``) replaces the detection heads.
"""

from __future__ import annotations

from typing import Any


def _stages(width: float, *stages: tuple[str, int, int, str, int], head: str = "pool") -> dict[str, Any]:
    arch: dict[str, Any] = {"width": width, "head": head}
    for s, (block, kernel, expand, attn, layers) in enumerate(stages):
        arch.update({f"s{s}.block": block, f"s{s}.kernel": kernel, f"s{s}.expand": expand,
                     f"s{s}.attn": attn, f"s{s}.layers": layers})
    return arch


PRESETS: dict[str, dict[str, Any]] = {
    "mobilenetv2-like": _stages(
        1.0,
        ("mbconv", 3, 1, "none", -1),
        ("mbconv", 3, 6, "none", 0),
        ("mbconv", 3, 6, "none", 0),
        ("mbconv", 3, 6, "none", 1),
        ("mbconv", 3, 6, "none", 0),
        ("mbconv", 3, 6, "none", 1),
    ),
    "blazeface-backbone": _stages(
        1.0,
        ("blaze", 5, 1, "none", 0),
        ("blaze", 5, 1, "none", 1),
        ("double_blaze", 5, 1, "none", 0),
        ("double_blaze", 5, 1, "none", 0),
        ("double_blaze", 5, 1, "none", -1),
        ("double_blaze", 5, 1, "none", -1),
    ),
}
