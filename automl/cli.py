"""``automl`` command line: search, show, pareto, and the catalogue listings.

Every user error ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from automl.launch import launched_rank

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Neural architecture search: spaces x controllers x evaluators, Pareto fronts, export.",
)


class UserError(Exception):
    """Reported as ``error: ...`` with exit code 2."""


def _fail(msg: str) -> None:
    raise UserError(msg)


def _out_file(option: str, raw: str) -> Path:
    """``raw`` as a file that can be written: a name (not empty, no trailing ``/``, which
    ``Path`` would drop), not a folder, in a folder that exists."""
    if not raw.strip():
        _fail(f"{option} is empty; give a file name")
    if raw.endswith(("/", os.sep)):
        _fail(f"{option} {raw}: ends in '/', so it names a folder; give a file name")
    path = Path(raw)
    if path.is_dir():
        _fail(f"{option} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        _fail(f"{option} {path}: its folder {path.parent} {what}")
    return path


def _run_path(raw: str) -> Path:
    """The RUN_DIR argument; an empty one is refused (``Path("")`` would be the current folder)."""
    if not raw.strip():
        _fail("RUN_DIR is empty; give a run directory, e.g. runs/nb201-evolution")
    return Path(raw)


def _console():
    from rich.console import Console

    # Piped output (logs, CI) gets a wide console so tables are not folded into 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _brief(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def parse_sets(sets: list[str], cfg: Any) -> None:
    """Apply ``--set space.K=V`` / ``controller.K=V`` / ``EVALUATOR.K=V`` (V read as YAML)."""
    from automl.config import load_yaml

    component_first = sorted(sets, key=lambda item: not item.startswith(("space.", "controller.")))
    for item in component_first:  # evaluator items fill the quick defaults: components go first
        target, sep, value = item.partition("=")
        comp, dot, key = target.partition(".")
        if not sep or not dot or not key:
            _fail(f"bad --set {item!r}: expected space.KEY=VALUE, controller.KEY=VALUE or EVALUATOR.KEY=VALUE")
        try:
            parsed = load_yaml(value)
        except yaml.YAMLError:
            parsed = value
        if comp in ("space", "controller"):
            getattr(cfg, comp).options[key] = parsed
            continue
        cfg.fill_defaults()
        matches = [e for e in cfg.evaluators if comp in (e.name, e.name.rsplit(":", 1)[-1])]
        if not matches:
            targets = ["space", "controller", *(e.name.rsplit(":", 1)[-1] for e in cfg.evaluators)]
            close = difflib.get_close_matches(comp, targets, n=1)
            _fail(f"bad --set {item!r}: {comp!r} is not a component of this run"
                  + (f" (did you mean {close[0]!r}?)" if close else "")
                  + f"; accepted prefixes: {', '.join(t + '.' for t in targets)}")
        for e in matches:
            cfg.set_evaluator_option(e, key, parsed)


def quick_on_dataset_note(cfg: Any) -> str | None:
    """A note when the space's demo-sized quick settings filled components of a run on a
    ``--dataset`` the user named (None otherwise): what they are and how to drop them."""
    used = cfg.quick_used()
    if not used or not cfg.given("dataset"):  # the built-in data the run fills in is the demo's own
        return None
    quick = cfg.quick_settings() or {}
    shown = [f"{part}: " + (", ".join(f"{e.name}({_brief(e.options)})" for e in cfg.evaluators) if part == "evaluators"
                            else _brief(quick[part])) for part in used]  # evaluators: with the user's --set
    if cfg.time_limit and not cfg.given("time_limit"):
        shown.append(f"time limit {cfg.time_limit:g} s (--time-limit)")
    return (f"note: the quick settings of {cfg.space.name}+{cfg.controller.name} (demo-sized) are in use on "
            f"{cfg.dataset}: {'; '.join(shown)}; --no-quick gives each component its own defaults (the papers' "
            "recipes)")


@app.command()
def search(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML run configuration")] = None,
    space: Annotated[str | None, typer.Option(help="search space name or module:attr")] = None,
    controller: Annotated[str | None, typer.Option(help="controller name or module:attr")] = None,
    evaluator: Annotated[list[str] | None, typer.Option(help="evaluator (repeatable); replaces the config's list")] = None,
    objective: Annotated[list[str] | None, typer.Option(help="METRIC:max|min (repeatable)")] = None,
    constraint: Annotated[list[str] | None, typer.Option(help="METRIC<=BOUND etc. (repeatable)")] = None,
    budget: Annotated[int | None, typer.Option(help="distinct architectures to evaluate")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    run_dir: Annotated[str | None, typer.Option(help="where the run is written (default runs/SPACE-CONTROLLER)")] = None,
    storage: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the Optuna storage (default RUN_DIR/study.db)")] = None,
    dataset: Annotated[str | None, typer.Option(help="dataset spec for training evaluators")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, ...")] = None,
    pruner: Annotated[str | None, typer.Option(help="none, median or successive-halving")] = None,
    mnas_reward: Annotated[str | None, typer.Option(help="derived metric ACC,LAT,TARGET[,W] (MnasNet reward)")] = None,
    executor: Annotated[str | None, typer.Option(help="local (in-process, default) or ray (Ray Tune, parallel)")] = None,
    workers: Annotated[int | None, typer.Option(help="trials in flight under --executor ray")] = None,
    ray_address: Annotated[str | None, typer.Option(help="an existing Ray cluster: auto or ray://HOST:PORT (default: start a local one)")] = None,
    trial_cpus: Annotated[float | None, typer.Option(help="CPUs (and torch threads) per trial under Ray")] = None,
    trial_gpus: Annotated[float | None, typer.Option(help="GPUs per trial under Ray; 0.25 puts four trials on one GPU")] = None,
    trial_timeout: Annotated[float | None, typer.Option(help="seconds after which a trial fails as timed out")] = None,
    time_limit: Annotated[float | None, typer.Option(help="seconds from the start after which no trial starts and "
                                                          "training evaluators stop (a supernet search runs whole; 0: "
                                                          "no limit)")] = None,
    retries: Annotated[int | None, typer.Option(help="re-run a failed trial up to K times")] = None,
    scheduler: Annotated[str | None, typer.Option(help="none or asha (Ray Tune ASHA stops poor training trials)")] = None,
    reference: Annotated[str | None, typer.Option(help="SPACE:PRESET (or PRESET) trained like the trials after the search, "
                                                       "compared with the best in one line (e.g. seg-unet:unet)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="component option, e.g. controller.population=20")] = None,
    quick: Annotated[bool | None, typer.Option("--quick/--no-quick", help="the space's quick (demo-sized) settings fill "
                                               "the components given no options (default); --no-quick: each "
                                               "component's own defaults, the papers' recipes")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the run in this directory")] = None,
    join: Annotated[bool, typer.Option(help="with --resume: work on a run another process is searching, as one more worker")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Search a space with a controller and evaluators; trials go to an Optuna study."""
    from automl.config import RunConfig
    from automl.objectives import SpecError
    from automl.run import Run, RunSetupError

    try:
        if join and resume is None:
            _fail("--join works with --resume RUN_DIR only (it adds a worker to a run that is being searched)")
        if resume is not None:
            refused = [flag for flag, v in (("--config", config), ("--space", space), ("--controller", controller),
                                            ("--evaluator", evaluator), ("--objective", objective),
                                            ("--constraint", constraint), ("--run-dir", run_dir),
                                            ("--storage", storage), ("--dataset", dataset), ("--set", set_),
                                            ("--mnas-reward", mnas_reward), ("--reference", reference),
                                            ("--quick/--no-quick", quick)) if v is not None]
            if refused:
                _fail(f"--resume continues a run as configured, so {', '.join(refused)} cannot be given with it; "
                      "only --budget, --time-limit, --seed, --device, --pruner and the executor "
                      "options (--executor, --workers, --ray-address, --trial-cpus, --trial-gpus, --trial-timeout, "
                      "--retries, --scheduler) may be given with it")
            cfg = RunConfig.from_file(resume / "config.yaml") if (resume / "config.yaml").is_file() else None
            if cfg is None:
                _fail(f"--resume {resume}: no config.yaml there, so it is not a run directory")
            cfg.run_dir = str(resume)
        else:
            cfg = RunConfig.from_file(config) if config is not None else RunConfig()
            if config is not None:
                cfg.refuse_empty_lists(str(config))
        overrides = {"space": space, "controller": controller, "evaluators": evaluator, "objectives": objective,
                     "constraints": constraint, "budget": budget, "seed": seed, "run_dir": run_dir,
                     "storage": storage, "dataset": dataset, "device": device, "pruner": pruner,
                     "mnas_reward": mnas_reward, "executor": executor, "workers": workers, "ray_address": ray_address,
                     "trial_cpus": trial_cpus, "trial_gpus": trial_gpus, "trial_timeout": trial_timeout,
                     "time_limit": time_limit, "retries": retries, "scheduler": scheduler, "reference": reference, "quick": quick}
        for key, value in overrides.items():
            if value is not None and value != []:
                cfg.set(key, value)
        parse_sets(set_ or [], cfg)
        console = _console()
        skipped = cfg.fill_defaults()
        run = Run(cfg, resume=resume is not None, join=join, progress=progress,
                  log=lambda m: console.print(f"[dim]{m}[/dim]"))
    except (SpecError, RunSetupError) as exc:
        _fail(str(exc))
    if run.rank > 0:  # another process of a data-parallel supernet search (torchrun): searches silently
        try:
            run.execute()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            run.close()
        _leave_without_teardown()
    how = {"owner": "resumed" if resume is not None else "new"}.get(run.role, "joined as another worker")
    console.print(f"run directory: {run.run_dir} ({how})")
    if cfg.executor == "local" and cfg.device.startswith("cpu"):  # this process runs the search and trials
        from automl.threads import fit_threads

        fit_threads(lambda m: console.print(f"[yellow]{m}[/yellow]"))
    for comp in skipped:
        quick = (cfg.quick_settings() or {})[comp]
        console.print(f"[dim]note: {comp} options were given, so the quick {comp} settings of "
                      f"{cfg.space.name}+{cfg.controller.name} ({_brief(quick)}) are not used; the "
                      f"{comp}'s own defaults fill the rest[/dim]")
    note = quick_on_dataset_note(cfg) if resume is None else None
    if note is not None:
        console.print(f"[dim]{note}[/dim]")
    if run.role == "owner" and resume is not None and any(v is not None for v in (budget, time_limit, executor, workers, ray_address, trial_cpus,
                                                          trial_gpus, trial_timeout, retries, scheduler)):
        cfg.dump(run.run_dir / "config.yaml")  # the extended budget / new executor is part of the run now
    try:
        summary = run.execute()
    except KeyboardInterrupt:
        run.close()
        console.print(f"\n[yellow]interrupted[/yellow]; continue with: automl search --resume {run.run_dir}")
        raise typer.Exit(130) from None
    run.close()
    _print_summary(console, run, summary)
    if summary.records and not any(r.state == "complete" for r in summary.records):
        first = next((r for r in summary.records if r.error), None)
        print(f"error: no trial succeeded ({len(summary.records)} failed or pruned)"
              + (f"; trial {first.number}: {first.error}" if first else "")
              + f"; details: automl show {run.run_dir} --trial N", file=sys.stderr)
        raise typer.Exit(1)


