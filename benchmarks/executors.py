"""Executors side by side: trials per minute of CPU-bound training trials, and the per-trial
overhead of the Ray Tune executor on table look-ups.

    python -m benchmarks.executors --train-trials 12 --table-trials 100 --json executors.json

1. ``train`` trials on ``digits`` (an NB201 network, ``--channels`` wide, ``--epochs`` epochs):
   the local executor with 1 and with 2 torch threads, and the Ray executor with 2 workers x
   1 thread (``--trial-cpus 1``); trials per minute and the speed-up of Ray over each local run.
2. ``nb201-table`` trials (no network): milliseconds per trial under both executors, in the
   steady state (the difference between a run of ``--table-trials`` and one of 20 trials, so
   the workers' start-up, reported on its own, is left out); the difference is the Ray
   executor's overhead per trial.

Every run goes through :class:`automl.run.Run` with a SQLite store in a temporary folder, as
``automl search`` does. Ray is started once before the timed runs (its start-up is reported on
its own). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402

from automl.config import Component, RunConfig  # noqa: E402
from automl.run import Run  # noqa: E402


def timed_run(cfg: RunConfig, warm: int = 0) -> tuple[int, float] | tuple[int, float, float]:
    """(trials, seconds) of one search; with ``warm`` also the steady-state trials per minute:
    the trials after the first ``warm`` completions over the time from that completion to the last."""
    run = Run(cfg, tensorboard=False)
    t0 = time.perf_counter()
    summary = run.execute()
    seconds = time.perf_counter() - t0
    bad = [r for r in summary.records if r.state != "complete"]
    if bad:
        raise SystemExit(f"benchmark trial failed: {bad[0].error}")
    if not warm:
        run.close()
        return len(summary.records), seconds
    done = sorted(t.datetime_complete for t in run.store.study.trials if t.datetime_complete is not None)
    run.close()
    steady = 60.0 * (len(done) - warm) / (done[-1] - done[warm - 1]).total_seconds()
    return len(summary.records), seconds, steady


def train_config(folder: str, name: str, trials: int, channels: int, epochs: int, **executor: Any) -> RunConfig:
    return RunConfig(
        space=Component("nb201", {"channels": channels, "cells_per_stage": 2}), controller=Component("random"),
        evaluators=[Component("train", {"epochs": epochs, "batch_size": 64})], objectives=["val_acc:max"],
        dataset="digits", budget=trials, seed=0, run_dir=str(Path(folder) / name), **executor)


def table_config(folder: str, name: str, trials: int, **executor: Any) -> RunConfig:
    return RunConfig(space=Component("nb201"), controller=Component("random"), budget=trials, seed=0,
                     run_dir=str(Path(folder) / name), **executor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-trials", type=int, default=32)
    parser.add_argument("--table-trials", type=int, default=120)
    parser.add_argument("--channels", type=int, default=16, help="NB201 network width of the train trials")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per train trial")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: 4 trials at --trial-gpus 0.25 on one GPU "
                        "vs one trial at a time")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)

    from automl.executors.base import ExecutorOptions
    from automl.executors.ray_tune import RayTuneExecutor

    ray_exec: dict[str, Any] = dict(executor="ray", workers=2, trial_cpus=1.0)
    runs: list[tuple[str, int, dict[str, Any]]] = [("local, 1 thread", 1, {}), ("local, 2 threads", 2, {}),
                                                   ("ray, 2 workers x 1 thread", 1, ray_exec)]
    if args.device.startswith("cuda"):
        gpu_exec = dict(executor="ray", workers=4, trial_cpus=1.0, trial_gpus=0.25, device="cuda")
        runs = [("local, 1 trial at a time", 1, {"device": "cuda"}), ("ray, 4 trials x 0.25 GPU", 1, gpu_exec)]
    out: dict[str, Any] = {"cpus": os.cpu_count(), "torch": torch.__version__, "device": args.device}
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        cluster = RayTuneExecutor(ExecutorOptions(executor="ray", workers=2))
        cluster.start()
        out["ray_start_s"] = time.perf_counter() - t0
        try:
            rows = []
            for label, threads, executor in runs:
                torch.set_num_threads(threads)
                n, s, steady = timed_run(train_config(folder, label.replace(" ", "").replace(",", "-"),  # type: ignore[misc]
                                                      args.train_trials, args.channels, args.epochs, **executor),
                                         warm=int(executor.get("workers", 1)))  # each worker's first trial warms up
                rows.append({"executor": label, "trials": n, "seconds": s, "trials_per_min": 60.0 * n / s,
                             "steady_trials_per_min": steady})
            out["train"] = rows
            for ref in rows[:-1]:  # the Ray row against each local one
                for kind in ("trials_per_min", "steady_trials_per_min"):
                    ref.setdefault("ray_speedup", {})[kind] = rows[-1][kind] / ref[kind]

            torch.set_num_threads(2)
            table = {}
            for label, executor in (("local", {}), ("ray", ray_exec)):
                n0, s0 = timed_run(table_config(folder, f"table-{label}-short", 20, **executor))
                n, s = timed_run(table_config(folder, f"table-{label}", args.table_trials, **executor))
                table[label] = {"trials": n, "seconds": s, "first_20_seconds": s0,
                                "ms_per_trial": 1000.0 * (s - s0) / (n - n0)}
            out["table"] = table
            out["ray_overhead_ms_per_trial"] = table["ray"]["ms_per_trial"] - table["local"]["ms_per_trial"]
        finally:
            cluster.close()

    print(f"train trials on digits (NB201 C={args.channels}, {args.epochs} epochs), {args.train_trials} each:")
    print(f"  {'executor':<28} {'trials/min':>10} {'steady':>7} {'seconds':>8}")
    for row in out["train"]:
        print(f"  {row['executor']:<28} {row['trials_per_min']:>10.1f} {row['steady_trials_per_min']:>7.1f} "
              f"{row['seconds']:>8.1f}")
    for ref in out["train"][:-1]:
        up = ref["ray_speedup"]
        print(f"  speed-up of ray vs {ref['executor']}: {up['trials_per_min']:.2f}x whole run, "
              f"{up['steady_trials_per_min']:.2f}x steady state (after each worker's first trial)")
    t = out["table"]
    print(f"table trials ({args.table_trials}, steady state): local {t['local']['ms_per_trial']:.1f} ms/trial, "
          f"ray {t['ray']['ms_per_trial']:.1f} ms/trial; overhead {out['ray_overhead_ms_per_trial']:.1f} ms/trial")
    print(f"start-up: ray {out['ray_start_s']:.1f} s once; the first 20 table trials took "
          f"{t['ray']['first_20_seconds']:.1f} s under ray (worker start) vs {t['local']['first_20_seconds']:.1f} s local")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
