"""``rl``: the RNN controller trained by policy gradient (Zoph & Le 2017; PPO as in NASNet).

``ask`` samples an architecture from the :class:`~controllers.rl.policy.Policy` (every decision
of the space is a token; anchor sets are drawn by attention). ``tell`` turns the result into a
reward (:mod:`controllers.rl.reward`); once ``batch`` (m) results are in, one policy update:

* REINFORCE (``algorithm: reinforce``): ``grad J ~ (1/m) sum_k (R_k - b) grad log P(a_k)``
  with ``b`` an exponential moving average of past rewards (``baseline_decay``);
* PPO (``algorithm: ppo``): ``ppo_epochs`` passes of the clipped surrogate
  ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r = P_new(a) / P_old(a)``, ``A = R - b``.

``entropy_weight`` adds an entropy bonus to the objective (ENAS adds it to the reward); Adam
optimises the policy. Up to m proposals are asked before any is told, so the Ray executor
evaluates a batch in parallel. A proposal keeps the log-probability it was sampled with, so a
result that arrives after an update (several workers) is weighted by the right ratio under PPO.

Defaults: a 2-layer LSTM of 35 units, U(-0.08, 0.08), REINFORCE, baseline decay 0.95 and
m = 1 as in the paper; deviations tuned on the NAS-Bench-201 CIFAR-10 table at 100 queries
(30-seed screen: lr 6e-4 93.81, 3e-3 93.96, 1e-2 94.14, 3e-2 93.87; ENAS's tanh constant 2.5
94.17): Adam lr 0.01 instead of 6e-4 (a budget of 100 architectures, not 12,800) and logits
``2.5 * tanh(logits)`` (ENAS), which also keeps a converged policy from proposing one
architecture for ever.

Resume works by replay: the same seed re-samples the same proposals and re-applies the same
updates, so the resumed policy is the one that was interrupted (``state_dict`` also carries
the policy, the optimiser, the baseline, the pending batch and the sampler's state).

``initial`` (preset names of the space, e.g. ``unet,attention-unet``) are proposed first; their
results enter the policy updates like samples (REINFORCE on their log-probability under the
current policy: off-policy for these few, which pulls the policy towards a good preset; under
PPO their ratio is taken as 1).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch

from automl.types import Objective, Proposal, Result, Task
from controllers.base import Controller, initial_names, initial_proposals
from controllers.rl import reward as rewards
from controllers.rl.policy import Policy
from controllers.rl.tokens import TokenPlan
from search_spaces.base import SearchSpace

_LOGP = "rl_log_prob"


class RLController(Controller):
    """Policy-gradient RNN controller over any space with decisions."""

    name: ClassVar[str] = "rl"
    description: ClassVar[str] = "RNN controller + REINFORCE or PPO (Zoph & Le 2017, NASNet), anchor-point skips"
    requires: ClassVar[frozenset[str]] = frozenset({"decisions"})
    multi_objective: ClassVar[bool] = True  # through reward: mnas

    def __init__(
        self,
        hidden: int = 35,
        layers: int = 2,
        lr: float = 0.01,
        batch: int = 1,
        algorithm: Literal["reinforce", "ppo"] = "reinforce",
        baseline_decay: float = 0.95,
        entropy_weight: float = 0.0,
        tanh_constant: float | None = 2.5,
        temperature: float = 1.0,
        init_range: float = 0.08,
        share_heads: bool = True,
        reward: Literal["raw", "cube", "mnas"] = "raw",
        mnas_target: float | None = None,
        mnas_w: float = -0.07,
        ppo_clip: float = 0.2,
        ppo_epochs: int = 4,
        initial: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.initial = initial_names(initial, self.name)
        if hidden < 1 or layers < 1 or batch < 1 or ppo_epochs < 1:
            raise ValueError("rl: hidden, layers, batch and ppo_epochs must be >= 1")
        if not lr > 0 or not 0 <= baseline_decay < 1 or entropy_weight < 0 or not temperature > 0:
            raise ValueError("rl: needs lr > 0, 0 <= baseline_decay < 1, entropy_weight >= 0, temperature > 0")
        if algorithm not in ("reinforce", "ppo"):
            raise ValueError(f"rl: algorithm {algorithm!r} is not one of reinforce, ppo")
        if tanh_constant is not None and not tanh_constant > 0:
            raise ValueError("rl: tanh_constant must be > 0 (or null for plain logits)")
        if not 0 < ppo_clip < 1:
            raise ValueError("rl: ppo_clip must be in (0, 1)")
        self.options = {"hidden": hidden, "layers": layers, "init_range": init_range,
                        "tanh_constant": tanh_constant, "temperature": temperature}
        self.lr, self.batch, self.algorithm = float(lr), int(batch), algorithm
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.share_heads = share_heads
        self.reward, self.mnas_target, self.mnas_w = reward, mnas_target, float(mnas_w)
        self.ppo_clip, self.ppo_epochs = float(ppo_clip), int(ppo_epochs)
        self.baseline: float | None = None
        self.pending: list[tuple[list[int], float, float | None]] = []  # (choices, reward, old log-prob)
        self.worst: float | None = None
        self.updates = 0

    def bind(self, space: SearchSpace, task: Task, objectives: Sequence[Objective], seed: int) -> None:
        super().bind(space, task, objectives, seed)
        rewards.check(self.reward, self.objectives, self.mnas_target)
        self.plan = TokenPlan(space.decisions(), share_heads=self.share_heads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = Policy(self.plan, **self.options)  # type: ignore[arg-type]
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.seeds = initial_proposals(space, self.initial, self.name)
        self.asked = 0

    # -- the contract ---------------------------------------------------------------------------
    def ask(self) -> Proposal:
        self.asked += 1
        if self.asked <= len(self.seeds):
            return self.seeds[self.asked - 1]
        with torch.no_grad():
            choices, log_prob, _ = self.policy(generator=self.generator)
        return Proposal(self.plan.decode(choices), note="policy sample", meta={_LOGP: float(log_prob)})

    def tell(self, proposal: Proposal, result: Result) -> None:
        try:
            choices = self.plan.encode(proposal.arch)
        except ValueError:
            return  # an architecture outside the space's decisions teaches the policy nothing
        value = rewards.reward_of(result, self.objectives, self.reward, self.mnas_target, self.mnas_w)
        if value is not None:
            self.worst = value if self.worst is None else min(self.worst, value)
        elif self.worst is None:
            return  # a failure before any success has no reward to compare with: it teaches nothing
        else:
            value = self.worst
        self.pending.append((choices, float(value), proposal.meta.get(_LOGP)))
        if len(self.pending) >= self.batch:
            self.update()

    # -- learning -------------------------------------------------------------------------------
    def update(self) -> None:
        """One policy update from the pending batch, then the baseline moves towards its rewards."""
        batch, self.pending = self.pending, []
        values = torch.tensor([r for _, r, _ in batch])
        baseline = self.baseline if self.baseline is not None else float(values.mean())
        advantages = values - baseline
        passes = self.ppo_epochs if self.algorithm == "ppo" else 1
        for _ in range(passes):
            self.optimizer.zero_grad()
            self.loss(batch, advantages).backward()
            self.optimizer.step()
        mean = float(values.mean())
        self.baseline = mean if self.baseline is None else self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
        self.updates += 1

    def loss(self, batch: Sequence[tuple[list[int], float, float | None]], advantages: torch.Tensor) -> torch.Tensor:
        """The negated policy objective of one batch (REINFORCE or PPO), entropy bonus included."""
        total = torch.zeros(())
        for (choices, _, old), adv in zip(batch, advantages, strict=True):
            _, log_prob, entropy = self.policy(choices)
            if self.algorithm == "reinforce":
                objective = adv * log_prob
            else:
                ratio = torch.exp(log_prob - (old if old is not None else log_prob.detach()))
                clipped = torch.clamp(ratio, 1 - self.ppo_clip, 1 + self.ppo_clip)
                objective = torch.minimum(ratio * adv, clipped * adv)
            total = total - objective - self.entropy_weight * entropy
        return total / len(batch)

    # -- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {  # copies: torch's state dicts hold the live tensors, which training changes in place
            "policy": copy.deepcopy(self.policy.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "baseline": self.baseline,
            "pending": [list(map(float, c)) + [r, math.nan if o is None else o] for c, r, o in self.pending],
            "worst": self.worst,
            "updates": self.updates,
            "generator": self.generator.get_state(),
            "asked": self.asked,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline, self.worst, self.updates = state["baseline"], state["worst"], int(state["updates"])
        self.pending = [([int(v) for v in row[:-2]], float(row[-2]), None if math.isnan(row[-1]) else float(row[-1]))
                        for row in state["pending"]]
        self.generator.set_state(state["generator"])
        self.asked = int(state.get("asked", self.asked))
