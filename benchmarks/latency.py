"""How well the latency look-up table predicts measured latency.

    python -m benchmarks.latency [--space nb201] [--archs 50] [--device cpu] [--threads 1] [--json OUT]

Builds the LUT of the space on the device (``evaluators.latency_lut.build_lut``), then measures
``--archs`` random architectures end to end (same timer: median of
``torch.utils.benchmark.Timer.blocked_autorange``, eval mode, inference mode) and compares:
Spearman rank correlation and mean absolute percentage error (MAPE) of the LUT sum.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from automl import registry
from evaluators.latency_lut import build_lut, median_ms, predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    space = registry.create("space", args.space)
    task = space.default_task
    t0 = time.perf_counter()
    lut = build_lut(space, task, device=args.device, batch_size=args.batch_size, threads=args.threads,
                    min_run_time=args.min_run_time)
    lut_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    dev = torch.device(args.device)
    measured, predicted = [], []
    print(f"{args.space}: LUT of {len(lut['entries'])} entries in {lut_seconds:.1f} s on {args.device} "
          f"({args.threads} thread(s), batch {args.batch_size}); measuring {args.archs} random archs")
    print(f"{'#':>3} {'measured ms':>12} {'LUT ms':>9} {'err %':>7}  architecture")
    for i in range(args.archs):
        arch = space.sample(rng)
        net = space.build(arch, task).to(dev).eval()
        x = torch.randn(args.batch_size, task.in_channels, *task.input_size, device=dev)
        with torch.inference_mode():
            m = median_ms(lambda: net(x), args.threads, args.min_run_time, dev)
        p = predict(space, arch, task, lut["entries"])
        measured.append(m)
        predicted.append(p)
        print(f"{i:>3} {m:>12.3f} {p:>9.3f} {100 * (p - m) / m:>7.1f}  {space.describe(arch)}", flush=True)
    meas, pred = np.array(measured), np.array(predicted)
    rho = float(spearmanr(meas, pred).statistic)
    mape = float(np.mean(np.abs(pred - meas) / meas) * 100)
    bias = float(np.mean((pred - meas) / meas) * 100)
    print(f"Spearman {rho:.4f}   MAPE {mape:.2f} %   mean signed error {bias:+.2f} %   "
          f"(measured {meas.min():.2f}-{meas.max():.2f} ms)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "space": args.space, "device": args.device, "threads": args.threads, "batch_size": args.batch_size,
            "archs": args.archs, "spearman": rho, "mape_percent": mape, "mean_signed_error_percent": bias,
            "lut_entries": len(lut["entries"]), "lut_seconds": lut_seconds,
            "measured_ms": measured, "predicted_ms": predicted}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
