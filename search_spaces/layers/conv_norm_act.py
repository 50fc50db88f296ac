""":class:`ConvNormAct`: conv -> norm -> act, the unit nearly every block is made of."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from search_spaces.layers.act import create_act
from search_spaces.layers.norm import create_norm


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the spatial size at stride 1 (odd kernels); with stride s the output
    has ``ceil(H / s)`` rows."""
    return dilation * (kernel_size - 1) // 2


class ConvNormAct(nn.Sequential):
    """Conv -> norm -> activation with 'same' padding (index 0 the conv, 1 the norm, 2 the act).

    ``norm``/``act`` are names for :func:`create_norm`/:func:`create_act` (``"none"`` leaves the
    layer out; ``act=None`` too). The conv has a bias only without a norm after it (or when
    ``bias`` says so). ``dims=3`` makes a ``Conv3d`` (kernel, stride and dilation may then be
    tuples ``(t, h, w)``); ``conv=`` puts a ready convolution module in place of the built one
    (e.g. a time-padded 3D conv) and then only ``c_out``, ``norm``, ``act`` and ``dims`` are used.
    The submodule indices match the ``nn.Sequential(conv, BN, ReLU)`` the blocks used before, so
    their state-dict keys are unchanged.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        *,
        norm: str | None = "bn",
        act: str | None = "relu",
        dims: int = 2,
        bias: bool | None = None,
        conv: nn.Module | None = None,
    ) -> None:
        norm_key = "none" if norm is None else str(norm).lower()
        if conv is None:
            if dims not in (2, 3):
                raise ValueError(f"ConvNormAct dims must be 2 or 3, got {dims!r}")
            k = _tuple(kernel_size, dims)
            d = _tuple(dilation, dims)
            conv = (nn.Conv2d, nn.Conv3d)[dims - 2](
                c_in,
                c_out,
                k,
                stride=_tuple(stride, dims),
                padding=tuple(same_padding(ki, di) for ki, di in zip(k, d)),
                dilation=d,
                groups=groups,
                bias=(norm_key == "none") if bias is None else bias,
            )
        layers: list[nn.Module] = [conv, create_norm(norm_key, c_out, dims=dims)]
        act_module = create_act(act)
        if not isinstance(act_module, nn.Identity):
            layers.append(act_module)
        super().__init__(*layers)

    @property
    def conv(self) -> nn.Module:
        return self[0]

    @property
    def norm(self) -> nn.Module:
        return self[1]


def _tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    out = tuple(int(v) for v in value)
    if len(out) != dims:
        raise ValueError(f"expected {dims} values, got {value!r}")
    return out
