"""load_dataset: every spec from small fixture files, the seeded split, batching and the errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators.data import Dataset, DatasetError, load_dataset


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


# -- digits and the split --------------------------------------------------------------------------
def test_digits_is_the_classification_default():
    data = load_dataset(task_kind="classification")
    assert isinstance(data, Dataset) and data.spec == "digits"
    assert data.task.kind == "classification"
    assert (data.task.in_channels, data.task.input_size, data.task.num_classes) == (1, (8, 8), 10)
    assert data.class_names == tuple("0123456789")
    assert data.num_samples("train") + data.num_samples("val") == 1797
    assert abs(data.num_samples("val") - 0.2 * 1797) < 10
    x, y = data.tensors("train")
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8) and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2  # normalised with train stats


def test_split_is_seeded_stratified_and_recorded():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4, val_fraction=0.5)
    rec = a.split_record()
    assert rec["train"] == b.split_record()["train"] and rec["val"] != c.split_record()["val"]
    assert rec["seed"] == 3 and rec["stratified"] and rec["spec"] == "digits"
    assert set(rec["train"]).isdisjoint(rec["val"]) and len(rec["train"]) + len(rec["val"]) == 1797
    counts = torch.bincount(a.targets["val"], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # every class keeps ~20% of its ~180 samples
    assert c.num_samples("val") == pytest.approx(1797 / 2, abs=10)


def test_limit_keeps_a_seeded_subset():
    data = load_dataset("digits", limit=100, seed=1)
    rec = data.split_record()
    assert data.num_samples("train") + data.num_samples("val") == 100
    assert rec["source_size"] == 1797 and max(rec["train"] + rec["val"]) < 1797
    assert rec == load_dataset("digits", limit=100, seed=1).split_record()


def test_batches_cover_the_part_and_follow_the_generator():
    data = load_dataset("digits", limit=50)
    n = data.num_samples("train")
    g = torch.Generator().manual_seed(0)
    first = [y for _, y in data.batches("train", 16, shuffle=True, generator=g)]
    assert sorted(torch.cat(first).tolist()) == sorted(data.targets["train"].tolist())
    again = [y for _, y in data.batches("train", 16, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(p, q) for p, q in zip(first, again))
    dropped = list(data.batches("train", 16, drop_last=True))
    assert [len(y) for _, y in dropped] == [16] * (n // 16)
    assert len(list(data.batches("train", 1000, drop_last=True))) == 1  # never drops the only batch
    x, y = data.tensors("val")
    assert torch.equal(torch.cat([b for b, _ in data.batches("val", 16)]), x) and y.dtype == torch.int64


# -- shapes -------------------------------------------------------------------------------------------
def test_shapes_is_the_segmentation_default_and_seeded():
    data = load_dataset(task_kind="segmentation", num_samples=64)
    assert data.spec == "shapes" and data.task.kind == "segmentation"
    assert (data.task.in_channels, data.task.input_size, data.task.num_classes) == (3, (32, 32), 5)
    assert data.class_names == ("background", "square", "circle", "triangle", "cross")
    same = load_dataset("shapes", num_samples=64)
    other = load_dataset("shapes", num_samples=64, data_seed=1)
    assert torch.equal(data.images["train"], same.images["train"])
    assert not torch.equal(data.images["train"], other.images["train"])
    small = load_dataset("shapes", num_samples=8, image_size=(24, 40))
    assert small.task.input_size == (24, 40) and small.targets["val"].shape[1:] == (24, 40)
    assert load_dataset("shapes", num_samples=4, image_size=[20]).task.input_size == (20, 20)


def test_shapes_has_classes_sizes_overlaps_and_noise():
    data = load_dataset("shapes", num_samples=200)
    masks = torch.cat([data.targets["train"], data.targets["val"]])
    share = torch.bincount(masks.flatten(), minlength=5).double() / masks.numel()
    assert share[0] > 0.5 and (share[1:] > 0.03).all()  # background plus four object classes
    per_image = [len(torch.unique(m)) for m in masks]
    assert max(per_image) >= 4 and min(per_image) >= 2
    areas = [(m == c).sum().item() for m in masks[:50] for c in range(1, 5) if (m == c).any()]
    assert min(areas) < 60 and max(areas) > 250  # varied sizes (occlusion makes some tiny)
    images = data.images["train"].float()
    flat_objects = images[:, :, 1:, :] - images[:, :, :-1, :]  # noise: no two neighbouring rows are equal
    assert (flat_objects != 0).float().mean() > 0.8


def test_shapes_rewards_architecture():
    """A one-layer network, even trained 3x longer, scores clearly below a small U-Net."""
    from torch import nn

    from evaluators.base import EvalContext
    from evaluators.train import TrainEvaluator
    from search_spaces.seg_unet import SegUNetSpace

    space = SegUNetSpace()
    data = load_dataset("shapes", num_samples=240)

    def score(model, epochs, **opts):
        ctx = EvalContext(space=space, task=data.task, dataset=data)
        return TrainEvaluator(epochs=epochs, batch_size=8, **opts).evaluate({}, model, ctx)

    torch.manual_seed(0)
    unet = space.build({**space.preset("unet"), "depth": 2, "width": 16})
    good = score(unet, 3, optimizer="sgd", lr=0.1)
    single = []
    for opts in ({"optimizer": "adamw", "lr": 3e-3}, {"optimizer": "adamw", "lr": 1e-2}):  # its best settings
        torch.manual_seed(0)
        single.append(score(nn.Conv2d(3, 5, 3, padding=1), 9, **opts))
    best_single = max(s["val_miou"] for s in single)
    assert good["val_miou"] > best_single + 0.07 and good["val_miou"] > 1.4 * best_single
    assert good["val_pixel_acc"] > max(s["val_pixel_acc"] for s in single) + 0.04
    background = (data.targets["val"] == 0).double().mean().item()
    assert good["val_pixel_acc"] > background + 0.05  # beats "everything is background"; the single layer does not


# -- npz ------------------------------------------------------------------------------------------------
def make_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_classification_grey_and_colour(tmp_path):
    rng = np.random.default_rng(0)
    grey = make_npz(tmp_path / "g.npz", images=rng.integers(0, 256, (30, 9, 7), dtype=np.uint8), labels=np.arange(30) % 3)
    data = load_dataset(grey, seed=1)
    task = data.task
    assert (task.kind, task.in_channels, task.input_size, task.num_classes) == ("classification", 1, (9, 7), 3)
    colour = make_npz(
        tmp_path / "c.npz",
        images=rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8),
        labels=np.arange(20) % 2,
        class_names=np.array(["cat", "dog"]),
    )
    data = load_dataset(colour, task_kind="classification")
    assert data.task.in_channels == 3 and data.class_names == ("cat", "dog")
    assert data.images["train"].dtype == torch.uint8 and data.images["train"].shape[1:] == (3, 6, 6)


def test_a_relative_path_is_kept_absolute_in_the_spec(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    make_npz(tmp_path / "rel.npz", images=rng.integers(0, 256, (12, 6, 6), dtype=np.uint8), labels=np.arange(12) % 2)
    monkeypatch.chdir(tmp_path)
    assert load_dataset("npz:rel.npz").spec == f"npz:{tmp_path / 'rel.npz'}"  # a run reads it from any folder


def test_npz_segmentation_with_ignore_index(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 4, (12, 8, 8))
    masks[:, 0, :] = 255
    spec = make_npz(
        tmp_path / "s.npz",
        images=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
        masks=masks,
        ignore_index=np.array(255),
    )
    data = load_dataset(spec)
    assert data.task.kind == "segmentation" and data.task.num_classes == 4 and data.ignore_index == 255
    assert data.targets["train"].shape[1:] == (8, 8) and (data.targets["train"][:, 0] == 255).all()


def test_npz_with_labels_and_masks_needs_a_kind(tmp_path):
    images = np.zeros((4, 5, 5), np.uint8)
    masks = np.zeros((4, 5, 5), int) + [[0, 1, 0, 1, 0]]
    spec = make_npz(tmp_path / "b.npz", images=images, labels=np.array([0, 1, 0, 1]), masks=masks)
    with pytest.raises(DatasetError, match="task_kind") as exc:
        load_dataset(spec)
    one_line(exc)
    assert load_dataset(spec, task_kind="segmentation").task.kind == "segmentation"
    assert load_dataset(spec, task_kind="classification").task.kind == "classification"


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"images": np.zeros((4, 5, 5), np.float32), "labels": np.array([0, 1, 0, 1])}, "uint8"),
        ({"images": np.zeros((4, 5, 5), np.uint8), "labels": np.array([0, 1, 0])}, r"labels must be \[N\]"),
        ({"images": np.zeros((4, 5, 5), np.uint8), "masks": np.zeros((4, 5, 6), int)}, r"masks must be \[N, H, W\]"),
        ({"images": np.zeros((4, 5, 5), np.uint8)}, "no 'labels'"),
        ({"labels": np.array([0, 1])}, "no 'images'"),
        ({"images": np.zeros((4, 5), np.uint8), "labels": np.array([0, 1, 0, 1])}, r"\[N, H, W\] or \[N, H, W, C\]"),
        ({"images": np.zeros((4, 5, 5), np.uint8), "labels": np.array([0, -1, 0, 1])}, ">= 0"),
        ({"images": np.zeros((4, 5, 5), np.uint8), "labels": np.array([0.0, 1, 0, 1])}, "integers"),
        ({"images": np.zeros((4, 5, 5), np.uint8), "labels": np.zeros(4, int)}, "at least 2 classes"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    spec = make_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as exc:
        load_dataset(spec)
    assert "bad.npz" in one_line(exc)


def test_npz_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DatasetError, match="file not found") as exc:
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    one_line(exc)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="cannot read as .npz"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")


# -- image folders -----------------------------------------------------------------------------------
def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("zebra", "apple"):
        for i in range(5):
            save_png(tmp_path / name / f"{i}.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    data = load_dataset(f"image-folder:{tmp_path}")
    assert data.class_names == ("apple", "zebra")
    assert (data.task.in_channels, data.task.input_size, data.task.num_classes) == (3, (10, 12), 2)
    assert torch.bincount(torch.cat([data.targets["train"], data.targets["val"]])).tolist() == [5, 5]
    # one image of another size: an error naming it, or resized on request
    save_png(tmp_path / "apple" / "big.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match="image_size") as exc:
        load_dataset(f"image-folder:{tmp_path}")
    assert "big.png" in one_line(exc)
    assert load_dataset(f"image-folder:{tmp_path}", image_size=16).task.input_size == (16, 16)


def test_image_folder_grey_and_errors(tmp_path):
    for name in ("a", "b"):
        for i in range(3):
            save_png(tmp_path / "grey" / name / f"{i}.png", np.full((6, 6), 40 * i, np.uint8))
    assert load_dataset(f"image-folder:{tmp_path / 'grey'}").task.in_channels == 1
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset(f"image-folder:{tmp_path / 'missing'}")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DatasetError, match="at least 2 class sub-folders"):
        load_dataset(f"image-folder:{tmp_path / 'one'}")
    (tmp_path / "one" / "other").mkdir()
    with pytest.raises(DatasetError, match="has no images"):
        load_dataset(f"image-folder:{tmp_path / 'one'}")
    save_png(tmp_path / "broken" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "broken" / "b").mkdir()
    (tmp_path / "broken" / "b" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image") as exc:
        load_dataset(f"image-folder:{tmp_path / 'broken'}")
    one_line(exc)


def test_seg_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "masks").mkdir()
    for i in range(6):
        save_png(tmp_path / "images" / f"im{i}.png", rng.integers(0, 256, (8, 10, 3), dtype=np.uint8))
        mask = rng.integers(0, 3, (8, 10)).astype(np.uint8)
        mask[0, 0] = 255
        if i % 2:  # palette PNG (PASCAL VOC style) and plain grey PNG both hold class ids
            im = Image.fromarray(mask, "P")
            im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [9] * (253 * 3))
            im.save(tmp_path / "masks" / f"im{i}.png")
        else:
            save_png(tmp_path / "masks" / f"im{i}.png", mask)
    data = load_dataset(f"seg-folder:{tmp_path}", seed=2)
    assert data.task.kind == "segmentation" and data.task.num_classes == 3 and data.ignore_index == 255
    assert data.task.input_size == (8, 10) and data.targets["train"].shape[1:] == (8, 10)
    assert set(torch.unique(data.targets["val"]).tolist()) <= {0, 1, 2, 255}
    resized = load_dataset(f"seg-folder:{tmp_path}", image_size=(16, 20))
    assert set(torch.unique(resized.targets["train"]).tolist()) <= {0, 1, 2, 255}  # nearest keeps ids


def test_seg_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="missing folder 'images'"):
        load_dataset(f"seg-folder:{tmp_path}")
    save_png(tmp_path / "images" / "a.png", np.zeros((4, 4, 3), np.uint8))
    save_png(tmp_path / "images" / "b.png", np.zeros((4, 4, 3), np.uint8))
    save_png(tmp_path / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="no mask of the same name") as exc:
        load_dataset(f"seg-folder:{tmp_path}")
    assert "b.png" in one_line(exc)
    save_png(tmp_path / "masks" / "b.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="single-channel"):
        load_dataset(f"seg-folder:{tmp_path}")


def test_seg_folder_with_train_and_val_keeps_val_whole_as_the_held_out_part(tmp_path):
    """Cityscapes' layout: train/ is split train/val as usual, val/ becomes the untouched test part."""
    rng = np.random.default_rng(0)
    for part, n in (("train", 10), ("val", 3)):
        for i in range(n):
            save_png(tmp_path / part / "images" / f"{part}{i}.png", rng.integers(0, 256, (8, 10, 3), dtype=np.uint8))
            save_png(tmp_path / part / "masks" / f"{part}{i}.png", rng.integers(0, 3, (8, 10)).astype(np.uint8))
    (tmp_path / "classes.txt").write_text("road\ncar\nsky\n")
    data = load_dataset(f"seg-folder:{tmp_path}", seed=1)
    assert data.parts == ("train", "val", "test")
    assert data.class_names == ("road", "car", "sky") and data.ignore_index == 255
    assert data.num_samples("train") + data.num_samples("val") == 10 and data.num_samples("test") == 3
    assert data.targets["test"].shape == (3, 8, 10)
    resized = load_dataset(f"seg-folder:{tmp_path}", image_size=(16, 20))
    assert resized.images["test"].shape[-2:] == (16, 20)  # both parts resized alike
    save_png(tmp_path / "val" / "images" / "big.png", np.zeros((9, 10, 3), np.uint8))
    save_png(tmp_path / "val" / "masks" / "big.png", np.zeros((9, 10), np.uint8))
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"seg-folder:{tmp_path}")
    one_line(exc)
    only_train = tmp_path / "only"
    save_png(only_train / "train" / "images" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="has no .*/val beside it") as exc:
        load_dataset(f"seg-folder:{only_train}")
    one_line(exc)


