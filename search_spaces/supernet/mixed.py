"""The mixed edge of a DARTS-style supernet (shared by the DARTS and NAS-Bench-201 supernets), written to keep memory and time low.

``MixedEdge`` computes ``acc + Σ_k w_k · op_k(x)`` for the ops of one edge and adds it into
the node's accumulator. Compared with the reference ``sum(w * op(x) for ...)``:

* ``none`` has no module and costs nothing (its output is zero; its α still gets gradients
  through the softmax);
* the leading ReLU of the conv ops is computed once per *state* (:class:`EdgeInput`) and shared
  by every conv op of every edge that reads the state;
* the mixing weight is folded into the op's final BatchNorm (affine=False during search, so
  ``w · BN(z)`` is a native batch norm with weight ``w``): no separate multiply and no saved
  copy of the op output for the α gradient;
* outputs are summed in place into one accumulator per node, never stacked;
* depthwise outputs and max-pool indices are recomputed in backward (:mod:`.fused`);
* gradients reach each state channels-last contiguous (:func:`channels_last_grad`); the
  supernet runs channels-last, where the CPU depthwise convolutions and poolings are several
  times faster than in NCHW.

Each search op is a subclass of the catalogue block it mirrors (same sub-modules, parameter
names and state-dict keys, e.g. ``SearchSepConv`` <-> ``sep_conv``) with a forward
``(EdgeInput, weight) -> weight · op(x)``; only the evaluation order differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks.conv import Conv, DilConv, SepConv
from search_spaces.blocks.ops import FactorizedReduce
from search_spaces.supernet.fused import depthwise_pointwise, max_pool


class EdgeInput:
    """A state as its outgoing edges see it: the tensor and its ReLU (computed once, lazily)."""

    __slots__ = ("_relu", "x")

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self._relu: torch.Tensor | None = None

    @property
    def relu(self) -> torch.Tensor:
        if self._relu is None:
            self._relu = F.relu(self.x)
        return self._relu


def bn_scaled(bn: nn.BatchNorm2d, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``scale · bn(x)`` for an affine=False BatchNorm, as one native batch-norm call.

    Statistics are handled exactly as ``nn.BatchNorm2d.forward`` handles them (batch
    statistics in training, running-statistics update with ``momentum``, or the cumulative
    average when ``momentum is None``).
    """
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    stats = bn.running_mean
    # A contiguous weight: the CPU kernels take a slow path for an expanded (stride-0) one.
    weight = scale.to(stats.dtype if stats is not None else x.dtype).expand(x.shape[1]).contiguous()
    return F.batch_norm(
        x,
        stats if not bn.training or bn.track_running_stats else None,
        bn.running_var if not bn.training or bn.track_running_stats else None,
        weight,
        None,
        bn.training or stats is None,
        factor,
        bn.eps,
    )


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward hands on the gradient in channels-last layout."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return grad.contiguous(memory_format=torch.channels_last)


def channels_last_grad(x: torch.Tensor) -> torch.Tensor:
    """``x``, with its gradient made channels-last contiguous on the way back.

    Gradients that reach a state from the cell-output concatenation or the global pooling are
    channel slices or NCHW tensors; the CPU batch-norm and convolution backward kernels are
    several times slower on those than on channels-last tensors, and every op of every edge
    reading the state would pay that. One copy per state is cheaper.
    """
    if x.requires_grad and x.dim() == 4 and torch.is_grad_enabled():
        return _ChannelsLastGrad.apply(x)
    return x


class SearchSepConv(SepConv):
    """``sep_conv`` at search time: shared ReLU, in-place middle ReLU, weight folded into BN."""

    def forward(self, inp: EdgeInput, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        a, b = self[0], self[1]
        y = F.relu(a[3](depthwise_pointwise(inp.relu, a[1], a[2])), inplace=True)
        return bn_scaled(b[3], depthwise_pointwise(y, b[1], b[2]), scale)


class SearchDilConv(DilConv):
    """``dil_conv`` at search time (shared ReLU, weight folded into BN)."""

    def forward(self, inp: EdgeInput, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return bn_scaled(self[3], depthwise_pointwise(inp.relu, self[1], self[2]), scale)


class SearchConv(Conv):
    """``conv`` (ReLU-Conv-BN) at search time (shared ReLU, weight folded into BN)."""

    def forward(self, inp: EdgeInput, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return bn_scaled(self[2], self[1](inp.relu), scale)


class SearchFactorizedReduce(FactorizedReduce):
    """Strided ``skip_connect`` at search time (shared ReLU, weight folded into BN).

    The shifted path is a view (DARTS ``x[:, :, 1:, 1:]``), padded only for odd sizes.
    """

    def forward(self, inp: EdgeInput, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        r = inp.relu
        shifted = r[:, :, 1:, 1:]
        if r.shape[-1] % 2 or r.shape[-2] % 2:
            shifted = F.pad(shifted, (0, r.shape[-1] % 2, 0, r.shape[-2] % 2))
        return bn_scaled(self.bn, torch.cat([self.conv_1(r), self.conv_2(shifted)], dim=1), scale)


class PoolBN(nn.Sequential):
    """DARTS search pooling: pool -> BatchNorm(affine=False), weight folded into the BN.

    Max pooling keeps its input rather than its argmax indices (:func:`.fused.max_pool`).
    """

    def forward(self, inp: EdgeInput, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pool = self[0]
        y = max_pool(inp.x, pool) if isinstance(pool, nn.MaxPool2d) else pool(inp.x)
        return bn_scaled(self[1], y, scale)


class ScaledOp(nn.Module):
    """Any other op: ``scale · op(x)`` (pooling without BN, identity, catalogue blocks)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, inp: EdgeInput, scale: torch.Tensor) -> torch.Tensor:
        return self.op(inp.x) * scale


OpFactory = Callable[[str, int, int], "nn.Module | None"]


class MixedEdge(nn.Module):
    """One edge: every candidate op but 'none', mixed by externally supplied weights.

    ``columns[m]`` is the α column of ``ops[m]``. ``forward(inp, scales, acc, index)`` returns
    ``acc + Σ_k scales[k] · op_k(x)`` (``index`` given: only op ``index`` runs; 'none' adds
    nothing). ``acc`` is updated in place when given; it must be an accumulator the caller
    owns (a fresh tensor no autograd node has saved).
    """

    def __init__(self, names: Sequence[str], channels: int, stride: int, factory: OpFactory) -> None:
        super().__init__()
        self.names = tuple(names)
        self.stride = stride
        built = [(k, factory(n, channels, stride)) for k, n in enumerate(self.names)]
        self.columns = tuple(k for k, op in built if op is not None)
        self.ops = nn.ModuleList(op for _, op in built if op is not None)
        self._by_column = dict(zip(self.columns, range(len(self.columns)), strict=True))

    def forward(
        self,
        inp: EdgeInput,
        scales: Sequence[torch.Tensor],
        acc: torch.Tensor | None = None,
        index: int | None = None,
    ) -> torch.Tensor | None:
        if index is not None:
            m = self._by_column.get(index)
            if m is None:  # 'none' was drawn: its output is zero
                return acc
            y = self.ops[m](inp, scales[index])
            return y if acc is None else acc.add_(y)
        for k, op in zip(self.columns, self.ops, strict=True):
            y = op(inp, scales[k])
            acc = y if acc is None else acc.add_(y)
        return acc
