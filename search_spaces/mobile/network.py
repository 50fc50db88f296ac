"""The ``mobile`` network: stem -> stages of catalogue blocks -> a head (1x1 conv, then one of
four classifiers: :func:`make_head`).

Every layer is a catalogue block (:mod:`search_spaces.blocks`). Blocks that are complete units
(``mbconv``, ``blaze``, ``double_blaze``: norm, activation and residual inside) are used as
they are; blocks that replace a bare conv get the missing pieces around them:

* ``octave_conv`` (two tensors in and out) becomes :class:`OctaveUnit`: an octave conv that
  splits one map into high/low frequencies (alpha 0 -> 0.5), norm + act per frequency, and one
  that merges them back (alpha 0.5 -> 0), so the layer maps one tensor to one tensor;
* ``octave_conv``, ``shift_conv``, ``ternary_conv``: + norm + act; ``factorized_conv`` (which
  ends in BN): + act; ``inception`` (Conv-BN-ReLU branches): nothing;
* and these five add the identity when ``stride == 1`` and ``c_in == c_out`` (:class:`Residual`).

The heads ``bilinear``, ``factorized_bilinear`` and ``attention`` are the catalogue's
``bilinear_pool``, ``factorized_bilinear`` and ``attention_estimator`` (see :func:`make_head`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from search_spaces.blocks import create_block
from search_spaces.layers import ConvNormAct, create_act, create_norm
from search_spaces.mobile.plan import HEADS, SE_RATIO, Attention, Layer, Plan


class Residual(nn.Module):
    """``body(x) + x`` when ``residual`` (stride 1, same width), else ``body(x)``."""

    def __init__(self, body: nn.Module, residual: bool) -> None:
        super().__init__()
        self.body, self.residual = body, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class OctaveUnit(nn.Module):
    """Two ``octave_conv`` layers with one tensor in and out: split into high/low frequency
    (``alpha_out=alpha``, carrying the stride), norm + act per frequency, merge (``alpha_in=alpha``,
    ``alpha_out=0``) -- OctConv's first and last layer of a network back to back."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel_size: int, act: str, alpha: float = 0.5) -> None:
        super().__init__()
        self.split = create_block("octave_conv", c_in, c_out, stride, kernel_size=kernel_size,
                                  alpha_in=0.0, alpha_out=alpha)
        self.norm_high = nn.Sequential(create_norm("bn", self.split.c_out_high), create_act(act))
        self.norm_low = nn.Sequential(create_norm("bn", self.split.c_out_low), create_act(act))
        self.merge = create_block("octave_conv", c_out, c_out, 1, kernel_size=kernel_size,
                                  alpha_in=alpha, alpha_out=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high, low = self.split(x)
        assert low is not None  # alpha_out > 0
        return self.merge(self.norm_high(high), self.norm_low(low))[0]


def make_layer(layer: Layer, act: str) -> nn.Module:
    """The module of one planned layer."""
    c_in, c_out, s, k = layer.c_in, layer.c_out, layer.stride, layer.kernel
    residual = s == 1 and c_in == c_out
    if layer.block == "mbconv":
        return create_block("mbconv", c_in, c_out, s, kernel_size=k, expansion=layer.expand,
                            se_ratio=SE_RATIO if layer.se else 0.0, act=act)
    if layer.block in ("blaze", "double_blaze"):
        return create_block(layer.block, c_in, c_out, s, kernel_size=k)
    if layer.block == "inception":
        return Residual(create_block("inception", c_in, c_out, s), residual)
    if layer.block == "octave_conv":
        body: list[nn.Module] = [OctaveUnit(c_in, c_out, s, k, act)]
    elif layer.block == "shift_conv":
        body = [create_block("shift_conv", c_in, c_out, s)]
    else:  # ternary_conv, factorized_conv
        body = [create_block(layer.block, c_in, c_out, s, kernel_size=k)]
    if layer.block != "factorized_conv":
        body.append(create_norm("bn", c_out))
    return Residual(nn.Sequential(*body, create_act(act)), residual)


def make_attention(attn: Attention) -> nn.Module:
    """The catalogue's ``se`` or ``gc`` block on the stage's output (channel-preserving)."""
    return create_block(attn.kind, attn.channels, attn.channels)


def make_stem(p: Plan, act: str) -> nn.Module:
    return ConvNormAct(p.in_channels, p.stem, 3, p.stem_stride, act=act)


class AttentionHead(nn.Module):
    """Jetley et al.'s attention head: the catalogue ``attention_estimator`` with the last stage's
    output as the local features l (projected by its 1x1 conv to the head width) and
    ``g = pool(head conv(l))`` as the global feature; the classifier sees ``[g_a, g]``.

    Compatibility ``pc`` (the paper's best): the term ``<u, g>`` cancels in the softmax, so g
    cannot steer the map and a classifier on g_a alone (the paper's) would leave the head conv
    unused; hence g_a is concatenated with g."""

    def __init__(self, c_in: int, head: int, num_classes: int, act: str) -> None:
        super().__init__()
        self.conv = ConvNormAct(c_in, head, 1, act=act)
        self.estimator = create_block("attention_estimator", c_in, head, global_channels=head, compatibility="pc")
        self.fc = nn.Linear(2 * head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.conv(x).mean(dim=(2, 3))
        g_a, _ = self.estimator(x, g)
        return self.fc(torch.cat([g_a, g], dim=1))


def make_head(p: Plan, act: str) -> nn.Module:
    """The head on the last stage's output ``p.head_in``, by ``p.head_kind``. All but ``attention``
    start with a 1x1 conv + norm + act to the head width ``p.head`` (640 x width):

    * ``pool``: global average pool, linear (MobileNetV2);
    * ``bilinear``: the catalogue ``bilinear_pool`` (Lin, RoyChowdhury & Maji, Bilinear CNNs,
      TPAMI 2017), symmetric (b = None), its 1x1 projection reducing the head features to
      ``p.bilinear`` (64 x width) channels so the ``p.bilinear ** 2`` descriptor stays small;
      signed sqrt + L2 norm, then linear;
    * ``factorized_bilinear``: the catalogue ``factorized_bilinear`` (Li et al., Factorized
      Bilinear Models, ICCV 2017; rank 20) mapping the head features straight to the logits;
    * ``attention``: :class:`AttentionHead` (Jetley et al., Learn To Pay Attention, ICLR 2018).

    Total stride 32 leaves a 1x1 last stage on 32x32 and 8x8 inputs (stem stride 2): there the
    attention map is the constant 1 (g_a is the projected local feature; its scorer u learns
    nothing) and bilinear pooling is one outer product; larger inputs or ``stem_stride=1`` (2x2
    at 32x32) give them several positions. Every head exports to TorchScript, pt2 and ONNX with
    parity (tests/test_mobile_space.py).
    """
    c_in, head, classes = p.head_in[0], p.head, p.num_classes
    if p.head_kind == "pool":
        return nn.Sequential(ConvNormAct(c_in, head, 1, act=act), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                             nn.Linear(head, classes))
    if p.head_kind == "bilinear":
        # symmetric (b = None); c_in_b = the reduced width makes the unused b-stream map the identity
        pool = create_block("bilinear_pool", head, p.bilinear, c_in_b=p.bilinear)
        return nn.Sequential(ConvNormAct(c_in, head, 1, act=act), pool, nn.Linear(p.bilinear * p.bilinear, classes))
    if p.head_kind == "factorized_bilinear":
        return nn.Sequential(ConvNormAct(c_in, head, 1, act=act), create_block("factorized_bilinear", head, classes))
    if p.head_kind == "attention":
        return AttentionHead(c_in, head, classes, act)
    raise ValueError(f"mobile: head must be one of {', '.join(HEADS)}, got {p.head_kind!r}")


class MobileNetwork(nn.Sequential):
    """``stem -> stages -> head`` of a :class:`~search_spaces.mobile.plan.Plan` (a plain module)."""

    def __init__(self, p: Plan, act: str = "relu6") -> None:
        stages = []
        for layers, attn in p.stages:
            mods = [make_layer(layer, act) for layer in layers]
            if attn is not None:
                mods.append(make_attention(attn))
            stages.append(nn.Sequential(*mods))
        super().__init__(OrderedDict(stem=make_stem(p, act), stages=nn.Sequential(*stages), head=make_head(p, act)))
