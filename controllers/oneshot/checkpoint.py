"""The search checkpoint ``checkpoint_dir/supernet.pt``, written atomically after every epoch.

It holds everything a resumed search needs to continue exactly where it stopped: the supernet
state (weights, α/β, BatchNorm statistics), both optimisers, the number of finished epochs,
the split index sets, the states of the two batch streams, the RNG states (torch, CUDA, numpy
of the controller, Python ``random``) and the per-epoch history. ``fingerprint`` guards against
resuming with different options or data.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FILENAME = "supernet.pt"
VERSION = 1


def rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state,
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], np_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def path_in(checkpoint_dir: str | os.PathLike[str] | None) -> Path | None:
    return None if checkpoint_dir is None else Path(checkpoint_dir) / FILENAME


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temporary file, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"version": VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None when absent); a mismatching fingerprint is an error."""
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("version") != VERSION:
        raise ValueError(f"darts: {path} has checkpoint version {payload.get('version')!r}, expected {VERSION}")
    saved = payload.get("fingerprint", {})
    diff = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if diff:
        raise ValueError(f"darts: {path} was written by a search with different {', '.join(diff)}; "
                         f"use another checkpoint_dir or delete it")
    return payload
