"""Evaluators for the engine and executor tests (importable by Ray workers and subprocesses)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import ClassVar

from evaluators.base import Evaluator, TrialPruned


def conv_score(arch) -> float:
    return float(sum(str(v).startswith("nor_conv") for v in arch.values()))


class Score(Evaluator):
    """Counts conv ops of an NB201 arch; fails on every ``fail_every``-th trial number.

    ``flaky``: the first attempt of each trial fails, a retry succeeds (attempts are counted in
    files under ``marks``, so it works across processes). ``sleep``: seconds per trial.
    ``kill_first``: the first attempt of trial ``kill_first`` kills its own process.
    """

    name: ClassVar[str] = "score"
    needs_model: ClassVar[bool] = False
    provides: ClassVar[tuple[str, ...]] = ("score", "trial")

    def __init__(self, fail_every: int = 0, sleep: float = 0.0, flaky: bool = False, marks: str | None = None,
                 kill_first: int | None = None, hang_every: int = 0) -> None:
        self.fail_every, self.sleep, self.flaky = fail_every, sleep, flaky
        self.marks = marks
        self.kill_first = kill_first
        self.hang_every = hang_every

    def _attempt(self, number: int) -> int:
        folder = Path(self.marks)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.glob(f"{number}-*")))
        (folder / f"{number}-{n}-{os.getpid()}").touch()
        return n

    def evaluate(self, arch, model, ctx) -> dict[str, float]:
        attempt = self._attempt(ctx.trial_number) if self.marks else 0
        if self.kill_first is not None and ctx.trial_number == self.kill_first and attempt == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.hang_every and ctx.trial_number % self.hang_every == self.hang_every - 1:
            end = time.monotonic() + 60
            while time.monotonic() < end:  # a Python loop: the timeout lands here
                time.sleep(0.01)
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail_every and ctx.trial_number % self.fail_every == 0:
            raise RuntimeError(f"injected failure in trial {ctx.trial_number}")
        if self.flaky and attempt == 0:
            raise RuntimeError("flaky: first attempt fails")
        return {"score": conv_score(arch), "trial": float(ctx.trial_number)}


class Curve(Evaluator):
    """Reports a learning curve (score · (step+1)/steps) for the pruner / ASHA; stops when told."""

    name: ClassVar[str] = "curve"
    needs_model: ClassVar[bool] = False
    provides: ClassVar[tuple[str, ...]] = ("score",)

    def __init__(self, steps: int = 9, pause: float = 0.0) -> None:
        self.steps, self.pause = steps, pause

    def evaluate(self, arch, model, ctx) -> dict[str, float]:
        final = conv_score(arch)
        for step in range(self.steps):
            if self.pause:
                time.sleep(self.pause)
            if ctx.report(step + 1, final * (step + 1) / self.steps):
                raise TrialPruned(f"at step {step + 1}")
        return {"score": final}