# -- CIFAR-10 ----------------------------------------------------------------------------------------
def write_cifar(folder, n=10):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(np.arange(n) % 10)}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)


def test_cifar10(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_dataset(f"cifar10:{tmp_path}")  # the parent folder works too
    assert data.parts == ("train", "val", "test")
    assert data.num_samples("train") + data.num_samples("val") == 50 and data.num_samples("test") == 10
    assert (data.task.in_channels, data.task.input_size, data.task.num_classes) == (3, (32, 32), 10)
    assert data.class_names[0] == "airplane"
    raw = np.asarray(pickle.load(open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb"))[b"data"])
    assert torch.equal(data.images["test"][0], torch.from_numpy(raw[0].reshape(3, 32, 32)))  # CHW order kept


def test_cifar10_errors(tmp_path):
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3") as exc:
        load_dataset(f"cifar10:{tmp_path / 'c'}")
    one_line(exc)
    write_cifar(tmp_path / "evil")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil" / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DatasetError, match="not allowed"):
        load_dataset(f"cifar10:{tmp_path / 'evil'}")


# -- spec errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec,kwargs,message",
    [
        ("mnist", {}, "unknown dataset spec 'mnist'; accepted: digits, shapes"),
        ("npz", {}, "needs a path: npz:PATH"),
        ("digits:/tmp/x", {}, "takes no path"),
        ("digits", {"task_kind": "segmentation"}, "is for classification but the task is segmentation"),
        ("shapes", {"task_kind": "classification"}, "classification datasets: digits, npz:PATH"),
        (None, {}, "no dataset spec and no task_kind"),
        ("digits", {"task_kind": "detection"}, "task_kind must be"),
        ("digits", {"val_fraction": 0.0}, r"val_fraction must be in \(0, 1\)"),
        ("digits", {"val_fraction": "0.2"}, r"val_fraction must be in \(0, 1\)"),
        ("digits", {"num_samples": 10}, "num_samples only applies to shapes, moving-shapes"),
        ("digits", {"image_size": 16}, "image_size applies to shapes"),
        ("shapes", {"image_size": (2, 2)}, "image_size must be"),
        ("digits", {"limit": 1}, "limit must be"),
        ("shapes", {"num_samples": 1}, "num_samples must be"),
        ("digits", {"resize": 4}, r"takes no option \['resize'\]; options: task_kind"),
    ],
)
def test_spec_errors(spec, kwargs, message):
    with pytest.raises(DatasetError, match=message) as exc:
        load_dataset(spec, **kwargs)
    one_line(exc)
    assert isinstance(exc.value, ValueError)


def test_summary_is_json_ready():
    import json

    data = load_dataset("shapes", num_samples=10)
    text = json.dumps({"summary": data.summary(), "split": data.split_record()})
    assert '"kind": "segmentation"' in text
