"""Normalisations by name: ``create_norm("bn", 64)``; ``dims=3`` for video tensors."""

from __future__ import annotations

from torch import nn

NORMS: tuple[str, ...] = ("bn", "gn", "ln", "in", "none")


def gn_groups(channels: int, max_groups: int = 32) -> int:
    """Largest divisor of ``channels`` that is at most ``max_groups`` and leaves >= 2 channels a group.

    At least two channels per group keeps GroupNorm meaningful on a 1x1 (pooled) map, where a
    single-channel group would normalise every value to zero.
    """
    if channels < 2:
        return 1
    for g in range(min(max_groups, channels // 2), 0, -1):
        if channels % g == 0:
            return g
    return 1


def create_norm(name: str | None, channels: int, dims: int = 2, affine: bool = True) -> nn.Module:
    """``bn`` BatchNorm (2D or 3D by ``dims``), ``gn`` GroupNorm (:func:`gn_groups`), ``ln``
    layer norm over channels and space (GroupNorm with one group), ``in`` InstanceNorm, ``none``
    (or ``None``) identity."""
    key = "none" if name is None else str(name).lower()
    if dims not in (1, 2, 3):
        raise ValueError(f"norm dims must be 1, 2 or 3, got {dims!r}")
    if key == "bn":
        return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[dims - 1](channels, affine=affine)
    if key == "gn":
        return nn.GroupNorm(gn_groups(channels), channels, affine=affine)
    if key == "ln":
        return nn.GroupNorm(1, channels, affine=affine)
    if key == "in":
        return (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[dims - 1](channels, affine=affine)
    if key == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; accepted: {', '.join(NORMS)}")