def _phases(seconds: dict[str, float]) -> str:
    """``: supernet search 66.0 s, trials 88.1 s, reference 15.2 s`` where a phase besides the
    trials took a second or more; empty otherwise."""
    shown = {name: s for name, s in seconds.items() if s >= 1.0}
    if not shown or list(shown) == ["trials"]:
        return ""
    return ": " + ", ".join(f"{name} {s:.1f} s" for name, s in shown.items())


def _print_summary(console, run, summary) -> None:
    from automl.report import ReportError, RunView, plot_front

    done = len(summary.records)
    failed = sum(r.state == "failed" for r in summary.records)
    pruned = sum(r.state == "pruned" for r in summary.records)
    console.print(
        f"[bold]{done}[/bold] trial(s) in {summary.seconds:.1f} s{_phases(summary.phase_seconds)} ({summary.stopped}); "
        f"{failed} failed, " + (f"{pruned} pruned, " if pruned else "")
        + f"{summary.duplicates} duplicate proposal(s) served from the store"
    )
    if summary.best is not None:
        b = summary.best
        o = summary.objectives[0]
        console.print(f"best {o.metric} = {b.metrics[o.metric]:.4g}  (trial {b.number}: {b.arch_str or b.key})")
    if summary.reference is not None:
        from automl.reference import comparison

        console.print(comparison(summary.best, summary.reference, summary.objectives), markup=False)
    if len(summary.objectives) > 1:
        console.print(f"Pareto front: {len(summary.front)} trial(s): {', '.join(str(r.number) for r in summary.front)}")
    if run.run_dir is not None:
        try:
            view = RunView(run.run_dir, run.config, summary.objectives, summary.records)
            png = plot_front(view, run.run_dir / "front.png")
            console.print(f"plot: {png}")
        except ReportError as exc:
            console.print(f"[dim]no plot: {exc}[/dim]")
        console.print(f"next: automl show {run.run_dir}   |   tensorboard --logdir {run.run_dir / 'tb'}")
        if run.needs_model and summary.best is not None:
            saved = (run.run_dir / "trials" / f"{summary.best.number:05d}" / "weights.pt").is_file()
            if saved or run.dataset is not None:  # without weights, export retrains on the run's dataset
                console.print(f"export: automl export {run.run_dir}" + ("" if saved else " --train-epochs 10"))


