"""Per-epoch reporting of the search: metrics, the log line, TensorBoard, a rich progress bar.

TensorBoard (any writer with ``add_scalar`` / ``add_image``, e.g. ``SummaryWriter``) gets the
losses and accuracies, the learning rate, τ and E[LAT] when relevant, and the architecture
distributions: for every table of ``supernet.arch_distributions()`` one scalar per op (its
mean probability over the table's rows, e.g. over the 14 edges of a DARTS cell) and the whole
table as a grey-scale image (row = edge or node, column = op; white = probability 1).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from controllers.oneshot.bilevel import StepStats

PIXELS = 8  # image pixels per table cell


class Meter:
    """Sums of loss·count, correct and count over the steps of an epoch (kept on the device)."""

    def __init__(self) -> None:
        self.loss_sum: torch.Tensor | float = 0.0
        self.correct: torch.Tensor | float = 0.0
        self.count: torch.Tensor | float = 0.0
        self.steps = 0

    def add(self, s: StepStats) -> None:
        self.loss_sum = self.loss_sum + s.loss * s.count
        self.correct = self.correct + s.correct
        self.count = self.count + s.count
        self.steps += 1

    def summary(self) -> tuple[float, float]:
        """(mean loss, accuracy); NaN when no step was taken."""
        count = float(self.count)
        if not self.steps or count == 0:
            return math.nan, math.nan
        return float(self.loss_sum) / count, float(self.correct) / count


def op_labels(supernet: Any, table: str, width: int) -> Sequence[str]:
    """Column names of a distribution table: ``supernet.op_names`` (a list, or a dict per
    table) when the supernet provides them, else ``op0, op1, ...``."""
    names = getattr(supernet, "op_names", None)
    if isinstance(names, Mapping):
        names = names.get(table)
    if isinstance(names, (list, tuple)) and len(names) == width:
        return [str(n) for n in names]
    return [f"op{i}" for i in range(width)]


def write_tensorboard(writer: Any, supernet: Any, metrics: Mapping[str, float], epoch: int) -> None:
    """Scalars of ``metrics`` and the α/β distributions at step ``epoch``."""
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(f"search/{key}", value, epoch)
    for table, probs in supernet.arch_distributions().items():
        p = probs.detach().float().cpu()
        if p.dim() == 1:
            p = p.unsqueeze(0)
        p = p.reshape(-1, p.shape[-1])
        for label, value in zip(op_labels(supernet, table, p.shape[-1]), p.mean(0).tolist(), strict=True):
            writer.add_scalar(f"arch/{table}/{label}", value, epoch)
        if hasattr(writer, "add_image"):
            img = p.clamp(0, 1).repeat_interleave(PIXELS, 0).repeat_interleave(PIXELS, 1).unsqueeze(0)
            writer.add_image(f"arch/{table}", img, epoch, dataformats="CHW")


# Below this mean margin a table of α/β has barely left uniform (see decidedness).
UNDECIDED = 0.05


def decidedness(distributions: Mapping[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Per table of ``arch_distributions()``: (mean largest probability per row, mean uniform
    probability per row) over rows that hold a distribution (valid entries: > 0)."""
    out = {}
    for name, table in distributions.items():
        rows = table.detach().float().reshape(-1, table.shape[-1]) if table.dim() > 1 else table.detach().float()[None]
        valid = rows > 0
        keep = valid.sum(-1) > 1
        if not bool(keep.any()):
            continue
        top = rows[keep].max(-1).values
        uniform = 1.0 / valid[keep].sum(-1).float()
        out[name] = (float(top.mean()), float(uniform.mean()))
    return out


def undecided_warning(distributions: Mapping[str, torch.Tensor], threshold: float = UNDECIDED) -> str | None:
    """A warning naming every table whose mean margin ``(max p - uniform) / (1 - uniform)`` is
    below ``threshold``: what the derived architecture takes from such a table (the cell's
    operations, the network path) reflects the initial noise, not the data."""
    stats = decidedness(distributions)
    undecided = {k: v for k, v in stats.items() if (v[0] - v[1]) / (1 - v[1]) < threshold}
    if not undecided:
        return None
    parts = ", ".join(f"{k}: largest p {top:.3f} on average vs {u:.3f} uniform" for k, (top, u) in undecided.items())
    if len(undecided) == len(stats):
        subject, part = "the architecture parameters are", "the derived architecture reflects"
    else:
        names = " and ".join(undecided)
        subject, part = f"the architecture parameters {names} are", f"what the derived architecture takes from {names} reflects"
    return (f"darts: WARNING {subject} still undecided ({parts}); {part} their initial noise more than the data "
            f"— search longer (epochs), raise arch_lr or shorten warmup_epochs")


def format_line(epoch: int, epochs: int, metrics: Mapping[str, float]) -> str:
    """``epoch 3/50  train loss 1.234 acc 45.6%  val loss ... acc ...  lr 0.0241 ...``."""
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for split in ("train", "val"):
        loss, acc = metrics.get(f"{split}_loss", math.nan), metrics.get(f"{split}_acc", math.nan)
        parts.append(f"{split} loss {loss:.4f} acc {100 * acc:.1f}%")
    parts.append(f"lr {metrics['lr']:.4g}")
    for key, fmt in (("tau", "τ {:.3g}"), ("expected_latency_ms", "E[LAT] {:.3g} ms"), ("decoded_skips", "skips {:.0f}"),
                     ("derived_held_epochs", "arch held {:.0f} ep")):
        if key in metrics:
            parts.append(fmt.format(metrics[key]))
    if not metrics.get("arch_updated", 1.0):
        parts.append("(α warm-up)")
    return "  ".join(parts)


class Progress:
    """Where the per-epoch line goes: ``log(line)`` when given, else a rich progress bar on a
    terminal (nothing when stderr is not a terminal; notices then become warnings)."""

    def __init__(self, log: Callable[[str], Any] | None, epochs: int, start: int, label: str = "darts search") -> None:
        self.log = log
        self._bar: Any = None
        if log is None and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.description}"),
                                     console=Console(stderr=True), transient=False)
            self._task = self._bar.add_task("", total=epochs, completed=start)
            self._bar.start()

    def message(self, line: str) -> None:
        """A notice the user must see: to ``log``, the bar's console, or ``warnings.warn``."""
        if self.log is not None:
            self.log(line)
        elif self._bar is not None:
            self._bar.console.print(line)
        else:
            warnings.warn(line, stacklevel=3)

    def epoch(self, line: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=line.split("  ", 1)[-1])
        elif self.log is not None:
            self.log(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
