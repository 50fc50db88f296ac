"""The in-memory dataset every trained evaluator reads, and its seeded train/val split.

Images are kept as ``uint8`` tensors ``[N, C, H, W]`` (video clips ``[N, C, T, H, W]``) and targets in the smallest integer type
that holds the class ids and the ignore index (``uint8`` when they lie in 0..255), so CIFAR-10
takes 150 MB and a Cityscapes-sized set of 2,975 images at 512×1024 6.2 GB instead of 31 GB as
``float32`` / ``int64``. Each batch is converted on its way to the device
(:func:`automl.batching.to_batch`, the conversion the one-shot searches use too); on an
accelerator a part of up to :data:`~automl.batching.RESIDENT_BYTES` is copied there once, still
compact. Normalisation follows the torchvision convention: ``x = (pixel / 255 - mean) / std``
with per-channel ``mean`` / ``std`` measured on the training part only (no validation
statistics leak into training).

The split is seeded and recorded (``split_record``) as indices into the source arrays, so a
run can write it next to its trials and a later run can check it trained on the same images.
Classification and video splits are stratified (each class keeps ``val_fraction`` of its samples).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from automl.batching import RESIDENT_BYTES, Rows, Stats, compact_dtype, nbytes, to_batch
from automl.types import Task

Kind = Literal["classification", "segmentation", "video"]
PARTS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset spec or file is unusable; the message is one line naming what and what is accepted."""