@app.command()
def show(
    run_dir: Annotated[str, typer.Argument(help="a run directory")],
    objective: Annotated[list[str] | None, typer.Option(help="override the run's objectives")] = None,
    top: Annotated[int, typer.Option(help="trials to list, best first (0 = all, in order)")] = 20,
    trial: Annotated[int | None, typer.Option(help="one trial in full: architecture, proposal, metrics, error and traceback")] = None,
) -> None:
    """Table of trials, the best trial and the Pareto front of a run (never writes into it)."""
    from automl.report import ReportError, open_run, scorings_table, trials_table

    run_path = _run_path(run_dir)
    if top < 0:
        _fail(f"--top must be >= 0 (0 lists all trials), got {top}")
    try:
        view = open_run(run_path, objective)
    except ReportError as exc:
        _fail(str(exc))
    console = _console()
    if trial is not None:
        _show_trial(console, view, trial)
        return
    records = view.records
    if top > 0:
        o = view.objectives[0]
        ok = [r for r in records if r.state == "complete" and o.metric in r.metrics]
        rest = [r for r in records if r not in ok]
        ok.sort(key=lambda r: (r.violation > 0, -o.score(r.metrics[o.metric]), r.number))
        records = (ok + rest)[:top]
    cfg = view.config
    console.print(
        f"[bold]{run_dir}[/bold]: space {cfg.space.name}, controller {cfg.controller.name}, "
        f"{len(view.records)} trial(s) of budget {cfg.budget}; objectives {', '.join(map(str, view.objectives))}"
        + (f"; constraints {', '.join(cfg.constraints)}" if cfg.constraints else "")
    )
    shown = "trials" if top == 0 else (f"the best {len(records)} of {len(view.records)} trials (--top 0 lists all)"
                                       if len(records) < len(view.records) else "trials (best first)")
    console.print(trials_table(view, records, shown))
    b = view.best()
    if b is not None:
        o = view.objectives[0]
        console.print(f"best {o.metric}: {b.metrics[o.metric]:.6g} (trial {b.number}) {b.arch_str or b.key}")
    else:
        console.print("no feasible completed trial yet")
    front = view.front()
    console.print(f"Pareto front ({len(front)}): " + ", ".join(f"#{r.number}" for r in front) + "   (* in the table)")
    if view.scorings:
        console.print(scorings_table(view.scorings, top if top > 0 else len(view.scorings)))
    from automl.reference import comparison, load

    reference = load(run_path)
    if reference is not None:
        console.print(comparison(b, reference, view.objectives), markup=False)


