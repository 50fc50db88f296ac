"""One training step of the zero-flag ``seg-hierarchical`` demo's retrain network, per optimizer
implementation and retrain width: what the ``train`` evaluator's fused optimizers save.

    python -m benchmarks.train_step --widths 4,8 --search-run RUN_DIR --json OUT.json

The network is the best trial of ``--search-run`` (a finished ``automl search --space
seg-hierarchical`` run, e.g. the zero-flag demo), else an architecture sampled with seed 0, built
with the demo's space settings at each ``--widths`` (``retrain_filter_multiplier``) on 32x32
images with 5 classes, in channels-last like the demo's retrain. For each PyTorch AdamW
implementation (``loop``: one tensor at a time, the CPU default; ``foreach``; ``fused``, what the
``train`` evaluator picks where it can) it times ``optimizer.step()`` alone and a whole step
(forward, cross-entropy, backward, step) with ``torch.utils.benchmark`` (median). Prints a table
and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils import benchmark

from automl import registry
from automl.types import Task
from benchmarks.retrain import machine, search_best
from evaluators.train import TrainEvaluator
from search_spaces.seg_hierarchical import SegHierarchicalSpace

MODES = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
TASK = Task(kind="segmentation", in_channels=3, input_size=(32, 32), num_classes=5)


def demo_settings() -> tuple[dict[str, Any], dict[str, Any]]:
    """The zero-flag demo's space options and ``train`` evaluator options."""
    quick = SegHierarchicalSpace.quick_settings["darts"]
    train = next(e for e in quick["evaluators"] if e["name"] == "train")
    return dict(quick["space"]), {k: v for k, v in train.items() if k != "name"}


def measure(space_opts: dict[str, Any], arch: dict[str, Any], width: int, mode: str, batch: int,
            lr: float, min_time: float) -> dict[str, Any]:
    """Median seconds of ``optimizer.step()`` and of a whole training step at ``width``."""
    space = registry.create("space", "seg-hierarchical", {**space_opts, "retrain_filter_multiplier": width})
    torch.manual_seed(0)
    net = space.build(arch, TASK).to(memory_format=torch.channels_last).train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, **MODES[mode])
    x = torch.randn(batch, 3, *TASK.input_size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, TASK.num_classes, (batch, *TASK.input_size))

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = net(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        if out.shape[-2:] != y.shape[-2:]:
            out = F.interpolate(out, size=y.shape[-2:], mode="bilinear", align_corners=False)
        F.cross_entropy(out, y).backward()
        optimizer.step()

    for _ in range(2):  # optimizer state and allocator warm-up
        train_step()
    # the process's thread count: torch.utils.benchmark.Timer runs on 1 thread unless told
    threads = torch.get_num_threads()
    step = benchmark.Timer("optimizer.step()", globals={"optimizer": optimizer},
                           num_threads=threads).blocked_autorange(min_run_time=min_time)
    whole = benchmark.Timer("train_step()", globals={"train_step": train_step},
                            num_threads=threads).blocked_autorange(min_run_time=min_time)
    return {"width": width, "mode": mode, "tensors": len(params), "params": sum(p.numel() for p in params),
            "optimizer_step_ms": step.median * 1e3, "train_step_ms": whole.median * 1e3}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="4,8", help="comma list of retrain filter multipliers (even)")
    parser.add_argument("--modes", default="loop,foreach,fused", help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--batch", type=int, default=None, help="default: the demo's train batch size")
    parser.add_argument("--search-run", default=None, help="a finished seg-hierarchical run: time its best trial")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds each timing runs at least")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    try:
        args.widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--widths {args.widths!r}: expected even integers like 4,8")
    if not args.widths or any(w < 2 or w % 2 for w in args.widths):
        parser.error(f"--widths: expected even integers >= 2, got {args.widths}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        parser.error(f"--modes: unknown {unknown}; accepted: {', '.join(MODES)}")
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not args.min_time > 0:
        parser.error(f"--min-time must be > 0 seconds, got {args.min_time}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    space_opts, train = demo_settings()
    batch = args.batch or int(train["batch_size"])
    if args.search_run:
        label, arch = search_best(args.search_run, "seg-hierarchical")
    else:
        label, arch = "sampled (seed 0)", SegHierarchicalSpace(**space_opts).sample(np.random.default_rng(0))
    chosen = TrainEvaluator(optimizer=train["optimizer"])._make_optimizer(torch.nn.Linear(2, 2)).defaults
    evaluator_mode = "fused" if chosen.get("fused") else "foreach" if chosen.get("foreach") else "loop"
    print(f"one training step of the seg-hierarchical demo's retrain network ({label}), batch {batch}, "
          f"{args.threads} thread(s), AdamW; the train evaluator uses: {evaluator_mode}", flush=True)
    print(f"{'F':>3} {'mode':>8} {'tensors':>8} {'params':>8} {'opt step ms':>12} {'train step ms':>14}")
    rows = []
    for width in args.widths:
        for mode in args.modes:
            r = measure(space_opts, arch, width, mode, batch, float(train["lr"]), args.min_time)
            rows.append(r)
            print(f"{width:>3} {mode:>8} {r['tensors']:>8} {r['params']:>8} {r['optimizer_step_ms']:>12.2f} "
                  f"{r['train_step_ms']:>14.1f}", flush=True)
    if args.json_out:
        out = {"network": label, "arch": arch, "batch": batch, "evaluator_mode": evaluator_mode, "rows": rows,
               "machine": machine("cpu")}
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
