"""The RL controller (Zoph & Le): policy maths, learning on a bandit, seeds, anchors, resume."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from automl.types import Decision, Objective, Proposal, Result, Task
from controllers.rl import RLController
from controllers.rl.policy import Policy
from controllers.rl.tokens import AnchorStep, TokenPlan, TokenStep
from search_spaces.base import SearchSpace

MAX = [Objective("reward", "max")]


class Toy(SearchSpace):
    """Decisions only: ``layers`` conv choices and, per layer i > 0, an anchor set over j < i."""

    name = "toy"
    offers = frozenset({"decisions"})

    def __init__(self, layers: int = 3, ops: int = 5, anchors: bool = True) -> None:
        super().__init__()
        self.layers, self.ops, self.anchors = layers, ops, anchors

    def decisions(self):
        out = []
        for i in range(self.layers):
            out.append(Decision(f"op{i}", tuple(f"o{k}" for k in range(self.ops))))
            if self.anchors:
                out += [Decision(f"skip{i}_{j}", (0, 1), anchor=(i, j)) for j in range(i)]
        return tuple(out)


def controller(space: SearchSpace, seed: int = 0, **options) -> RLController:
    c = RLController(**options)
    c.bind(space, Task(), MAX, seed)
    return c


def teach(c: RLController, reward, steps: int) -> None:
    for _ in range(steps):
        p = c.ask()
        c.tell(p, Result(values=(reward(p.arch),)))


def first_op_probabilities(c: RLController) -> torch.Tensor:
    """Exact P(op0 = k): op0 is the first token, so its distribution is the first head's."""
    policy = c.policy
    zeros = torch.zeros(1, policy.hidden)
    h, _ = policy._step(policy.start, [(zeros, zeros) for _ in policy.cells])
    return torch.softmax(policy._logits(0, h), -1).detach()


def test_plan_groups_anchor_decisions_per_layer_and_shares_heads():
    plan = TokenPlan(Toy(layers=3).decisions())
    kinds = [type(s).__name__ for s in plan.steps]
    assert kinds == ["TokenStep", "TokenStep", "AnchorStep", "TokenStep", "AnchorStep"]
    assert plan.head_sizes == [5]  # three op tokens, one shared softmax
    last = plan.steps[-1]
    assert isinstance(last, AnchorStep) and last.target == 2 and last.sources == (0, 1)
    own = TokenPlan(Toy(layers=3).decisions(), share_heads=False)
    assert own.head_sizes == [5, 5, 5] and [s.head for s in own.steps if isinstance(s, TokenStep)] == [0, 1, 2]


def test_bandit_reinforce_finds_the_best_token():
    c = controller(Toy(layers=1, anchors=False), lr=0.05)
    assert first_op_probabilities(c).max() < 0.3  # starts near uniform
    teach(c, lambda a: 1.0 if a["op0"] == "o3" else 0.0, 150)
    assert first_op_probabilities(c)[3] > 0.9


def test_bandit_ppo_finds_the_best_token():
    c = controller(Toy(layers=1, anchors=False), lr=0.02, algorithm="ppo", batch=4)
    teach(c, lambda a: 1.0 if a["op0"] == "o1" else 0.0, 200)
    assert first_op_probabilities(c)[1] > 0.9


def test_a_constant_reward_leaves_the_policy_near_uniform():
    c = controller(Toy(layers=1, anchors=False), lr=0.05)
    before = first_op_probabilities(c)
    teach(c, lambda a: 0.7, 150)
    p = first_op_probabilities(c)
    assert float(p.max() - p.min()) < 0.1  # near uniform: the U(-0.08, 0.08) start (x2.5 by the tanh constant)
    assert torch.allclose(p, before, atol=1e-6)  # the baseline equals the reward: no gradient at all


def test_log_prob_is_the_sum_of_token_and_anchor_log_probs():
    torch.manual_seed(0)
    plan = TokenPlan(Toy(layers=3).decisions())
    policy = Policy(plan, hidden=8, layers=2, init_range=0.5)
    choices, log_prob, _ = policy(generator=torch.Generator().manual_seed(1))
    # recompute by hand: every token's softmax and every anchor Bernoulli
    zeros = torch.zeros(1, 8)
    state = [(zeros, zeros), (zeros, zeros)]
    x, total, anchors = policy.start, 0.0, {}
    for step in plan.steps:
        if isinstance(step, TokenStep):
            h, state = policy._step(x, state)
            total += float(torch.log_softmax(policy._logits(step.head, h).detach(), -1)[choices[step.index]])
            x = policy.embeddings[step.head](torch.tensor([choices[step.index]]))
        else:
            for j in step.sources:
                if j not in anchors:
                    anchors[j], state = policy._step(x, state)
            h, state = policy._step(x, state)
            anchors[step.target] = h
            for j, i in zip(step.sources, step.indices, strict=True):
                p = float(torch.sigmoid(policy.v(torch.tanh(policy.w_prev(anchors[j]) + policy.w_curr(h)))).detach())
                total += math.log(p if choices[i] == 1 else 1 - p)
            picked = [anchors[j] for j, i in zip(step.sources, step.indices, strict=True) if choices[i] == 1]
            x = torch.cat(picked).mean(0, keepdim=True) if picked else h
    assert float(log_prob.detach()) == pytest.approx(total, abs=1e-5)
    assert sum(1 for i, d in enumerate(plan.decisions) if d.anchor) == 3  # 0 + 1 + 2 Bernoullis were counted


