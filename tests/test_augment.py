"""automl.augment: the search-time training transform keeps shapes and labels, moves pixels,
and repeats exactly from a seeded generator (so a resumed search sees the same batches)."""

from __future__ import annotations

import pytest
import torch


from automl.augment import augment, flip
from controllers.oneshot.batches import Augmenter, Batch


def test_classification_crop_and_flip_keep_shape_and_labels():
    gen = torch.Generator().manual_seed(0)
    images = torch.arange(16 * 3 * 8 * 8, dtype=torch.float).view(16, 3, 8, 8) + 1
    labels = torch.arange(16)
    out, same = augment(images, labels, gen)
    assert out.shape == images.shape and torch.equal(same, labels)
    assert not torch.equal(out, images)  # 16 samples: some shifted or flipped
    # every output is a padded shift (and maybe a flip) of its own sample: its nonzero values
    # are that sample's values
    for i in range(16):
        values = set(out[i][out[i] != 0].tolist())
        assert values <= set(images[i].flatten().tolist())
    again, _ = augment(images, labels, torch.Generator().manual_seed(0))
    assert torch.equal(again, out)


def test_segmentation_scale_crop_flip_moves_image_and_mask_together():
    gen = torch.Generator().manual_seed(1)
    masks = torch.zeros(8, 16, 16, dtype=torch.long)
    masks[:, 4:12, 2:6] = 1  # a bar on the left
    images = masks[:, None].float().expand(8, 3, 16, 16).clone()
    out_x, out_y = augment(images, masks, gen, ignore_index=255)
    assert out_x.shape == images.shape and out_y.shape == masks.shape and out_y.dtype == masks.dtype
    assert set(out_y.unique().tolist()) <= {0, 1, 255}
    labelled = out_y != 255
    # the image follows its mask (bar pixels bright, background dark; bilinear blurs the edges)
    assert out_x[:, 0][labelled & (out_y == 1)].mean() > 0.8
    assert out_x[:, 0][labelled & (out_y == 0)].mean() < 0.2
    assert not torch.equal(out_y, masks)


def test_augmenter_state_round_trip_and_off_switch():
    batch = Batch(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    a = Augmenter(True, seed=5)
    a(batch)
    state = a.state_dict()
    first = a(batch).images
    b = Augmenter(True, seed=99)
    b.load_state_dict(state)
    assert torch.equal(b(batch).images, first)
    assert Augmenter(False, seed=5)(batch) is batch


def test_segmentation_crop_gives_the_crop_size_never_larger_than_the_image():
    from automl.augment import crop_size

    masks = torch.randint(0, 3, (4, 12, 20))
    images = masks[:, None].float().expand(4, 3, 12, 20).clone()
    x, y = augment(images, masks, torch.Generator().manual_seed(0), ignore_index=255, crop=(8, 8))
    assert x.shape == (4, 3, 8, 8) and y.shape == (4, 8, 8)
    x, y = augment(images, masks, torch.Generator().manual_seed(0), ignore_index=255, crop=(321, 321))
    assert x.shape == images.shape and y.shape == masks.shape  # not padded up to 321
    same, _ = augment(images, masks, torch.Generator().manual_seed(0), ignore_index=255)
    assert torch.equal(x, same)  # a crop at least the image's size is no crop
    assert crop_size((1024, 2048), (321, 321)) == (321, 321) and crop_size((32, 32), None) == (32, 32)
    aug = Augmenter(True, seed=0, ignore_index=255, crop=8)
    out = aug(Batch(images, masks))
    assert out.images.shape[-2:] == (8, 8) and out.targets.shape[-2:] == (8, 8)


def test_flip_mirrors_each_sample_with_its_mask_or_leaves_it_alone():
    images = torch.randn(32, 3, 6, 7)
    masks = torch.randint(0, 5, (32, 6, 7))
    labels = torch.arange(32)
    out_x, out_y = flip(images, masks, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(out_x[i], images[i].flip(-1)) for i in range(32)]
    for i in range(32):
        assert mirrored[i] or torch.equal(out_x[i], images[i])
        assert torch.equal(out_y[i], masks[i].flip(-1) if mirrored[i] else masks[i])
    assert 8 <= sum(mirrored) <= 24  # about half
    again = flip(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], out_x) and torch.equal(again[1], out_y)
    same_labels = flip(images, labels, torch.Generator().manual_seed(0))
    assert torch.equal(same_labels[0], out_x) and torch.equal(same_labels[1], labels)
    with pytest.raises(ValueError, match="flip takes image batches"):
        flip(torch.zeros(2, 3, 4, 5, 5), labels[:2], torch.Generator())