def _show_trial(console, view, number: int) -> None:
    import json

    rec = next((r for r in view.records if r.number == number), None)
    if rec is None:
        numbers = [r.number for r in view.records]
        _fail(f"--trial {number}: the run has no finished trial {number}; its trials: "
              + (f"{min(numbers)}..{max(numbers)}" if numbers else "none yet"))
    console.print(f"[bold]trial {rec.number}[/bold]: {rec.state}, {rec.duration_s:.2f} s")
    console.print(f"architecture: {rec.arch_str or rec.key}")
    console.print(f"arch JSON: {json.dumps(rec.arch)}", markup=False)
    if rec.proposal:
        console.print(f"proposal: {json.dumps(rec.proposal)}", markup=False)
    for k, v in rec.metrics.items():
        console.print(f"  {k} = {v:.6g}")
    if rec.error:
        console.print(f"error: {rec.error}", markup=False)
    if rec.traceback:
        console.print(rec.traceback, markup=False, highlight=False)


@app.command()
def pareto(
    run_dir: Annotated[str, typer.Argument(help="a run directory")],
    out: Annotated[str, typer.Option(help="front.png (matplotlib) or front.html (plotly)")] = "front.png",
    objective: Annotated[list[str] | None, typer.Option(help="1 to 3 objectives (default: the run's)")] = None,
) -> None:
    """Plot the trials and the Pareto front of a run."""
    from automl.report import ReportError, open_run, plot_front

    out_file = _out_file("--out", out)
    try:
        view = open_run(_run_path(run_dir), objective)
        path = plot_front(view, out_file)
    except ReportError as exc:
        _fail(str(exc))
    front = view.front()
    _console().print(f"wrote {path}: {len(view.records)} trial(s), {len(front)} on the front")


