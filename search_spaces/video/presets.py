"""Known video networks as points of the ``video`` space."""

from __future__ import annotations

from typing import Any


def _arch(block: str, tstrides: tuple[int, int, int], pathway: str, alpha: int = 8, beta: float = 0.125,
          head: str = "pool") -> dict[str, Any]:
    out: dict[str, Any] = {f"block_{s}": block for s in (1, 2, 3)}
    out.update({f"tstride_{s}": t for s, t in zip((1, 2, 3), tstrides, strict=True)})
    out.update({"insert_2": "none", "insert_3": "none", "head": head, "pathway": pathway, "alpha": alpha, "beta": beta})
    return out


I3D_LIKE = _arch("inflated_conv3d", (1, 2, 2), "single")
"""Carreira & Zisserman, Quo Vadis, Action Recognition? (I3D, CVPR 2017): inflated 3D convs, temporal pooling, pooled head."""

SLOWFAST_LIKE = _arch("inflated_conv3d", (1, 1, 1), "slowfast", alpha=4, beta=0.125)
"""Feichtenhofer et al., SlowFast Networks for Video Recognition (ICCV 2019): β 1/8, time-strided laterals;
α 4 instead of the paper's 8 because the space's clips have 8 frames, not 64: α 8 would leave the slow
pathway a single frame (the paper's slow pathway sees 4)."""

PRESETS: dict[str, dict[str, Any]] = {"i3d-like": I3D_LIKE, "slowfast-like": SLOWFAST_LIKE}
