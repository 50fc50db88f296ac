"""Latency-constrained search of the ``mobile`` space: the front and the best feasible accuracy.

    python -m benchmarks.mobile_latency [--controller evolution] [--option initial=mobilenetv2-like,...]
        [--budget 40] [--epochs 10] [--fraction 0.5] [--min-run-time 0.2] [--threads 1] [--dataset digits]
        [--json OUT]

1. Trains and times the ``mobilenetv2-like`` preset exactly as the search evaluates a trial
   (``train`` on the run's data + the measured ``latency`` evaluator at ``--latency-size``, by
   default MobileNet's deployment resolution 224x224: at the 8x8 of ``digits`` a forward pass is
   per-layer overhead, ~0.1 ms a layer on a CPU, and half the preset's latency lies at the floor of
   the space); T = ``--fraction`` x its median latency.
2. Searches with objectives ``val_acc:max`` and ``latency_ms:min`` under ``latency_ms<=T``
   (``--controller`` must be multi-objective: evolution, nsga2, random ...; ``--option K=V`` sets
   its options). Optuna's NSGA-II samples its whole first generation (50) at random, so at a
   budget of 40 it is random search; the default is evolution started from the two presets.
3. Prints the feasible Pareto front, the best feasible accuracy next to the preset's and the
   fastest trials; with ``--json`` writes them (and the machine) as JSON.
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
import yaml

from automl.config import Component, RunConfig
from automl.run import Run, RunSetupError
from benchmarks.retrain import bench_of, machine, measure

PRESET = "mobilenetv2-like"


def evaluators(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    length = {"steps": args.steps} if args.steps else {"epochs": args.epochs}
    return [("train", {**length, "save_weights": False}),
            ("latency", {"min_run_time": args.min_run_time, "threads": args.threads,
                         **({"input_size": args.latency_size} if args.latency_size else {})})]


def _size(text: str) -> list[int] | None:
    if text == "task":
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW or 'task', got {text!r}") from None
    return [h, w]


def controller_options(items: list[str]) -> dict[str, Any]:
    """``--option K=V`` (V read as YAML) as controller options."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def config(args: argparse.Namespace, run_dir: Path, bound: float | None) -> RunConfig:
    return RunConfig(space=Component("mobile"), controller=Component(args.controller, controller_options(args.option)),
                     evaluators=[Component(n, o) for n, o in evaluators(args)],
                     objectives=["val_acc:max", "latency_ms:min"],
                     constraints=[f"latency_ms<={bound:.4f}"] if bound is not None else [],
                     dataset=args.dataset, budget=args.budget, seed=args.seed, run_dir=str(run_dir))


def row(rec: Any, describe: Any) -> dict[str, Any]:
    return {"trial": rec.number, "val_acc": rec.metrics["val_acc"], "latency_ms": rec.metrics["latency_ms"],
            "arch": describe(rec.arch)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--controller", default="evolution")
    parser.add_argument("--option", action="append", default=[], metavar="K=V",
                        help="a controller option (repeatable; default initial=mobilenetv2-like,blazeface-backbone "
                             "for evolution / rl)")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10, help="train.epochs of every trial and of the preset")
    parser.add_argument("--steps", type=int, default=None, help="train.steps instead of epochs (smoke runs)")
    parser.add_argument("--fraction", type=float, default=0.5, help="T = fraction x the preset's latency")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="latency.min_run_time (s)")
    parser.add_argument("--threads", type=int, default=1, help="latency.threads and torch threads")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--latency-size", default="224x224", type=_size,
                        help="HxW of the latency input ('task': the run's input size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="keep the search here (default: a temporary folder)")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    if not args.option and args.controller in ("evolution", "rl"):
        args.option = [f"initial={PRESET},blazeface-backbone"]
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
            print(f"searching: {args.controller}, budget {args.budget} (a progress bar on a terminal)", flush=True)
            run = Run(config(args, folder / "search", bound), tensorboard=False, progress=sys.stderr.isatty())
            summary = run.execute()
            run.close()
        except (RunSetupError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    seconds = time.perf_counter() - t
    feasible_done = [r for r in summary.records if r.state == "complete" and r.feasible]
    top = max(feasible_done, key=lambda r: (r.metrics["val_acc"], -r.metrics["latency_ms"]), default=None)
    front = [row(r, space.describe) for r in summary.front]
    print(f"\n{args.controller}, budget {args.budget}, {seconds:.0f} s: {len(front)} on the feasible front")
    print(f"{'trial':>5} {'val_acc':>8} {'lat ms':>8}  arch")
    for r in front:
        print(f"{r['trial']:>5} {r['val_acc']:8.4f} {r['latency_ms']:8.3f}  {r['arch']}")
    done = [r for r in summary.records if r.state == "complete"]
    fastest = [row(r, space.describe) for r in sorted(done, key=lambda r: r.metrics["latency_ms"])[:5]]
    print("fastest trials:")
    for r in fastest:
        print(f"{r['trial']:>5} {r['val_acc']:8.4f} {r['latency_ms']:8.3f}  {r['arch']}")
    feasible = sum(r.feasible for r in summary.records)
    print(f"feasible {feasible}/{len(summary.records)}; best feasible val_acc "
          + (f"{top.metrics['val_acc']:.4f} at {top.metrics['latency_ms']:.3f} ms" if top else "none")
          + f" (preset {ref['val_acc']:.4f} at {ref['latency_ms']:.3f} ms)")
    if args.json_out:
        out = {"preset": {"name": PRESET, "val_acc": ref["val_acc"], "latency_ms": ref["latency_ms"]},
               "constraint": f"latency_ms<={bound:.4f}", "controller": args.controller,
               "controller_options": controller_options(args.option), "budget": args.budget,
               "epochs": args.epochs, "steps": args.steps, "dataset": args.dataset,
               "latency_size": args.latency_size or "task", "seconds": seconds,
               "feasible": feasible, "trials": len(summary.records), "front": front, "fastest": fastest,
               "best_feasible": row(top, space.describe) if top else None, "machine": machine("cpu")}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
