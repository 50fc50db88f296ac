"""A training step of the zero-flag ``seg-hierarchical`` demo's retrain network on 1 and on more
torch threads, alone and beside busy processes: why ``automl search`` fits its threads to the
idle cores (:mod:`automl.threads`).

    python -m benchmarks.busy_threads --search-run RUN_DIR --threads 1,2 --busy 0,1 --json OUT.json

For each ``--busy`` count, that many ``python -c "while True: pass"`` processes run while the
step (forward, cross-entropy, backward, AdamW as the ``train`` evaluator runs it, at the demo's
batch and width; :func:`benchmarks.train_step.measure`) is timed at each ``--threads`` count
(median of ``torch.utils.benchmark``), and :func:`automl.threads.idle_cpus` says what
``automl search`` would see at its start. Prints a table and writes JSON. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automl.threads import idle_cpus
from benchmarks.retrain import machine, search_best
from benchmarks.train_step import demo_settings, measure
from search_spaces.seg_hierarchical import SegHierarchicalSpace


def _counts(parser: argparse.ArgumentParser, text: str, name: str, minimum: int) -> list[int]:
    """The comma list ``text`` of integers >= ``minimum`` (``parser.error``, exit 2, otherwise)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < minimum for v in values):
        parser.error(f"{name} takes comma-separated integers >= {minimum}, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-run", default=None, help="a finished seg-hierarchical run: time its best trial")
    parser.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    parser.add_argument("--busy", default="0,1", help="comma list of busy processes beside the timing")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds each timing runs at least")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    threads, busy = _counts(parser, args.threads, "--threads", 1), _counts(parser, args.busy, "--busy", 0)
    if not args.min_time > 0:
        parser.error(f"--min-time must be > 0 seconds, got {args.min_time}")
    space_opts, train = demo_settings()
    if args.search_run:
        label, arch = search_best(args.search_run, "seg-hierarchical")
    else:
        label, arch = "sampled (seed 0)", SegHierarchicalSpace(**space_opts).sample(np.random.default_rng(0))
    width, batch = int(space_opts["retrain_filter_multiplier"]), int(train["batch_size"])
    print(f"one training step of the seg-hierarchical demo's retrain network ({label}), F={width}, batch {batch}",
          flush=True)
    print(f"{'busy':>4} {'idle CPUs':>10} {'threads':>8} {'train step ms':>14}")
    rows: list[dict[str, Any]] = []
    for hogs in busy:
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
        try:
            time.sleep(0.5 if hogs else 0.0)  # let them take their cores
            idle = idle_cpus()
            for n in threads:
                torch.set_num_threads(n)
                r = measure(space_opts, arch, width, "fused", batch, float(train["lr"]), args.min_time)
                rows.append({"busy": hogs, "idle_cpus": idle, "threads": n, "train_step_ms": r["train_step_ms"]})
                print(f"{hogs:>4} {'-' if idle is None else f'{idle:.2f}':>10} {n:>8} {r['train_step_ms']:>14.1f}",
                      flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    if args.json_out:
        out = {"network": label, "arch": arch, "width": width, "batch": batch, "rows": rows, "machine": machine("cpu")}
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
