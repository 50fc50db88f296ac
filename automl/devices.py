"""Checking a ``--device`` string before anything runs or is written."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """The devices this machine can run on, for error messages."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(spec: str) -> str:
    """``spec`` when torch can place a tensor there, else ValueError naming the accepted devices."""
    accepted = ", ".join(available_devices())
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {spec!r} is not a device name; accepted here: {accepted}") from None
    if device.type == "meta":
        raise ValueError(f"device {spec!r} holds no data; accepted here: {accepted}")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, AttributeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0][:120]
        raise ValueError(f"device {spec!r} is not available ({reason}); accepted here: {accepted}") from None
    return spec
