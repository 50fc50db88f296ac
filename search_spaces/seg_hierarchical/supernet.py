"""The Auto-DeepLab hierarchical supernet (docs/algorithms.md §5) and its decoding.

Lattice: a two-conv stem (3x3 stride 2, 3x3 stride 2; B·F/2 and B·F filters) to stride 4 (the
space's ``stem_stride``: 2 or 1 drops the second or both strides), then
L layers whose nodes sit at levels 0..3 (layer l reaches levels up to l + 1). Node (l, s):

    ˢH^l = Σ_{s' ∈ {s/2, s, 2s}} β_{s'→s}^l · Cell(^{s'}H^{l-1}, ˢH^{l-2}; α)

Each node owns one cell (weights shared by its incoming transitions, as NoamRosenberg); α
(``[20, 8]`` for B = 5) is shared by every cell. β ``[L, 4, 3]`` holds, per layer and source
level, logits of the outgoing transitions (finer / same / coarser), normalised by a softmax
over the *valid* ones only (boundary levels have two, layer -1 is the stem at level 0) —
NoamRosenberg's 2/3 scaling of boundary softmaxes is not used (so at uniform β a boundary
move has p = 1/2 against 1/3 inside, and Viterbi on an untrained β prefers the boundary
levels). When ˢH^{l-2} does not exist (layers 0 and 1, and the frontier levels s >= l), the
nearest existing level of layer l - 2 (layer -1: the stem output, layer -2: the stem's
stride-2 feature) is resized, as the discrete network does.

Search head: per level of the last layer an ASPP (1x1, 3x3 at rate 96/s, image pooling; the
catalogue's ``aspp``) + 1x1 classifier, upsampled to the input and summed. As in the
reference, the heads' BN needs a batch of at least 2 in training.

``checkpoint=True`` recomputes each node's forward during the backward pass instead of keeping
its activations (torch.utils.checkpoint): less memory for large inputs, at about +50 % time.

Relaxations (``search_spaces/supernet/contract.py``): ``sampling="softmax"`` or ``"gumbel"`` (GDAS: one
op per edge per forward, shared by all cells; β stays a softmax), ``partial_channels=K``
(PC-DARTS: C/K channels through the mixed ops, channel shuffle) and ``edge_norm`` (PC-DARTS
edge weights γ, a softmax over each block's inputs). ``max_skips=M`` limits the derived cell to
M skip connections (P-DARTS' rule, :mod:`search_spaces.supernet.skip_limit`; not part of Auto-DeepLab,
default None). See :mod:`.mixed` for how the mixed ops
are batched and :mod:`.node` for one node's cell. Latency-aware search: ``expected_latency``,
``arch_latency`` and ``latency_keys`` (:mod:`.latency`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from automl.types import Arch, Task
from search_spaces.blocks.multiscale import ASPP
from search_spaces.layers import ConvNormAct
from search_spaces.seg_hierarchical.decode import decode_cell
from search_spaces.seg_hierarchical.genotype import LEVELS, OPS, Block, edge_index, genotype_to_arch, num_edges
from search_spaces.seg_hierarchical.latency import arch_latency, expected_latency, latency_keys, level_sites
from search_spaces.seg_hierarchical.node import Mixing, Node, source_edges
from search_spaces.seg_hierarchical.ops import level_sizes, stem_strides
from search_spaces.seg_hierarchical.paths import k_best_paths, reachable, relative_to_uniform, transition_mask
from search_spaces.supernet.skip_limit import check_max_skips, limit_skips
from search_spaces.supernet.contract import Supernet

SAMPLINGS = ("softmax", "gumbel")


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask``; rows with no valid entry are all 0."""
    p = torch.softmax(logits.masked_fill(~mask, torch.finfo(logits.dtype).min), dim=-1)
    return p * mask


