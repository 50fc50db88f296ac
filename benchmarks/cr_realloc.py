"""CR-NAS computation reallocation against the ResNet baseline at equal FLOPs (``cr-resnet``).

    python -m benchmarks.cr_realloc [--search-seed 0] [--seeds 3] [--out DIR] [--json OUT.json] \
        [--epochs 10] [--spatial-epochs 10] [--width 8] [--block basic] [--dataset shapes] \
        [--train-epochs 15] [--set space.K=V] [--set controller.K=V] [--set train.K=V] [--set latency.K=V]

1. One ``cr`` search (seed ``--search-seed``) with the space's quick settings for ``cr``
   (``CRResNetSpace.quick_settings["cr"]``; the flags and ``--set``, read by ``automl search``'s
   parser, override single keys of them) through :class:`automl.run.Run`, in ``--out/search`` (default:
   a temporary folder). Its proposals are measured with ``cost`` only, so the search time is
   the supernet training, allocation scoring and beam search, not the retraining below.
2. Three architectures: **CR** (the best of the final beam, the run's ``derived 0``), **SCR**
   (stage reallocation only: CR's allocation, every dilation 1) and the space's **baseline**
   ([3, 4, 6, 3] at 16 blocks).
3. Each is retrained from scratch by the ``train`` evaluator with the quick settings for seeds
   ``0..--seeds-1`` (the seed sets the initial weights and the batch order; every run uses the
   search run's dataset and train/val split), the way a run evaluates a trial
   (:func:`automl.trial.run_trial`); ``cost`` (params, multiply-adds) and ``latency`` (median
   ms, ``min_run_time`` 0.5 s) are measured once per architecture.

Prints a table (val metric mean +- sample std over seeds, and each seed's value) and writes
everything, with the machine's facts, as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from automl import registry
from automl.cli import UserError, parse_sets
from automl.config import Component, RunConfig
from automl.run import Run, RunSetupError
from benchmarks.retrain import bench_of, machine, mean_std, measure
from evaluators.train import PRIMARY

SPACE, CONTROLLER = "cr-resnet", "cr"
FLAGS = {  # simple flags -> --set items
    "epochs": "controller.epochs", "spatial_epochs": "controller.spatial_epochs", "width": "space.width",
    "block": "space.block", "train_epochs": "train.epochs",
}


def configure(args: argparse.Namespace, folder: Path) -> tuple[RunConfig, dict[str, Any], dict[str, Any]]:
    """The search's RunConfig (quick settings + overrides, ``cost`` as its only evaluator) and
    the ``train`` and ``latency`` options of the retraining."""
    quick = RunConfig(space=Component(SPACE), controller=Component(CONTROLLER)).quick_settings()
    assert quick is not None, f"{SPACE} declares no quick settings for {CONTROLLER}"
    evaluators = [Component.parse(dict(e), "evaluator") for e in quick["evaluators"]]
    for e in evaluators:
        if e.name == "latency":
            e.options["min_run_time"] = 0.5
    cfg = RunConfig(space=Component(SPACE, dict(quick["space"])),
                    controller=Component(CONTROLLER, dict(quick["controller"])), evaluators=evaluators,
                    dataset=args.dataset, seed=args.search_seed, device=args.device, run_dir=str(folder / "search"))
    flags = [f"{target}={value}" for name, target in FLAGS.items() if (value := getattr(args, name)) is not None]
    parse_sets(flags + args.sets, cfg)
    options = {e.name: dict(e.options) for e in cfg.evaluators}
    cfg.evaluators = [Component("cost")]
    cfg.objectives = ["flops_M:min"]  # required by the run; the cr controller ranks by its own supernet scores
    cfg.set("budget", 1000)  # the controller stops after its few proposals
    return cfg, options["train"], options["latency"]


def benchmark(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cfg, train, latency = configure(args, folder)
    run = Run(cfg, tensorboard=False, log=lambda msg: print(f"  {msg}", flush=True))
    print(f"search: {SPACE} + {CONTROLLER}, seed {cfg.seed}, space {cfg.space.options}, "
          f"controller {cfg.controller.options}, dataset {cfg.dataset}", flush=True)
    summary = run.execute()
    run.close()
    derived = next((r for r in summary.records if r.proposal.get("note") == "derived 0"), None)
    if derived is None:
        raise SystemExit("the cr search proposed nothing (no 'derived 0' trial)")
    space = run.space
    archs = {"baseline": space.preset("baseline"), "SCR": space.arch(space.decode(derived.arch)[0]),
             "CR": space.validate(derived.arch)}
    metric = PRIMARY[run.task.kind]
    seeds = list(range(args.seeds))
    costs = bench_of(run, ("cost", {}), ("latency", latency))
    trainer = bench_of(run, ("train", {**train, "save_weights": False}))
    rows: dict[str, dict[str, Any]] = {}
    for label, arch in archs.items():
        row: dict[str, Any] = {"arch": arch, "describe": space.describe(arch), **measure(costs, arch, cfg.seed)}
        trained = [measure(trainer, arch, seed) for seed in seeds]
        values = [m[metric] for m in trained]
        mean, std = mean_std(values)
        row.update({metric: values, "mean": mean, "std": std,
                    "train_seconds": [m["train_seconds"] for m in trained]})
        rows[label] = row
        print(f"  {label}: {row['describe']}  {metric} {row['mean']:.4f} +- {row['std']:.4f}", flush=True)
    return {
        "space": cfg.space.options, "controller": cfg.controller.options, "train": train, "latency": latency,
        "dataset": cfg.dataset, "samples": {s: run.dataset.num_samples(s) for s in ("train", "val")},
        "metric": metric, "seeds": seeds,
        "search": {"seed": cfg.seed, "seconds": summary.seconds, "run_dir": str(run.run_dir) if args.out else None,
                   "proposals": [r.arch_str or space.describe(r.arch) for r in summary.records]},
        "archs": rows,
        "machine": machine(cfg.device),
    }


def report(res: dict[str, Any]) -> None:
    metric, width = res["metric"], max(len(r["describe"]) for r in res["archs"].values())
    print(f"\nsearch {res['search']['seconds']:.1f} s; retrained {len(res['seeds'])} seed(s) x "
          f"{res['train'].get('epochs')} epochs on {res['dataset']} ({res['samples']['train']} train / "
          f"{res['samples']['val']} val); torch {res['machine']['torch']}, {res['machine']['threads']} thread(s), "
          f"{res['machine']['cpus']} CPUs")
    print(f"{'arch':<9} {'architecture':<{width}} {'MFLOPs':>8} {'M params':>8} {'lat ms':>7} "
          f"{metric + ' mean +- std':>22}  per seed")
    for label, r in res["archs"].items():
        per_seed = " ".join(f"{v:.4f}" for v in r[metric])
        print(f"{label:<9} {r['describe']:<{width}} {r['flops_M']:>8.2f} {r['params_M']:>8.3f} {r['latency_ms']:>7.2f} "
              f"{r['mean']:>13.4f} +- {r['std']:.4f}  {per_seed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the cr search run")
    parser.add_argument("--seeds", type=int, default=3, help="retrain each architecture with seeds 0..N-1")
    parser.add_argument("--out", default=None, help="folder for the search run (default: a temporary one, removed)")
    parser.add_argument("--dataset", default=None, help="dataset spec (default: the space's, shapes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--epochs", type=int, default=None, help="stage supernet epochs (controller.epochs)")
    parser.add_argument("--spatial-epochs", type=int, default=None, help="dilation supernet epochs")
    parser.add_argument("--width", type=int, default=None, help="space.width")
    parser.add_argument("--block", default=None, help="space.block: basic or bottleneck")
    parser.add_argument("--train-epochs", type=int, default=None, help="epochs of each retraining (train.epochs)")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="space.K=V, controller.K=V, train.K=V or latency.K=V (V read as YAML)")
    parser.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print(f"error: --seeds must be at least 1, got {args.seeds}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        if args.out:
            res = benchmark(args, Path(args.out))
        else:
            with tempfile.TemporaryDirectory(prefix="cr-realloc-") as folder:
                res = benchmark(args, Path(folder))
    except (UserError, RunSetupError, registry.RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(res)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
