"""A darts search run by a data-parallel group of processes that an executor starts (Ray Train
under ``--executor ray --workers N``), instead of ``torchrun``.

The driver pickles a :class:`GroupSearch` (the bound controller with its supernet, the dataset by
reference, the latest checkpoint); every member joins the process group the executor set up
(:class:`~controllers.oneshot.distributed.Replicas`), so all keep one set of weights and α/β and
derive the same architecture. Rank 0 checkpoints every epoch (into the run's ``supernet/`` folder
when that path exists where it runs, as on one machine; else in a temporary folder it removes
afterwards), passes its epoch lines back to the driver's log, and returns the final checkpoint's
bytes; the driver stores them and derives from them like from a resumed search that has nothing
left to train.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from controllers.oneshot import checkpoint as ckpt
from controllers.oneshot.base import SearchData


@dataclass
class GroupSearch:
    """What each member needs: the controller (bound, with its supernet), the dataset reference
    (``evaluators.data.DatasetRef``) and parts, the device, and the driver's checkpoint (path and
    bytes, None before the first epoch)."""

    controller: Any
    dataset: Any
    parts: tuple[str, ...]
    device: str
    checkpoint_path: str | None
    checkpoint: bytes | None


def run_group_search(job: GroupSearch, log: Callable[[str], Any] | None = None) -> bytes | None:
    """One member's search; rank 0 returns the final checkpoint (other ranks None) and passes its
    epoch lines to ``log``."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    folder, scratch = None, False
    if rank == 0:
        shared = Path(job.checkpoint_path).parent if job.checkpoint_path else None
        scratch = shared is None or not shared.parent.is_dir()
        folder = Path(tempfile.mkdtemp(prefix="automl-darts-")) if scratch else shared
        path = ckpt.path_in(folder)
        assert path is not None
        if job.checkpoint is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(job.checkpoint)
    try:
        data = SearchData.from_dataset(job.dataset.load(), job.parts)
        c = job.controller
        c.search(c.supernet, data, device=job.device, checkpoint_dir=folder, log=log if rank == 0 else None)
        if rank != 0:
            return None
        final = ckpt.path_in(folder)
        assert final is not None
        return final.read_bytes()
    finally:
        if scratch and folder is not None:  # the bytes go back to the driver; the folder is not needed
            shutil.rmtree(folder, ignore_errors=True)