class SegHierarchicalSupernet(Supernet):
    """Weight-sharing Auto-DeepLab lattice; ``forward(x)`` -> logits ``[N, classes, H, W]``."""

    def __init__(
        self,
        space: Any,
        task: Task,
        *,
        sampling: str = "softmax",
        partial_channels: int = 1,
        edge_norm: bool = False,
        checkpoint: bool = False,
        max_skips: int | None = None,
    ) -> None:
        super().__init__()
        self.max_skips = check_max_skips(max_skips, "seg-hierarchical supernet")
        if not isinstance(checkpoint, bool):
            raise ValueError(f"seg-hierarchical supernet: checkpoint must be true or false, got {checkpoint!r}")
        self.checkpoint = checkpoint
        if sampling not in SAMPLINGS:
            raise ValueError(f"seg-hierarchical supernet: sampling must be one of {SAMPLINGS}, got {sampling!r}")
        f, b, layers = space.filter_multiplier, space.blocks, space.layers
        k = partial_channels
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or f % k:
            raise ValueError(
                "seg-hierarchical supernet: partial_channels must be a positive divisor of "
                f"filter_multiplier={f}, got {partial_channels!r}"
            )
        self.space, self.task = space, task
        self.layers, self.blocks, self.sampling = layers, b, sampling
        self.partial_channels, self.tau = partial_channels, 1.0
        n_edges = num_edges(b)
        self.alpha = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))
        self.beta = nn.Parameter(1e-3 * torch.randn(layers, LEVELS, 3))
        self.gamma = nn.Parameter(1e-3 * torch.randn(n_edges)) if edge_norm else None
        self.register_buffer("beta_mask", torch.from_numpy(transition_mask(layers)), persistent=False)
        self.source_rows = source_edges(b)

        s0, s1 = stem_strides(space.stem_stride)
        self.stem0 = ConvNormAct(task.in_channels, b * f // 2, 3, s0)
        self.stem1 = ConvNormAct(b * f // 2, b * f, 3, s1, act=None)
        width = {(-2, -1): b * f // 2, (-1, 0): b * f}  # (layer, level) -> channels
        self.prev_prev_of: dict[tuple[int, int], tuple[int, int]] = {}
        self.nodes = nn.ModuleDict()
        for l in range(layers):
            for s in reachable(l):
                c = f * 2**s
                incoming = [
                    (j, "stride2" if j == s - 1 else "1x1", width[(l - 1, j)])
                    for j in (s - 1, s, s + 1)
                    if (l - 1, j) in width
                ]
                pp = self._prev_prev(l, s)
                self.prev_prev_of[(l, s)] = pp
                self.nodes[f"{l}_{s}"] = Node(c, b, incoming, width[pp], partial_channels)
                width[(l, s)] = b * c
        self.lut_sites = level_sites(space, task.input_size)  # (channels, size) per level, built net
        self.head_levels = list(reachable(layers - 1))
        self.heads = nn.ModuleList(
            nn.Sequential(
                ASPP.auto_deeplab_search_head(width[(layers - 1, s)], width[(layers - 1, s)], space.stem_stride * 2**s),
                nn.Conv2d(width[(layers - 1, s)], task.num_classes, 1),
            )
            for s in self.head_levels
        )

    @staticmethod
    def _prev_prev(l: int, s: int) -> tuple[int, int]:
        """(layer, level) of the state used as H(l-2): ˢH^{l-2}, else the nearest level."""
        if l == 0:
            return (-2, -1)
        levels = reachable(l - 2)
        return (l - 2, s if s in levels else max(levels))

    # -- architecture parameters -------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.alpha, self.beta, self.gamma) if p is not None]

    def network_probs(self) -> torch.Tensor:
        """β as transition probabilities ``[L, 4, 3]``: softmax over each node's valid outgoing moves."""
        return masked_softmax(self.beta, self.beta_mask)

    def edge_probs(self) -> torch.Tensor | None:
        """PC-DARTS edge normalisation γ: softmax over each block's inputs (None without edge_norm)."""
        if self.gamma is None:
            return None
        parts, start = [], 0
        for b in range(self.blocks):
            parts.append(torch.softmax(self.gamma[start : start + b + 2], dim=0))
            start += b + 2
        return torch.cat(parts)

    def set_temperature(self, tau: float) -> None:
        self.tau = float(tau)

    def sample_ops(self) -> tuple[torch.Tensor, torch.Tensor]:
        """GDAS: hard one-hot weights (straight-through) and the chosen α column per edge."""
        logp = torch.log_softmax(self.alpha, dim=-1)
        while True:
            gumbel = -torch.empty_like(logp).exponential_().log()
            probs = torch.softmax((logp + gumbel) / self.tau, dim=-1)
            chosen = probs.argmax(dim=-1)
            one_hot = torch.zeros_like(probs).scatter_(-1, chosen.unsqueeze(-1), 1.0)
            hard = one_hot - probs.detach() + probs
            if torch.isfinite(hard).all():
                return hard, chosen

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = Mixing(self)
        beta = self.network_probs()
        h2 = self.stem0(x)
        states: dict[tuple[int, int], torch.Tensor] = {(-2, -1): h2, (-1, 0): self.stem1(h2)}
        sizes = level_sizes(states[(-1, 0)].shape[-2:])
        for l in range(self.layers):
            for s in reachable(l):
                node: Node = self.nodes[f"{l}_{s}"]  # type: ignore[assignment]
                prev = [states[(l - 1, j)] for j in node.incoming]
                betas = torch.stack([beta[l, j, s - j + 1] for j in node.incoming])
                args = (prev, betas, states[self.prev_prev_of[(l, s)]], sizes[s], mix)
                if self.checkpoint and torch.is_grad_enabled():
                    states[(l, s)] = torch.utils.checkpoint.checkpoint(
                        node, *args, use_reentrant=False, preserve_rng_state=False
                    )
                else:
                    states[(l, s)] = node(*args)
            for key in [k for k in states if k[0] == l - 2]:
                del states[key]
        size = x.shape[-2:]
        out = None
        for s, head in zip(self.head_levels, self.heads):
            y = F.interpolate(head(states[(self.layers - 1, s)]), size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return out

    # -- latency (ProxylessNAS, see :mod:`.latency`) -----------------------------------------------
    def expected_latency(self, lut: Mapping[str, float]) -> torch.Tensor:
        return expected_latency(self, lut)

    def arch_latency(self, arch: Arch, lut: Mapping[str, float]) -> float:
        return arch_latency(self.space, self.space.genotype(arch), self.task.input_size, lut)

    def latency_keys(self) -> list[str]:
        return latency_keys(self.space, self.task.input_size)

    # -- decoding ---------------------------------------------------------------------------------
    def derive(self) -> Arch:
        return self.candidates(1)[0]

    def candidates(self, k: int = 1) -> list[Arch]:
        """The DARTS-decoded cell with each of the ``k`` most probable network paths (list Viterbi
        over β relative to uniform, so a boundary node's 2 moves are not favoured over 3)."""
        with torch.no_grad():
            probs, gamma = torch.softmax(self.alpha, dim=-1), self.edge_probs()
            if self.max_skips is not None:
                probs = limit_skips(probs, OPS.index("skip_connect"), self.max_skips,
                                    lambda w: self._skip_rows(decode_cell(w, self.blocks, gamma)))
            cell = decode_cell(probs, self.blocks, gamma)
            paths = k_best_paths(relative_to_uniform(self.network_probs()), k)
        return [genotype_to_arch(cell, path) for _, path in paths]

    def decoded_skips(self) -> int:
        """Skips of the cell DARTS decoding gives without the ``max_skips`` limit."""
        with torch.no_grad():
            return len(self._skip_rows(decode_cell(torch.softmax(self.alpha, dim=-1), self.blocks, self.edge_probs())))

    def _skip_rows(self, cell: list[Block]) -> list[int]:
        """α rows of the edges ``cell`` decodes as skip connections."""
        return [edge_index(b, j, self.blocks) for b, block in enumerate(cell) for op, j in block if op == "skip_connect"]

    def arch_distributions(self) -> Mapping[str, torch.Tensor]:
        """``cell`` softmax(α) [edges, 8], ``network`` β probabilities [L, 4, 3], ``edges`` γ (edge_norm)."""
        with torch.no_grad():
            out: dict[str, Any] = {
                "cell": torch.softmax(self.alpha, dim=-1).detach().clone(),
                "network": self.network_probs().detach().clone(),
            }
            g = self.edge_probs()
            if g is not None:
                out["edges"] = g.detach().clone()
        return out
