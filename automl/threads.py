"""torch's CPU threads on a busy machine: as many as there are idle cores at the start.

torch runs each CPU op on all the cores it was given, and its threads wait for each other at
the end of every op. When another process keeps one of those cores busy, every op waits for the
thread that shares it: on the 2-core CPU a training step of the zero-flag ``seg-hierarchical``
demo's found net took 3.8 s on 2 threads beside one busy process, against 0.10 s on 1 thread
beside it and 0.085 s on 2 threads alone (``benchmarks/busy_threads.py``; the search step: 0.59 s
alone on 2 threads, 0.66 s on 1). :func:`fit_threads` therefore measures, once at the start of a run, how many of this
process's cores the rest of the machine leaves idle (``/proc/stat`` over 0.2 s) and gives torch
no more threads than that. ``automl search`` calls it for CPU runs of the local executor (under
Ray each trial has its ``--trial-cpus`` threads). It does nothing where ``OMP_NUM_THREADS``
chooses the count (the user's choice; ``torchrun`` sets it) or where ``/proc/stat`` cannot be
read. Load that starts later is not followed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

INTERVAL = 0.2  # seconds of /proc/stat sampling
STAT = "/proc/stat"


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]] | None:
    """``cpu -> (idle + iowait, total)`` jiffies of ``cpus`` from /proc/stat, or None."""
    try:
        with open(STAT) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out: dict[int, tuple[int, int]] = {}
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        out[int(name[3:])] = (values[3] + values[4], sum(values))
    return out if set(out) == cpus else None


def idle_cpus(interval: float = INTERVAL) -> float | None:
    """How many of this process's CPUs (its affinity) sat idle over ``interval`` seconds, while
    this process slept; None where /proc/stat is not readable."""
    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
    if not cpus:
        return None
    before = _cpu_times(cpus)
    if before is None:
        return None
    time.sleep(interval)
    after = _cpu_times(cpus)
    if after is None:
        return None
    idle = 0.0
    for cpu in cpus:
        d_idle, d_total = after[cpu][0] - before[cpu][0], after[cpu][1] - before[cpu][1]
        idle += d_idle / d_total if d_total > 0 else 1.0
    return idle


def fit_threads(log: Callable[[str], object], idle: float | None = None) -> int | None:
    """Lower torch's intra-op threads to the idle CPUs (at least 1) when fewer than it has, and
    say so; the new count, or None when nothing changed. ``idle``: a measurement to use
    (:func:`idle_cpus` otherwise)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    have = torch.get_num_threads()
    if have <= 1:
        return None
    idle = idle_cpus() if idle is None else idle
    if idle is None:
        return None
    usable = max(1, int(idle + 0.5))
    if usable >= have:
        return None
    torch.set_num_threads(usable)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else have
    log(f"note: other work keeps {max(cpus - idle, 0.0):.1f} of this process's {cpus} CPUs busy; torch runs on {usable} "
        f"thread(s) instead of {have} (its threads wait for each other at every op, which beside other "
        "work can make a step many times slower); OMP_NUM_THREADS=N chooses the count")
    return usable
