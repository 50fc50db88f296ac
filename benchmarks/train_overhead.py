"""Throughput of the ``train`` evaluator against a bare PyTorch loop doing the same work.

Both sides train copies of the same initial model on the same in-memory tensors with the same
optimizer (SGD, momentum 0.9, Nesterov, weight decay 5e-4), batch size and epochs, and both run
the same validation pass after every epoch. The bare loop is what one would write by hand:
``randperm``, index a batch, forward, cross-entropy, ``zero_grad``, backward, ``step`` (no
schedule, no bookkeeping). Runs alternate (bare, evaluator, bare, ...) after one untimed warm-up
run each; the table gives the median of ``--repeats`` runs as training images per second.

``ratio`` = evaluator / bare images per second over the whole run (validation included on both
sides), with the evaluator in fp32 and contiguous layout like the bare loop. ``ratio (train
only)`` subtracts the bare loop's measured validation time from both sides, i.e. it charges all
of the evaluator's extra time to its training loop. ``ratio of fastest runs`` compares the
minima, which a noisy host disturbs less. On CUDA the table adds the evaluator with bf16
autocast and with channels_last, for information.

    python benchmarks/train_overhead.py --dataset digits --epochs 3 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

if __package__ in (None, ""):  # run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluators.base import EvalContext  # noqa: E402
from evaluators.data import Dataset, load_dataset  # noqa: E402
from evaluators.train import TrainEvaluator  # noqa: E402
from search_spaces.base import SearchSpace  # noqa: E402
from search_spaces.seg_unet import SegUNetSpace  # noqa: E402

LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4


def make_model(dataset: Dataset) -> nn.Module:
    """digits: a two-conv CNN; shapes: a depth-2 seg-unet."""
    torch.manual_seed(0)
    if dataset.task.kind == "segmentation":
        arch = {**SegUNetSpace.presets()["unet"], "depth": 2, "width": 16}
        return SegUNetSpace().build(arch, dataset.task)
    c, (h, w), k = dataset.task.in_channels, dataset.task.input_size, dataset.task.num_classes
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, k),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()
    return correct.item() / y.numel()


def bare_loop(model: nn.Module, data: Dataset, device: torch.device, epochs: int, batch_size: int,
              eval_batch_size: int) -> tuple[float, float]:
    """(total seconds, validation seconds) of the hand-written loop."""
    x, y = data.tensors("train", device)
    xv, yv = data.tensors("val", device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    g = torch.Generator().manual_seed(0)
    steps = len(x) // batch_size
    val_seconds = 0.0
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g).to(device)
        for i in range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        t = time.perf_counter()
        validate(model, xv, yv, eval_batch_size)
        val_seconds += time.perf_counter() - t
    sync(device)
    return time.perf_counter() - start, val_seconds


def evaluator_run(model: nn.Module, data: Dataset, device: torch.device, epochs: int, batch_size: int,
                  eval_batch_size: int, amp: str = "off", channels_last: bool = False) -> float:
    ev = TrainEvaluator(
        epochs=epochs, batch_size=batch_size, eval_batch_size=eval_batch_size, lr=LR, momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY, amp=amp, channels_last=channels_last,
    )
    ctx = EvalContext(space=SearchSpace(), task=data.task, dataset=data, device=str(device))
    sync(device)
    start = time.perf_counter()
    ev.evaluate({}, model, ctx)
    sync(device)
    return time.perf_counter() - start


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="digits (classification CNN) or shapes (seg-unet)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--num-samples", type=int, default=None, help="shapes only (default 512)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    extra = {"num_samples": args.num_samples} if args.num_samples else {}
    data = load_dataset(args.dataset, val_fraction=args.val_fraction, **extra)
    template = make_model(data)
    images = args.epochs * (data.num_samples("train") // args.batch_size) * args.batch_size
    cuda = device.type == "cuda"

    def fresh() -> nn.Module:
        return copy.deepcopy(template).to(device)

    # CUDA only: the evaluator's own speed-ups, for information (the bare loop has none)
    variants = {"evaluator": ("off", False)}
    if cuda:
        variants.update({"evaluator_bf16": ("bf16", False), "evaluator_bf16_channels_last": ("bf16", True)})
    runs: dict[str, list[float]] = {"bare": [], "bare_val": [], **{name: [] for name in variants}}
    for amp, channels_last in [("off", False), *variants.values()]:  # warm-up (allocator, kernels, autotuning)
        bare_loop(fresh(), data, device, 1, args.batch_size, args.eval_batch_size)
        evaluator_run(fresh(), data, device, 1, args.batch_size, args.eval_batch_size, amp, channels_last)
    for _ in range(args.repeats):
        total, val = bare_loop(fresh(), data, device, args.epochs, args.batch_size, args.eval_batch_size)
        runs["bare"].append(total)
        runs["bare_val"].append(val)
        for name, (amp, channels_last) in variants.items():
            runs[name].append(
                evaluator_run(fresh(), data, device, args.epochs, args.batch_size, args.eval_batch_size, amp, channels_last)
            )
    med = {k: statistics.median(v) for k, v in runs.items()}
    result: dict[str, Any] = {
        "dataset": data.spec, "device": str(device), "threads": args.threads, "epochs": args.epochs,
        "batch_size": args.batch_size, "train_images": images, "val_images": data.num_samples("val"),
        "repeats": args.repeats, "torch": torch.__version__, "machine": platform.machine(),
        "seconds": runs,
        "bare_images_per_s": images / med["bare"],
        "evaluator_images_per_s": images / med["evaluator"],
        "ratio": med["bare"] / med["evaluator"],
        "ratio_train_only": (med["bare"] - med["bare_val"]) / (med["evaluator"] - med["bare_val"]),
        "ratio_of_fastest": min(runs["bare"]) / min(runs["evaluator"]),
        "iqr_seconds": {k: _iqr(v) for k, v in runs.items()},
    }
    for name in variants:
        result[f"{name}_images_per_s"] = images / med[name]
    print(f"{data.spec} on {device} ({args.threads} threads), {args.epochs} epochs x {images // args.epochs} images, "
          f"median of {args.repeats}")
    print(f"{'loop':<34}{'seconds':>10}{'images/s':>12}")
    print(f"{'bare PyTorch':<34}{med['bare']:>10.3f}{result['bare_images_per_s']:>12.0f}")
    labels = {"evaluator": "train evaluator", "evaluator_bf16": "train evaluator, bf16",
              "evaluator_bf16_channels_last": "train evaluator, bf16 + chan_last"}
    for name in variants:
        print(f"{labels[name]:<34}{med[name]:>10.3f}{result[f'{name}_images_per_s']:>12.0f}")
    print(f"ratio {result['ratio']:.3f}   ratio (train only) {result['ratio_train_only']:.3f}   "
          f"ratio of fastest runs {result['ratio_of_fastest']:.3f}")
    print(f"(validation {med['bare_val']:.3f} s of the bare run; run-to-run IQR: bare "
          f"{result['iqr_seconds']['bare']:.3f} s, evaluator {result['iqr_seconds']['evaluator']:.3f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
