"""How this process was launched: its rank and the process count under ``torchrun`` (read from
the environment torchrun sets; 0 and 1 outside it). A leaf: the run loop and the data-parallel
controllers read it without importing each other."""

from __future__ import annotations

import os


def launched_world() -> int:
    """The number of processes ``torchrun`` started (1 outside it)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched_rank() -> int:
    """This process's rank under ``torchrun`` (0 outside it)."""
    if launched_world() == 1:
        return 0
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0
