"""Host memory of a search and a training run over a Cityscapes-sized segmentation set.

    python -m benchmarks.data_memory [--images 2975] [--height 512] [--width 1024] [--classes 19]
        [--val-fraction 0.05] [--batch 2] [--search-steps 2] [--train-steps 2] [--threads 2]
        [--device cpu] [--json OUT.json]

1. **build**: a synthetic set shaped like Cityscapes' training images (``--images`` RGB images
   of ``--height`` × ``--width``: blocky regions of ``--classes`` class ids, 255 void pixels
   along the bottom, per-class colours plus noise) made as uint8 source arrays and split by
   :func:`evaluators.data.build_dataset`, the path ``npz:`` and ``seg-folder:`` data take; the
   source arrays are then freed, as :func:`~evaluators.data.load_dataset` frees them.
2. **search**: a ``darts`` search of ``seg-hierarchical`` at its quick (4-layer, F=4) size, two
   epochs of ``--search-steps`` steps each (the second with α/β steps), batch ``--batch``,
   reading the training part as every one-shot search does
   (:meth:`~controllers.oneshot.base.SearchData.from_dataset`).
3. **train**: the ``train`` evaluator on the derived network, ``--train-steps`` steps and the
   validation pass over the whole val part.

Reported per phase: peak RSS (the kernel's high-water mark, reset at the start of each phase
through ``/proc/self/clear_refs``; where that is refused, the process's peak so far) and RSS at
its end; and the bytes the dataset holds (uint8 images, compact masks) against what ``float32``
images and ``int64`` masks, the former whole-part conversion, would take. Prints a table and
writes the JSON (default ``benchmarks/results/data_memory_cpu.json`` for the full size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automl import registry
from automl.batching import nbytes
from automl.types import Objective
from controllers.oneshot.base import SearchData
from controllers.oneshot.darts import DartsController
from evaluators.base import EvalContext
from evaluators.data import Dataset, build_dataset
from evaluators.train import TrainEvaluator

IGNORE = 255
SPACE = "seg-hierarchical"
SPACE_OPTIONS = {"layers": 4, "filter_multiplier": 4, "retrain_filter_multiplier": 4,  # its quick size for darts
                 "stem_channels": [16, 16, 32], "aspp_channels": 32}
CELL = 32  # side of the class regions, pixels


def synthetic(images: int, height: int, width: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[N, H, W, 3]`` and masks ``[N, H, W]`` (class ids, ``IGNORE`` void)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (classes, 3), dtype=np.uint8)
    x = np.empty((images, height, width, 3), dtype=np.uint8)
    y = np.empty((images, height, width), dtype=np.uint8)
    cells = (-(-height // CELL), -(-width // CELL))
    for i in range(images):
        grid = rng.integers(0, classes, cells, dtype=np.uint8)
        y[i] = grid.repeat(CELL, 0).repeat(CELL, 1)[:height, :width]
        y[i, height - max(1, height // 16):] = IGNORE  # the ego vehicle's bonnet: void, as in Cityscapes
        x[i] = palette[np.minimum(y[i], classes - 1)]
        x[i] += rng.integers(0, 32, (height, width, 3), dtype=np.uint8)
    return x, y


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` memory field in bytes (None where there is none)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def phase(name: str, work: Callable[[], Any], rows: dict[str, dict[str, Any]]) -> Any:
    """Run ``work``; record its seconds, peak RSS and RSS at its end under ``rows[name]``."""
    reset = _reset_peak()
    start = time.perf_counter()
    out = work()
    peak = _status("VmHWM") if reset else None
    rows[name] = {"seconds": time.perf_counter() - start,
                  "peak_rss": peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_since": "phase" if peak is not None else "process start",
                  "rss_end": _status("VmRSS")}
    return out


def held(data: Dataset) -> dict[str, int]:
    """Bytes of the stored parts, and of the same parts as float32 images / int64 targets."""
    parts = [(data.images[p], data.targets[p]) for p in data.parts]
    return {"stored": sum(nbytes(x, y) for x, y in parts),
            "float32_int64": sum(x.numel() * 4 + y.numel() * 8 for x, y in parts),
            "train_stored": nbytes(data.images["train"], data.targets["train"]),
            "train_float32_int64": data.images["train"].numel() * 4 + data.targets["train"].numel() * 8}


def build(args: argparse.Namespace) -> Dataset:
    """The synthetic set, split and stored as ``load_dataset`` stores what it reads: inside the
    source arrays' memory (``consume``), so building takes the data's size once."""
    images, masks = synthetic(args.images, args.height, args.width, args.classes)
    return build_dataset("synthetic-cityscapes", "segmentation", images, masks, num_classes=args.classes,
                         ignore_index=IGNORE, val_fraction=args.val_fraction, seed=0, consume=True)


def search(args: argparse.Namespace, data: Dataset) -> tuple[Any, dict[str, Any]]:
    """The short darts search on the training part; the space and the derived architecture."""
    space = registry.create("space", SPACE, dict(SPACE_OPTIONS))
    ctl = DartsController(epochs=2, warmup_epochs=1, batch_size=args.batch, steps_per_epoch=args.search_steps,
                          top_k=1, augment=True)
    ctl.bind(space, data.task, [Objective("val_miou", "max")], 0)
    arch = ctl.search(ctl.supernet, SearchData.from_dataset(data), device=args.device, log=lambda _: None)[0]
    return space, arch


def train(args: argparse.Namespace, data: Dataset, space: Any, arch: dict[str, Any]) -> dict[str, float]:
    """The ``train`` evaluator on the derived network: its metrics."""
    torch.manual_seed(0)
    model = space.build(arch, data.task)
    ev = TrainEvaluator(steps=args.train_steps, batch_size=args.batch, eval_batch_size=args.batch)
    return ev.evaluate(arch, model, EvalContext(space=space, task=data.task, dataset=data, device=args.device, seed=0))


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    data = phase("build", lambda: build(args), rows)
    space, arch = phase("search", lambda: search(args, data), rows)
    metrics = phase("train", lambda: train(args, data, space, arch), rows)
    return {
        "images": args.images, "height": args.height, "width": args.width, "classes": args.classes,
        "samples": {p: data.num_samples(p) for p in data.parts},
        "dtypes": {"images": str(data.images["train"].dtype), "targets": str(data.targets["train"].dtype)},
        "bytes": held(data), "phases": rows,
        "search": {"steps_per_epoch": args.search_steps, "epochs": 2, "batch": args.batch, "derived": arch},
        "train": {"steps": args.train_steps, "val_miou": metrics.get("val_miou")},
        "machine": {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "machine": platform.machine(), "python": platform.python_version(), "device": args.device},
    }


def report(res: dict[str, Any]) -> None:
    mib = 1 / 2**20
    b = res["bytes"]
    print(f"{res['images']} images 3x{res['height']}x{res['width']}, {res['classes']} classes + {IGNORE} void "
          f"({res['samples']['train']} train / {res['samples']['val']} val); images {res['dtypes']['images']}, "
          f"masks {res['dtypes']['targets']}")
    print(f"held data {b['stored'] * mib:.0f} MiB (as float32 images + int64 masks: {b['float32_int64'] * mib:.0f} MiB; "
          f"the train part alone: {b['train_stored'] * mib:.0f} vs {b['train_float32_int64'] * mib:.0f} MiB)")
    print(f"{'phase':<8}{'seconds':>9}{'peak RSS MiB':>14}{'RSS at end MiB':>16}")
    for name, r in res["phases"].items():
        end = f"{r['rss_end'] * mib:>16.0f}" if r["rss_end"] is not None else f"{'n/a':>16}"
        print(f"{name:<8}{r['seconds']:>9.1f}{r['peak_rss'] * mib:>14.0f}{end}"
              + ("" if r["peak_since"] == "phase" else "  (peak since process start)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2975, help="images in the set (Cityscapes train: 2975)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--val-fraction", type=float, default=0.05, help="held out for the train evaluator's validation")
    parser.add_argument("--batch", type=int, default=2, help="batch of the search and the training (Auto-DeepLab: 2)")
    parser.add_argument("--search-steps", type=int, default=2, help="steps in each of the search's 2 epochs")
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    if min(args.images, args.search_steps, args.train_steps) < 1 or args.batch < 2 or args.classes < 2:
        parser.error("--images, --search-steps, --train-steps must be >= 1, --batch and --classes >= 2")
    torch.set_num_threads(args.threads)
    res = benchmark(args)
    report(res)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
