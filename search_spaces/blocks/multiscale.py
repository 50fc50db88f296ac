"""Blocks of the 'Multi-scale, decoders, aggregation' table of docs/algorithms.md Block notes.

Kinds: the two context-pooling modules (``aspp``, ``ppm``) are ``kind="context"``; everything
that merges, decodes or aggregates several feature maps is ``kind="decoder"``.

Conventions shared by these blocks:

* ``dilation`` multiplies a block's own atrous rates (DeepLab doubles its rates when the
  output stride goes from 16 to 8); blocks with no dilated conv and no stride raise on
  ``stride != 1`` / ``dilation != 1`` rather than silently ignoring them.
* Pyramid inputs are passed finest first, either as separate arguments ``block(f0, f1, ...)``
  or as one list; their default channels are ``c_in * 2**i`` (ResNet-like doubling), override
  with ``in_channels=``. Every resampling goes to the exact size of its target, so odd sizes
  such as 33x47 (pyramid 33x47, 17x24, 9x12, 5x6) work.
* Pooled 1x1 branches (ASPP image pooling, PPM bin 1) cannot use BatchNorm at batch 1 in train
  mode (torch raises "Expected more than 1 value per channel"); pass ``pool_norm="gn"`` or
  ``"none"`` for that case.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks._multiscale_ops import (
    AggregationNode,
    BasicBlock,
    adaptive_avg_pool,
    ceil_div,
    features_arg,
    only_unit,
    pyramid_channels,
    pyramid_example,
    resize,
)
from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct

# --------------------------------------------------------------------------------------------
# Context pooling: ASPP, PPM
# --------------------------------------------------------------------------------------------


DEEPLAB_CROP = 513  # DeepLab's training crop: rates (6, 12, 18) at output stride 16 meet 33x33 maps


def aspp_rates_at(rates: Sequence[int], stride: int, input_size: Sequence[int] | None = None) -> tuple[int, ...]:
    """DeepLab rates given at output stride 16, scaled to ``stride`` (x 16/s; at least 1).

    With ``input_size`` (H, W of the images the net is built for), inputs smaller than DeepLab's
    513-pixel crops also scale the rates by ``min(H, W) / 513``, so each branch covers the share
    of the image it covers in DeepLab. Without it a 3x3 filter at a rate near its map's size
    keeps only its centre tap, a 1x1 conv (DeepLabv3 §3.3): 32x32 images at stride 1 would get
    rates 96/192/288 on a 32x32 map. Crops of 513 pixels and more (DeepLab, Auto-DeepLab's 769
    Cityscapes retrain) keep the rates unscaled. Deviation from DeepLab and Auto-DeepLab, which
    never train below 321 pixels; on the ``seg-hierarchical`` zero-flag demo (32x32 shapes) the
    found net's val mIoU rose from 0.510 to 0.536 (seeds 0-2) at the same step time.
    """
    scale = 16 / stride
    if input_size:
        scale *= min(1.0, min(input_size) / DEEPLAB_CROP)
    return tuple(max(1, round(r * scale)) for r in rates)



@register_block(
    "aspp",
    kind="context",
    paper="DeepLab v3 (Rethinking Atrous Convolution); Auto-DeepLab",
    signature="x [N,c_in,H,W] -> [N,c_out,ceil(H/s),ceil(W/s)]",
)
class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image pooling (DeepLab v3, Auto-DeepLab heads).

    Branches, in order: an optional 1x1 conv, one 3x3 conv per rate in ``rates`` (dilation =
    rate x ``dilation``), and optional image pooling (global average -> 1x1 conv -> broadcast back
    to the branch size, which equals DeepLab's bilinear upsampling of a 1x1 map). Each branch is
    conv-norm-ReLU with ``c_branch`` channels (default ``c_out``); their concat is projected by a
    1x1 conv-norm-ReLU to ``c_out`` (+ dropout in training if ``dropout > 0``). ``stride`` is
    applied by every conv branch (padding = rate keeps ceil(H/s)).

    Branch sets: DeepLab v3 / the Auto-DeepLab retrain head is the default 5 branches
    (1x1, rates 6/12/18, pooling); the Auto-DeepLab search head at output stride s is 3 branches
    (1x1, one 3x3 at rate 96/s, pooling), see :meth:`auto_deeplab_search_head`.

    ``norm`` is the branches' normalisation; ``pool_norm`` (default: ``norm``) the pooling
    branch's. BatchNorm there fails at batch 1 in train mode (a 1x1 map has one value per
    channel); use ``pool_norm="gn"`` or ``"none"`` for batch-1 training. ``act`` is every unit's
    activation; all three are names for create_norm / create_act.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        rates: Sequence[int] = (6, 12, 18),
        include_1x1: bool = True,
        image_pooling: bool = True,
        c_branch: int | None = None,
        norm: str = "bn",
        pool_norm: str | None = None,
        dropout: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        c_branch = c_branch or c_out
        self.stride = stride
        self.rates = tuple(int(r) * dilation for r in rates)
        convs: list[nn.Module] = []
        if include_1x1:
            convs.append(ConvNormAct(c_in, c_branch, 1, stride=stride, norm=norm, act=act))
        for r in self.rates:
            convs.append(ConvNormAct(c_in, c_branch, 3, stride=stride, dilation=r, norm=norm, act=act))
        self.branches = nn.ModuleList(convs)
        self.pool = (
            ConvNormAct(c_in, c_branch, 1, norm=pool_norm or norm, act=act) if image_pooling else None
        )
        n_branches = len(convs) + int(image_pooling)
        if n_branches == 0:
            raise ValueError("ASPP needs at least one branch")
        self.project = ConvNormAct(n_branches * c_branch, c_out, 1, norm=norm, act=act)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @classmethod
    def auto_deeplab_search_head(cls, c_in: int, c_out: int, output_stride: int, **kw) -> ASPP:
        """Auto-DeepLab's search-time head at output stride s: 1x1, 3x3 at rate 96/s, pooling."""
        return cls(c_in, c_out, rates=(96 // output_stride,), **kw)

    @classmethod
    def deeplab_v3(cls, c_in: int, c_out: int, output_stride: int = 16, rates: Sequence[int] = (6, 12, 18),
                   input_size: Sequence[int] | None = None, **kw) -> ASPP:
        """DeepLab v3 / Auto-DeepLab retrain head: 1x1, ``rates`` (at output stride 16) scaled by
        :func:`aspp_rates_at` to ``output_stride`` and ``input_size``, pooling."""
        return cls(c_in, c_out, rates=aspp_rates_at(rates, output_stride, input_size), **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.pool is not None:
            size = (ceil_div(x.shape[-2], self.stride), ceil_div(x.shape[-1], self.stride))
            pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
            outs.append(pooled.expand(-1, -1, size[0], size[1]))
        return self.dropout(self.project(torch.cat(outs, dim=1)))


@register_block(
    "ppm",
    kind="context",
    paper="PSPNet (Pyramid Scene Parsing Network), used in PAN",
    signature="x [N,c_in,H,W] -> [N,c_out,ceil(H/s),ceil(W/s)]",
)
class PPM(nn.Module):
    """Pyramid pooling module of PSPNet: pooled bins 1,2,3,6, upsampled, concat with the input.

    Each bin b: adaptive average pooling to b x b (torch's windows, also when b does not divide
    H or W) -> 1x1 conv-norm-ReLU to ``c_branch`` (default c_in / len(bins), the paper's 1/N) ->
    bilinear upsampling to H x W (align_corners=True as PSPNet's Caffe interp). The input and the
    branches are concatenated and fused by the PSPNet head's 3x3 conv-norm-ReLU to ``c_out``
    (with ``stride`` and ``dilation``; + dropout 0.1 in the paper, ``dropout`` here, default 0).
    The final per-class 1x1 classifier of PSPNet is left to the network.

    Pooling is two matrix products with constant averaging matrices so the block exports to
    ONNX compactly for any size. ``pool_norm`` (default ``norm``) normalises the pooled
    branches: BatchNorm on the 1x1 bin fails at batch 1 in train mode; use "gn" or "none".
    ``act`` is every unit's activation (names for create_norm / create_act).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        bins: Sequence[int] = (1, 2, 3, 6),
        c_branch: int | None = None,
        norm: str = "bn",
        pool_norm: str | None = None,
        align_corners: bool = True,
        dropout: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        c_branch = c_branch or max(1, c_in // len(self.bins))
        self.align_corners = align_corners
        self.stages = nn.ModuleList(
            ConvNormAct(c_in, c_branch, 1, norm=pool_norm or norm, act=act) for _ in self.bins
        )
        self.fuse = ConvNormAct(
            c_in + len(self.bins) * c_branch, c_out, 3, stride, dilation, norm=norm, act=act
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = [x]
        for b, stage in zip(self.bins, self.stages, strict=True):
            feats.append(resize(stage(adaptive_avg_pool(x, b)), size, align_corners=self.align_corners))
        return self.dropout(self.fuse(torch.cat(feats, dim=1)))


# --------------------------------------------------------------------------------------------
# Pyramid decoders: FPN, ICNet cascade feature fusion, UNet++ nested skips
# --------------------------------------------------------------------------------------------


@register_block(
    "fpn",
    kind="decoder",
    paper="Panoptic Feature Pyramid Networks (FPN top-down pathway + semantic branch)",
    signature=(
        "(C2, C3, C4, C5) finest first, channels in_channels -> "
        "((P2..P5[,P6]) each [N,c_out,H_i,W_i], semantic [N,num_classes or semantic_channels,H_0,W_0]); "
        "semantic_head=False returns only the tuple of levels"
    ),
    standard_io=False,
    supports_stride=False,
    example=pyramid_example(4),
    test_kwargs={"semantic_channels": 16},
)
class FPN(nn.Module):
    """Feature pyramid top-down pathway with lateral 1x1 convs and Panoptic FPN's semantic head.

    FPN: P_top = lateral(C_top); P_i = lateral(C_i) + nearest-upsample(P_{i+1}) to C_i's exact size;
    each merged map goes through a 3x3 output conv, so every level has ``c_out`` channels.
    ``extra_level`` adds P6 = 1x1 max-pool stride 2 of the top level (for an RPN).

    Semantic branch (Panoptic FPN): each of P2..P5 goes through max(1, i) stages of 3x3 conv
    (``semantic_channels``), GroupNorm, ReLU and 2x bilinear upsampling (to the exact size of the
    next finer level) until the finest level's size; the results are summed and, if
    ``num_classes`` is given, a 1x1 conv gives the class logits. Deviation: the final 4x bilinear
    upsampling to image resolution is left to the network (the block does not know the stride
    of its finest input).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        in_channels: Sequence[int] | None = None,
        num_levels: int = 4,
        semantic_head: bool = True,
        semantic_channels: int = 128,
        num_classes: int | None = None,
        extra_level: bool = False,
    ) -> None:
        super().__init__()
        only_unit("fpn", stride, dilation)
        chans = pyramid_channels(c_in, num_levels, in_channels)
        self.num_levels = num_levels
        self.extra_level = extra_level
        self.lateral = nn.ModuleList(nn.Conv2d(c, c_out, 1) for c in chans)
        self.output = nn.ModuleList(nn.Conv2d(c_out, c_out, 3, padding=1) for _ in chans)
        self.semantic = None
        self.classifier = None
        if semantic_head:
            self.semantic = nn.ModuleList(
                nn.ModuleList(
                    ConvNormAct(c_out if k == 0 else semantic_channels, semantic_channels, 3, norm="gn")
                    for k in range(max(1, level))
                )
                for level in range(num_levels)
            )
            if num_classes is not None:
                self.classifier = nn.Conv2d(semantic_channels, num_classes, 1)

    def forward(
        self, *features: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | tuple[torch.Tensor, ...]:
        feats = features_arg(features, self.num_levels, "fpn")
        merged: list[torch.Tensor] = [self.lateral[-1](feats[-1])]
        for i in range(self.num_levels - 2, -1, -1):
            top = resize(merged[0], feats[i].shape[-2:], mode="nearest")
            merged.insert(0, self.lateral[i](feats[i]) + top)
        levels = [conv(p) for conv, p in zip(self.output, merged, strict=True)]
        if self.extra_level:
            levels.append(F.max_pool2d(levels[-1], 1, stride=2))
        if self.semantic is None:
            return tuple(levels)
        sizes = [f.shape[-2:] for f in feats]
        total = None
        for level, stages in enumerate(self.semantic):
            y = levels[level]
            for k, stage in enumerate(stages):
                y = stage(y)
                if level > 0:  # one 2x upsampling per stage until the finest size
                    y = resize(y, sizes[level - k - 1])
            total = y if total is None else total + y
        if self.classifier is not None:
            total = self.classifier(total)
        return tuple(levels), total


def _cff_example(c_in: int, batch: int, height: int, width: int, frames: int) -> tuple[torch.Tensor, ...]:
    low = torch.randn(batch, c_in, ceil_div(height, 2), ceil_div(width, 2))
    return low, torch.randn(batch, c_in, height, width)


@register_block(
    "cascade_feature_fusion",
    kind="decoder",
    paper="ICNet for Real-Time Semantic Segmentation on High-Resolution Images",
    signature=(
        "(low [N,c_in,h,w], high [N,c_high,H,W]) -> fused [N,c_out,H,W] in eval; "
        "(fused, aux_logits [N,num_classes,H,W]) in train mode when aux=True"
    ),
    standard_io=False,
    supports_stride=False,
    example=_cff_example,
)
class CascadeFeatureFusion(nn.Module):
    """ICNet cascade feature fusion (CFF): merge a low-res and a high-res branch at the high size.

    low (F1) is upsampled bilinearly to the high branch's exact size (2x in ICNet), then a 3x3
    conv with dilation ``rate`` x ``dilation`` (ICNet: 2) and BN to ``c_out``; high (F2, ``c_high``
    channels, default c_in) goes through a 1x1 conv and BN to ``c_out``; the sum goes through
    ReLU. Auxiliary label guidance: in train mode (``aux=True``) a 1x1 classifier on the
    upsampled low branch also returns ``num_classes`` logits for the cascade loss, as ICNet
    does only during training; eval returns the fused map alone.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        c_high: int | None = None,
        rate: int = 2,
        num_classes: int = 19,
        aux: bool = True,
    ) -> None:
        super().__init__()
        only_unit("cascade_feature_fusion", stride, None)
        self.low = ConvNormAct(c_in, c_out, 3, dilation=rate * dilation, act=None)
        self.high = ConvNormAct(c_high or c_in, c_out, 1, act=None)
        self.classifier = nn.Conv2d(c_in, num_classes, 1) if aux else None

    def forward(
        self, low: torch.Tensor, high: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        up = resize(low, high.shape[-2:])
        fused = F.relu(self.low(up) + self.high(high))
        if self.training and self.classifier is not None:
            return fused, self.classifier(up)
        return fused


class NestedSkipNode(nn.Module):
    """UNet++ node X(i,j) (j >= 1): conv block on concat(X(i,0..j-1), up(X(i+1,j-1)))."""

    def __init__(self, c_skips: int, c_below: int, c_out: int, upsample: str) -> None:
        super().__init__()
        if upsample == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(c_below, c_out, 2, stride=2)
            c_up = c_out
        elif upsample == "bilinear":
            self.up = nn.Identity()
            c_up = c_below
        else:
            raise ValueError(f"upsample must be 'transpose' or 'bilinear', got {upsample!r}")
        self.convs = nn.Sequential(ConvNormAct(c_skips + c_up, c_out, 3), ConvNormAct(c_out, c_out, 3))

    def upsample(self, below: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """up(X(i+1,j-1)) at exactly ``size``: 2x transposed conv cropped, or bilinear."""
        y = self.up(below)
        if isinstance(self.up, nn.ConvTranspose2d):
            return y[:, :, : size[0], : size[1]]  # 2 * ceil(H/2) >= H: crop the extra row/col
        return resize(y, size)

    def forward(self, skips: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        size = skips[0].shape[-2:]
        return self.convs(torch.cat([*skips, self.upsample(below, size)], dim=1))


@register_block(
    "nested_skip",
    kind="decoder",
    paper="UNet++: Redesigning Skip Connections to Exploit Multiscale Features in Image Segmentation",
    signature=(
        "(X(0,0), ..., X(depth,0)) encoder features finest first -> [N,c_out,H_0,W_0] from X(0,depth); "
        "deep_supervision=True returns a tuple of depth maps, one per X(0,j), j=1..depth"
    ),
    standard_io=False,
    supports_stride=False,
    example=pyramid_example(5),
)
class NestedSkip(nn.Module):
    """UNet++ decoder of dense nested skip nodes X(i,j), with optional deep-supervision heads.

    Inputs are the encoder's backbone nodes X(i,0), i = 0..depth (finest first, ``in_channels``).
    Node X(i,j), j >= 1, receives concat(X(i,0), ..., X(i,j-1), up(X(i+1,j-1))) and applies two
    3x3 conv-BN-ReLU (BN as in the published implementations; the first Keras release used
    plain conv-ReLU with dropout) giving ``filters[i]`` channels (default ``in_channels[i]``).
    ``up`` is UNet++'s 2x2 stride-2 transposed conv to ``filters[i]`` channels, cropped to the
    skip's size on odd sizes (``upsample="bilinear"`` resizes instead, keeping the channels).
    A 1x1 head maps X(0,depth) to ``c_out`` (e.g. classes); with ``deep_supervision`` every
    X(0,j) gets its own head and all ``depth`` outputs are returned (for the averaged loss, or to
    prune to depth j at inference). :meth:`nodes` returns every X(i,j).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        depth: int = 4,
        in_channels: Sequence[int] | None = None,
        filters: Sequence[int] | None = None,
        deep_supervision: bool = False,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        only_unit("nested_skip", stride, dilation)
        chans = pyramid_channels(c_in, depth + 1, in_channels)
        filters = list(filters) if filters is not None else list(chans)
        if len(filters) != depth + 1:
            raise ValueError(f"filters needs {depth + 1} entries, got {len(filters)}")
        self.depth = depth
        self.filters = filters
        self.nodes_ = nn.ModuleDict()
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                c_skips = chans[i] + (j - 1) * filters[i]
                c_below = chans[i + 1] if j == 1 else filters[i + 1]
                self.nodes_[f"{i}_{j}"] = NestedSkipNode(c_skips, c_below, filters[i], upsample)
        heads = range(1, depth + 1) if deep_supervision else [depth]
        self.heads = nn.ModuleDict({str(j): nn.Conv2d(filters[0], c_out, 1) for j in heads})

    def node(self, i: int, j: int) -> NestedSkipNode:
        return self.nodes_[f"{i}_{j}"]

    def nodes(self, *features: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        """All X(i,j): the inputs as X(i,0) and every nested node, computed column by column."""
        feats = features_arg(features, self.depth + 1, "nested_skip")
        x = {(i, 0): f for i, f in enumerate(feats)}
        for j in range(1, self.depth + 1):
            for i in range(self.depth + 1 - j):
                x[i, j] = self.node(i, j)([x[i, k] for k in range(j)], x[i + 1, j - 1])
        return x

    def forward(self, *features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.nodes(*features)
        outs = tuple(head(x[0, int(j)]) for j, head in self.heads.items())
        return outs if len(outs) > 1 else outs[0]


# --------------------------------------------------------------------------------------------
# Deep Layer Aggregation: IDA, HDA
# --------------------------------------------------------------------------------------------


@register_block(
    "ida",
    kind="decoder",
    paper="Deep Layer Aggregation (iterative deep aggregation, as in DLA-Up)",
    signature="(x_1, ..., x_n) finest/shallowest first, channels in_channels -> [N,c_out,H_1,W_1]",
    standard_io=False,
    supports_stride=False,
    example=pyramid_example(3),
)
class IDA(nn.Module):
    """Iterative deep aggregation: I(x1..xn) = I(N(x1, x2), x3, ..., xn), shallowest first.

    Every input with channels != c_out is projected by a 3x3 conv-BN-ReLU (DLA-Up's ``proj``);
    deeper inputs are upsampled bilinearly to the shallowest input's exact size (DLA-Up uses a
    fixed bilinear transposed conv, equivalent for 2x factors). Aggregation nodes N are
    :class:`AggregationNode`: ReLU(BN(conv_k(concat)) [+ deepest input]) with ``kernel_size``
    1 as in the paper (DLA-Up uses 3); each node gets (deeper input, running aggregate).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        in_channels: Sequence[int] | None = None,
        num_levels: int = 3,
        kernel_size: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        only_unit("ida", stride, dilation)
        chans = pyramid_channels(c_in, num_levels, in_channels)
        self.num_levels = num_levels
        self.proj = nn.ModuleList(
            nn.Identity() if c == c_out else ConvNormAct(c, c_out, 3) for c in chans
        )
        self.nodes = nn.ModuleList(
            AggregationNode(2 * c_out, c_out, kernel_size, residual) for _ in range(num_levels - 1)
        )

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        feats = features_arg(features, self.num_levels, "ida")
        y = self.proj[0](feats[0])
        for proj, node, x in zip(self.proj[1:], self.nodes, feats[1:], strict=True):
            y = node(resize(proj(x), y.shape[-2:]), y)
        return y


class _Tree(nn.Module):
    """DLA ``Tree``: recursive HDA of basic blocks with aggregation roots (see :class:`HDA`)."""

    def __init__(
        self,
        levels: int,
        c_in: int,
        c_out: int,
        stride: int,
        dilation: int,
        level_root: bool,
        root_dim: int,
        root_kernel_size: int,
        root_residual: bool,
    ) -> None:
        super().__init__()
        root_dim = root_dim or 2 * c_out
        if level_root:
            root_dim += c_in
        self.levels = levels
        self.level_root = level_root
        root_kw = dict(root_kernel_size=root_kernel_size, root_residual=root_residual)
        if levels == 1:
            self.tree1: nn.Module = BasicBlock(c_in, c_out, stride, dilation, shortcut=False)
            self.tree2: nn.Module = BasicBlock(c_out, c_out, 1, dilation)
            self.root = AggregationNode(root_dim, c_out, root_kernel_size, root_residual)
        else:
            self.tree1 = _Tree(levels - 1, c_in, c_out, stride, dilation, False, 0, **root_kw)
            self.tree2 = _Tree(
                levels - 1, c_out, c_out, 1, dilation, False, root_dim + c_out, **root_kw
            )
        self.downsample = (
            nn.MaxPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        )
        # DLA creates ``project`` at every level but only a leaf's block uses it.
        self.project = (
            ConvNormAct(c_in, c_out, 1, act=None) if levels == 1 and c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor, children: list[torch.Tensor] | None = None) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x)
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            x1 = self.tree1(x, self.project(bottom))
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


@register_block(
    "hda",
    kind="decoder",
    paper="Deep Layer Aggregation (hierarchical deep aggregation)",
    signature="x [N,c_in,H,W] -> [N,c_out,ceil(H/s),ceil(W/s)]",
)
class HDA(nn.Module):
    """Hierarchical deep aggregation (DLA's ``Tree``): a tree of blocks merged by aggregation nodes.

    T_n(x) = N(R_{n-1}(x), ..., R_1(x), L_1(x), L_2(x)) with L_1 = B(R_1(x)), L_2 = B(L_1) and
    R_m = T_m(x) (m = n-1) or T_m(R_{m+1}(x)): a tree of depth ``levels`` whose leaves are ResNet
    basic blocks B and whose roots are :class:`AggregationNode` s (1x1 conv of the concat, BN,
    optional residual of the deepest child, ReLU). Intermediate aggregations are fed forward to
    the last root, and with ``level_root`` the (max-pooled) stage input joins it too, as in
    DLA-34's stages 3-5. The first block carries ``stride`` (max-pool ceil-mode on the residual
    path), ``dilation`` goes to every block's 3x3 convs.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        levels: int = 2,
        level_root: bool = True,
        root_kernel_size: int = 1,
        root_residual: bool = False,
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError("levels must be >= 1")
        self.tree = _Tree(
            levels, c_in, c_out, stride, dilation, level_root, 0, root_kernel_size, root_residual
        )

    def roots(self) -> list[AggregationNode]:
        """Every aggregation node of the tree (the last one is the output node)."""
        return [m for m in self.modules() if isinstance(m, AggregationNode)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tree(x)


# --------------------------------------------------------------------------------------------
# Gated-SCNN shape stream
# --------------------------------------------------------------------------------------------


class GatedSpatialConv(nn.Module):
    """Gated-SCNN gated convolutional layer: a (0,1) attention map from both streams gates s.

    alpha = sigmoid(BN(conv1x1(ReLU(conv1x1(BN(concat(s, r))))))) with r the 1-channel regular-
    stream map; output = conv1x1(s * (alpha + 1)) (the paper's residual gating s (x) alpha + s).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.BatchNorm2d(channels + 1),
            nn.Conv2d(channels + 1, channels + 1, 1),
            nn.ReLU(inplace=False),
            nn.Conv2d(channels + 1, 1, 1),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, shape: torch.Tensor, regular: torch.Tensor) -> torch.Tensor:
        alpha = self.gate(torch.cat([shape, regular], dim=1))
        return self.conv(shape * (alpha + 1))


@register_block(
    "gated_shape_stream",
    kind="decoder",
    paper="Gated-SCNN: Gated Shape CNNs for Semantic Segmentation",
    signature=(
        "(f_0, g_1, ..., g_n) regular-stream features, f_0 finest, channels in_channels -> "
        "(shape features [N,c_out,H_0,W_0], edge [N,1,H_0,W_0] in (0,1))"
    ),
    standard_io=False,
    supports_stride=False,
    example=pyramid_example(4),
)
class GatedShapeStream(nn.Module):
    """Gated-SCNN shape stream: gated conv layers let regular-stream features gate a boundary stream.

    The stream starts from the finest regular feature f_0 (1x1 conv, resized to f_0's size —
    GSCNN resizes to the image size), then for each of the ``num_gates`` gating features g_k
    (GSCNN: res3, res4, res7): a residual basic block, a 1x1 conv halving the width, and a
    :class:`GatedSpatialConv` gated by conv1x1(g_k) -> 1 channel resized to f_0's size. Widths
    are c_out * 2**(n-1), ..., c_out (GSCNN: 32, 16, 8). The edge head is a 1x1 conv to one
    channel + sigmoid, supervised by the dual-task / edge BCE losses. Deviation: GSCNN's fusion
    of the edge map with the image's Canny gradient (an OpenCV, non-differentiable step feeding
    the ASPP) is left to the network.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        in_channels: Sequence[int] | None = None,
        num_gates: int = 3,
    ) -> None:
        super().__init__()
        only_unit("gated_shape_stream", stride, dilation)
        chans = pyramid_channels(c_in, num_gates + 1, in_channels)
        widths = [c_out * 2 ** (num_gates - 1 - k) for k in range(num_gates)]
        self.num_gates = num_gates
        self.entry = nn.Conv2d(chans[0], chans[0], 1)
        prev = [chans[0], *widths[:-1]]
        self.res = nn.ModuleList(BasicBlock(c, c) for c in prev)
        self.reduce = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(prev, widths, strict=True))
        # no bias: the gate's input BatchNorm would cancel it (GSCNN's convs have a redundant one)
        self.regular = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans[1:])
        self.gates = nn.ModuleList(GatedSpatialConv(w) for w in widths)
        self.edge = nn.Conv2d(widths[-1], 1, 1, bias=False)

    def forward(self, *features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = features_arg(features, self.num_gates + 1, "gated_shape_stream")
        size = feats[0].shape[-2:]
        s = self.entry(feats[0])
        for k in range(self.num_gates):
            s = self.reduce[k](self.res[k](s))
            r = resize(self.regular[k](feats[k + 1]), size, align_corners=True)
            s = self.gates[k](s, r)
        return s, torch.sigmoid(self.edge(s))


# --------------------------------------------------------------------------------------------
# Context-Aware Image Matting: dual encoder
# --------------------------------------------------------------------------------------------


class _XceptionDown(nn.Module):
    """Xception entry-flow unit: 2 separable convs (the second strided) + strided 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(c_in, c_in, 3, groups=c_in, act=None),
            ConvNormAct(c_in, c_out, 1),
            ConvNormAct(c_out, c_out, 3, stride=2, groups=c_out, act=None),
            ConvNormAct(c_out, c_out, 1, act=None),
        )
        self.shortcut = ConvNormAct(c_in, c_out, 1, stride=2, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


@register_block(
    "dual_encoder",
    kind="decoder",
    paper="Context-Aware Image Matting for Simultaneous Foreground and Alpha Estimation",
    signature=(
        "x [N,c_in,H,W] (optional context_input, default x) -> (fused [N,2*c_out,ceil(H/4),ceil(W/4)], "
        "local [N,c_out,ceil(H/4),ceil(W/4)], context [N,c_out,ceil(H/16),ceil(W/16)])"
    ),
    standard_io=False,
    supports_stride=False,
)
class DualEncoder(nn.Module):
    """Context-aware matting's two encoders: a local branch (stride 4) and a context branch (stride 16).

    Each downsampling is an Xception-style unit (separable convs, strided, residual 1x1) with
    widths ``width * 2**k``; the local (matting) encoder has ``local_downsamplings`` (2) of them
    and ends in a 1x1 conv-BN-ReLU to ``c_out``; the context encoder has
    ``context_downsamplings`` (4) and ends in an ASPP (``context_rates``) to ``c_out``, as the
    DeepLab encoder the paper builds on. The context features are bilinearly upsampled to the
    local features' size and concatenated with them, which is what the paper's two decoders
    (alpha, foreground) receive. ``context_input`` lets the context branch see a different (e.g.
    larger, downscaled) patch; it defaults to ``x``. Simplifications: Xception-65 backbones are
    reduced to these units, and the context branch's single decoder step before concatenation
    in the authors' code is omitted. ``context_pool_norm`` is the ASPP image-pooling norm ("gn"
    or "none" for batch-1 training).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        width: int = 16,
        local_downsamplings: int = 2,
        context_downsamplings: int = 4,
        context_rates: Sequence[int] = (6, 12, 18),
        context_pool_norm: str = "bn",
    ) -> None:
        super().__init__()
        only_unit("dual_encoder", stride, dilation)

        def encoder(n: int) -> tuple[nn.Sequential, int]:
            units, c = [], c_in
            for k in range(n):
                units.append(_XceptionDown(c, width * 2**k))
                c = width * 2**k
            return nn.Sequential(*units), c

        self.local, c_local = encoder(local_downsamplings)
        self.context, c_context = encoder(context_downsamplings)
        self.local_head = ConvNormAct(c_local, c_out, 1)
        self.context_head = ASPP(c_context, c_out, rates=context_rates, pool_norm=context_pool_norm)
        self.strides = (2**local_downsamplings, 2**context_downsamplings)

    def forward(
        self, x: torch.Tensor, context_input: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        local = self.local_head(self.local(x))
        context = self.context_head(self.context(x if context_input is None else context_input))
        up = resize(context, local.shape[-2:], align_corners=True)
        return torch.cat([local, up], dim=1), local, context


# --------------------------------------------------------------------------------------------
# CANet: dense comparison and iterative refinement
# --------------------------------------------------------------------------------------------

_CANET = (
    "CANet: Class-Agnostic Segmentation Networks with Iterative Refinement "
    "and Attentive Few-Shot Learning"
)


def _dcm_example(c_in: int, batch: int, height: int, width: int, frames: int) -> tuple[torch.Tensor, ...]:
    query = torch.randn(batch, c_in, height, width)
    support = torch.randn(batch, c_in, height, width)
    mask = (torch.rand(batch, 1, height, width) > 0.5).float()
    return query, support, mask


@register_block(
    "dense_comparison",
    kind="decoder",
    paper=_CANET,
    signature=(
        "(query [N,c_in,H,W], support [N,c_in,Hs,Ws], support_mask [N,1,Hm,Wm] in [0,1]) "
        "-> [N,c_out,H,W]"
    ),
    standard_io=False,
    supports_stride=False,
    example=_dcm_example,
)
class DenseComparison(nn.Module):
    """CANet dense comparison module: compare every query position with the support prototype.

    A shared 3x3 conv (dilation ``rate`` x ``dilation``, CANet: 2) + ReLU embeds query and support
    features (CANet: concatenated ResNet block2+block3 features). The support mask is resized
    bilinearly to the support features' size; masked average pooling
    mean(F_s * M) / (mean(M) + 5e-4) gives the prototype, which is tiled over the query's H x W,
    concatenated with the query embedding and compared by a 3x3 conv + ReLU (+ dropout, CANet
    0.5, default 0 here). 1-shot; CANet's attention over k shots is not included.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        rate: int = 2,
        dropout: float = 0.0,
        eps: float = 5e-4,
    ) -> None:
        super().__init__()
        only_unit("dense_comparison", stride, None)
        self.embed = ConvNormAct(c_in, c_out, 3, dilation=rate * dilation, norm="none")
        self.compare = ConvNormAct(2 * c_out, c_out, 3, norm="none")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.eps = eps

    def prototype(self, support: torch.Tensor, support_mask: torch.Tensor) -> torch.Tensor:
        """Masked average pooling of embedded support features: [N, c_out]."""
        fs = self.embed(support)
        m = resize(support_mask, fs.shape[-2:], align_corners=True)
        return (fs * m).mean(dim=(2, 3)) / (m.mean(dim=(2, 3)) + self.eps)

    def forward(
        self, query: torch.Tensor, support: torch.Tensor, support_mask: torch.Tensor
    ) -> torch.Tensor:
        fq = self.embed(query)
        proto = self.prototype(support, support_mask)[:, :, None, None]
        tiled = proto.expand(-1, -1, fq.shape[-2], fq.shape[-1])
        return self.dropout(self.compare(torch.cat([fq, tiled], dim=1)))


@register_block(
    "iterative_refine",
    kind="decoder",
    paper=_CANET,
    signature=(
        "x [N,c_in,H,W] (optional mask [N,c_out,H,W], default zeros) -> logits [N,c_out,H,W] "
        "after `iterations` steps (tuple of every step's logits if return_all)"
    ),
    supports_stride=False,
)
class IterativeRefine(nn.Module):
    """CANet iterative optimization module: residual refinement fed with the previous prediction.

    Each step t: M_t = x + F(x, y_{t-1}) with F = ReLU-conv3x3-ReLU-conv3x3 on concat(x, y_{t-1})
    (channels c_in + c_out), followed by ``extra_residuals`` (CANet: 2) residual ReLU-conv-ReLU-conv
    units, an ASPP without normalisation (1x1, rates ``rates``, image pooling, 1x1 projection to
    c_in, ReLU throughout) and a 1x1 classifier to ``c_out`` logits (CANet: 2, fg/bg);
    y_t = softmax(logits). y_0 is the optional ``mask`` input, else zeros. Steps are unrolled
    ``iterations`` times (CANet's test-time loop). CANet's training trick of feeding the
    previous epoch's masks is the training loop's job.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        iterations: int = 4,
        extra_residuals: int = 2,
        rates: Sequence[int] = (6, 12, 18),
        return_all: bool = False,
    ) -> None:
        super().__init__()
        only_unit("iterative_refine", stride, None)

        def unit(c: int) -> nn.Sequential:
            return nn.Sequential(
                nn.ReLU(inplace=False),
                nn.Conv2d(c, c_in, 3, padding=1),
                nn.ReLU(inplace=False),
                nn.Conv2d(c_in, c_in, 3, padding=1),
            )

        self.iterations = iterations
        self.return_all = return_all
        self.refine = unit(c_in + c_out)
        self.residuals = nn.ModuleList(unit(c_in) for _ in range(extra_residuals))
        self.aspp = ASPP(c_in, c_in, dilation=dilation, rates=rates, norm="none")
        self.classifier = nn.Conv2d(c_in, c_out, 1)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One refinement: logits from features x and the previous probabilities y."""
        m = x + self.refine(torch.cat([x, y], dim=1))
        for unit in self.residuals:
            m = m + unit(m)
        return self.classifier(self.aspp(m))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        c_out = self.classifier.out_channels
        y = x.new_zeros(x.shape[0], c_out, x.shape[2], x.shape[3]) if mask is None else mask
        outs = []
        for _ in range(self.iterations):
            logits = self.step(x, y)
            outs.append(logits)
            y = torch.softmax(logits, dim=1)
        return tuple(outs) if self.return_all else outs[-1]
