"""The zero-flag demo as a user runs it, over search seeds: wall time, phases, found net vs reference.

    python -m benchmarks.demo [--seeds 0,1,2] [--space seg-hierarchical] [--controller darts] \
        [--json OUT.json] [--keep DIR] [-- EXTRA CLI ARGS]

For each seed, ``automl search --space S --controller C --seed K`` (plus any arguments after
``--``) runs in a fresh process, as from the shell, into its own run directory (a temporary one
unless ``--keep``). Measured per seed: the wall time of that process (interpreter start and
imports included), its peak RSS, the phases the CLI prints (``supernet search``, ``trials``,
``reference``), the epochs the found net trained (its ``epochs_run``: the demo's retrain takes
what its time limit leaves), the found net's objective and latency, the reference network's (the space's
quick settings bring one: ``seg-hierarchical`` + ``darts`` compares with ``seg-unet:unet``
trained the same way) and the derived architecture. The run's log lines are shown, indented, as
they come. Prints a table and the means, writes JSON.
Run it alone: a second torch job on the same cores slows both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from automl import reference as reference_file
from automl.report import open_run
from benchmarks.retrain import machine

# "1 trial(s) in 181.9 s: supernet search 64.0 s, trials 100.1 s, reference 17.8 s (budget spent); ..."
SUMMARY = re.compile(r"trial\(s\) in [\d.]+ s(?:: (?P<phases>[^(]*?))? \(")
PHASE = re.compile(r"(?P<name>[\w -]+?) (?P<seconds>[\d.]+) s")


def phases(stdout: str) -> dict[str, float]:
    """The phase seconds of the CLI's summary line (``automl.cli._phases``); empty if not printed."""
    m = SUMMARY.search(stdout)
    if m is None or not m.group("phases"):
        return {}
    return {p["name"].strip(): float(p["seconds"]) for p in PHASE.finditer(m.group("phases"))}


def one_seed(args: argparse.Namespace, seed: int, run_dir: Path) -> dict[str, Any]:
    """Run the CLI for ``seed`` into ``run_dir`` and read back what it measured."""
    cmd = [sys.executable, "-m", "automl.cli", "search", "--space", args.space, "--controller", args.controller,
           "--seed", str(seed), "--run-dir", str(run_dir), *args.extra]
    env = {**os.environ, "COLUMNS": "1000"}  # one summary line, unwrapped by rich
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in child.stdout or ():  # the run's own log lines, shown as they come: its progress
        lines.append(line)
        print(f"    {line}", end="", flush=True)
    out = "".join(lines)
    _, status, usage = os.wait4(child.pid, 0)  # its own peak RSS, which Popen.wait does not give
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"seed {seed}: `{' '.join(cmd)}` exited {child.returncode} (its output is above)")
    view = open_run(run_dir)
    best = view.best()
    if best is None:
        raise SystemExit(f"seed {seed}: the run in {run_dir} has no completed trial")
    metric = view.objectives[0].metric
    row: dict[str, Any] = {"seed": seed, "device": view.config.device, "wall_s": wall, "phases_s": phases(out),
                           "metric": metric,
                           "found": {metric: best.metrics[metric], "latency_ms": best.metrics.get("latency_ms"),
                                     "epochs": best.metrics.get("epochs_run"), "arch": best.arch_str or best.key}}
    row["peak_rss_mb"] = usage.ru_maxrss / 1024
    ref = reference_file.load(run_dir)
    if ref is not None and ref.get("state") == "complete":
        row["reference"] = {"spec": ref["spec"], metric: ref["metrics"].get(metric),
                            "latency_ms": ref["metrics"].get("latency_ms"), "epochs": ref["metrics"].get("epochs_run")}
    return row


def _fmt(v: float | None, spec: str) -> str:
    """``v`` in ``spec`` (e.g. ``7.2f``), or a dash of the same width when it was not measured."""
    return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))


def report(rows: list[dict[str, Any]]) -> None:
    metric = rows[0]["metric"]
    print(f"{'seed':>4} {'wall s':>7} {'search s':>9} {'trials s':>9} {'ref s':>6} {'epochs':>6} {'found ' + metric:>15} "
          f"{'lat ms':>7} {'reference':>10} {'lat ms':>7} {'RSS MB':>7}  found architecture")
    for r in rows:
        p, ref = r["phases_s"], r.get("reference", {})
        search = next((s for name, s in p.items() if name not in ("trials", "reference")), None)
        print(f"{r['seed']:>4} {r['wall_s']:>7.1f} {_fmt(search, '9.1f')} {_fmt(p.get('trials'), '9.1f')} "
              f"{_fmt(p.get('reference'), '6.1f')} {_fmt(r['found'].get('epochs'), '6.0f')} {r['found'][metric]:>15.4f} {_fmt(r['found']['latency_ms'], '7.2f')} "
              f"{_fmt(ref.get(metric), '10.4f')} {_fmt(ref.get('latency_ms'), '7.2f')} "
              f"{_fmt(r.get('peak_rss_mb'), '7.0f')}  {r['found']['arch'][:60]}")
    found = [r["found"][metric] for r in rows]
    refs = [r["reference"][metric] for r in rows if r.get("reference", {}).get(metric) is not None]
    walls = [r["wall_s"] for r in rows]
    sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
    line = f"found {metric} {statistics.mean(found):.4f} +- {sd(found):.4f}"
    if len(refs) == len(found):
        ahead = sum(f > g for f, g in zip(found, refs))
        line += f"; reference {statistics.mean(refs):.4f} +- {sd(refs):.4f}; found ahead on {ahead} of {len(rows)} seed(s)"
    print(line + f"; wall {min(walls):.0f}-{max(walls):.0f} s (mean {statistics.mean(walls):.0f} s)")


def parse(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated search seeds (--seed of the CLI)")
    p.add_argument("--space", default="seg-hierarchical")
    p.add_argument("--controller", default="darts")
    p.add_argument("--keep", type=Path, help="keep the run directories under this folder (default: temporary)")
    p.add_argument("--json", dest="json_out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not args.seed_list:
        p.error("--seeds names no seed")
    args.extra = extra
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-demo-") as tmp:
        root = args.keep or Path(tmp)
        for seed in args.seed_list:
            run_dir = root / f"seed{seed}"
            if run_dir.exists():
                raise SystemExit(f"{run_dir} exists; give --keep an empty folder")
            print(f"seed {seed}: automl search --space {args.space} --controller {args.controller} --seed {seed} "
                  + " ".join(args.extra), flush=True)
            rows.append(one_seed(args, seed, run_dir))
            r = rows[-1]
            print(f"  {r['wall_s']:.1f} s, found {r['metric']} {r['found'][r['metric']]:.4f}", flush=True)
    report(rows)
    if args.json_out:
        config = {"seeds": args.seed_list, "space": args.space, "controller": args.controller, "extra": args.extra}
        args.json_out.write_text(json.dumps({"config": config, **machine(rows[0]["device"]), "rows": rows}, indent=1))
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
