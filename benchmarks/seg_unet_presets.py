"""The seg-unet presets trained the same way: mIoU and CPU latency on ``shapes`` (issue 15).

    python -m benchmarks.seg_unet_presets [--presets unet,pan,...] [--epochs 12] [--seeds 2] \
        [--dataset shapes] [--threads 2] [--search-run RUN] [--json benchmarks/results/seg_unet_presets_cpu.json]

Every preset of ``seg-unet`` is trained from scratch by the ``train`` evaluator with the
settings ``seg-hierarchical``'s quick darts search uses for its ``seg-unet:unet`` reference
(AdamW, batch 16, ``--epochs`` 12; deep-supervision presets add 0.4 x each auxiliary loss), for
seeds ``0..--seeds-1`` (initial weights and batch order; one dataset and split), then measured
once by ``cost`` (parameters, FLOPs) and ``latency`` (batch 1, ``min_run_time`` 0.5 s). With
``--search-run`` (a finished ``automl search --space seg-unet`` run) that run's best trial is
retrained and measured the same way beside the presets. Prints a table (val_miou mean +- std,
latency, parameters) and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from automl.config import Component, RunConfig
from automl.run import Run, RunSetupError
from benchmarks.retrain import bench_of, machine, mean_std, measure, search_best

SPACE = "seg-unet"
METRIC = "val_miou"


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reference network's training in the quick seg-hierarchical search, without saving weights."""
    return {"epochs": args.epochs, "batch_size": 16, "optimizer": "adamw", "save_weights": False}


def run_of(args: argparse.Namespace, folder: Path) -> Run:
    """A run that is never executed: it resolves the task, loads the dataset and fixes the device."""
    cfg = RunConfig(space=Component(SPACE), controller=Component("random"), evaluators=[Component("cost")],
                    objectives=["params_M:min"], dataset=args.dataset, budget=1, seed=0, device=args.device,
                    run_dir=str(folder / "run"))
    return Run(cfg, tensorboard=False, progress=False)


def one_arch(run: Run, name: str, arch: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    costs = bench_of(run, ("cost", {}), ("latency", {"min_run_time": 0.5}))
    trainer = bench_of(run, ("train", train_options(args)))
    t = time.perf_counter()
    values = [measure(trainer, arch, seed)[METRIC] for seed in range(args.seeds)]
    mean, std = mean_std(values)
    row = {"arch": arch, "describe": run.space.describe(arch), **measure(costs, arch, 0), METRIC: values,
           "mean": mean, "std": std, "train_seconds": (time.perf_counter() - t) / args.seeds}
    print(f"  {name:<30} {METRIC} {mean:.4f} +- {std:.4f}  latency {row['latency_ms']:.2f} ms  "
          f"{row['params_M']:.3f} M params", flush=True)
    return row


def report(results: dict[str, Any]) -> None:
    print(f"\nseg-unet presets on {results['dataset']}: train {results['train']}, seeds {results['seeds']}")
    print(f"{'network':<30} {METRIC + ' mean +- std':>22} {'lat ms':>8} {'M params':>9} {'MFLOPs':>8} {'train s':>8}")
    for name, r in results["presets"].items():
        print(f"{name:<30} {r['mean']:>13.4f} +- {r['std']:.4f} {r['latency_ms']:>8.2f} {r['params_M']:>9.3f} "
              f"{r['flops_M']:>8.1f} {r['train_seconds']:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="", help="comma-separated presets (default: all)")
    parser.add_argument("--epochs", type=int, default=12, help="train.epochs of every preset")
    parser.add_argument("--seeds", type=int, default=2, help="train each preset with seeds 0..N-1")
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--search-run", default=None, help="a finished `automl search --space seg-unet` run directory")
    parser.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1:
        print(f"error: need --seeds >= 1 and --epochs >= 1 (got {args.seeds}, {args.epochs})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="seg-unet-presets-") as folder:
        try:
            run = run_of(args, Path(folder))
        except RunSetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        known = list(run.space.presets())
        names = [n for n in args.presets.split(",") if n] or known
        unknown = [n for n in names if n not in known]
        if unknown:
            print(f"error: unknown preset(s) {unknown}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        results: dict[str, Any] = {"dataset": run.config.dataset, "train": train_options(args),
                                   "seeds": list(range(args.seeds)), "machine": machine(args.device), "presets": {}}
        archs = {name: run.space.preset(name) for name in names}
        if args.search_run:
            label, arch = search_best(args.search_run, SPACE)
            archs[label] = arch
            results["search_run"] = args.search_run
        for name, arch in archs.items():
            results["presets"][name] = one_arch(run, name, arch, args)
        run.close()
    report(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
