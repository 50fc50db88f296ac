"""Per-block cost on the CPU: params, FLOPs and latency at 64 channels, 32x32, batch 8.

    python -m benchmarks.blocks [--json blocks.json] [--kind conv] [--threads 2]

FLOPs come from ``torch.utils.flop_counter`` (2 per multiply-add, so ``madds = flops / 2``);
latency is the median of ``torch.utils.benchmark.Timer.blocked_autorange`` in eval mode under
``torch.no_grad`` (IQR kept). Video blocks run on 8 frames. This table seeds the latency
look-up tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from search_spaces.blocks import KINDS, all_blocks

CHANNELS, SIZE, BATCH, FRAMES = 64, 32, 8, 8


def measure(spec, min_run_time: float) -> dict[str, float]:
    torch.manual_seed(0)
    block = spec.create(CHANNELS, CHANNELS).eval()
    inputs = spec.example_inputs(CHANNELS, batch=BATCH, height=SIZE, width=SIZE, frames=FRAMES)
    params = sum(p.numel() for p in block.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(*inputs)
    timer = benchmark.Timer(stmt="with torch.no_grad(): block(*inputs)", globals={"block": block, "inputs": inputs, "torch": torch},
                            num_threads=torch.get_num_threads())  # the Timer runs on 1 thread unless told
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {
        "params": params,
        "flops_M": counter.get_total_flops() / 1e6,
        "madds_M": counter.get_total_flops() / 2e6,
        "latency_ms": m.median * 1e3,
        "latency_iqr_ms": m.iqr * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--kind", default=None, choices=KINDS)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds of timing per block")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, dict[str, float]] = {}
    print(f"blocks at {CHANNELS}->{CHANNELS} channels, {SIZE}x{SIZE}, batch {BATCH} (video: {FRAMES} frames), "
          f"{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'block':<26} {'kind':<10} {'params':>10} {'MFLOPs':>10} {'ms':>9} {'IQR ms':>8}")
    for spec in all_blocks():
        if args.kind and spec.kind != args.kind:
            continue
        try:
            r = measure(spec, args.min_run_time)
        except Exception as exc:  # report and continue: one broken block must not hide the others
            print(f"{spec.name:<26} error: {exc}", file=sys.stderr)
            continue
        results[spec.name] = {"kind": spec.kind, **r}
        print(f"{spec.name:<26} {spec.kind:<10} {r['params']:>10,} {r['flops_M']:>10.1f} {r['latency_ms']:>9.3f} "
              f"{r['latency_iqr_ms']:>8.3f}", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"config": {"channels": CHANNELS, "size": SIZE, "batch": BATCH,
                                                              "frames": FRAMES, "threads": args.threads,
                                                              "torch": torch.__version__},
                                                   "blocks": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
