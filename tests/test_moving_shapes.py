"""The ``moving-shapes`` clips and the video readers (``video-folder:``, 5-D ``npz:``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from automl.augment import augment
from evaluators.data import DatasetError, load_dataset
from evaluators.data.moving_shapes import CLASS_NAMES, generate_moving_shapes


def test_clips_are_deterministic_balanced_uint8():
    clips, labels = generate_moving_shapes(48, (24, 28), seed=3)
    again, same = generate_moving_shapes(48, (24, 28), seed=3)
    other, _ = generate_moving_shapes(48, (24, 28), seed=4)
    assert clips.dtype == np.uint8 and clips.shape == (48, 8, 24, 28, 3) and labels.dtype == np.int64
    assert np.array_equal(clips, again) and np.array_equal(labels, same) and not np.array_equal(clips, other)
    assert np.bincount(labels, minlength=len(CLASS_NAMES)).tolist() == [6] * len(CLASS_NAMES)
    assert (np.abs(np.diff(clips.astype(int), axis=1)).mean() > 2)  # frames differ: something moves


def test_a_single_frame_does_not_tell_the_class():
    """First frames carry no class information (by construction: uniform position and angle on the
    torus), so a logistic regression on them stays near chance (1/8) on held-out clips."""
    from sklearn.linear_model import LogisticRegression

    clips, labels = generate_moving_shapes(640, (16, 16), seed=0)
    first = clips[:, 0].astype(np.float32).reshape(len(clips), 8, 2, 8, 2, 3).mean((2, 4)) / 255.0  # 8x8 RGB
    first = first.reshape(len(clips), -1)
    model = LogisticRegression(max_iter=200, C=0.1).fit(first[:480], labels[:480])
    accuracy = float((model.predict(first[480:]) == labels[480:]).mean())
    assert accuracy < 1 / len(CLASS_NAMES) + 0.1, accuracy  # chance + 3.8 sigma for 160 clips


def test_loaded_as_a_video_dataset():
    data = load_dataset("moving-shapes", task_kind="video", num_samples=40, image_size=16)
    assert data.task.kind == "video" and data.task.input_size == (8, 16, 16) and data.task.num_classes == 8
    assert data.images["train"].dtype == torch.uint8 and data.images["train"].shape[1:] == (3, 8, 16, 16)
    x, y = data.batch("train", slice(0, 4))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 16, 16) and y.dtype == torch.int64
    assert load_dataset(None, task_kind="video", num_samples=16).spec == "moving-shapes"


def test_clip_augmentation_crops_every_frame_alike_and_never_flips():
    clip = torch.arange(2 * 3 * 4 * 8 * 8, dtype=torch.float32).view(2, 3, 4, 8, 8)
    out, y = augment(clip, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    assert out.shape == clip.shape and y.tolist() == [0, 1]
    for i in range(2):  # one shift per clip: frame t of the output is frame t of the input, shifted alike
        shifts = {tuple(torch.nonzero(out[i, 0, t] == clip[i, 0, t, 4, 4]).flatten().tolist()) for t in range(4)}
        assert len(shifts) == 1


def test_video_folder_of_frame_folders_and_npy_clips(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for k in range(3):
            clip = rng.integers(0, 255, (4, 10, 12, 3), dtype=np.uint8)
            (tmp_path / label).mkdir(exist_ok=True)
            if k == 0:
                np.save(tmp_path / label / "c0.npy", clip)
            else:
                folder = tmp_path / label / f"c{k}"
                folder.mkdir()
                for t, frame in enumerate(clip):
                    Image.fromarray(frame).save(folder / f"{t:03d}.png")
    data = load_dataset(f"video-folder:{tmp_path}", task_kind="video")
    assert data.task.input_size == (4, 10, 12) and data.class_names == ("a", "b") and data.num_samples("train") == 4
    np.save(tmp_path / "a" / "short.npy", np.zeros((3, 10, 12, 3), np.uint8))
    with pytest.raises(DatasetError, match="clips differ in shape"):
        load_dataset(f"video-folder:{tmp_path}", task_kind="video")


def test_npz_with_5d_clips(tmp_path):
    clips, labels = generate_moving_shapes(16, (12, 12), seed=1, frames=4)
    np.savez(tmp_path / "clips.npz", images=clips, labels=labels)
    data = load_dataset(f"npz:{tmp_path / 'clips.npz'}")
    assert data.task.kind == "video" and data.task.input_size == (4, 12, 12)
    with pytest.raises(DatasetError, match="the task is classification"):
        load_dataset(f"npz:{tmp_path / 'clips.npz'}", task_kind="classification")
    np.savez(tmp_path / "grey.npz", images=clips[..., 0], labels=labels)  # [N, T, H, W] for a video task
    assert load_dataset(f"npz:{tmp_path / 'grey.npz'}", task_kind="video").task.in_channels == 1


@pytest.mark.parametrize(("spec", "options", "message"), [
    ("moving-shapes:x", {}, "takes no path"),
    ("video-folder", {}, "needs a path"),
    ("moving-shapes", {"task_kind": "classification"}, "is for video but the task is classification"),
    ("digits", {"task_kind": "video"}, "video datasets: npz:PATH, moving-shapes, video-folder:PATH"),
    ("moving-shapes", {"num_samples": 1}, "num_samples must be an integer >= 2"),
    ("video-folder:/nonexistent", {}, "folder not found"),
])
def test_bad_video_specs_fail_in_one_line(spec, options, message):
    with pytest.raises(DatasetError) as error:
        load_dataset(spec, **options)
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1