@app.command()
def export(
    run_dir: Annotated[str, typer.Argument(help="a run directory")],
    trial: Annotated[str, typer.Option(help="trial number or 'best'")] = "best",
    objective: Annotated[str | None, typer.Option(help="pick 'best' by this METRIC:max|min (default: the first objective)")] = None,
    format_: Annotated[str, typer.Option("--format", help="torchscript, onnx, pt2 or all (comma-separated)")] = "all",
    out: Annotated[str | None, typer.Option(help="output folder (default RUN_DIR/export/trial-N)")] = None,
    train_epochs: Annotated[int | None, typer.Option(help="retrain for N epochs instead of loading saved weights")] = None,
    device: Annotated[str, typer.Option(help="device for retraining")] = "cpu",
    dataset: Annotated[str | None, typer.Option(help="with --train-epochs: train on this data (default: the run's)")] = None,
) -> None:
    """Export a trial's network as TorchScript / ONNX / torch.export artefacts + model_card.json."""
    from automl.devices import check_device
    from automl.export import FORMATS, TOLERANCE, ExportError, export_run
    from automl.objectives import SpecError

    run_path = _run_path(run_dir)
    formats = list(FORMATS) if format_ == "all" else [f.strip() for f in format_.split(",") if f.strip()]
    try:
        check_device(device)
    except ValueError as exc:
        _fail(f"--device: {exc}")
    if train_epochs is not None and train_epochs < 1:
        _fail(f"--train-epochs must be a positive integer, got {train_epochs}")
    out_dir = None
    if out is not None:  # a folder: made where it is missing, refused where a file stands in the way
        from automl.run import blocking_file

        if not out.strip():
            _fail("--out is empty; give a folder for the exported files")
        out_dir = Path(out)
        blocker = blocking_file(out_dir)
        if blocker is not None:
            _fail(f"--out {out}: {blocker} is a file; give a folder for the exported files")
    console = _console()
    try:
        result = export_run(run_path, out_dir, trial=trial, objective=objective, formats=formats,
                            train_epochs=train_epochs, device=device, log=lambda m: console.print(f"[dim]{m}[/dim]"),
                            dataset_spec=dataset)
    except (ExportError, SpecError) as exc:
        _fail(str(exc))
    except Exception as exc:  # an exporter failure: say which and why, in one line
        _fail(f"export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    rec = result.trial
    console.print(f"trial {rec.number} ({rec.arch_str or rec.key}); weights: {result.weights}")
    for fmt, path in result.files.items():
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in result.parity[fmt].items())
        ok = all(v <= TOLERANCE[fmt] for v in result.parity[fmt].values())
        console.print(f"  {fmt:<12} {path}   parity max |diff|: {diffs}  {'ok' if ok else 'ABOVE ' + str(TOLERANCE[fmt])}")
    console.print(f"  model card   {result.out_dir / 'model_card.json'}")