def test_log_prob_gradient_matches_finite_differences():
    torch.set_default_dtype(torch.float64)  # central differences need double precision
    try:
        torch.manual_seed(0)
        plan = TokenPlan(Toy(layers=3).decisions())
        policy = Policy(plan, hidden=6, layers=1, init_range=0.5)
        choices, _, _ = policy(generator=torch.Generator().manual_seed(2))
        for param in (policy.v.weight, policy.w_prev.weight, policy.heads[0].weight, policy.cells[0].weight_hh):
            policy.zero_grad()
            policy(choices)[1].backward()
            analytic = param.grad.view(-1)[:5].clone()
            for k in range(5):
                flat = param.data.view(-1)
                flat[k] += 1e-6
                up = float(policy(choices)[1].detach())
                flat[k] -= 2e-6
                down = float(policy(choices)[1].detach())
                flat[k] += 1e-6
                assert float(analytic[k]) == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7)
    finally:
        torch.set_default_dtype(torch.float32)


def test_v_zero_makes_every_skip_probability_one_half():
    plan = TokenPlan(Toy(layers=4).decisions())
    policy = Policy(plan, hidden=8)
    torch.nn.init.zeros_(policy.v.weight)
    h = torch.randn(1, 8)
    previous = torch.randn(3, 8)
    assert torch.allclose(torch.sigmoid(policy.anchor_logits(previous, h)), torch.full((3,), 0.5))
    counts = Counter()
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        choices, _, _ = policy(generator=gen)
        counts.update(choices[i] for i, d in enumerate(plan.decisions) if d.anchor)
    assert 0.45 < counts[1] / (counts[0] + counts[1]) < 0.55


def test_a_fixed_seed_reproduces_the_samples_and_the_updates():
    space = Toy(layers=3)
    runs = []
    for _ in range(2):
        c = controller(space, seed=7, lr=0.05, batch=2)
        archs = []
        for _ in range(12):
            p = c.ask()
            archs.append(p.arch)
            c.tell(p, Result(values=(float(p.arch["op1"] == "o2"),)))
        runs.append((archs, [v.clone() for v in c.policy.state_dict().values()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other = controller(space, seed=8)
    assert [other.ask().arch for _ in range(12)] != runs[0][0]


def test_state_dict_round_trip_continues_the_same_policy():
    space = Toy(layers=3)
    a = controller(space, seed=3, lr=0.05, batch=3)
    teach(a, lambda arch: float(arch["op0"] == "o0"), 10)  # one sample pending in the batch
    b = controller(space, seed=99, lr=0.05, batch=3)
    b.load_state_dict(a.state_dict())
    teach(a, lambda arch: float(arch["op0"] == "o0"), 5)
    teach(b, lambda arch: float(arch["op0"] == "o0"), 5)
    assert all(torch.equal(x, y) for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values(),
                                                  strict=True))


def test_failed_results_get_the_lowest_reward_seen():
    c = controller(Toy(layers=1, anchors=False), batch=100)
    c.tell(c.ask(), Result(values=None, failed=True))  # before any success: nothing to compare with
    assert c.pending == []
    p = c.ask()
    c.tell(p, Result(values=(0.8,)))
    c.tell(c.ask(), Result(values=(0.3,)))
    c.tell(c.ask(), Result(values=None, failed=True))
    assert [r for _, r, _ in c.pending] == [0.8, 0.3, 0.3]


@pytest.mark.parametrize(("options", "message"), [
    ({"reward": "mnas"}, "reward mnas needs two objectives"),
    ({"algorithm": "a2c"}, "algorithm 'a2c' is not one of reinforce, ppo"),
    ({"batch": 0}, ">= 1"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        controller(Toy(), **options)


def test_mnas_reward_scalarises_accuracy_and_latency():
    c = RLController(reward="mnas", mnas_target=10.0, batch=10)
    c.bind(Toy(layers=1, anchors=False), Task(), [Objective("acc", "max"), Objective("lat", "min")], 0)
    c.tell(c.ask(), Result(values=(90.0, 20.0)))
    assert c.pending[0][1] == pytest.approx(0.9 * 2.0 ** -0.07)


def test_proposals_carry_their_sampling_log_prob():
    c = controller(Toy())
    p = c.ask()
    assert isinstance(p, Proposal) and p.meta["rl_log_prob"] < 0
    _, log_prob, _ = c.policy(c.plan.encode(p.arch))
    assert float(log_prob.detach()) == pytest.approx(p.meta["rl_log_prob"], abs=1e-5)
