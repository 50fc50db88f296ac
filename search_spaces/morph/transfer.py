"""Function-preserving weight transfer from a parent to a morphed child, matched by layer id.

No operation history is needed. The invariant every morphism of
:mod:`search_spaces.morph.morphisms` keeps: channel ``j`` of a child tensor equals channel
``j mod c`` of the same tensor in the parent (``c`` its parent channel count). So, for a layer
in both (same id, type and kernel):

* output channels ``j >= c`` are copies of channel ``j mod c`` (conv filters and bias, BN
  weight/bias/running statistics, merge projections);
* input channels beyond the parent's (per input, for a concat's two parts) get zero weights, so
  every linear reader (conv, merge projection, head) ignores the copies.

A layer new in the child gets an identity initialisation: conv ``W[j, j mod c_in]`` = 1 at the
kernel centre, zero bias; bn weight 1, bias 0, running mean 0, running variance ``1 - eps`` (so
that eval mode is exactly the identity); add projection zero; concat 1x1 conv ``[I | 0]``.
Uniform noise of ``noise`` x the weight range (range 1 for new layers) is added to the new
weights of conv / linear / projection tensors -- copied filters, zero inputs, identity kernels --
to break the symmetry; biases and BN are exact. A layer whose shapes do not map (not a morph of
the parent) keeps the child's own initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.morph.arch import by_id, channels

Segments = list[tuple[int, int]]  # (child size, parent size) per part of a dimension


class _NoMap(Exception):
    """The parent tensor does not map onto the child's shape."""