@app.command("latency-table")
def latency_table(
    space: Annotated[str, typer.Option(help="search space name or module:attr")] = "nb201",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    out: Annotated[str, typer.Option(help="JSON file to write")] = "lut.json",
    batch_size: Annotated[int, typer.Option(help="batch size of the measurements")] = 1,
    input_size: Annotated[str | None, typer.Option(help="HxW, e.g. 32x32 (default: the space's task)")] = None,
    in_channels: Annotated[int | None, typer.Option(help="input channels (default: the space's task)")] = None,
    num_classes: Annotated[int | None, typer.Option(help="classes (default: the space's task)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: current)")] = None,
    min_run_time: Annotated[float, typer.Option(help="seconds of timing per entry")] = 0.2,
    set_: Annotated[list[str] | None, typer.Option("--set", help="space option, e.g. space.channels=16")] = None,
) -> None:
    """Measure every block configuration of a space once on a device: a latency look-up table."""
    import dataclasses
    import json

    from rich.progress import Progress

    from automl import registry
    from automl.config import RunConfig
    from evaluators.latency_lut import build_lut

    cfg = RunConfig()
    try:
        cfg.set("space", space)
        parse_sets([s for s in (set_ or []) if s.startswith("space.")], cfg)
        if any(not s.startswith("space.") for s in (set_ or [])):
            _fail("latency-table: --set takes space options only (space.KEY=VALUE)")
        sp = registry.create("space", cfg.space.name, cfg.space.options)
    except (registry.RegistryError, ValueError) as exc:
        _fail(str(exc))
    if "lut" not in sp.offers:
        fits = [n for n in registry.names("space") if "lut" in getattr(registry.resolve("space", n), "offers", ())]
        _fail(f"space {space!r} offers no latency look-up decomposition; spaces that do: {', '.join(fits)}")
    task = sp.default_task
    changes: dict = {}
    if input_size:
        try:
            changes["input_size"] = tuple(int(v) for v in input_size.lower().split("x"))
        except ValueError:
            _fail(f"--input-size {input_size!r}: expected HxW, e.g. 32x32")
        if len(changes["input_size"]) != 2 or min(changes["input_size"]) < 1:
            _fail(f"--input-size {input_size!r}: expected HxW, e.g. 32x32")
    for option, value in (("--in-channels", in_channels), ("--num-classes", num_classes), ("--threads", threads),
                          ("--batch-size", batch_size)):
        if value is not None and value < 1:
            _fail(f"{option} {value}: expected an integer >= 1")
    if not min_run_time > 0:
        _fail(f"--min-run-time {min_run_time}: expected a number of seconds > 0")
    out_file = _out_file("--out", out)
    if in_channels is not None:
        changes["in_channels"] = in_channels
    if num_classes is not None:
        changes["num_classes"] = num_classes
    task = dataclasses.replace(task, **changes)
    from automl.devices import check_device

    try:
        check_device(device)
    except ValueError as exc:
        _fail(f"--device: {exc}")
    try:
        with Progress(transient=True) as bar:
            job = bar.add_task("measuring", total=None)
            table = build_lut(sp, task, device=device, batch_size=batch_size, threads=threads,
                              min_run_time=min_run_time,
                              progress=lambda i, n, key: bar.update(job, completed=i, total=n, description=key[:60]))
    except (RuntimeError, ValueError) as exc:  # e.g. out of memory at a huge --input-size
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _fail(f"latency-table: measuring {sp.name} at input {task.in_channels}x{'x'.join(map(str, task.input_size))} "
              f"failed: {first[:300]}")
    table["options"] = cfg.space.options
    out_file.write_text(json.dumps(table, indent=2) + "\n")
    _console().print(f"wrote {out_file}: {len(table['entries'])} entries for {sp.name} on {device} "
                     f"(batch {batch_size}, input {task.in_channels}x{'x'.join(map(str, task.input_size))})")


def _listing(kind: str) -> None:
    from rich.table import Table

    from automl import registry

    table = Table(title=f"{kind}s")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description")
    table.add_column("capabilities")
    for name in registry.names(kind):  # type: ignore[arg-type]
        e = registry.describe(kind, name)  # type: ignore[arg-type]
        table.add_row(e.name, e.description, e.detail)
    _console().print(table)


@app.command()
def spaces(
    name: Annotated[str | None, typer.Argument(help="a space name: show its decisions, presets and blocks")] = None,
) -> None:
    """List search spaces and the capabilities they offer, or one space in detail."""
    if name is None:
        _listing("space")
        return
    from automl import registry

    if name not in registry.names("space"):
        _fail(f"unknown space {name!r}; known spaces: {', '.join(registry.names('space'))}")
    _console().print(_space_detail(registry.create("space", name)))


