"""Compact storage (uint8 images, the smallest integer targets) and the per-batch conversion shared
by the train evaluator and the one-shot searches: same tensors, same numbers as the former
whole-part float32 / int64 conversion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from automl.batching import compact_dtype, to_batch
from controllers.oneshot import cr_phases
from controllers.oneshot.base import SearchData
from controllers.oneshot.batches import Batch, gather
from controllers.oneshot.bilevel import BilevelTrainer
from evaluators.base import EvalContext
from evaluators.data import Dataset, build_dataset, load_dataset
from evaluators.train import TrainEvaluator
from search_spaces.base import SearchSpace
from tests.test_darts_controller import ToySupernet, controller

UNDECIDED = pytest.mark.filterwarnings("ignore:darts. WARNING the architecture parameters are still undecided")


def whole_part(data: Dataset, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The former ``Dataset.tensors``: the whole part as float32 (strides kept) and int64."""
    raw = data.images[part]
    if raw.shape[1] == 1:  # the former storage: an NHWC view, as from_numpy(...).permute(...).contiguous() gave
        raw = raw.view(len(raw), *raw.shape[2:], 1).permute(0, 3, 1, 2)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return raw.float().mul_(1.0 / 255.0).sub_(mean).div_(std), data.targets[part].long()


def former_batches(self: Dataset, part: str = "train", batch_size: int = 64, *, shuffle: bool = False,
                   generator: torch.Generator | None = None, device: Any = "cpu",
                   drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The former ``Dataset.batches``: one gather of the converted part, then slices."""
    x, y = whole_part(self, part)
    if shuffle:
        perm = torch.randperm(len(x), generator=generator)
        x, y = x[perm], y[perm]
    stop = len(x) - len(x) % batch_size if drop_last and len(x) >= batch_size else len(x)
    for start in range(0, stop, batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def segmentation(n: int = 12, classes: int = 19, ignore: int | None = 255, size: int = 8) -> Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masks = rng.integers(0, classes, (n, size, size)).astype(np.int64)
    masks[:, 0] = classes - 1  # every class occurs
    masks[:, 0, 0] = np.arange(n) % classes
    if ignore is not None:
        masks[:, -1] = ignore
    return build_dataset("seg", "segmentation", images, masks, num_classes=classes, ignore_index=ignore, seed=0)


# -- storage ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("low", "high", "dtype"), [
    (0, 18, torch.uint8), (0, 255, torch.uint8), (-1, 18, torch.int16), (0, 256, torch.int16),
    (-100, 9, torch.int16), (0, 40_000, torch.int32), (0, 2**31, torch.int64),
])
def test_compact_dtype_is_the_smallest_that_holds_the_range(low: int, high: int, dtype: torch.dtype) -> None:
    assert compact_dtype(low, high) == dtype


@pytest.mark.parametrize(("ignore", "classes", "dtype"), [(255, 19, torch.uint8), (None, 19, torch.uint8),
                                                          (-1, 19, torch.int16), (255, 300, torch.int16)])
def test_masks_are_stored_compactly_with_their_values(ignore: int | None, classes: int, dtype: torch.dtype) -> None:
    data = segmentation(classes=classes, ignore=ignore)
    assert data.images["train"].dtype == torch.uint8
    assert all(t.dtype == dtype for t in data.targets.values())
    x, y = data.tensors("val")
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    if ignore is not None:
        assert (y[:, -1] == ignore).all() and int(y[:, :-1].max()) < classes


def test_labels_are_stored_compactly() -> None:
    digits = load_dataset("digits", limit=100)
    assert digits.targets["train"].dtype == torch.uint8 and digits.images["train"].dtype == torch.uint8
    assert digits.tensors("train")[1].dtype == torch.int64


# -- one conversion, the same numbers --------------------------------------------------------------
@pytest.mark.parametrize("spec", ["digits", "shapes"])
def test_batches_equal_slices_of_the_former_whole_part_conversion(spec: str) -> None:
    data = load_dataset(spec, limit=120)
    for part in data.parts:
        x, y = whole_part(data, part)
        mine = list(data.batches(part, 16, shuffle=True, generator=torch.Generator().manual_seed(3)))
        former = list(former_batches(data, part, 16, shuffle=True, generator=torch.Generator().manual_seed(3)))
        for (a, b), (c, d) in zip(mine, former, strict=True):
            assert torch.equal(a, c) and a.stride() == c.stride() and torch.equal(b, d) and b.dtype == d.dtype
        assert torch.equal(data.tensors(part)[0], x) and torch.equal(data.tensors(part)[1], y)


def test_the_search_gather_equals_indexing_the_former_float_data() -> None:
    data = segmentation()
    x, y = whole_part(data, "train")
    search = SearchData.from_dataset(data)
    assert search.images is data.images["train"] and search.targets is data.targets["train"]  # no float copy
    idx = torch.tensor([5, 0, 3])
    batch = gather(search.images, search.targets, idx, torch.device("cpu"), stats=search.stats)
    assert torch.equal(batch.images, x.index_select(0, idx)) and torch.equal(batch.targets, y.index_select(0, idx))
    assert batch.targets.dtype == torch.int64 and (batch.targets[:, -1] == 255).all()
    floats = to_batch(x, data.targets["train"], idx, "cpu")  # float images without stats pass as they are
    assert torch.equal(floats[0], batch.images) and torch.equal(floats[1], batch.targets)


@UNDECIDED
def test_a_search_on_the_stored_data_repeats_the_search_on_float_data() -> None:
    rng = np.random.default_rng(1)
    data = build_dataset("toy", "classification", rng.integers(0, 256, (24, 6, 6, 3), dtype=np.uint8),
                         np.arange(24) % 3, seed=0)
    x, y = whole_part(data, "train")
    runs = []
    for search in (SearchData.from_dataset(data), SearchData(x, y)):
        c = controller(epochs=2, warmup_epochs=1)
        c.search(ToySupernet(), search)
        runs.append(c.history)
    assert runs[0] == runs[1]


def test_the_train_evaluator_repeats_the_former_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("digits", limit=300)

    def train() -> dict[str, float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(), nn.Linear(8, 10))
        ctx = EvalContext(space=SearchSpace(), task=data.task, dataset=data, device="cpu", seed=0)
        metrics = TrainEvaluator(epochs=2, batch_size=32).evaluate({}, model, ctx)
        return {k: v for k, v in metrics.items() if k != "train_seconds"}

    mine = train()
    monkeypatch.setattr(Dataset, "batches", former_batches)
    assert train() == mine


# -- Cityscapes-sized parts ----------------------------------------------------------------------
def test_large_arch_validation_parts_are_converted_at_each_read(monkeypatch: pytest.MonkeyPatch) -> None:
    data = segmentation(n=20)
    search = SearchData.from_dataset(data)
    job: Any = type("Job", (), {"images": search.images, "targets": search.targets, "batch_size": 4,
                                "val_idx": torch.arange(10)})

    def batch(idx: torch.Tensor) -> Batch:
        return gather(search.images, search.targets, idx, torch.device("cpu"), stats=search.stats)

    eager = cr_phases._val_batches(job, batch)
    monkeypatch.setattr(cr_phases, "RESIDENT_BYTES", 1)
    lazy = cr_phases._val_batches(job, batch)
    assert isinstance(eager, list) and not isinstance(lazy, list) and len(lazy) == len(eager) == 3
    for a, b in zip(lazy, eager, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert torch.equal(lazy[-1].images, eager[-1].images)


@UNDECIDED
def test_steps_per_epoch_caps_the_search_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    step = BilevelTrainer.search_step
    monkeypatch.setattr(BilevelTrainer, "search_step", lambda self, *a: calls.append(1) or step(self, *a))
    rng = np.random.default_rng(1)
    data = build_dataset("toy", "classification", rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8),
                         np.arange(40) % 3, seed=0)
    controller(epochs=2, warmup_epochs=0, steps_per_epoch=3).search(ToySupernet(), SearchData.from_dataset(data))
    assert len(calls) == 2 * 3  # 16 samples a half at batch 4: 4 steps an epoch without the cap
    with pytest.raises(ValueError, match="steps_per_epoch must be an integer >= 1"):
        controller(steps_per_epoch=0)


def test_concatenated_parts_select_rows_like_one_tensor_without_copying():
    from automl.batching import Concatenated, nbytes

    a, b = torch.arange(24, dtype=torch.uint8).view(6, 2, 2), torch.arange(100, 116, dtype=torch.uint8).view(4, 2, 2)
    joined = Concatenated([a, b])
    whole = torch.cat([a, b])
    idx = torch.tensor([9, 0, 5, 6, 2, 7])
    assert len(joined) == 10 and joined.shape == whole.shape and joined.dtype == torch.uint8
    assert torch.equal(joined.index_select(0, idx), whole.index_select(0, idx))
    assert torch.equal(joined[3:8], whole[3:8]) and nbytes(joined) == nbytes(whole)
    assert joined.parts[0].data_ptr() == a.data_ptr()  # the parts are the dataset's own storage
    x, y = to_batch(joined, Concatenated([torch.arange(6), torch.arange(6, 10)]), idx, "cpu")
    assert torch.equal(y, idx) and torch.equal(x, whole.index_select(0, idx))
    with pytest.raises(ValueError, match="cannot join"):
        Concatenated([a, b.float()])


@pytest.mark.parametrize(("kind", "shape", "target_shape"), [
    ("classification", (30, 5, 6, 3), (30,)), ("classification", (30, 5, 6, 1), (30,)),
    ("segmentation", (30, 5, 6, 3), (30, 5, 6)), ("video", (30, 4, 5, 6, 3), (30,)),
])
def test_a_consumed_build_stores_the_same_parts_inside_the_source_arrays(kind, shape, target_shape):
    """``consume=True`` (load_dataset owns its arrays) rewrites the sources into the stored parts:
    the same tensors as a copying build, and the images' memory is the source's (no second copy)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    targets = rng.integers(0, 3, target_shape).astype(np.uint8 if kind == "segmentation" else np.int64)
    test = (rng.integers(0, 256, (7, *shape[1:]), dtype=np.uint8), rng.integers(0, 3, (7, *target_shape[1:])).astype(targets.dtype))
    copied = build_dataset("toy", kind, images, targets, num_classes=3, seed=1, test=test)
    source = images.copy(), targets.copy(), test[0].copy(), test[1].copy()
    consumed = build_dataset("toy", kind, source[0], source[1], num_classes=3, seed=1, test=(source[2], source[3]),
                             consume=True)
    assert consumed.parts == copied.parts == ("train", "val", "test")
    for part in copied.parts:
        assert torch.equal(consumed.images[part], copied.images[part]), part
        assert torch.equal(consumed.targets[part], copied.targets[part]), part
        assert consumed.images[part].is_contiguous() and consumed.targets[part].dtype == copied.targets[part].dtype
    assert consumed.images["train"].untyped_storage().data_ptr() == source[0].ctypes.data
    assert consumed.images["test"].untyped_storage().data_ptr() == source[2].ctypes.data
    if kind == "segmentation":  # masks already in their compact type are rewritten too
        assert consumed.targets["val"].untyped_storage().data_ptr() == source[1].ctypes.data
    assert consumed.stats == copied.stats and consumed.split == copied.split
    x, y = consumed.batch("train", torch.tensor([3, 0, 5]))
    assert torch.equal(x, copied.batch("train", torch.tensor([3, 0, 5]))[0])


def test_a_consumed_build_copies_what_it_cannot_rewrite():
    images = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    images.flags.writeable = False
    masks = np.zeros((20, 4, 4), dtype=np.uint8)
    data = build_dataset("toy", "segmentation", images, masks, num_classes=2, consume=True, limit=None)
    assert data.images["train"].untyped_storage().data_ptr() != images.ctypes.data
    limited = build_dataset("toy", "segmentation", images.copy(), masks.copy(), num_classes=2, consume=True, limit=10)
    assert limited.num_samples("train") + limited.num_samples("val") == 10


def test_a_pickled_consumed_dataset_carries_its_buffer_once():
    """train and val are views of one buffer: pickle (Ray, spawn) must not send it once per part."""
    import pickle

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    masks = rng.integers(0, 3, (40, 8, 8)).astype(np.uint8)
    consumed = build_dataset("toy", "segmentation", images.copy(), masks.copy(), num_classes=3, consume=True)
    copied = build_dataset("toy", "segmentation", images, masks, num_classes=3)
    blob = pickle.dumps(consumed)
    assert len(blob) < 1.1 * len(pickle.dumps(copied)) and len(blob) < 1.5 * (images.nbytes + masks.nbytes)
    back = pickle.loads(blob)
    for part in copied.parts:
        assert torch.equal(back.images[part], copied.images[part]) and torch.equal(back.targets[part], copied.targets[part])
    assert back.images["train"].untyped_storage().data_ptr() == back.images["val"].untyped_storage().data_ptr()
    assert torch.equal(back.batch("val", slice(0, 3))[0], copied.batch("val", slice(0, 3))[0])
