"""Compactly stored samples and their per-batch conversion, shared by training and search.

Datasets hold images as ``uint8 [N, C, H, W]`` (video clips ``[N, C, T, H, W]``) and targets in the smallest integer type that
holds the class ids and the ignore index (:func:`compact_dtype`: ``uint8`` for Cityscapes' 19
classes + 255), so a 2,975-image 512×1024 segmentation set takes 6.2 GB instead of the 31 GB of
``float32`` images and ``int64`` masks. :func:`to_batch` selects a batch's rows, moves them to
the device and only there turns them into what a model and a loss take: ``float32`` images
``(pixel / 255 - mean) / std`` per channel and ``int64`` targets. Each element is computed as a
whole-part conversion would compute it, so batches are bit-identical to slices of one.
Imports nothing of the project, like :mod:`automl.types`.
"""

from __future__ import annotations

import functools

import torch

# Stored data up to this size is copied to an accelerator once (CIFAR-10 as uint8: 150 MB);
# larger data stays in host memory and each batch is copied.
RESIDENT_BYTES = 2 << 30

Rows = torch.Tensor | slice
Stats = tuple[tuple[float, ...], tuple[float, ...]]  # per-channel (mean, std) in [0, 1] units


def compact_dtype(low: int, high: int) -> torch.dtype:
    """The smallest of ``uint8``, ``int16``, ``int32``, ``int64`` that holds ``low..high``."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return dtype
    return torch.int64


def nbytes(*tensors: torch.Tensor) -> int:
    """Bytes the tensors' elements take."""
    return sum(t.numel() * t.element_size() for t in tensors)


@functools.lru_cache(maxsize=32)
def _stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
           ndim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` / ``std`` as ``[1, C, 1, 1]`` tensors (``ndim`` axes) on ``device``, made once (no copy per batch)."""
    shape = (1, -1, *(1,) * (ndim - 2))
    return torch.tensor(mean, device=device).view(shape), torch.tensor(std, device=device).view(shape)


def normalize(images: torch.Tensor, stats: Stats) -> torch.Tensor:
    """``uint8 [N, C, H, W]`` (or ``[N, C, T, H, W]``) -> ``float32`` ``(pixel / 255 - mean) / std`` on the images' device."""
    mean, std = _stats(tuple(stats[0]), tuple(stats[1]), images.device, images.dim())
    return images.float().mul_(1.0 / 255.0).sub_(mean).div_(std)


def to_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    rows: Rows,
    device: torch.device | str,
    stats: Stats | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``rows`` (indices or a slice) of the stored data as model inputs on ``device``.

    ``images`` are ``uint8``, normalised with ``stats`` after the copy to the device (which then
    carries a quarter of the bytes), or, without ``stats``, ``float`` and already normalised;
    targets of any integer type become ``int64`` with their values (the ignore index too) kept.
    """
    if isinstance(rows, slice):
        x, y = images[rows], targets[rows]
    else:
        idx = rows.to(images.device)
        x, y = images.index_select(0, idx), targets.index_select(0, idx)
    x = x.to(device, non_blocking=True)
    if stats is not None:
        x = normalize(x, stats)
    return x, y.to(device, non_blocking=True).long()
