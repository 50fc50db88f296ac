"""Published encoder-decoders as points of ``seg-unet`` (small-scale renderings), and one
architecture per catalogue block the space can choose (:meth:`SegUNetSpace.block_choices`).

* ``unet``: U-Net (Ronneberger et al. 2015): depth 3, width 24, 3x3 conv-BN-ReLU levels, concat skips.
* ``unet++``: UNet++ (Zhou et al. 2018): depth 4, width 16, nested skips at every level, deep supervision
  (on the decoder levels; UNet++ puts its heads on X(0,j)).
* ``attention-unet``: Attention U-Net (Oktay et al. 2018): depth 4, width 16, attention-gated skips, deep supervision.
* ``icnet``: ICNet (Zhao et al. 2018): three cascade input branches fused by CFF, residual levels, PPM, no skips,
  label guidance (the finer branches are two 3x3 convs each; ICNet's are three strided convs).
* ``pan``: Pyramid Attention Network (Li et al. 2018): residual levels, FPA at the bottom, GAU at every level.
* ``deeplab-aspp``: DeepLab v3 (Chen et al. 2017): residual levels, ASPP at the bottom, no skips (the decoder
  steps upsample features where DeepLab upsamples the logits).
* ``panoptic-fpn-semantic``: Panoptic FPN's semantic branch (Kirillov et al. 2019): residual levels, FPN decoder.
* ``dla-seg``: DLA segmentation (Yu et al. 2018): HDA trees as levels (after a conv level), IDA aggregation.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 4

UNET: dict[str, Any] = {
    "depth": 3, "width": 24, "widen": 2,
    **{f"block{i}": "conv3" for i in range(1, MAX_DEPTH + 1)},
    **{f"skip{i}": "concat" for i in range(1, MAX_DEPTH)},
    "context": "none", "aggregation": "concat", "coord": "off", "cascade": 1, "deep_supervision": "off",
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def _levels(prefix: str, count: int, value: str) -> dict[str, str]:
    return {f"{prefix}{i}": value for i in range(1, count + 1)}


RESNET = _levels("block", MAX_DEPTH, "residual")
NO_SKIPS = _levels("skip", MAX_DEPTH - 1, "none")

PRESETS: dict[str, dict[str, Any]] = {
    "unet": UNET,
    "unet++": _with(UNET, depth=4, width=16, **_levels("skip", 3, "nested"), deep_supervision="on"),
    "attention-unet": _with(UNET, depth=4, width=16, **_levels("skip", 3, "attention_gate"), deep_supervision="on"),
    "icnet": _with(UNET, width=16, **RESNET, **NO_SKIPS, context="ppm", cascade=3, deep_supervision="on"),
    "pan": _with(UNET, depth=4, width=16, **RESNET, **_levels("skip", 3, "gau"), context="fpa"),
    "deeplab-aspp": _with(UNET, width=16, **RESNET, **NO_SKIPS, context="aspp"),
    "panoptic-fpn-semantic": _with(UNET, depth=4, width=16, **RESNET, aggregation="fpn"),
    "dla-seg": _with(UNET, depth=4, width=16, block2="hda", block3="hda", block4="hda", aggregation="ida"),
}

# catalogue block -> the decisions that put it into a U-Net (depth 3)
_ENCODER = ("conv", "sep_conv", "dil_conv", "factorized_conv", "inception", "dense_block", "hda", "octave_conv",
            "deform_conv", "blaze", "double_blaze", "gated_residual", "fickle_conv", "shift_conv", "ternary_conv")
_CONTEXT = ("aspp", "ppm", "fpa", "gc", "non_local", "context_enhancement", "mhsa", "self_attention", "se",
            "spatial_attention_module")
_SKIP = ("attention_gate", "gau", "gated_shape_stream")

BLOCK_CHOICES: dict[str, dict[str, Any]] = {
    **{name: _with(UNET, width=8, **_levels("block", MAX_DEPTH, name)) for name in _ENCODER},
    **{name: _with(UNET, width=8, context=name) for name in _CONTEXT},
    **{name: _with(UNET, width=8, **_levels("skip", MAX_DEPTH - 1, name)) for name in _SKIP},
    "nested_skip": _with(UNET, width=8, **_levels("skip", MAX_DEPTH - 1, "nested")),
    "ida": _with(UNET, width=8, aggregation="ida"),
    "fpn": _with(UNET, width=8, aggregation="fpn"),
    "cascade_feature_fusion": _with(UNET, width=8, cascade=2),
    "coord_channels": _with(UNET, width=8, coord="on"),
}