@dataclass(eq=False)
class Dataset:
    """Train / val (and optional test) tensors with the task they define.

    ``images[part]`` is ``uint8 [N, C, H, W]`` (``[N, C, T, H, W]`` clips for video); ``targets[part]`` is ``[N]`` (labels) or
    ``[N, H, W]`` (masks, where ``ignore_index`` marks pixels that count for nothing), of the
    compact integer type :func:`~automl.batching.compact_dtype` picks for the class ids and
    ``ignore_index``. :meth:`batches` and :meth:`batch` give ``float32`` / ``int64`` tensors.
    """

    spec: str
    task: Task
    images: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    ignore_index: int | None = None
    split: dict[str, Any] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False
    )

    @property
    def kind(self) -> str:
        return self.task.kind

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in PARTS if p in self.images)

    @property
    def stats(self) -> Stats:
        """Per-channel ``(mean, std)`` that normalise the images."""
        return self.mean, self.std

    def num_samples(self, part: str = "train") -> int:
        return int(self._part(part).shape[0])

    def batch(self, part: str, rows: Rows, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``float32`` images and ``int64`` targets of ``rows`` (indices or a slice) of ``part``."""
        images, targets = self._stored(part, torch.device(device))
        x, y = to_batch(images, targets, rows, device, self.stats)
        return _single_channel_strides(x), y

    def tensors(self, part: str = "train", device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The whole of ``part`` converted (4x the images' bytes, 8 bytes a target): for small
        data and tools; training reads :meth:`batches`."""
        return self.batch(part, slice(None), device)

    def batches(
        self,
        part: str = "train",
        batch_size: int = 64,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches of ``part``, each converted on its own (:meth:`batch`).

        ``drop_last`` drops a final partial batch (BatchNorm cannot train on one sample), but
        never the only batch of a part smaller than ``batch_size``.
        """
        n = self.num_samples(part)
        order = torch.randperm(n, generator=generator) if shuffle else None
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            rows = slice(start, start + batch_size)
            yield self.batch(part, order[rows] if order is not None else rows, device)

    def split_record(self) -> dict[str, Any]:
        """JSON-serialisable record of the split (indices into the source arrays)."""
        return {"spec": self.spec, **self.split}

    def summary(self) -> dict[str, Any]:
        """Short JSON-serialisable description (for a run's config and reports)."""
        return {
            "spec": self.spec,
            "kind": self.task.kind,
            "in_channels": self.task.in_channels,
            "input_size": list(self.task.input_size),
            "num_classes": self.task.num_classes,
            "class_names": list(self.class_names),
            "ignore_index": self.ignore_index,
            "samples": {p: self.num_samples(p) for p in self.parts},
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def _part(self, part: str) -> torch.Tensor:
        if part not in self.images:
            raise KeyError(f"dataset {self.spec!r} has no part {part!r}; parts: {list(self.parts)}")
        return self.images[part]

    def _stored(self, part: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``part`` as stored, copied once to an accelerator when it fits in ``RESIDENT_BYTES``."""
        images, targets = self._part(part), self.targets[part]
        if device.type == "cpu" or nbytes(images, targets) > RESIDENT_BYTES:
            return images, targets
        key = (part, str(device))
        if key not in self._cache:
            self._cache[key] = (images.to(device), targets.to(device))
        return self._cache[key]

    def __getstate__(self) -> dict[str, Any]:  # device caches never travel (Ray, pickling)
        state = dict(self.__dict__)
        state["_cache"] = {}
        state["images"], state["targets"] = _packed(self.images), _packed(self.targets)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["images"], state["targets"] = _unpacked(state["images"]), _unpacked(state["targets"])
        self.__dict__.update(state)


Packed = tuple[list[torch.Tensor], dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int]]]


def _packed(parts: Mapping[str, torch.Tensor]) -> Packed:
    """Parts as views of their storages, each storage once: parts built in one buffer
    (``build_dataset(consume=True)``) would each carry the whole buffer through pickle."""
    bases: list[torch.Tensor] = []
    where: dict[int, int] = {}
    views = {}
    for name, t in parts.items():
        storage = t.untyped_storage()
        if storage.data_ptr() not in where:
            where[storage.data_ptr()] = len(bases)
            bases.append(torch.tensor([], dtype=t.dtype).set_(storage, 0, (storage.nbytes() // t.element_size(),), (1,)))
        views[name] = (where[storage.data_ptr()], tuple(t.shape), tuple(t.stride()), t.storage_offset())
    return bases, views


def _unpacked(packed: Packed) -> dict[str, torch.Tensor]:
    bases, views = packed
    return {name: bases[i].as_strided(shape, stride, offset) for name, (i, shape, stride, offset) in views.items()}


def _single_channel_strides(x: torch.Tensor) -> torch.Tensor:
    """Single-channel images as an NHWC view, the strides the former whole-part tensors had:
    PyTorch reads them as channels-last and convolves them so, and seeded runs keep their numbers."""
    if x.dim() != 4 or x.shape[1] != 1:
        return x
    return x.view(x.shape[0], x.shape[2], x.shape[3], 1).permute(0, 3, 1, 2)


def build_dataset(
    spec: str,
    kind: Kind,
    images: np.ndarray,
    targets: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit: int | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    consume: bool = False,
) -> Dataset:
    """Check source arrays (``images`` uint8 ``[N, H, W, C]``, video ``[N, T, H, W, C]``), split and wrap them.

    ``limit`` keeps a seeded random subset of at most that many source samples before the
    split; ``test`` is an official held-out part (CIFAR-10 ``test_batch``) kept as is.
    ``consume`` (for callers that own the arrays, as :func:`~evaluators.data.load.load_dataset`)
    builds the stored parts inside the source arrays' own memory, rewriting them: rows reordered
    into train | val and each image turned channels-first in place, so building takes the data's
    size once instead of twice (arrays that are not writeable C-contiguous are copied as without it).
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"{spec}: val_fraction must be in (0, 1), got {val_fraction!r}")
    _check_arrays(spec, kind, images, targets)
    if test is not None:
        _check_arrays(spec + " (test part)", kind, *test)
        if test[0].shape[1:] != images.shape[1:]:
            raise DatasetError(
                f"{spec}: test images are {test[0].shape[1:]} but train images are {images.shape[1:]}"
            )
    num_classes = _num_classes(spec, kind, targets, class_names, num_classes, ignore_index, test)
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))

    pool = np.arange(len(images))
    if limit is not None and limit < len(pool):
        pool = np.sort(np.random.default_rng([seed, 0]).permutation(len(pool))[:limit])
    strata = targets[pool] if kind != "segmentation" else None
    train_pos, val_pos = _split(spec, len(pool), strata, val_fraction, seed)
    train_idx, val_idx = pool[train_pos], pool[val_pos]

    sources = {"train": (images, targets, train_idx), "val": (images, targets, val_idx)}
    if test is not None:
        sources["test"] = (*test, np.arange(len(test[0])))
    ids = (0, num_classes - 1) + ((ignore_index,) if ignore_index is not None else ())
    target_dtype = compact_dtype(min(ids), max(ids))
    mean, std = _channel_stats(images, train_idx)
    channels = images.shape[-1]
    task = Task(kind=kind, in_channels=channels, input_size=tuple(images.shape[1:-1]), num_classes=num_classes)
    if consume and len(pool) == len(images):  # every source row is kept: the parts can live in its memory
        stored = _parts_in_place(images, targets, [("train", train_idx), ("val", val_idx)], target_dtype)
        if test is not None:
            stored = _merge(stored, _parts_in_place(*test, [("test", np.arange(len(test[0])))], target_dtype))
        part_images, part_targets = stored
    else:
        part_images = {p: _take(a, idx, torch.uint8, channels_first=True) for p, (a, _, idx) in sources.items()}
        part_targets = {p: _take(t, idx, target_dtype) for p, (_, t, idx) in sources.items()}
    return Dataset(
        spec=spec,
        task=task,
        images=part_images,
        targets=part_targets,
        mean=mean,
        std=std,
        class_names=names,
        ignore_index=ignore_index,
        split={
            "seed": seed,
            "val_fraction": val_fraction,
            "stratified": strata is not None,
            "source_size": int(len(images)),
            "train": train_idx.tolist(),
            "val": val_idx.tolist(),
        },
    )


def _check_arrays(spec: str, kind: Kind, images: np.ndarray, targets: np.ndarray) -> None:
    if images.dtype != np.uint8:
        raise DatasetError(f"{spec}: images must be uint8 (0..255), got {images.dtype}")
    if kind == "video" and (images.ndim != 5 or images.shape[-1] not in (1, 2, 3, 4) or 0 in images.shape):
        raise DatasetError(f"{spec}: video clips must be [N, T, H, W, C] with C in 1..4, got {list(images.shape)}")
    if kind != "video" and (images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4) or 0 in images.shape):
        raise DatasetError(f"{spec}: images must be [N, H, W] or [N, H, W, C] with C in 1..4, got {list(images.shape)}")
    if not np.issubdtype(targets.dtype, np.integer):
        what = "labels" if kind != "segmentation" else "masks"
        raise DatasetError(f"{spec}: {what} must be integers, got {targets.dtype}")
    if kind != "segmentation" and targets.shape != images.shape[:1]:
        raise DatasetError(f"{spec}: labels must be [N] = [{images.shape[0]}], got {list(targets.shape)}")
    if kind == "segmentation" and targets.shape != images.shape[:3]:
        raise DatasetError(
            f"{spec}: masks must be [N, H, W] = {list(images.shape[:3])} like the images, got {list(targets.shape)}"
        )
    if len(images) < 2:
        raise DatasetError(f"{spec}: needs at least 2 samples to split, got {len(images)}")


def _num_classes(
    spec: str,
    kind: Kind,
    targets: np.ndarray,
    class_names: Sequence[str] | None,
    num_classes: int | None,
    ignore_index: int | None,
    test: tuple[np.ndarray, np.ndarray] | None,
) -> int:
    """The class count: ``num_classes`` or ``len(class_names)`` when given (every target must
    then lie in 0..K-1 or be ``ignore_index``), else ``max + 1`` — for masks only when every id
    0..max occurs, so stray mask values are an error rather than hundreds of empty classes."""
    values = _distinct([targets] if test is None else [targets, test[1]])
    if ignore_index is not None:
        values = values[values != ignore_index]
    what = "labels" if kind != "segmentation" else "mask values"
    ignore = f"ignore_index={ignore_index}" if ignore_index is not None else "no ignore_index"
    if len(values) == 0:
        raise DatasetError(f"{spec}: every target equals ignore_index={ignore_index}")
    if values[0] < 0:
        raise DatasetError(f"{spec}: class ids must be >= 0 (or ignore_index), found {int(values[0])}")
    if num_classes is not None and class_names is not None and num_classes != len(class_names):
        raise DatasetError(f"{spec}: num_classes={num_classes} but {len(class_names)} class names are given")
    declared = num_classes if num_classes is not None else (len(class_names) if class_names is not None else None)
    if declared is not None:
        stray = values[values >= declared]
        if len(stray):
            shown = ", ".join(str(int(v)) for v in stray[:5]) + (" ..." if len(stray) > 5 else "")
            raise DatasetError(f"{spec}: {what} {shown} lie outside the {declared} classes 0..{declared - 1} "
                               f"(num_classes / class_names) and are not the ignore index ({ignore})")
        count = int(declared)
    else:
        count = int(values[-1]) + 1
        if kind == "segmentation" and len(values) < count:
            missing = sorted(set(range(count)) - {int(v) for v in values})
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise DatasetError(
                f"{spec}: mask values {', '.join(str(int(v)) for v in values[:8])}{' ...' if len(values) > 8 else ''} "
                f"skip class ids {shown} ({ignore}); give num_classes (or class_names) with the data, and mark "
                "void pixels with ignore_index"
            )
    if count < 2:
        raise DatasetError(f"{spec}: needs at least 2 classes, found class ids {values.tolist()}")
    return count


def _split(
    spec: str, n: int, strata: np.ndarray | None, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)``; stratified by ``strata`` when given. Sorted positions."""
    rng = np.random.default_rng([seed, 1])
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == c) for c in np.unique(strata)]
    val: list[np.ndarray] = []
    for members in groups:
        k = int(round(len(members) * val_fraction))
        k = min(max(k, 1 if len(members) > 1 else 0), len(members) - 1)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DatasetError(f"{spec}: val_fraction={val_fraction} leaves an empty part with {n} samples")
    return train_idx, val_idx


def _take(array: np.ndarray, idx: np.ndarray, dtype: torch.dtype, *, channels_first: bool = False,
          chunk_bytes: int = 64 << 20) -> torch.Tensor:
    """``array[idx]`` as a new tensor of ``dtype`` (``[N, ..., C]`` -> ``[N, C, ...]`` with
    ``channels_first``), copied in chunks of about ``chunk_bytes``: no full-size temporary."""
    shape = array.shape[1:]
    order = (0, array.ndim - 1, *range(1, array.ndim - 1))
    out = torch.empty((len(idx), *((shape[-1], *shape[:-1]) if channels_first else shape)), dtype=dtype)
    step = max(1, chunk_bytes // max(1, array[:1].nbytes))
    for start in range(0, len(idx), step):
        block = torch.from_numpy(array[idx[start : start + step]])
        out[start : start + step] = block.permute(order) if channels_first else block
    return out


Parts = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


def _parts_in_place(images: np.ndarray, targets: np.ndarray, parts: Sequence[tuple[str, np.ndarray]],
                    target_dtype: torch.dtype) -> Parts:
    """``{part: images[idx]}`` (channels-first) and ``{part: targets[idx]}`` for ``parts`` whose
    indices cover every row once, built in the arrays' own memory (see ``consume``); an array
    that cannot be rewritten is copied by :func:`_take` instead."""
    order = np.concatenate([idx for _, idx in parts])
    bounds = np.cumsum([0] + [len(idx) for _, idx in parts])

    def slices(t: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: t[bounds[i] : bounds[i + 1]] for i, (name, _) in enumerate(parts)}

    if _rewritable(images, np.uint8):
        _permute_rows(images, order)
        out_images = slices(_channels_first_in_place(images))
    else:
        out_images = {name: _take(images, idx, torch.uint8, channels_first=True) for name, idx in parts}
    if _rewritable(targets, torch.empty((), dtype=target_dtype).numpy().dtype):
        _permute_rows(targets, order)
        out_targets = slices(torch.from_numpy(targets))
    else:
        out_targets = {name: _take(targets, idx, target_dtype) for name, idx in parts}
    return out_images, out_targets


def _merge(a: Parts, b: Parts) -> Parts:
    return {**a[0], **b[0]}, {**a[1], **b[1]}


def _rewritable(array: np.ndarray, dtype: Any) -> bool:
    return array.dtype == dtype and array.flags.c_contiguous and array.flags.writeable and array.ndim >= 1


def _permute_rows(array: np.ndarray, order: np.ndarray) -> None:
    """``array[:] = array[order]`` in place, following the permutation's cycles with one row of scratch."""
    done = np.zeros(len(order), dtype=bool)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            done[start] = True
            continue
        saved, i = array[start].copy(), start
        while True:
            done[i] = True
            j = int(order[i])
            if j == start:
                array[i] = saved
                break
            array[i] = array[j]
            i = j


def _channels_first_in_place(array: np.ndarray, chunk_bytes: int = 64 << 20) -> torch.Tensor:
    """uint8 ``[N, *S, C]`` rewritten as ``[N, C, *S]`` in the same memory, a chunk of about
    ``chunk_bytes`` at a time (copied out, written back transposed)."""
    n, shape = array.shape[0], array.shape[1:]
    flat = array.reshape(n, -1)  # a view: the array is C-contiguous
    if shape[-1] > 1:
        step = max(1, chunk_bytes // max(1, flat[:1].nbytes))
        for start in range(0, n, step):
            block = array[start : start + step].copy()
            flat[start : start + step] = np.moveaxis(block, -1, 1).reshape(len(block), -1)
    return torch.from_numpy(flat).view(n, shape[-1], *shape[:-1])


def _distinct(arrays: Sequence[np.ndarray], chunk: int = 256) -> np.ndarray:
    """The sorted distinct values of ``arrays``, ``chunk`` samples at a time (no full-size sort)."""
    blocks = [np.unique(a[i : i + chunk]) for a in arrays for i in range(0, len(a), chunk)]
    return np.unique(np.concatenate(blocks))


def _channel_stats(images: np.ndarray, idx: np.ndarray, elements: int = 1 << 24) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean / std of uint8 ``images[idx]`` (``[N, H, W, C]``) in [0, 1] units, in
    float64 over chunks of at most 4096 images and about ``elements`` values."""
    channels = images.shape[-1]
    chunk = max(1, min(4096, elements // max(1, images[0].size)))
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(idx), chunk):
        block = images[idx[start : start + chunk]].reshape(-1, channels).astype(np.float64) / 255.0
        total += block.sum(0)
        squares += np.square(block).sum(0)
    count = len(idx) * images[0].size / channels
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-3)) for s in std)
