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


def nbytes(*tensors: torch.Tensor | Concatenated) -> int:
    """Bytes the tensors' elements take."""
    return sum(t.nbytes_total() if isinstance(t, Concatenated) else t.numel() * t.element_size() for t in tensors)


class Concatenated:
    """The rows of several tensors (same trailing shape and dtype) read as one, without copying
    them: what :func:`to_batch` needs of a part (``len``, ``index_select`` on rows, ``device``,
    ``to``), e.g. a dataset's ``train`` and ``val`` parts as one search set."""

    def __init__(self, parts: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        if not parts:
            raise ValueError("Concatenated needs at least one tensor")
        first = parts[0]
        for p in parts[1:]:
            if p.shape[1:] != first.shape[1:] or p.dtype != first.dtype or p.device != first.device:
                raise ValueError(f"cannot join rows of {tuple(p.shape)} {p.dtype} with {tuple(first.shape)} {first.dtype}")
        self.parts = tuple(parts)
        self.starts = [0]
        for p in self.parts:
            self.starts.append(self.starts[-1] + len(p))

    def __len__(self) -> int:
        return self.starts[-1]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.parts[0].shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.parts[0].dtype

    @property
    def device(self) -> torch.device:
        return self.parts[0].device

    def nbytes_total(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parts)

    def to(self, device: torch.device | str) -> Concatenated:
        return Concatenated([p.to(device) for p in self.parts])

    def index_select(self, dim: int, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (global row numbers) in their order, gathered part by part."""
        if dim != 0:
            raise ValueError("Concatenated selects rows only (dim 0)")
        out = torch.empty((len(idx), *self.parts[0].shape[1:]), dtype=self.dtype, device=self.device)
        idx = idx.to(self.device)
        for p, lo, hi in zip(self.parts, self.starts[:-1], self.starts[1:], strict=True):
            where = ((idx >= lo) & (idx < hi)).nonzero().squeeze(1)
            if len(where):
                out[where] = p.index_select(0, idx[where] - lo)
        return out

    def __getitem__(self, rows: slice) -> torch.Tensor:
        if not isinstance(rows, slice):
            raise TypeError("Concatenated takes a slice or index_select")
        return self.index_select(0, torch.arange(len(self))[rows])


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
