"""A space's decisions as the token sequence an RNN controller emits.

Every ordinary decision is one token of a *token type*: decisions with the same choices and
the same last name part (``L3.fh`` and ``L5.fh``: ``fh``; names without a dot: the choices
alone) share a type — one softmax and one embedding per type, as Zoph & Le have one head per
token kind across layers — or each decision has its own with ``share_heads=False``. Consecutive anchor decisions
of one layer ``i`` (:attr:`automl.types.Decision.anchor`) form one *anchor step*: the controller
takes a step at layer ``i``'s anchor point and draws one Bernoulli per earlier layer ``j``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from automl.types import Arch, Decision


@dataclass(frozen=True)
class TokenStep:
    """One categorical token: decision ``index`` drawn from head ``head``."""

    index: int
    head: int


@dataclass(frozen=True)
class AnchorStep:
    """Layer ``target``'s anchor point: one yes/no per source layer, decisions ``indices``."""

    target: int
    sources: tuple[int, ...]
    indices: tuple[int, ...]


Step = TokenStep | AnchorStep


class TokenPlan:
    """The steps, the heads (their sizes) and arch <-> choice-index conversion of a space."""

    def __init__(self, decisions: Sequence[Decision], share_heads: bool = True) -> None:
        self.decisions = tuple(decisions)
        if not self.decisions:
            raise ValueError("the space exposes no decisions")
        self.head_sizes: list[int] = []
        heads: dict[Any, int] = {}
        steps: list[Step] = []
        for i, d in enumerate(self.decisions):
            if d.anchor is not None:
                target, source = d.anchor
                last = steps[-1] if steps else None
                if isinstance(last, AnchorStep) and last.target == target:
                    steps[-1] = AnchorStep(target, (*last.sources, source), (*last.indices, i))
                else:
                    steps.append(AnchorStep(target, (source,), (i,)))
                continue
            key = (d.name.rsplit(".", 1)[-1] if "." in d.name else "", d.choices) if share_heads else i
            if key not in heads:
                heads[key] = len(self.head_sizes)
                self.head_sizes.append(len(d.choices))
            steps.append(TokenStep(i, heads[key]))
        self.steps: tuple[Step, ...] = tuple(steps)
        self.layers = sorted({layer for s in steps if isinstance(s, AnchorStep) for layer in (s.target, *s.sources)})

    def encode(self, arch: Arch) -> list[int]:
        """Choice indices of ``arch``, one per decision (a ValueError for a foreign value)."""
        out = []
        for d in self.decisions:
            try:
                out.append(d.choices.index(arch[d.name]))
            except (KeyError, ValueError):
                raise ValueError(f"arch has no valid value for decision {d.name!r}") from None
        return out

    def decode(self, indices: Sequence[int]) -> dict[str, Any]:
        return {d.name: d.choices[int(k)] for d, k in zip(self.decisions, indices, strict=True)}
