"""DARTS search-time ops by name: the module :class:`~search_spaces.supernet.mixed.MixedEdge`
builds for each op of the DARTS vocabulary (every BatchNorm affine=False, ``none`` costs nothing)."""

from __future__ import annotations

from torch import nn

from search_spaces.darts.ops import make_op, parse_op
from search_spaces.supernet.mixed import (
    PoolBN,
    ScaledOp,
    SearchConv,
    SearchDilConv,
    SearchFactorizedReduce,
    SearchSepConv,
)


def darts_search_op(name: str, channels: int, stride: int) -> nn.Module | None:
    """DARTS search-time module of op ``name`` (every BN affine=False); ``None`` for 'none'."""
    kind, k = parse_op(name)
    c = channels
    if kind == "none":
        return None
    if k == 0 and kind != "skip_connect":  # a catalogue block by name
        return ScaledOp(make_op(name, c, stride, affine=False))
    if kind == "skip_connect" and stride == 2:
        return SearchFactorizedReduce(c, c, affine=False)
    if kind in ("max_pool", "avg_pool"):
        return PoolBN(make_op(name, c, stride), nn.BatchNorm2d(c, affine=False))
    if kind == "sep_conv":
        return SearchSepConv(c, c, stride, kernel_size=k, affine=False)
    if kind == "dil_conv":
        return SearchDilConv(c, c, stride, kernel_size=k, rate=2, affine=False)
    if kind == "conv":
        return SearchConv(c, c, stride, kernel_size=k, affine=False)
    return ScaledOp(make_op(name, c, stride, affine=False))