def _grow(t: torch.Tensor, new: torch.Tensor, dim: int, segments: Segments,
          copy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow ``dim`` of ``t`` part by part: copies (``j mod parent``) or zeros; ``new`` marks the
    grown entries."""
    if sum(p for _, p in segments) != t.shape[dim]:
        raise _NoMap
    parts, marks, start = [], [], 0
    for child_n, parent_n in segments:
        if child_n < parent_n or parent_n < 1:
            raise _NoMap
        part, mark = t.narrow(dim, start, parent_n), new.narrow(dim, start, parent_n)
        start += parent_n
        extra = list(t.shape)
        extra[dim] = child_n - parent_n
        if copy:
            part = part.index_select(dim, torch.arange(child_n) % parent_n)
        else:
            part = torch.cat([part, t.new_zeros(extra)], dim)
        parts.append(part)
        marks.append(torch.cat([mark, torch.ones(extra, dtype=torch.bool)], dim))
    return torch.cat(parts, dim), torch.cat(marks, dim)


def _noisy(t: torch.Tensor, mask: torch.Tensor, scale: float, gen: torch.Generator) -> torch.Tensor:
    """``t`` plus uniform noise in ``[-scale/2, scale/2]`` where ``mask`` is set."""
    if scale <= 0 or not bool(mask.any()):
        return t
    noise = (torch.rand(t.shape, generator=gen, dtype=torch.float64) - 0.5) * scale
    return t + noise.to(t.dtype) * mask


def _io(layer: Mapping[str, Any], ch: Mapping[int, int]) -> tuple[int, list[int]]:
    """Output channels and the channel counts of the input parts its weight reads."""
    ins = layer["inputs"]
    c_main = ch[ins[0]]
    if layer["type"] == "add":
        return c_main, [ch[ins[1]]]
    if layer["type"] == "concat":
        return c_main, [c_main, ch[ins[1]]]
    if layer["type"] == "conv":
        return layer["filters"], [c_main]
    return c_main, [c_main]  # bn, head (its output is the classes: never grown)


def _inherit(child: Mapping[str, Any], parent: Mapping[str, Any], cc: Mapping[int, int], pc: Mapping[int, int],
             prefix: str, parent_state: Mapping[str, Any], own: Mapping[str, torch.Tensor], noise: float,
             gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The child's tensors of one layer from the parent's (raises :class:`_NoMap`)."""
    c_out, c_ins = _io(child, cc)
    p_out, p_ins = _io(parent, pc)
    out_seg = [(c_out, p_out)] if child["type"] != "head" else None
    in_seg = [(c, p) for c, p in zip(c_ins, p_ins, strict=True)]
    result: dict[str, torch.Tensor] = {}
    for key, target in own.items():
        if not key.startswith(prefix):
            continue
        source = parent_state.get(key)
        if not isinstance(source, torch.Tensor):
            raise _NoMap
        t = source.detach().to("cpu", target.dtype if target.is_floating_point() else source.dtype)
        mask = torch.zeros(t.shape, dtype=torch.bool)
        name = key[len(prefix):]
        if name == "num_batches_tracked":
            pass
        elif child["type"] == "bn":
            t, mask = _grow(t, mask, 0, in_seg, copy=True)
        else:
            if out_seg is not None:
                t, mask = _grow(t, mask, 0, out_seg, copy=True)
            if name == "weight":
                t, mask = _grow(t, mask, 1, in_seg, copy=False)
                t = _noisy(t, mask, noise * float(source.max() - source.min()), gen)
        if tuple(t.shape) != tuple(target.shape):
            raise _NoMap
        result[key] = t
    return result


def _fresh(layer: Mapping[str, Any], prefix: str, own: Mapping[str, torch.Tensor], module: nn.Module | None,
           noise: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Identity initialisation of a layer new in the child (empty for the head: it keeps its own)."""
    kind = layer["type"]
    out: dict[str, torch.Tensor] = {}
    if kind == "bn":
        eps = float(getattr(module, "eps", 1e-5))
        out[prefix + "weight"] = torch.ones_like(own[prefix + "weight"])
        out[prefix + "bias"] = torch.zeros_like(own[prefix + "bias"])
        out[prefix + "running_mean"] = torch.zeros_like(own[prefix + "running_mean"])
        out[prefix + "running_var"] = torch.full_like(own[prefix + "running_var"], 1.0 - eps)
    elif kind in ("conv", "add", "concat"):
        w = torch.zeros_like(own[prefix + "weight"])
        if kind != "add":
            c_out, c_in, k = w.shape[0], w.shape[1], w.shape[-1]
            c_id = c_out if kind == "concat" else c_in  # concat: identity on the main part only
            rows = torch.arange(c_out)
            w[rows, rows % c_id, k // 2, k // 2] = 1.0
        out[prefix + "weight"] = _noisy(w, torch.ones(w.shape, dtype=torch.bool), noise, gen)
        out[prefix + "bias"] = torch.zeros_like(own[prefix + "bias"])
    return out


def transfer_weights(parent_arch: Mapping[str, Any], parent_state: Mapping[str, Any], child_arch: Mapping[str, Any],
                     child: nn.Module, in_channels: int, noise: float = 1e-4, seed: int = 0) -> int:
    """Load ``parent_state`` (of ``parent_arch``) into ``child`` (built from ``child_arch``) by
    layer id, function-preserving (see the module docstring); returns how many tensors came
    from the parent."""
    gen = torch.Generator().manual_seed(int(seed))
    pc, cc = channels(parent_arch, in_channels), channels(child_arch, in_channels)
    parents = by_id(parent_arch)
    modules: dict[str, nn.Module] = dict(getattr(child, "layers", {}).items())
    own = child.state_dict()
    state: dict[str, torch.Tensor] = {}
    taken = 0
    for layer in child_arch["layers"]:
        if layer["type"] in ("input", "relu", "pool"):
            continue
        prefix = f"layers.L{layer['id']}."
        parent = parents.get(layer["id"])
        if parent is None:
            state.update(_fresh(layer, prefix, own, modules.get(f"L{layer['id']}"), noise, gen))
        elif parent["type"] == layer["type"] and parent.get("kernel") == layer.get("kernel"):
            try:
                inherited = _inherit(layer, parent, cc, pc, prefix, parent_state, own, noise, gen)
            except _NoMap:
                continue
            state.update(inherited)
            taken += len(inherited)
    child.load_state_dict(state, strict=False)
    return taken
