"""On ``moving-shapes``: accuracy of ``i3d-like`` vs ``slowfast-like`` vs the best of a search (issue 15).

    automl search --space video --controller random --budget 12 --seed 0 --run-dir runs/video12
    python -m benchmarks.video_presets [--search-run runs/video12] [--epochs 8] [--seeds 2] \
        [--batch-size 32] [--lr 0.003] [--json OUT.json]

Each network (the two presets, and with ``--search-run`` that run's best trial by its first
objective) is retrained from scratch by the ``train`` evaluator (AdamW, cosine, the same epochs,
batch and seeds ``0..--seeds-1`` for all; one dataset and split) and measured once by ``cost``
and ``latency``. Prints a table (val_acc mean +- std, chance, FLOPs, parameters, latency, train
seconds) and writes JSON (default ``benchmarks/results/video_presets_cpu.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from automl.config import RunConfig
from automl.run import Run
from benchmarks.retrain import bench_of, machine, mean_std, measure, search_best

RESULTS = Path(__file__).parent / "results" / "video_presets_cpu.json"


def candidates(run: Run, search_run: str | None) -> dict[str, dict[str, Any]]:
    """The two presets, and the best trial of ``search_run`` (a finished ``--space video`` run)."""
    out = {name: run.space.preset(name) for name in ("i3d-like", "slowfast-like")}
    if search_run:
        label, arch = search_best(search_run, "video")
        out[label] = arch
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-run", default=None, help="a finished `automl search --space video` run directory")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--dataset", default="moving-shapes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", dest="json_out", default=str(RESULTS), help="write results as JSON here")
    args = parser.parse_args(argv)
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "adamw", "lr": args.lr,
             "save_weights": False}
    with tempfile.TemporaryDirectory(prefix="video-presets-") as folder:
        cfg = RunConfig()
        for key, value in (("space", "video"), ("dataset", args.dataset), ("device", args.device),
                           ("run_dir", str(Path(folder) / "run"))):
            cfg.set(key, value)
        run = Run(cfg, tensorboard=False, progress=False)
        costs = bench_of(run, ("cost", {}), ("latency", {"min_run_time": 0.5}))
        trainer = bench_of(run, ("train", train))
        rows: dict[str, Any] = {}
        for name, arch in candidates(run, args.search_run).items():
            started = time.perf_counter()
            runs = [measure(trainer, arch, seed) for seed in range(args.seeds)]
            accs = [r["val_acc"] for r in runs]
            rows[name] = {"arch": arch, "describe": run.space.describe(arch), "val_acc": accs,
                          "mean": mean_std(accs)[0], "std": mean_std(accs)[1],
                          "train_seconds": sum(r["train_seconds"] for r in runs) / len(runs),
                          **measure(costs, arch, 0)}
            print(f"{name}: val_acc {rows[name]['mean']:.3f} +- {rows[name]['std']:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        run.close()
    chance = 1 / run.task.num_classes
    print(f"\n{args.dataset} ({run.task.num_classes} classes, chance {chance:.3f}), {args.epochs} epochs, "
          f"batch {args.batch_size}, seeds 0..{args.seeds - 1}")
    print(f"{'network':<34} {'val_acc':>15} {'MFLOPs':>8} {'params':>8} {'lat ms':>7} {'train s':>8}  arch")
    for name, r in rows.items():
        print(f"{name:<34} {r['mean']:.3f} +- {r['std']:.3f} {r['flops_M']:8.1f} {r['params']:8.0f} "
              f"{r['latency_ms']:7.2f} {r['train_seconds']:8.1f}  {r['describe']}")
    results = {"dataset": args.dataset, "chance": chance, "train": train, "seeds": args.seeds, "rows": rows,
               "search_run": args.search_run, "machine": machine(args.device)}
    Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
