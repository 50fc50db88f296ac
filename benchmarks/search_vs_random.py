"""Does the differentiable search beat random architectures of the same space? (issue 11)

    python -m benchmarks.search_vs_random [--spaces seg-hierarchical,darts] [--random 5] [--seeds 2] \
        [--search-seed 0] [--dataset SPEC] [--train-epochs N] [--set space.K=V] [--set controller.K=V] \
        [--set train.K=V] [--json OUT.json]

For each space:

1. One ``darts`` search (seed ``--search-seed``) with the space's quick settings for ``darts``
   (the flags and ``--set`` override single keys) through :class:`automl.run.Run`, measured with
   ``cost`` only, so its time is the supernet search. Its proposal is the **derived** network.
2. ``--random`` architectures sampled uniformly from the same space (``space.sample`` with a
   generator seeded by ``--search-seed``), the space's presets that build at the quick settings
   (``darts``: the published cells; ``seg-hierarchical``'s Auto-DeepLab path needs 12 layers and
   is skipped at the quick 4), and for segmentation the reference ``seg-unet:unet``.
3. Each is retrained from scratch by the quick settings' ``train`` evaluator for seeds
   ``0..--seeds-1`` (the seed sets the initial weights and batch order; one dataset and split),
   and timed once by ``latency`` (``min_run_time`` 0.5 s). The networks are compared on the
   validation metric (``val_acc`` / ``val_miou``), or on the test metric (``test_acc`` /
   ``test_miou``) where the dataset keeps a test part: CIFAR-10's search splits the whole
   training set, validation part included, so only the test images are unseen by the search.

Prints per space a table (metric mean +- std over seeds, latency, parameters) and the verdict
(derived vs the random mean), and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automl import registry
from automl.cli import UserError, parse_sets
from automl.config import Component, RunConfig
from automl.reference import Reference, ReferenceSpecError
from automl.run import Run, RunSetupError
from benchmarks.retrain import bench_of, machine, mean_std, measure
from evaluators.train import PRIMARY

CONTROLLER = "darts"
REFERENCE = {"segmentation": "seg-unet:unet"}


def configure(space: str, args: argparse.Namespace, folder: Path) -> tuple[RunConfig, dict[str, Any], dict[str, Any]]:
    """The search's RunConfig (quick settings + overrides, ``cost`` only) and the ``train`` and
    ``latency`` options of the retraining."""
    quick = RunConfig(space=Component(space), controller=Component(CONTROLLER)).quick_settings()
    if quick is None:
        raise UserError(f"space {space!r} declares no quick settings for {CONTROLLER}")
    evaluators = [Component.parse(dict(e), "evaluator") for e in quick.get("evaluators", ())]
    if not any(e.name == "train" for e in evaluators):
        raise UserError(f"space {space!r}: its quick settings for {CONTROLLER} train no candidate (no 'train' evaluator)")
    cfg = RunConfig(space=Component(space, dict(quick.get("space", {}))),
                    controller=Component(CONTROLLER, dict(quick["controller"])), evaluators=evaluators,
                    dataset=args.dataset, seed=args.search_seed, device=args.device, run_dir=str(folder / space))
    flags = [f"train.epochs={args.train_epochs}"] if args.train_epochs is not None else []
    parse_sets(flags + args.sets, cfg)
    options = {e.name: dict(e.options) for e in cfg.evaluators}
    latency = {**options.get("latency", {}), "min_run_time": 0.5}
    cfg.evaluators = [Component("cost")]
    cfg.objectives = ["params_M:min"]  # the run needs one; darts ranks by its own supernet
    cfg.set("budget", 1)
    cfg.set("reference", None)  # the reference is retrained below with the others
    return cfg, {**options["train"], "save_weights": False}, latency


def candidates(run: Run, derived: dict[str, Any], k: int, seed: int) -> dict[str, tuple[Any, dict[str, Any]]]:
    """label -> (run or None for the searched space, arch): derived, k random, presets that build."""
    space = run.space
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[Any, dict[str, Any]]] = {"derived": (None, space.validate(derived))}
    for i in range(k):
        out[f"random {i}"] = (None, space.sample(rng))
    for name in space.presets():
        try:
            arch = space.preset(name)
            space.build(arch, run.task)
        except (KeyError, ValueError):
            continue  # a preset of another size (e.g. 12 layers vs the quick 4)
        out[f"preset {name}"] = (None, arch)
    ref = REFERENCE.get(run.task.kind)
    if ref is not None:
        try:
            out[ref] = (Reference.resolve(ref, run.config.space.name, run.config.space.options, run.task), {})
        except ReferenceSpecError as exc:
            print(f"  no reference: {exc}", flush=True)
    return out


def one_space(space: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cfg, train, latency = configure(space, args, folder)
    run = Run(cfg, tensorboard=False, progress=False, log=lambda msg: print(f"  {msg}", flush=True))
    print(f"\n{space}: darts search, seed {cfg.seed}, space {cfg.space.options}, controller "
          f"{cfg.controller.options}, dataset {cfg.dataset}", flush=True)
    t = time.perf_counter()
    summary = run.execute()
    search_seconds = time.perf_counter() - t
    run.close()
    if not summary.records:
        raise SystemExit(f"{space}: the darts search proposed nothing")
    metric = PRIMARY[run.task.kind]
    held_out = metric.replace("val_", "test_", 1)
    seeds = list(range(args.seeds))
    rows: dict[str, dict[str, Any]] = {}
    for label, (ref, arch) in candidates(run, summary.records[0].arch, args.random, args.search_seed).items():
        space = None if ref is None else (ref.space, ref.options)
        arch = arch if ref is None else ref.arch
        costs = bench_of(run, ("cost", {}), ("latency", latency), space=space)
        trainer = bench_of(run, ("train", train), space=space)
        row: dict[str, Any] = {"arch": arch, "describe": costs.space.describe(arch), **measure(costs, arch, cfg.seed)}
        trained = [measure(trainer, arch, s) for s in seeds]
        if held_out in trained[0]:  # the dataset keeps a test part no search step saw: compare on it
            metric = held_out
        for name in dict.fromkeys((PRIMARY[run.task.kind], metric)):  # val first, then the compared one
            row[name] = [m[name] for m in trained]
        row["mean"], row["std"] = mean_std(row[metric])
        rows[label] = row
        print(f"  {label:<16} {metric} {row['mean']:.4f} +- {row['std']:.4f}  latency {row['latency_ms']:.2f} ms  "
              f"{row['describe'][:70]}", flush=True)
    randoms = [rows[k]["mean"] for k in rows if k.startswith("random ")]
    return {"space": cfg.space.options, "controller": cfg.controller.options, "train": train,
            "dataset": cfg.dataset, "metric": metric, "seeds": seeds, "search_seconds": search_seconds,
            "random_mean": float(np.mean(randoms)) if randoms else None,
            "random_best": float(np.max(randoms)) if randoms else None, "archs": rows}


def report(results: dict[str, Any]) -> None:
    for space, res in results["spaces"].items():
        metric = res["metric"]
        print(f"\n{space}: darts search {res['search_seconds']:.0f} s; each network retrained {len(res['seeds'])} "
              f"seed(s) with {res['train']} on {res['dataset']}")
        print(f"{'network':<18} {metric + ' mean +- std':>22} {'lat ms':>8} {'M params':>9}  architecture")
        for label, r in res["archs"].items():
            print(f"{label:<18} {r['mean']:>13.4f} +- {r['std']:.4f} {r['latency_ms']:>8.2f} {r['params_M']:>9.3f}  "
                  f"{r['describe'][:80]}")
        if res["random_mean"] is not None:
            d = res["archs"]["derived"]["mean"]
            print(f"derived {d:.4f} vs random mean {res['random_mean']:.4f} (best random {res['random_best']:.4f}): "
                  f"{'search wins' if d > res['random_mean'] else 'search does NOT beat random'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="seg-hierarchical,darts", help="comma-separated spaces with darts quick settings")
    parser.add_argument("--random", type=int, default=5, help="random architectures per space (K)")
    parser.add_argument("--seeds", type=int, default=2, help="retrain each network with seeds 0..N-1")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the search and of the random sample")
    parser.add_argument("--dataset", default=None, help="dataset spec (default: each space's built-in data)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--train-epochs", type=int, default=None, help="epochs of each retraining (train.epochs)")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="space.K=V, controller.K=V or train.K=V (V read as YAML), for every space")
    parser.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.random < 0:
        print(f"error: need --seeds >= 1 and --random >= 0 (got {args.seeds}, {args.random})", file=sys.stderr)
        return 2
    if args.threads < 1 or (args.train_epochs is not None and args.train_epochs < 1):
        print(f"error: need --threads >= 1 and --train-epochs >= 1 (got {args.threads}, {args.train_epochs})",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"spaces": {}, "machine": machine(args.device), "random": args.random}
    try:
        with tempfile.TemporaryDirectory(prefix="search-vs-random-") as folder:
            for space in [s for s in args.spaces.split(",") if s]:
                results["spaces"][space] = one_space(space, args, Path(folder))
    except (UserError, RunSetupError, registry.RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
