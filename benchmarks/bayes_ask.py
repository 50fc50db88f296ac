"""Time of the ``bayes`` controller's ``ask`` as its history grows (the GP fit, the annealed tree
search and the distances it needs).

    python -m benchmarks.bayes_ask --observations 100,300 --seeds 3 --json OUT.json

Drives the controller on the NAS-Bench-201 table (``valid_acc_12ep``) and times each ``ask``;
for each checkpoint N it reports the median and maximum time of the asks made with N - 10 .. N
observations, and how many neighbours one search scored. ``--space morph`` times it on the
Auto-Keras morphism space instead, with random values (no training: only ``ask`` is timed).
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from automl import registry
from automl.types import Objective, Result
from evaluators.nb201_table import NB201TableEvaluator, find_shared_file


def drive(space_name: str, checkpoints: list[int], seed: int, table: NB201TableEvaluator | None
          ) -> dict[int, dict[str, float]]:
    space = registry.create("space", space_name, {})
    controller = registry.create("controller", "bayes")
    controller.setup(space, (Objective("valid_acc", "max"),), seed)
    rng = np.random.default_rng(seed)
    times: list[tuple[float, int]] = []
    out: dict[int, dict[str, float]] = {}
    for n in range(max(checkpoints)):
        t0 = time.perf_counter()
        p = controller.ask()
        times.append((time.perf_counter() - t0, controller.last.scored if controller.last else 0))
        value = table.lookup(space.describe(p.arch))["valid_acc"] if table is not None else float(rng.random())
        controller.tell(p, Result((value,), trial=n))
        if n + 1 in checkpoints:
            window = times[-10:]
            out[n + 1] = {"median_s": statistics.median(t for t, _ in window), "max_s": max(t for t, _ in window),
                          "scored": statistics.fmean(s for _, s in window)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="nb201", choices=("nb201", "morph"))
    parser.add_argument("--observations", default="100,300", help="comma-separated history sizes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--table", default=None, help="NB201 table CSV (default: ../shared/benchmarks/nb201_cifar10.csv)")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    try:
        checkpoints = sorted({int(x) for x in args.observations.split(",") if x.strip()})
    except ValueError:
        print(f"error: --observations {args.observations!r}: expected numbers like 100,300", file=sys.stderr)
        return 2
    if not checkpoints or checkpoints[0] < 11:
        print("error: --observations must be at least 11 (each is timed over its last 10 asks)", file=sys.stderr)
        return 2
    table = None
    if args.space == "nb201":
        path = args.table or find_shared_file("nb201_cifar10.csv", "AUTOML_NB201_TABLE")
        if path is None or not Path(path).is_file():
            print(f"error: NB201 table not found ({path or 'pass --table PATH'})", file=sys.stderr)
            return 2
        table = NB201TableEvaluator(table=str(path))
    runs = [drive(args.space, checkpoints, seed, table) for seed in range(args.seeds)]
    results = {}
    print(f"bayes ask() on {args.space}, {args.seeds} seed(s); each row: the last 10 asks before N observations")
    print(f"{'N':>5} {'median s':>9} {'max s':>7} {'scored':>7}")
    for n in checkpoints:
        row = {"median_s": statistics.median(r[n]["median_s"] for r in runs), "max_s": max(r[n]["max_s"] for r in runs),
               "scored": statistics.fmean(r[n]["scored"] for r in runs)}
        results[str(n)] = row
        print(f"{n:>5} {row['median_s']:>9.3f} {row['max_s']:>7.3f} {row['scored']:>7.0f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"space": args.space, "seeds": args.seeds, "asks": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
