"""Step time and peak memory of the supernets under the ``darts`` controller's trainer.

    python -m benchmarks.supernet_speed [--which darts|autodeeplab|all] [--steps 10] [--warmup 3]
        [--steps2 5 --warmup2 2] [--threads 2] [--json out.json] [--reference-dir DIR]

Configurations (those of ``../shared/benchmarks/REFERENCE_SUPERNETS.md``):

* ``darts``: the ``darts`` space's supernet, C=16, 8 cells, 10 classes, batch 32 of 3×32×32;
  weight step, first-order and second-order architecture steps (``BilevelTrainer``);
* ``autodeeplab``: the ``seg-hierarchical`` supernet, L=12, F=8, B=5, 19 classes, batch 2 of
  3×64×64; weight step and (first-order) architecture step.

Each measurement runs in a fresh subprocess (``torch.set_num_threads``), times ``--warmup``
steps then reports the median of ``--steps`` (second order: ``--warmup2``/``--steps2``) and
the child's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes ~220 MB of
Python + torch). A space that is not available is reported, not fatal.

``--reference-dir DIR`` also runs the reference implementations side by side and prints the
ratios ours/reference (the bar: ≤ 0.8× step time, ≤ 0.7× peak RSS). ``DIR/darts`` must hold a
checkout of quark0/darts and ``DIR/autodeeplab`` one of NoamRosenberg/autodeeplab. Their files
are not modified: the child process makes ``.cuda()`` a no-op and stubs the CUDA-only
InPlaceABN import of autodeeplab (unused by its search supernet), the changes the reference
figures were measured with. Their steps are those of ``train_search.py`` / ``architect.py`` and
``train_autodeeplab.py`` (weights SGD 0.025/0.9/3e-4, DARTS clip 5; α Adam).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Config:
    space: str  # registry name
    module: str  # module:attr, used while the registry does not list the name yet
    kind: str
    classes: int
    size: int
    batch: int
    sizes: dict[str, int]  # the reference's sizes (C/layers, or L/F/B)
    space_options: dict[str, Any]
    supernet_options: dict[str, Any]
    measures: tuple[str, ...]
    trainer: dict[str, Any] = field(default_factory=dict)


CONFIGS: dict[str, Config] = {
    "darts": Config("darts", "search_spaces.darts:DartsSpace", "classification", 10, 32, 32,
                    {"C": 16, "layers": 8}, {}, {"C": 16, "layers": 8}, ("weight", "arch1", "arch2")),
    "autodeeplab": Config("seg-hierarchical", "search_spaces.seg_hierarchical:SegHierarchicalSpace", "segmentation",
                          19, 64, 2, {"layers": 12, "filter_multiplier": 8, "block_multiplier": 5},
                          {"layers": 12, "filter_multiplier": 8, "blocks": 5}, {}, ("weight", "arch1"),
                          {"arch_lr": 3e-3, "arch_betas": (0.9, 0.999), "grad_clip": 0.0}),
}
LABELS = {"weight": "weight step", "arch1": "arch step, 1st order", "arch2": "arch step, 2nd order"}
BAR_TIME, BAR_RSS = 0.8, 0.7
IGNORE = 255


# -- child side ---------------------------------------------------------------------------------

def _inputs(cfg: Config) -> tuple[Any, Any, Any, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    shape = (cfg.batch, 3, cfg.size, cfg.size)
    x1, x2 = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    tshape = (cfg.batch,) if cfg.kind == "classification" else (cfg.batch, cfg.size, cfg.size)
    y1, y2 = (torch.randint(0, cfg.classes, tshape, generator=g) for _ in range(2))
    return x1, y1, x2, y2


def _ours(cfg: Config, measure: str) -> tuple[Callable[[], Any], Callable[[], Any], dict[str, int]]:
    """(prepare, step, sizes) for our supernet under ``BilevelTrainer``."""
    from automl import registry
    from controllers.oneshot.batches import Batch
    from controllers.oneshot.darts_options import DartsOptions
    from controllers.oneshot.bilevel import BilevelTrainer
    from automl.types import Task

    via = cfg.space
    try:
        space = registry.create("space", cfg.space, cfg.space_options)
    except registry.RegistryError as exc:
        if "unknown space" not in str(exc):
            raise
        via = cfg.module
        space = registry.create("space", via, cfg.space_options)
    task = Task(cfg.kind, 3, (cfg.size, cfg.size), cfg.classes)
    net = space.supernet(task, sampling="softmax", **cfg.supernet_options)
    opts = DartsOptions(order=2 if measure == "arch2" else 1, batch_size=cfg.batch, **cfg.trainer)
    trainer = BilevelTrainer(net, opts, ignore_index=IGNORE)
    x1, y1, x2, y2 = _inputs(cfg)
    bt, bv = Batch(x1, y1), Batch(x2, y2)
    step = (lambda: trainer.weight_step(bt)) if measure == "weight" else (lambda: trainer.arch_step(bt, bv))
    sizes = {"weights": sum(p.numel() for p in trainer.weights), "arch": sum(p.numel() for p in trainer.arch), "via": via}
    return (lambda: trainer.weight_step(bt)), step, sizes


def _cpu_only() -> None:
    """Make ``.cuda()`` a no-op (the references call it unconditionally)."""
    import torch

    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]


def _reference_darts(ref_dir: str, cfg: Config, measure: str) -> tuple[Callable[[], Any], Callable[[], Any], dict[str, int]]:
    import types

    import torch
    from torch import nn

    _cpu_only()
    sys.path.insert(0, os.path.join(ref_dir, "darts", "cnn"))
    from architect import Architect  # type: ignore[import-not-found]
    from model_search import Network  # type: ignore[import-not-found]

    criterion = nn.CrossEntropyLoss()
    model = Network(cfg.sizes["C"], cfg.classes, cfg.sizes["layers"], criterion)
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    args = types.SimpleNamespace(momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3)
    architect = Architect(model, args)
    x1, y1, x2, y2 = _inputs(cfg)

    def weight_step() -> None:  # train_search.py train()
        optimizer.zero_grad()
        loss = criterion(model(x1), y1)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5)
        optimizer.step()

    def arch_step() -> None:
        architect.step(x1, y1, x2, y2, 0.025, optimizer, unrolled=measure == "arch2")

    sizes = {"weights": sum(p.numel() for p in model.parameters()), "arch": sum(a.numel() for a in model.arch_parameters())}
    return weight_step, (weight_step if measure == "weight" else arch_step), sizes


def _reference_autodeeplab(ref_dir: str, cfg: Config, measure: str) -> tuple[Callable[[], Any], Callable[[], Any], dict[str, int]]:
    import types

    import torch
    from torch import nn

    _cpu_only()
    root = os.path.join(ref_dir, "autodeeplab")
    sys.path.insert(0, root)
    stub = types.ModuleType("modeling.modules")  # CUDA-only InPlaceABN; the search supernet never builds it

    class InPlaceABNSync(nn.Module):
        def __init__(self, *a: Any, **k: Any) -> None:
            raise RuntimeError("InPlaceABN is not available on the CPU")

    stub.InPlaceABNSync = InPlaceABNSync  # type: ignore[attr-defined]
    sys.modules["modeling.modules"] = stub
    from auto_deeplab import AutoDeeplab  # type: ignore[import-not-found]

    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    s = cfg.sizes
    model = AutoDeeplab(cfg.classes, s["layers"], criterion, s["filter_multiplier"], s["block_multiplier"], 5)
    model.train()
    optimizer = torch.optim.SGD(model.weight_parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    arch_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-3, betas=(0.9, 0.999), weight_decay=1e-3)
    x1, y1, x2, y2 = _inputs(cfg)

    def weight_step() -> None:  # train_autodeeplab.py training()
        optimizer.zero_grad()
        criterion(model(x1), y1).backward()
        optimizer.step()

    def arch_step() -> None:
        arch_opt.zero_grad()
        criterion(model(x2), y2).backward()
        arch_opt.step()

    sizes = {"weights": sum(p.numel() for p in model.weight_parameters()),
             "arch": sum(a.numel() for a in model.arch_parameters())}
    return weight_step, (weight_step if measure == "weight" else arch_step), sizes


def child(which: str, impl: str, measure: str, steps: int, warmup: int, threads: int, ref_dir: str | None) -> dict[str, Any]:
    """Build, warm up, time ``steps`` steps; report times and peak RSS of this process."""
    import resource

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = CONFIGS[which]
    try:
        if impl == "ours":
            prepare, step, sizes = _ours(cfg, measure)
        else:
            assert ref_dir is not None
            builder = _reference_darts if which == "darts" else _reference_autodeeplab
            prepare, step, sizes = builder(ref_dir, cfg, measure)
    except Exception as exc:  # a space that does not exist yet, a missing reference checkout
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    if measure == "arch2":
        prepare()  # SGD momentum buffers exist in a real search; the virtual step reads them
    times = []
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times[warmup:], "rss_mb": rss_mb, **sizes}


# -- parent side --------------------------------------------------------------------------------

def run_child(which: str, impl: str, measure: str, args: argparse.Namespace) -> dict[str, Any]:
    steps, warmup = (args.steps2, args.warmup2) if measure == "arch2" else (args.steps, args.warmup)
    cmd = [sys.executable, "-m", "benchmarks.supernet_speed", "--child", f"{which}:{impl}:{measure}",
           "--steps", str(steps), "--warmup", str(warmup), "--threads", str(args.threads)]
    if args.reference_dir:
        cmd += ["--reference-dir", args.reference_dir]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"child failed (exit {proc.returncode}): {tail}"}
    out = json.loads(lines[-1][len("RESULT "):])
    if "times" in out:
        out["median_s"] = statistics.median(out["times"])
        out["min_s"], out["max_s"] = min(out["times"]), max(out["times"])
    return out


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return "n/a"
    return f"{r['median_s']:.3f} s ({r['min_s']:.2f}-{r['max_s']:.2f}) {r['rss_mb'] / 1024:.2f} GB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--which", choices=("darts", "autodeeplab", "all"), default="all")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps2", type=int, default=5, help="timed steps of the second-order arch step")
    parser.add_argument("--warmup2", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--reference-dir", default=None, help="DIR with darts/ and autodeeplab/ reference checkouts")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        which, impl, measure = args.child.split(":")
        result = child(which, impl, measure, args.steps, args.warmup, args.threads, args.reference_dir)
        print("RESULT " + json.dumps(result))
        return 0

    import torch

    which = list(CONFIGS) if args.which == "all" else [args.which]
    load0 = os.getloadavg()
    print(f"supernet step times, {args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load0[0]:.2f} at start; median of {args.steps} steps after {args.warmup} "
          f"(2nd order: {args.steps2} after {args.warmup2}); each in a fresh process")
    report: dict[str, Any] = {"threads": args.threads, "steps": args.steps, "warmup": args.warmup,
                              "steps2": args.steps2, "warmup2": args.warmup2, "torch": torch.__version__,
                              "load_start": load0, "results": {}}
    header = f"{'supernet':<12} {'measurement':<22} {'ours: median (min-max) peak RSS':<40}"
    if args.reference_dir:
        header += f" {'reference':<40} {'time':>6} {'RSS':>6}  bar"
    print(header)
    for w in which:
        cfg = CONFIGS[w]
        report["results"][w] = {"config": {"space": cfg.space, "batch": cfg.batch, "size": cfg.size, **cfg.sizes}}
        for m in cfg.measures:
            ours = run_child(w, "ours", m, args)
            ref = run_child(w, "ref", m, args) if args.reference_dir else None
            row = f"{w:<12} {LABELS[m]:<22} {_cell(ours):<40}"
            entry: dict[str, Any] = {"ours": ours}
            if ref is not None:
                entry["reference"] = ref
                row += f" {_cell(ref):<40}"
                if "error" not in ours and "error" not in ref:
                    t, r = ours["median_s"] / ref["median_s"], ours["rss_mb"] / ref["rss_mb"]
                    entry.update(time_ratio=t, rss_ratio=r, meets_bar=t <= BAR_TIME and r <= BAR_RSS)
                    row += f" {t:>5.2f}x {r:>5.2f}x  {'ok' if entry['meets_bar'] else 'MISSED'}"
            print(row, flush=True)
            for name, r in (("ours", ours), ("reference", ref)):
                if r is not None and "error" in r:
                    print(f"    {name} not available: {r['error']}")
            report["results"][w][m] = entry
    report["load_end"] = os.getloadavg()
    print(f"load average {report['load_end'][0]:.2f} at the end (absolute times are only comparable within one run)")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
