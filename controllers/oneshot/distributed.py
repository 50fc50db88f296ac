"""Data-parallel supernet search: several processes (``torchrun``) share one set of α/β.

``torchrun --nproc-per-node N -m automl.cli search ...`` starts N processes with the same
configuration, data and seed. Each draws the same global batch indices from the same seeded
streams, takes its contiguous shard (``batch_size / N`` samples), and after every backward pass
the weight and the α/β gradients are averaged over the processes in one all-reduce (weighted by
the shard's counted targets, so segmentation shards with ignored pixels add up to the gradient
of the global batch). The optimisers then take identical steps, so every process holds the
same weights and α/β and derives the same architecture (checked at the end).

BatchNorm normalises each shard with its own batch statistics (as ``nn.DataParallel`` did in
the PC-DARTS ImageNet search): ``nn.SyncBatchNorm`` refuses CPU tensors, and the supernets'
fused search ops call the batch-norm kernels directly. The search therefore equals a single
process whose batch is cut into N "ghost" batches for BatchNorm; without BatchNorm it equals
the single-process search with the global batch (to float rounding). Running statistics are
averaged over the processes at each epoch's end (exact for the means), so the checkpoint does
not depend on the process that wrote it.

Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here is used. Backend: gloo on the
CPU, NCCL on CUDA with ``cuda:LOCAL_RANK`` per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from automl.launch import launched_world
from controllers.oneshot.batches import Augmenter, Batch


def check_batch(batch_size: int, world: int | None = None) -> None:
    """ValueError (one line) unless ``batch_size`` splits evenly over the processes."""
    world = launched_world() if world is None else world
    if world > 1 and batch_size % world:
        raise ValueError(f"darts: batch_size {batch_size} does not split over {world} processes (torchrun "
                         f"--nproc-per-node or --executor ray --workers); give a multiple of {world}")


def process_device(device: str | torch.device) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` for any CUDA device, else ``device``."""
    device = torch.device(device)
    if device.type != "cuda":
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


class Replicas:
    """This process's part of a data-parallel search: its rank, the world size, its device and
    the collectives the search needs. :meth:`join` makes one (or None outside ``torchrun``)."""

    def __init__(self, device: torch.device, *, owns_group: bool) -> None:
        self.device = device
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.owns_group = owns_group

    @classmethod
    def join(cls, device: str | torch.device) -> Replicas | None:
        """Join the process group of a ``torchrun`` launch (created here unless it exists);
        None with a single process."""
        if launched_world() == 1 and not (dist.is_available() and dist.is_initialized()):
            return None
        dev = process_device(device)
        owns = not dist.is_initialized()
        if owns:
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dist.get_world_size() == 1:
            if owns:
                dist.destroy_process_group()
            return None
        return cls(dev, owns_group=owns)

    def close(self) -> None:
        """Leave the process group when :meth:`join` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # -- data ---------------------------------------------------------------------------------
    def shard(self, n: int) -> slice:
        """This process's contiguous part of a global batch of ``n``."""
        check_batch(n, self.world)
        size = n // self.world
        return slice(self.rank * size, (self.rank + 1) * size)

    def local_batch(self, idx: torch.Tensor, fetch: Callable[[torch.Tensor], Batch], augment: Augmenter) -> Batch:
        """This process's shard of the global batch ``idx``. With augmentation the whole global
        batch is augmented (the random draws of a single process), then cut; else only the
        shard is fetched."""
        part = self.shard(len(idx))
        if not augment.enabled:
            return fetch(idx[part])
        batch = augment(fetch(idx))
        return Batch(batch.images[part], batch.targets[part])

    # -- collectives --------------------------------------------------------------------------
    def average_(self, tensors: Sequence[torch.Tensor | None], weight: torch.Tensor | float = 1.0) -> None:
        """Each tensor := Σ_p weight_p·tensor_p / Σ_p weight_p over the processes, in place, in one
        all-reduce. None entries stay None (every process has the same pattern)."""
        present = [t for t in tensors if t is not None]
        if not present:
            return
        w = torch.as_tensor(weight, dtype=torch.float32, device=present[0].device).reshape(1)
        flat = torch.cat([*(t.detach().reshape(-1).float() * w for t in present), w])
        dist.all_reduce(flat)
        flat = flat[:-1] / flat[-1]
        offset = 0
        with torch.no_grad():
            for t in present:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def average_grads(self, params: Sequence[torch.Tensor], weight: torch.Tensor | float = 1.0) -> None:
        """Average the ``.grad`` of ``params`` over the processes (see :meth:`average_`)."""
        self.average_([p.grad for p in params], weight)

    def all_true(self, flag: torch.Tensor | bool) -> bool:
        """Whether ``flag`` holds in every process (the same answer everywhere)."""
        t = torch.tensor([int(bool(flag))], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def sum_meters(self, *meters: Any) -> None:
        """Sum the loss, correct and count totals of per-epoch :class:`~.report.Meter` s."""
        fields = ("loss_sum", "correct", "count")
        t = torch.tensor([[float(getattr(m, f)) for f in fields] for m in meters], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t)
        for m, row in zip(meters, t.tolist(), strict=True):
            for f, v in zip(fields, row, strict=True):
                setattr(m, f, v)

    def average_running_stats(self, module: torch.nn.Module) -> None:
        """Average the BatchNorm running means and variances over the processes."""
        stats = [b for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var"))]
        self.average_(stats)

    def broadcast_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's values."""
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (picklable) in every process."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_rng(self) -> None:
        """Rank 0's torch CPU and device generator states in every process (GDAS' Gumbel draws)."""
        cuda = self.device.type == "cuda"
        state = self.broadcast_object({"cpu": torch.get_rng_state(),
                                       "device": torch.cuda.get_rng_state(self.device) if cuda else None})
        torch.set_rng_state(state["cpu"])
        if cuda:
            torch.cuda.set_rng_state(state["device"], self.device)

    def align(self, module: torch.nn.Module) -> None:
        """Start every process from rank 0's parameters, buffers and generator states."""
        self.broadcast_([*module.parameters(), *module.buffers()])
        self.sync_rng()

    def same(self, obj: Any) -> bool:
        """Whether every process holds an equal ``obj`` (picklable, compared with ==)."""
        objs: list[Any] = [None] * self.world
        dist.all_gather_object(objs, obj)
        return all(o == objs[0] for o in objs)
