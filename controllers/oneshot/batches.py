"""The two disjoint halves of the search data and persistent cycling batch streams.

DARTS splits the training images 50/50 with a random permutation: half A trains the weights,
half B the architecture. Unlike the reference (``next(iter(valid_queue))`` every step,
docs/algorithms.md Appendix B.1), each half is read through one persistent stream that reshuffles
when a pass ends; its state is part of the checkpoint so a resumed search sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from automl.augment import augment
from automl.batching import RESIDENT_BYTES, Stats, nbytes, to_batch


def split_indices(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded permutation of ``range(n)`` cut into A (first ⌊n/2⌋) and B (the rest)."""
    if n < 2:
        raise ValueError(f"darts: the search needs at least 2 training samples, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    half = n // 2
    return perm[:half].clone(), perm[half:].clone()


class CyclingBatches:
    """An endless stream of full batches of ``indices``, reshuffled at every pass.

    A batch that crosses the end of a pass continues with the next permutation, so every batch
    has ``batch_size`` samples (no size-1 tail batch for BatchNorm) and, over ``k`` passes,
    every index appears ``k`` times.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, seed: int) -> None:
        if len(indices) == 0:
            raise ValueError("darts: cannot draw batches from an empty index set")
        self.indices = indices.clone()
        self.batch_size = min(int(batch_size), len(indices))
        self.generator = torch.Generator().manual_seed(int(seed))
        self.order = self._shuffle()
        self.position = 0

    def _shuffle(self) -> torch.Tensor:
        return self.indices[torch.randperm(len(self.indices), generator=self.generator)]

    def __iter__(self) -> CyclingBatches:
        return self

    def __next__(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            if self.position == len(self.order):
                self.order, self.position = self._shuffle(), 0
            take = min(need, len(self.order) - self.position)
            parts.append(self.order[self.position : self.position + take])
            self.position += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order.clone(), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"])


@dataclass
class Batch:
    """Inputs and targets of one step, already on the search device."""

    images: torch.Tensor
    targets: torch.Tensor


def place(images: torch.Tensor, targets: torch.Tensor, device: torch.device,
          resident_bytes: int = RESIDENT_BYTES) -> tuple[torch.Tensor, torch.Tensor]:
    """The search data where :func:`gather` reads it: on ``device`` when it is not the CPU and
    the data (as stored: uint8 images, compact targets) fits in ``resident_bytes`` (no
    host-to-device copy per step), else where it is."""
    if device.type == "cpu" or images.device == device or nbytes(images, targets) > resident_bytes:
        return images, targets
    return images.to(device), targets.to(device)


def gather(images: torch.Tensor, targets: torch.Tensor, idx: torch.Tensor, device: torch.device,
           channels_last: bool = False, stats: Stats | None = None) -> Batch:
    """Select ``idx`` from the in-memory data (on the host or already on ``device``) onto ``device``,
    converted there by :func:`automl.batching.to_batch` (normalised with ``stats`` when given)."""
    x, y = to_batch(images, targets, idx, device, stats)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return Batch(x, y)


class Augmenter:
    """The training transform of :mod:`automl.augment` on each batch (off: batches unchanged),
    drawing from its own seeded generator, whose state a checkpoint keeps; ``crop`` is the side of
    the random segmentation crop (None: the images' size)."""

    def __init__(self, enabled: bool, seed: int, ignore_index: int = -100, crop: int | None = None) -> None:
        self.enabled, self.ignore_index = bool(enabled), int(ignore_index)
        self.crop = None if crop is None else (int(crop), int(crop))
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, batch: Batch) -> Batch:
        if not self.enabled:
            return batch
        images, targets = augment(batch.images, batch.targets, self.generator, ignore_index=self.ignore_index,
                                  crop=self.crop)
        return Batch(images, targets)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
