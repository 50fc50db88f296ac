"""Task metrics from a confusion matrix: accuracy, mean IoU and pixel accuracy.

One place for the numbers every part reports: the ``train`` evaluator's ``val_acc`` /
``val_miou`` and the scores a one-shot controller gives sub-networks of its supernet.
"""

from __future__ import annotations

import torch


def confusion(logits: torch.Tensor, targets: torch.Tensor, num_classes: int, ignore_index: int = -100) -> torch.Tensor:
    """Flat ``[num_classes²]`` int64 counts of (target, predicted class) over the labelled
    samples or pixels; ``logits`` are ``[N, K]`` or ``[N, K, H, W]`` at the targets' size."""
    valid = targets != ignore_index
    pred = logits.argmax(1)
    return torch.bincount(targets[valid] * num_classes + pred[valid], minlength=num_classes**2)


def summary(counts: torch.Tensor, num_classes: int, kind: str) -> dict[str, float]:
    """``acc`` (classification, video) or ``miou`` and ``pixel_acc`` (segmentation) from :func:`confusion`
    counts; mean IoU averages the classes that occur in the targets or the predictions. Empty
    counts give an empty dict."""
    matrix = counts.view(num_classes, num_classes).double().cpu()
    total = float(matrix.sum())
    if total == 0:
        return {}
    correct = float(matrix.diag().sum())
    if kind in ("classification", "video"):  # video: one label per clip
        return {"acc": correct / total}
    union = matrix.sum(0) + matrix.sum(1) - matrix.diag()
    present = union > 0
    return {"miou": float((matrix.diag()[present] / union[present]).mean()), "pixel_acc": correct / total}