def _space_detail(space: Any) -> Any:
    """Rich renderables for ``automl spaces NAME``: decisions, presets, catalogue blocks."""
    from rich.console import Group
    from rich.table import Table

    size = space.size()
    parts: list[Any] = [f"[bold]{space.name}[/bold]: {space.description}",
                        f"offers: {', '.join(sorted(space.offers)) or 'sample/mutate only'}"
                        + (f"; {size:,} architectures" if size else "")]
    if space.decisions():
        table = Table(title="decisions")
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("choices")
        for d in space.decisions():
            table.add_row(d.name, ", ".join(map(str, d.choices)))
        parts.append(table)
    if space.presets():
        table = Table(title="presets (start a search from them: --set controller.initial=NAME,...)")
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("architecture")
        for preset in sorted(space.presets()):
            table.add_row(preset, space.describe(space.preset(preset)))
        parts.append(table)
    else:
        parts.append("presets: none")
    blocks = sorted(space.block_choices())
    parts.append(f"catalogue blocks it can choose: {', '.join(blocks) if blocks else 'none'}")
    return Group(*parts)


@app.command()
def controllers() -> None:
    """List controllers and what they require of a space."""
    _listing("controller")


@app.command()
def evaluators() -> None:
    """List evaluators and the metrics they provide."""
    _listing("evaluator")


@app.command()
def blocks(
    name: Annotated[str | None, typer.Argument(help="a block name: show its options")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind: conv, attention, context, decoder, video")] = None,
) -> None:
    """List the block catalogue (name, kind, paper, params at 64->64, ONNX), or one block."""
    from rich.table import Table

    from automl import catalogue
    from search_spaces.blocks import KINDS, block_names

    if name is not None:
        if name not in block_names():
            _fail(f"unknown block {name!r}; known blocks: {', '.join(block_names())}")
        print(catalogue.describe_block(name))
        return
    if kind is not None and kind not in KINDS:
        _fail(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    table = Table(title="block catalogue")
    for col, kw in (("name", {"no_wrap": True, "style": "bold"}), ("kind", {"no_wrap": True}), ("paper", {}),
                    ("params", {"justify": "right", "no_wrap": True}), ("ONNX", {})):
        table.add_column(col, **kw)
    shown = [r for r in catalogue.rows() if kind is None or r.kind == kind]
    for r in shown:
        table.add_row(r.name, r.kind, r.paper, f"{r.params:,}", r.onnx)
    console = _console()
    console.print(table)
    console.print(f"{len(shown)} block(s); details: automl blocks NAME")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors (ours and the argument parser's) become one line
    on stderr and exit code 2, never a traceback or a box."""
    try:
        code = app(args=argv, prog_name="automl", standalone_mode=False)
    except UserError as exc:
        _print_error(f"error: {exc}")
        raise SystemExit(2) from None
    except typer.TyperException as exc:  # the parser: unknown option, bad value, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `automl`: the help was printed
            raise SystemExit(2) from None
        _print_error(f"error: {_usage_line(exc)}")
        raise SystemExit(2) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)


def _leave_without_teardown() -> None:
    """End a torchrun worker (rank > 0) whose search is done, skipping the interpreter's teardown:
    there a gloo thread of torch's can abort the process ("terminate called without an active
    exception", SIGABRT; seen about once in ten launches on a 2-core CPU), and torchrun then fails
    the whole launch after a finished search. A worker writes no file and holds nothing to close."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# Under torchrun, rank 0 reports an error all processes meet; the others wait this long first
# (torchrun stops them when rank 0 exits) and so speak only when rank 0 did not fail.
WORKER_ERROR_DELAY_S = 2.0


def _print_error(line: str) -> None:
    """``line`` on stderr; from a torchrun process of rank > 0 after a delay (see above)."""
    rank = launched_rank()
    if rank > 0:
        time.sleep(WORKER_ERROR_DELAY_S)
        line = f"{line} (torchrun process {rank})"
    print(line, file=sys.stderr)


def _usage_line(exc: typer.TyperException) -> str:
    """A parser error as one line: what is wrong, then what the command accepts."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message or "no command given; run automl --help"
    command = ctx.command
    if hasattr(command, "list_commands") and type(exc).__name__ == "UsageError":
        return f"{message}; commands: {', '.join(command.list_commands(ctx))}"
    usage = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), " ".join(ctx.get_usage().split()).removeprefix("Usage: "))
    if type(exc).__name__ == "NoSuchOption":
        options = sorted(o for p in command.params for o in p.opts if o.startswith("--"))
        return f"{message}; {ctx.command_path} takes: {', '.join(options)}"
    return f"{message} (usage: {usage}; see {ctx.command_path} --help)"


if __name__ == "__main__":
    main()
