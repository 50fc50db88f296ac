"""The DARTS search network (Liu et al. 2019) with the PC-DARTS and GDAS relaxations.

Layout as quark0/darts ``model_search.Network``: a 3x3 conv stem to ``3C`` channels, ``layers``
cells (reductions at ``layers//3`` and ``2*layers//3``, which double ``C``), global average
pooling and a linear classifier. A cell preprocesses its inputs H(l-2), H(l-1) to ``C``
channels (1x1 ReLU-Conv-BN, or FactorizedReduce after a reduction) and has ``steps`` nodes;
node ``i`` sums one mixed edge per earlier state (``2 + i`` edges, 14 for 4 steps); the output
is the concatenation of the last ``multiplier`` nodes. Every BatchNorm inside the cells is
affine=False; the stem's BatchNorm keeps its affine parameters as in quark0/darts.

Architecture parameters: ``alphas_normal`` and ``alphas_reduce`` (``[edges, len(ops)]``,
initialised ``1e-3 · N(0, 1)``) shared by all cells of a type; with ``edge_norm`` also
``betas_normal`` / ``betas_reduce`` (``[edges]``, PC-DARTS).

Options: ``sampling`` ``"softmax"`` (DARTS) or ``"gumbel"`` (GDAS, :meth:`set_temperature`;
a new sample per forward pass, in eval mode too, as GDAS); ``partial_channels=K`` (PC-DARTS:
the first ``C/K`` channels of a state go through the mixed ops, the rest bypass them —
2x2 max-pooled on reduction edges, ``ceil_mode`` so odd sizes work — and the node is channel
shuffled with K groups; K=1 is DARTS); ``edge_norm`` (PC-DARTS β: each edge's output, bypass
included, is weighted by the softmax of β over its node's incoming edges); ``max_skips=M``
(P-DARTS: the derived *normal* cell keeps at most M skip connections, see :mod:`.decode`;
default None, no limit, as DARTS).

The mixed edges and nodes are :mod:`.mixed` / :mod:`.nodes` (memory-lean: see there); the
supernet runs channels-last.

Only the gradients a step asks for are computed: freeze α/β (``requires_grad_(False)``) in
the weight step and ask ``torch.autograd.grad(loss, arch_parameters())`` (or freeze the
weights) in the architecture step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from automl.types import Arch, Task
from search_spaces.base import SearchSpace
from search_spaces.blocks.ops import FactorizedReduce, ReLUConvBN
from search_spaces.darts.decode import candidate_genotypes, derive_genotype, limit_skips, skip_count
from search_spaces.darts import latency
from search_spaces.darts.genotype import genotype_to_arch
from search_spaces.darts.search_ops import darts_search_op
from search_spaces.supernet.mixed import channels_last_grad
from search_spaces.supernet.nodes import MixedNodes
from search_spaces.supernet.relax import Mix, make_mix, node_slices, node_softmax
from search_spaces.supernet.skip_limit import check_max_skips
from search_spaces.supernet.contract import Supernet


class SearchCell(nn.Module):
    """One DARTS search cell: preprocessing, mixed nodes, concatenation of the last nodes."""

    def __init__(
        self,
        ops: Sequence[str],
        steps: int,
        multiplier: int,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        partial: int,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.kind = "reduce" if reduction else "normal"
        self.multiplier = multiplier
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, affine=False)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, affine=False)
        self.nodes = MixedNodes(ops, c, steps, 2, darts_search_op, reduction=reduction, partial=partial)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, mix: Mix) -> torch.Tensor:
        states = self.nodes([self.preprocess0(s0), self.preprocess1(s1)], mix)
        return channels_last_grad(torch.cat(states[-self.multiplier :], dim=1))


class DartsSupernet(Supernet):
    """DARTS / PC-DARTS / GDAS supernet over a :class:`~search_spaces.darts.space.DartsSpace`.

    ``forward(x) -> logits [N, num_classes]``. See the module docstring for the options.
    """

    def __init__(
        self,
        space: SearchSpace,
        task: Task,
        *,
        ops: Sequence[str],
        steps: int = 4,
        multiplier: int = 4,
        C: int = 16,  # noqa: N803 - the paper's name
        layers: int = 8,
        stem_multiplier: int = 3,
        sampling: str = "softmax",
        tau: float = 10.0,
        partial_channels: int = 1,
        edge_norm: bool = False,
        max_skips: int | None = None,
    ) -> None:
        super().__init__()
        if sampling not in ("softmax", "gumbel"):
            raise ValueError(f"darts supernet: sampling must be 'softmax' or 'gumbel', got {sampling!r}")
        for name, value in (("C", C), ("layers", layers), ("steps", steps), ("stem_multiplier", stem_multiplier)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"darts supernet: {name} must be an integer >= 1, got {value!r}")
        if partial_channels < 1 or C % partial_channels:
            raise ValueError(f"darts supernet: partial_channels must divide C={C}, got {partial_channels}")
        if not 1 <= multiplier <= steps:
            raise ValueError(f"darts supernet: multiplier must be in 1..steps={steps}, got {multiplier}")
        if all(op == "none" for op in ops):
            raise ValueError("darts supernet: the op list needs an op other than 'none'")
        if max_skips is not None and not set(ops) - {"none", "skip_connect"}:
            raise ValueError(f"darts supernet: max_skips needs an op other than none and skip_connect, ops are {tuple(ops)}")
        self.max_skips = check_max_skips(max_skips, "darts supernet")
        self.space, self.task = space, task
        self.ops, self.steps, self.multiplier = tuple(ops), int(steps), int(multiplier)
        self.sampling, self.tau = sampling, float(tau)
        self.partial, self.edge_norm = int(partial_channels), bool(edge_norm)
        self.nodes = node_slices(self.steps)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(task.in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        c_pp, c_p, c = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c = c * 2 if reduction else c
            self.cells.append(
                SearchCell(self.ops, self.steps, self.multiplier, c_pp, c_p, c, reduction, reduction_prev, self.partial)
            )
            reduction_prev = reduction
            c_pp, c_p = c_p, self.multiplier * c
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, task.num_classes)
        n_edges = self.nodes[-1].stop
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(self.ops)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(self.ops)))
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(n_edges)) if edge_norm else None
        self.betas_reduce = nn.Parameter(1e-3 * torch.randn(n_edges)) if edge_norm else None
        self.to(memory_format=torch.channels_last)

    # -- Supernet contract --------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        params = [self.alphas_normal, self.alphas_reduce]
        if self.betas_normal is not None and self.betas_reduce is not None:
            params += [self.betas_normal, self.betas_reduce]
        return params

    def set_temperature(self, tau: float) -> None:
        if tau <= 0:
            raise ValueError(f"temperature must be positive, got {tau}")
        self.tau = float(tau)

    def mix(self, kind: str) -> Mix:
        """The mixing table of cell type ``kind`` for one forward pass."""
        alpha = self.alphas_reduce if kind == "reduce" else self.alphas_normal
        beta = self.betas_reduce if kind == "reduce" else self.betas_normal
        return make_mix(alpha, beta, self.nodes, self.sampling, self.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kinds = {cell.kind for cell in self.cells}
        mixes = {kind: self.mix(kind) for kind in ("normal", "reduce") if kind in kinds}  # fixed RNG order
        s0 = s1 = self.stem(x.contiguous(memory_format=torch.channels_last))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, mixes[cell.kind])
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """``[edges, ops]`` decoding weights per cell type: softmax(α) (· softmax_node(β))."""
        out = {}
        with torch.no_grad():
            for kind in ("normal", "reduce"):
                w = F.softmax(getattr(self, f"alphas_{kind}"), dim=-1)
                beta = getattr(self, f"betas_{kind}")
                if beta is not None:
                    w = w * node_softmax(beta, self.nodes).unsqueeze(-1)
                out[kind] = w.detach().cpu()
        return out

    def _decoding_weights(self) -> dict[str, torch.Tensor]:
        """:meth:`edge_weights`, the normal cell's rewritten by the P-DARTS skip limit when set."""
        w = self.edge_weights()
        if self.max_skips is not None:
            w["normal"] = limit_skips(w["normal"], self.ops, self.steps, self.max_skips)
        return w

    def derive(self) -> Arch:
        """DARTS decoding: per node the top-2 edges by their best non-'none' weight, op = argmax
        excluding 'none'; output = the last ``multiplier`` nodes (see :mod:`.decode`);
        with ``max_skips`` at most that many skips in the normal cell."""
        w = self._decoding_weights()
        g = derive_genotype(w["normal"], w["reduce"], self.ops, self.steps, self.multiplier)
        return genotype_to_arch(g, self.multiplier)

    def decoded_skips(self) -> int:
        """Skips of the normal cell DARTS decoding gives without the ``max_skips`` limit."""
        w = self.edge_weights()
        return skip_count(derive_genotype(w["normal"], w["reduce"], self.ops, self.steps, self.multiplier).normal)

    def candidates(self, k: int = 1) -> list[Arch]:
        """The ``k`` best distinct genotypes by the product of their chosen edges' weights (with
        ``max_skips``: under the rewritten weights, those within the limit; fewer than ``k`` when
        the 8k best hold fewer)."""
        w = self._decoding_weights()
        pool = k if self.max_skips is None else 8 * k
        found = candidate_genotypes(w["normal"], w["reduce"], self.ops, self.steps, self.multiplier, pool)
        if self.max_skips is not None:
            found = [g for g in found if skip_count(g.normal) <= self.max_skips]
        return [genotype_to_arch(g, self.multiplier) for g in found[:k]]

    def arch_distributions(self) -> Mapping[str, torch.Tensor]:
        """``normal`` / ``reduce``: softmax(α) ``[edges, ops]``; with edge_norm also
        ``normal_edges`` / ``reduce_edges``: softmax(β) over each node's edges ``[edges]``."""
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for kind in ("normal", "reduce"):
                out[kind] = F.softmax(getattr(self, f"alphas_{kind}"), dim=-1).detach().cpu()
                beta = getattr(self, f"betas_{kind}")
                if beta is not None:
                    out[f"{kind}_edges"] = node_softmax(beta, self.nodes).cpu()
        return out

    def extra_repr(self) -> str:
        return (
            f"ops={list(self.ops)}, steps={self.steps}, multiplier={self.multiplier}, "
            f"sampling={self.sampling!r}, partial_channels={self.partial}, edge_norm={self.edge_norm}"
        )

    # -- latency (see :mod:`search_spaces.darts.latency` for the LUT key format) --------------
    def latency_keys(self) -> list[str]:
        """The LUT keys ``expected_latency`` reads: ``"{op}:c{C}:{H}x{W}:s{stride}"``."""
        return latency.latency_keys(self)

    def expected_latency(self, lut: Mapping[str, float]) -> torch.Tensor:
        """Σ over cells and edges of q_e · Σ_ops softmax(α) · LUT (differentiable in α and β)."""
        return latency.expected_latency(self, lut)

    def arch_latency(self, arch: Arch, lut: Mapping[str, float]) -> float:
        """LUT latency of a discrete architecture placed in this supernet's cells."""
        return latency.arch_latency(self, arch, lut)
