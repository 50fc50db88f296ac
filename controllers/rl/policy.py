"""The RNN controller of Zoph & Le (2017): an LSTM that emits a space's tokens one by one.

At each :class:`~controllers.rl.tokens.TokenStep` the LSTM takes the embedding of the previous
token (a learned start vector first), and a softmax head of the token's type gives its
distribution. At layer ``i``'s :class:`~controllers.rl.tokens.AnchorStep` the LSTM takes one step
whose state ``h_i`` is that layer's *anchor*; each earlier layer ``j`` is chosen as an input
with ``P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i))``. The next input is the mean of
the chosen layers' anchors (ENAS), or ``h_i`` when none is chosen.

Deviation: a layer that has no anchor decisions of its own (the first) still needs an anchor
state; it takes its anchor step when a later layer first refers to it.

Options: ``tanh_constant`` C and ``temperature`` T shape the softmax logits as
``C * tanh(logits / T)`` (ENAS; None = plain logits). Weights start U(-init_range, init_range).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from controllers.rl.tokens import AnchorStep, TokenPlan, TokenStep

State = list[tuple[torch.Tensor, torch.Tensor]]


class Policy(nn.Module):
    """Samples token sequences and scores given ones (log-probability, entropy)."""

    def __init__(
        self,
        plan: TokenPlan,
        hidden: int = 35,
        layers: int = 2,
        init_range: float = 0.08,
        tanh_constant: float | None = None,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.hidden = hidden
        self.tanh_constant = tanh_constant
        self.temperature = temperature
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in plan.head_sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in plan.head_sizes)
        self.w_prev = nn.Linear(hidden, hidden, bias=False)
        self.w_curr = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def _step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        new: State = []
        for cell, (h, c) in zip(self.cells, state, strict=True):
            h, c = cell(x, (h, c))
            new.append((h, c))
            x = h
        return x, new

    def _logits(self, head: int, h: torch.Tensor) -> torch.Tensor:
        logits = self.heads[head](h).squeeze(0) / self.temperature
        return self.tanh_constant * torch.tanh(logits) if self.tanh_constant is not None else logits

    def anchor_logits(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Logits of ``P(j -> i)`` for anchors ``previous`` [k, hidden] and ``current`` [1, hidden]."""
        return self.v(torch.tanh(self.w_prev(previous) + self.w_curr(current))).squeeze(-1)

    def forward(
        self, choices: Sequence[int] | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Sample a sequence (``choices=None``) or score ``choices`` (one index per decision).

        Returns the choice indices, the sequence's log-probability (the sum over every token and
        every anchor Bernoulli) and its entropy (the same sum of per-step entropies)."""
        zeros = torch.zeros(1, self.hidden)
        state: State = [(zeros, zeros) for _ in self.cells]
        x = self.start
        out = list(choices) if choices is not None else [0] * len(self.plan.decisions)
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        anchors: dict[int, torch.Tensor] = {}
        for step in self.plan.steps:
            if isinstance(step, TokenStep):
                h, state = self._step(x, state)
                logits = self._logits(step.head, h)
                logp_all = F.log_softmax(logits, dim=-1)
                if choices is None:
                    k = int(torch.multinomial(logp_all.exp(), 1, generator=generator))
                    out[step.index] = k
                k = out[step.index]
                log_prob = log_prob + logp_all[k]
                entropy = entropy - (logp_all.exp() * logp_all).sum()
                x = self.embeddings[step.head](torch.tensor([k]))
                continue
            assert isinstance(step, AnchorStep)
            for j in step.sources:
                if j not in anchors:  # a layer without anchor decisions: its anchor step now
                    anchors[j], state = self._step(x, state)
            h, state = self._step(x, state)
            anchors[step.target] = h
            previous = torch.cat([anchors[j] for j in step.sources])
            logits = self.anchor_logits(previous, h)
            if choices is None:
                picks = torch.bernoulli(torch.sigmoid(logits).detach(), generator=generator)
                for i, p in zip(step.indices, picks.tolist(), strict=True):
                    out[i] = int(p)
            picked = torch.tensor([float(out[i]) for i in step.indices])
            log_prob = log_prob + (picked * F.logsigmoid(logits) + (1 - picked) * F.logsigmoid(-logits)).sum()
            p = torch.sigmoid(logits)
            entropy = entropy - (p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum()
            x = (picked[:, None] * previous).sum(0, keepdim=True) / picked.sum() if picked.sum() > 0 else h
        return out, log_prob, entropy
