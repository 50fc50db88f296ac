"""Throughput and memory of one search epoch of the ``darts`` controller (the GPU check).

    python -m benchmarks.search_epoch [--which darts|autodeeplab|demo] [--device cuda|cpu]
        [--batch 64] [--samples 50000] [--precision bf16,fp32] [--order 1]
        [--max-steps N] [--max-seconds S] [--warmup 5] [--threads 2] [--json out.json]

One epoch is what ``DartsController`` runs per epoch: the training data split 50/50 (A trains
the weights, B the architecture), ⌈|A| / batch⌉ steps of *architecture step on a B batch, then
weight step on an A batch*, batches drawn by the controller's cycling streams and placed on the
device by its :func:`~controllers.oneshot.batches.place` / ``gather`` (CIFAR-sized data is copied to
the GPU once). The data is synthetic and stored as a dataset stores it, ``uint8`` images and
targets, each batch normalised on the device (``--samples`` images of 3×32×32 for ``darts``, 10
classes, like CIFAR-10's 50,000 training images: 25,000 a side, 391 steps at batch 64).

``--precision bf16`` is the trainer's mixed precision (bf16 autocast + channels-last weights and
inputs; the default on CUDA, forced on other devices); ``fp32`` switches it off. Each precision
runs in a fresh process: ``--warmup`` steps (cuDNN autotuning, allocator growth) are not timed,
then the epoch's remaining steps are, up to ``--max-steps`` / ``--max-seconds`` (a partial
epoch is reported as such, with the epoch time projected from the mean step).

Reported: training images/s (the A images the weights learn from; every step also reads a B
batch of the same size for α, so the search reads twice as many), step time (median, mean),
epoch time, peak memory — on CUDA ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``,
elsewhere the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRECISIONS = ("bf16", "fp32")
# (space, space options, supernet options, task kind, classes, image size, trainer options)
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, Any], str, int, int, dict[str, Any]]] = {
    "darts": ("darts", {}, {"C": 16, "layers": 8}, "classification", 10, 32, {}),
    "autodeeplab": ("seg-hierarchical", {"layers": 12, "filter_multiplier": 8, "blocks": 5}, {},
                    "segmentation", 19, 64, {"arch_lr": 3e-3, "grad_clip": 0.0}),
    # the zero-flag seg-hierarchical demo's supernet: filled from the space's quick settings (config)
    "demo": ("seg-hierarchical", {}, {}, "segmentation", 5, 32, {}),
}
DEMO_TRAINER_KEYS = ("w_lr", "arch_lr", "arch_weight_decay")  # the quick settings' keys a search step reads


def config(which: str) -> tuple[str, dict[str, Any], dict[str, Any], str, int, int, dict[str, Any]]:
    """``CONFIGS[which]``; ``demo`` gets the space and trainer options of ``seg-hierarchical``'s
    darts quick settings (read, not copied, so the benchmark follows them; 5 classes of 32x32
    ``shapes``)."""
    if which != "demo":
        return CONFIGS[which]
    from search_spaces.seg_hierarchical import SegHierarchicalSpace

    quick = SegHierarchicalSpace.quick_settings["darts"]
    trainer = {k: v for k, v in quick["controller"].items() if k in DEMO_TRAINER_KEYS}
    space, _, net, kind, classes, size, _ = CONFIGS["demo"]
    return space, dict(quick["space"]), net, kind, classes, size, trainer


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def child(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    """Build the supernet and trainer, run the (partial) epoch, measure."""
    import resource

    import torch

    from automl import registry
    from controllers.oneshot.batches import CyclingBatches, gather, place, split_indices
    from controllers.oneshot.darts_options import DartsOptions
    from controllers.oneshot.bilevel import BilevelTrainer
    from automl.types import Task

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    space_name, space_opts, net_opts, kind, classes, size, trainer_opts = config(args.which)
    space = registry.create("space", space_name, space_opts)
    net = space.supernet(Task(kind, 3, (size, size), classes), sampling="softmax", **net_opts)
    options = DartsOptions(order=args.order, batch_size=args.batch, **trainer_opts)
    trainer = BilevelTrainer(net, options, device=device, ignore_index=255, mixed_precision=precision == "bf16")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.samples, 3, size, size), generator=g, dtype=torch.uint8)
    tshape = (args.samples,) if kind == "classification" else (args.samples, size, size)
    targets = torch.randint(0, classes, tshape, generator=g, dtype=torch.uint8)
    stats = ((0.5,) * 3, (0.29,) * 3)  # uniform pixels: mean 1/2, std ~0.29
    a_idx, b_idx = split_indices(args.samples, 0)
    streams = {"A": CyclingBatches(a_idx, args.batch, 1), "B": CyclingBatches(b_idx, args.batch, 2)}
    images, targets = place(images, targets, trainer.device)

    def batch(s: str) -> Any:
        return gather(images, targets, next(streams[s]), trainer.device, trainer.channels_last, stats)

    steps = math.ceil(len(a_idx) / streams["A"].batch_size)
    trainer.set_epoch(0)
    trainer.net.train()

    def step() -> None:  # as DartsController._epoch after the warm-up epochs
        trainer.search_step(batch("A"), batch("B"))

    for _ in range(min(args.warmup, steps)):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    start = time.perf_counter()
    todo = steps - min(args.warmup, steps)
    if args.max_steps:
        todo = min(todo, args.max_steps)
    for _ in range(todo):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if args.max_seconds and time.perf_counter() - start >= args.max_seconds:
            break
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {
        "precision": precision, "device": str(device), "steps_per_epoch": steps, "timed_steps": len(times),
        "warmup_steps": min(args.warmup, steps), "full_epoch": len(times) + min(args.warmup, steps) == steps,
        "median_step_s": statistics.median(times) if times else None,
        "mean_step_s": elapsed / len(times) if times else None,
        "train_images_per_s": len(times) * streams["A"].batch_size / elapsed if times else None,
        "epoch_s_projected": steps * elapsed / len(times) if times else None,
        "weights": sum(p.numel() for p in trainer.weights), "arch": sum(p.numel() for p in trainer.arch),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["max_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    return out


def run_child(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.search_epoch", "--child", precision, *args.passthrough]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"precision": precision, "error": f"timed out after {args.timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"precision": precision, "error": f"child failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1][len("RESULT "):])


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['precision']:<6} n/a: {r['error']}"
    mem = (f"{r['max_allocated_mib']:>9.0f} MiB alloc {r['max_reserved_mib']:>7.0f} MiB reserved"
           if "max_allocated_mib" in r else f"{r['rss_mb']:>9.0f} MiB peak RSS")
    partial = "" if r["full_epoch"] else f" (projected from {r['timed_steps']} of {r['steps_per_epoch']} steps)"
    return (f"{r['precision']:<6} {r['train_images_per_s']:>10.1f} img/s  step {r['median_step_s'] * 1e3:>8.1f} ms median"
            f"  epoch {r['epoch_s_projected']:>8.1f} s{partial}  {mem}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--which", choices=tuple(CONFIGS), default="darts")
    parser.add_argument("--device", default=None, help="cuda when available, else cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=50_000, help="synthetic training images (split 50/50)")
    parser.add_argument("--precision", default="bf16,fp32", help="comma list of bf16, fp32")
    parser.add_argument("--order", type=int, choices=(1, 2), default=1)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--max-steps", type=int, default=0, help="time at most this many steps (0: the epoch)")
    parser.add_argument("--max-seconds", type=float, default=0.0, help="stop timing after this long (0: no limit)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per precision")
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        parser.error(f"--precision: unknown {bad or precisions}; accepted: {', '.join(PRECISIONS)}")
    if args.batch < 2 or args.samples < 2 * args.batch:
        parser.error(f"--batch must be >= 2 and --samples >= 2 x batch, got batch {args.batch}, samples {args.samples}")
    args.precisions = precisions
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.passthrough = [f"--which={args.which}", f"--device={args.device}", f"--batch={args.batch}",
                        f"--samples={args.samples}", f"--order={args.order}", f"--warmup={args.warmup}",
                        f"--max-steps={args.max_steps}", f"--max-seconds={args.max_seconds}", f"--threads={args.threads}"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args, args.child)))
        return 0
    import torch

    print(f"one {args.which} search epoch: {args.samples} synthetic images, batch {args.batch}, order {args.order}, "
          f"device {args.device}, torch {torch.__version__}; each precision in a fresh process after {args.warmup} "
          f"untimed steps")
    results = []
    for precision in args.precisions:
        results.append(run_child(args, precision))
        print(_row(results[-1]), flush=True)
    ok = {r["precision"]: r for r in results if "error" not in r}
    if "bf16" in ok and "fp32" in ok:
        print(f"bf16 / fp32 throughput: {ok['bf16']['train_images_per_s'] / ok['fp32']['train_images_per_s']:.2f}x")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"config": {k: v for k, v in vars(args).items() if k not in ("passthrough", "child")},
                       "torch": torch.__version__, "results": results}, fh, indent=2)
        print(f"wrote {args.json_out}")
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
