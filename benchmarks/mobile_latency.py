"""Latency-constrained search of the ``mobile`` space: the front and the best feasible accuracy.

    python -m benchmarks.mobile_latency [--controller nsga2] [--budget 40] [--epochs 10]
        [--fraction 0.5] [--min-run-time 0.2] [--threads 1] [--dataset digits] [--json OUT]

1. Trains and times the ``mobilenetv2-like`` preset exactly as the search evaluates a trial
   (``train`` + the measured ``latency`` evaluator on the run's task); T = ``--fraction`` x its
   median latency.
2. Searches with objectives ``val_acc:max`` and ``latency_ms:min`` under ``latency_ms<=T``
   (``--controller`` must be multi-objective: nsga2, evolution, random ...).
3. Prints the feasible Pareto front and the best feasible accuracy next to the preset's; with
   ``--json`` writes them (and the machine) as JSON.
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
from automl.pareto import best
from automl.run import Run, RunSetupError
from automl.types import Objective
from benchmarks.retrain import bench_of, machine, measure

PRESET = "mobilenetv2-like"


def evaluators(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    length = {"steps": args.steps} if args.steps else {"epochs": args.epochs}
    return [("train", {**length, "save_weights": False}),
            ("latency", {"min_run_time": args.min_run_time, "threads": args.threads})]


def config(args: argparse.Namespace, run_dir: Path, bound: float | None) -> RunConfig:
    return RunConfig(space=Component("mobile"), controller=Component(args.controller),
                     evaluators=[Component(n, o) for n, o in evaluators(args)],
                     objectives=["val_acc:max", "latency_ms:min"],
                     constraints=[f"latency_ms<={bound:.4f}"] if bound is not None else [],
                     dataset=args.dataset, budget=args.budget, seed=args.seed, run_dir=str(run_dir))


def row(rec: Any, describe: Any) -> dict[str, Any]:
    return {"trial": rec.number, "val_acc": rec.metrics["val_acc"], "latency_ms": rec.metrics["latency_ms"],
            "arch": describe(rec.arch)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--controller", default="nsga2")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10, help="train.epochs of every trial and of the preset")
    parser.add_argument("--steps", type=int, default=None, help="train.steps instead of epochs (smoke runs)")
    parser.add_argument("--fraction", type=float, default=0.5, help="T = fraction x the preset's latency")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="latency.min_run_time (s)")
    parser.add_argument("--threads", type=int, default=1, help="latency.threads and torch threads")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="keep the search here (default: a temporary folder)")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="mobile-latency-") as tmp:
        folder = Path(args.run_dir or tmp)
        try:
            probe = Run(config(args, folder / "probe", None), tensorboard=False, progress=False)
            space = probe.space
            ref = measure(bench_of(probe, *evaluators(args)), space.preset(PRESET), args.seed)
            probe.close()
            bound = args.fraction * ref["latency_ms"]
            print(f"{PRESET}: val_acc {ref['val_acc']:.4f}, latency {ref['latency_ms']:.3f} ms -> "
                  f"constraint latency_ms<={bound:.3f}", flush=True)
            t = time.perf_counter()
            run = Run(config(args, folder / "search", bound), tensorboard=False, progress=False)
            summary = run.execute()
            run.close()
        except (RunSetupError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    seconds = time.perf_counter() - t
    top = best(summary.records, Objective("val_acc", "max"))
    front = [row(r, space.describe) for r in summary.front]
    print(f"\n{args.controller}, budget {args.budget}, {seconds:.0f} s: {len(front)} on the feasible front")
    print(f"{'trial':>5} {'val_acc':>8} {'lat ms':>8}  arch")
    for r in front:
        print(f"{r['trial']:>5} {r['val_acc']:8.4f} {r['latency_ms']:8.3f}  {r['arch']}")
    feasible = sum(r.feasible for r in summary.records)
    print(f"feasible {feasible}/{len(summary.records)}; best feasible val_acc "
          + (f"{top.metrics['val_acc']:.4f} at {top.metrics['latency_ms']:.3f} ms" if top else "none")
          + f" (preset {ref['val_acc']:.4f} at {ref['latency_ms']:.3f} ms)")
    if args.json_out:
        out = {"preset": {"name": PRESET, "val_acc": ref["val_acc"], "latency_ms": ref["latency_ms"]},
               "constraint": f"latency_ms<={bound:.4f}", "controller": args.controller, "budget": args.budget,
               "epochs": args.epochs, "steps": args.steps, "dataset": args.dataset, "seconds": seconds,
               "feasible": feasible, "trials": len(summary.records), "front": front,
               "best_feasible": row(top, space.describe) if top else None, "machine": machine("cpu")}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
