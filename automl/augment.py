"""On-the-fly training augmentation of a batch (the papers' search-time transforms).

* classification: random crop with zero padding (4 pixels, as DARTS' ``RandomCrop(32,
  padding=4)``) and a horizontal flip with probability 1/2, per sample. The batches come
  normalised, so the padding is the dataset's mean colour (deviation: DARTS pads the raw image
  with black, -mean/std after its normalisation);
* video clips ``[N, C, T, H, W]`` with labels: the same random crop for every frame of a clip and
  no flip (a mirrored clip reverses horizontal motion, the very label of motion classes such as
  ``moving-shapes``' left / right);
* segmentation: a random scale in [0.5, 2.0] (bilinear image, nearest mask), then a random crop
  back to the batch's size, or to ``crop`` (Auto-DeepLab: 321x321 at full size; a side longer
  than the image's is cut to the image's, never padded up), padding with 0 / ``ignore_index``
  where the scaled sample is smaller, and a horizontal flip, per sample (Auto-DeepLab's random
  scale + crop + flip).

:func:`flip` is the mirroring alone (no crop, no scale), for short trainings where the full
transform slows learning more than it curbs over-fitting.

Every draw comes from the given ``torch.Generator``, so a seeded search repeats exactly and a
resumed one continues the same stream (the generator's state goes into its checkpoint).
Imports nothing of the project, like :mod:`automl.types`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING = 4
SCALES = (0.5, 2.0)


def _rand(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _offset(limit: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, limit + 1, (), generator=generator)) if limit > 0 else 0


def augment(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, *,
            ignore_index: int = -100, crop: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``images [N, C, H, W]`` (or clips ``[N, C, T, H, W]``) with ``targets`` (``[N]``
    labels or ``[N, H, W]`` masks), augmented per sample (see the module docstring); shapes are
    kept, except that segmentation batches come out at ``crop`` (each side at most the image's)."""
    if targets.dim() == 1:
        return _classification(images, generator, flip=images.dim() == 4), targets
    return _segmentation(images, targets, generator, ignore_index, crop)


def flip(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch with each sample mirrored left-right with probability 1/2 (masks with it; labels
    kept): the light half of the training transform, for images of classification or
    segmentation (a mirrored clip would reverse the motion that labels video classes)."""
    if images.dim() != 4:
        raise ValueError(f"flip takes image batches [N, C, H, W], got {images.dim()}-D input")
    mirrored = torch.rand(images.shape[0], generator=generator) < 0.5
    images = torch.where(mirrored.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
    if targets.dim() == 3:
        targets = torch.where(mirrored.view(-1, 1, 1).to(targets.device), targets.flip(-1), targets)
    return images, targets


def crop_size(size: tuple[int, int], crop: tuple[int, int] | None) -> tuple[int, int]:
    """The output size of a segmentation batch of ``size`` under ``crop`` (each side the smaller)."""
    return size if crop is None else (min(size[0], int(crop[0])), min(size[1], int(crop[1])))


def _classification(images: torch.Tensor, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Pad-and-crop (and flip) the last two axes of each sample: every frame of a clip alike."""
    n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    padded = F.pad(images, (PADDING, PADDING, PADDING, PADDING))
    out = torch.empty_like(images)
    for i in range(n):
        top, left = _offset(2 * PADDING, generator), _offset(2 * PADDING, generator)
        crop = padded[i, ..., top : top + h, left : left + w]
        out[i] = crop.flip(-1) if flip and _rand(generator) < 0.5 else crop
    return out


def _segmentation(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
                  ignore_index: int, crop: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    n, c, full_h, full_w = images.shape
    h, w = crop_size((full_h, full_w), crop)
    out_x = images.new_zeros((n, c, h, w))
    out_y = masks.new_full((n, h, w), ignore_index)
    for i in range(n):
        scale = SCALES[0] + (SCALES[1] - SCALES[0]) * _rand(generator)
        sh, sw = max(1, round(full_h * scale)), max(1, round(full_w * scale))
        x = F.interpolate(images[i : i + 1], size=(sh, sw), mode="bilinear", align_corners=False)[0]
        y = F.interpolate(masks[i : i + 1, None].float(), size=(sh, sw), mode="nearest")[0, 0].to(masks.dtype)
        top, left = _offset(sh - h, generator), _offset(sw - w, generator)  # crop where larger
        x, y = x[:, top : top + h, left : left + w], y[top : top + h, left : left + w]
        dy, dx = _offset(h - x.shape[1], generator), _offset(w - x.shape[2], generator)  # place where smaller
        if _rand(generator) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        out_x[i, :, dy : dy + x.shape[1], dx : dx + x.shape[2]] = x
        out_y[i, dy : dy + y.shape[0], dx : dx + y.shape[1]] = y
    return out_x, out_y
