"""NAS-Bench-201 protocol benchmark of black-box controllers.

    python -m benchmarks.nb201 --table PATH --dataset cifar10 --queries 100 --seeds 100 \
        --controllers random,evolution,tpe,rl --json OUT.json [--set rl.batch=4]

Each run (seed 0..N-1) lets a controller query ``--queries`` distinct architectures through the
same :class:`automl.run.Run` loop as ``automl search`` (in-memory Optuna storage, no files),
selects the best by ``{dataset}_valid_acc_12ep`` and reports its ``{dataset}_test_acc_200ep``
(the protocol of the NAS-Bench-201 paper; test accuracy never reaches the controller).
Prints a table and writes ``{"<controller>": {"mean", "std", "runs", "seconds"}}`` as JSON.

``--search-data SPEC`` gives the one-shot ``darts`` controller its data (e.g. ``cifar10:PATH``,
which ``python -m benchmarks.cifar10_npm`` writes): it trains the NB201 supernet on SPEC, derives one
cell (``--queries 1``), and the table scores that cell, as in the NAS-Bench-201 paper's weight-sharing
rows (DARTS-V1 54.30, GDAS 93.61 on CIFAR-10 test). Its epoch lines are printed; the JSON then also
holds each run's derived cell, its number of skip connections and the search's warnings.

    python -m benchmarks.nb201 --controllers darts --queries 1 --seeds 1 --search-data cifar10:DIR \
        --set darts.epochs=10 --set darts.method=gdas

``--first-seed K`` starts the runs at seed K (seeds K..K+N-1), so a long one-shot protocol can be
split over several invocations and their JSONs put side by side.

``--executor ray --workers 4`` runs the same protocol through the Ray Tune executor with four
trials in flight (the controller proposes while results are outstanding, as on a cluster); Ray
starts once for all runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from automl import registry
from automl.config import Component, RunConfig, load_yaml
from automl.run import Run, RunSetupError
from evaluators.nb201_table import NB201TableEvaluator, find_shared_file


def run_controller(
    controller: str, evaluator: NB201TableEvaluator, queries: int, seeds: int, options: dict | None = None,
    executor: dict | None = None, search_data: str | None = None, details: list[dict] | None = None,
    device: str = "cpu", first_seed: int = 0, on_start: Callable[[], None] | None = None,
) -> tuple[list[float], float]:
    """Test accuracy of the selected architecture for each seed (``first_seed`` onwards), and total
    seconds. With ``search_data`` (one-shot controllers) the search's lines are printed and, per run,
    the selected cell, its skip connections and the search's warnings are appended to ``details``.
    ``on_start`` is called once the first run is set up (its data read), before it searches."""
    finals: list[float] = []
    t0 = time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        cfg = RunConfig(
            space=Component("nb201"),
            controller=Component(controller, dict(options or {})),
            objectives=["valid_acc:max"],
            budget=queries,
            seed=seed,
            dataset=search_data,
            device=device,
            **(executor or {}),
        )
        lines: list[str] = []

        def log(line: str) -> None:
            lines.append(line)
            print(f"  {controller} seed {seed}: {line}", flush=True)

        started = time.perf_counter()
        run = Run(
            cfg,
            storage=optuna.storages.InMemoryStorage(),
            write_files=False,
            tensorboard=False,
            evaluators=[evaluator],
            log=log if search_data else None,
        )
        if on_start is not None and seed == first_seed:
            on_start()
        summary = run.execute()
        assert summary.best is not None, f"{controller} seed {seed}: no completed trial"
        finals.append(summary.best.metrics["test_acc"])
        if details is not None:
            cell = run.space.describe(summary.best.arch)
            details.append({"seed": seed, "cell": cell, "skips": cell.count("skip_connect"),
                            "test_acc": summary.best.metrics["test_acc"], "valid_acc": summary.best.metrics["valid_acc"],
                            "seconds": time.perf_counter() - started,
                            "warnings": [ln for ln in lines if "WARNING" in ln or "early stop" in ln]})
    return finals, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=None, help="NB201 table CSV (default: ../shared/benchmarks/nb201_cifar10.csv)")
    parser.add_argument("--dataset", default="cifar10", help="column prefix: cifar10, cifar100, imagenet16")
    parser.add_argument("--queries", type=int, default=100, help="distinct architectures per run")
    parser.add_argument("--seeds", type=int, default=100, help="runs with seeds K..K+N-1 (K: --first-seed)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first run (default 0)")
    parser.add_argument("--controllers", default="random,evolution,tpe", help="comma-separated controller names")
    parser.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--workers", type=int, default=4, help="trials in flight under --executor ray")
    parser.add_argument("--trial-cpus", type=float, default=0.5, help="CPUs per trial under --executor ray")
    parser.add_argument("--search-data", default=None,
                        help="dataset spec the one-shot darts controller searches on, e.g. cifar10:PATH")
    parser.add_argument("--device", default="cpu", help="where the one-shot search trains (cpu, cuda)")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="a controller option, CONTROLLER.KEY=VALUE (VALUE read as YAML), e.g. rl.batch=4")
    args = parser.parse_args(argv)
    for flag, value, least in (("--seeds", args.seeds, 1), ("--queries", args.queries, 1),
                               ("--first-seed", args.first_seed, 0)):
        if value < least:
            print(f"error: {flag} {value}: expected an integer >= {least}", file=sys.stderr)
            return 2
    options: dict[str, dict] = {}
    for item in args.sets:
        target, sep, value = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            print(f"error: --set {item!r}: expected CONTROLLER.KEY=VALUE", file=sys.stderr)
            return 2
        options.setdefault(name, {})[key] = load_yaml(value)

    try:
        table = args.table or find_shared_file("nb201_cifar10.csv", "AUTOML_NB201_TABLE")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if table is None or not Path(table).is_file():
        print(f"error: NB201 table not found ({table or 'pass --table PATH'})", file=sys.stderr)
        return 2
    try:
        evaluator = NB201TableEvaluator(table=str(table), dataset=args.dataset)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    executor: dict = {}
    cluster = None
    if args.executor == "ray":
        import os

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        from automl.executors.base import ExecutorOptions
        from automl.executors.ray_tune import RayTuneExecutor

        executor = {"executor": "ray", "workers": args.workers, "trial_cpus": args.trial_cpus}
        cluster = RayTuneExecutor(ExecutorOptions(**executor))
        cluster.start()
    results: dict[str, dict[str, float | int]] = {}
    header = [f"NAS-Bench-201 {args.dataset}: {args.queries} queries x {args.seeds} seeds "
              f"(from seed {args.first_seed}), best by {evaluator.valid_column}, reporting {evaluator.test_column}",
              f"{'controller':<12} {'mean':>8} {'std':>7} {'runs':>5} {'seconds':>9}"]

    def print_header() -> None:  # once a run is set up: a bad --search-data or option prints only its error
        while header:
            print(header.pop(0), flush=True)

    for name in [c.strip() for c in args.controllers.split(",") if c.strip()]:
        details: list[dict] = []
        try:
            finals, seconds = run_controller(name, evaluator, args.queries, args.seeds, options.get(name),
                                             executor=executor, search_data=args.search_data, details=details,
                                             device=args.device, first_seed=args.first_seed,
                                             on_start=print_header)
        except (RunSetupError, registry.RegistryError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            if cluster is not None:
                cluster.close()
            return 2
        row = {
            "mean": statistics.fmean(finals),
            "std": statistics.pstdev(finals) if len(finals) > 1 else 0.0,
            "runs": len(finals),
            "seconds": seconds,
        }
        if args.search_data:
            row.update(search_data=args.search_data, options=options.get(name, {}), details=details)
        results[name] = row
        print_header()
        print(f"{name:<12} {row['mean']:>8.3f} {row['std']:>7.3f} {row['runs']:>5d} {row['seconds']:>9.1f}", flush=True)
        for d in details if args.search_data else ():
            print(f"    seed {d['seed']}: {d['skips']} skip(s), {d['cell']}", flush=True)
    if cluster is not None:
        cluster.close()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
