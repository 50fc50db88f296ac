"""The ``darts`` controller against a tiny mixed-op supernet defined here (the contract of
``search_spaces/supernet/contract.py``), so these tests do not depend on the real supernets."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from automl.types import Objective
from controllers.oneshot.base import SearchData
from controllers.oneshot.darts import DartsController
from controllers.oneshot.batches import Batch, CyclingBatches, split_indices
from controllers.oneshot.latency import latency_penalised, predicted_latency
from controllers.oneshot.darts_options import DartsOptions
from controllers.oneshot.bilevel import BilevelTrainer
from controllers.oneshot.unrolled import finite_difference_hvp, grads_of
from search_spaces.supernet.contract import Supernet

OPS = ("none", "skip", "conv3", "avg3")
EDGES = ((0, 1), (0, 2), (1, 2))  # (from node, to node); node 0 = stem output
LUT = {"none": 0.0, "skip": 0.5, "conv3": 5.0, "avg3": 1.0}


class ToySupernet(Supernet):
    """3 edges x {none, skip, conv3, avg3} over a 2-node cell; softmax or hard-Gumbel relaxation."""

    def __init__(self, kind: str = "classification", channels: int = 4, classes: int = 3, sampling: str = "softmax",
                 act: type[nn.Module] = nn.ReLU, seed: int = 0, **_: Any) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.kind, self.sampling, self.tau, self.taus = kind, sampling, 1.0, []
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels, affine=False))
        self.edges = nn.ModuleList(
            nn.ModuleList([
                nn.Identity(),  # the 'none' slot: the toy mixed op skips it
                nn.Identity(),
                nn.Sequential(act(), nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels, affine=False)),
                nn.AvgPool2d(3, 1, 1, count_include_pad=False),
            ]) for _ in EDGES)
        self.head = nn.Conv2d(channels, classes, 1)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def _weights(self) -> torch.Tensor:
        if self.sampling == "softmax":
            return self.alpha.softmax(-1)
        logp = self.alpha.log_softmax(-1)
        gumbel = -torch.empty_like(logp).exponential_().log()
        p = ((logp + gumbel) / self.tau).softmax(-1)
        hard = torch.zeros_like(p).scatter_(-1, p.argmax(-1, keepdim=True), 1.0)
        return hard - p.detach() + p

    def _edge(self, e: int, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        if self.sampling == "gumbel":  # GDAS: run the chosen op; the others add their 0-valued weight
            chosen = int(w[e].argmax())
            out = out + sum(w[e, i] for i in range(len(OPS)) if i != chosen)
            return out + w[e, chosen] * (self.edges[e][chosen](x) if OPS[chosen] != "none" else torch.zeros_like(x))
        return sum((w[e, i] * self.edges[e][i](x) for i in range(len(OPS)) if OPS[i] != "none"), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._weights()
        n0 = self.stem(x)
        n1 = self._edge(0, n0, w)
        n2 = self._edge(1, n0, w) + self._edge(2, n1, w)
        out = self.head(n1 + n2)
        return out if self.kind == "segmentation" else out.mean((2, 3))

    def derive(self) -> dict[str, str]:
        return self.candidates(1)[0]

    def candidates(self, k: int = 1) -> list[dict[str, str]]:
        logp = self.alpha.detach().log_softmax(-1)
        combos = itertools.product(range(1, len(OPS)), repeat=len(EDGES))  # never 'none'
        ranked = sorted(combos, key=lambda c: -sum(float(logp[e, i]) for e, i in enumerate(c)))
        return [{f"e{a}{b}": OPS[i] for (a, b), i in zip(EDGES, c)} for c in ranked[:k]]

    def arch_distributions(self) -> dict[str, torch.Tensor]:
        return {"cell": self.alpha.detach().softmax(-1)}

    def decoded_skips(self) -> int:
        return sum(op == "skip" for op in self.derive().values())

    def set_temperature(self, tau: float) -> None:
        self.tau = tau
        self.taus.append(tau)

    def expected_latency(self, lut: dict[str, float]) -> torch.Tensor:
        cost = torch.tensor([lut[o] for o in OPS], dtype=self.alpha.dtype, device=self.alpha.device)
        return (self.alpha.softmax(-1) * cost).sum()

    op_names = OPS


def toy_data(n: int = 16, kind: str = "classification", classes: int = 3, size: int = 6) -> SearchData:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, size, size, generator=g)
    if kind == "segmentation":
        targets = torch.randint(0, classes, (n, size, size), generator=g)
        targets[:, 0] = 255
        return SearchData(images, targets, ignore_index=255)
    return SearchData(images, torch.randint(0, classes, (n,), generator=g))


def controller(seed: int = 0, **options: Any) -> DartsController:
    options = {"epochs": 1, "batch_size": 4, **options}
    c = DartsController(**options)
    c.setup(space=None, objectives=[Objective("valid_acc")], seed=seed)  # type: ignore[arg-type]
    return c


def batches(kind: str = "classification", dtype: torch.dtype = torch.float32) -> tuple[Batch, Batch]:
    data = toy_data(8, kind)
    x, y = data.images.to(dtype), data.targets
    return Batch(x[:4], y[:4]), Batch(x[4:], y[4:])


# -- data ---------------------------------------------------------------------------------------

def test_split_halves_are_disjoint_and_cover_the_data() -> None:
    c = controller(seed=3)
    c.search(ToySupernet(), toy_data(17))
    a, b = c.split
    assert len(a) == 8 and len(b) == 9
    assert not set(a.tolist()) & set(b.tolist())
    assert sorted(a.tolist() + b.tolist()) == list(range(17))
    a2, _ = split_indices(17, 3)
    assert torch.equal(a, a2) and not torch.equal(a, split_indices(17, 4)[0])


def test_cycling_batches_are_full_cover_each_pass_and_restore() -> None:
    stream = CyclingBatches(torch.arange(10, 20), 4, seed=0)
    first = torch.cat([next(stream) for _ in range(5)])  # 20 draws = exactly 2 passes
    assert all(len(x) == 4 for x in (next(stream),))
    assert sorted(first[:10].tolist()) == list(range(10, 20)) == sorted(first[10:].tolist())
    state = stream.state_dict()
    ahead = [next(stream) for _ in range(3)]
    stream.load_state_dict(state)
    assert all(torch.equal(x, next(stream)) for x in ahead)


# -- gradients ----------------------------------------------------------------------------------

def test_second_order_with_xi_zero_is_the_first_order_gradient() -> None:
    net = ToySupernet()
    trainer = BilevelTrainer(net, DartsOptions(order=2))
    bt, bv = batches()
    trainer.weight_step(bt)  # non-zero momentum buffers: ξ = 0 must still leave w' = w
    grads, _, _ = trainer.second_order_gradient(bt, bv, xi=0.0)
    first = grads_of(trainer.loss(bv)[0], trainer.arch)
    assert torch.allclose(grads[0], first[0], rtol=1e-6, atol=1e-9)
    assert grads[0].abs().sum() > 0
    again, _, _ = trainer.second_order_gradient(bt, bv, xi=0.05)
    assert not torch.allclose(again[0], first[0], rtol=1e-4, atol=1e-8)  # ξ > 0 adds the Hessian term


def test_finite_difference_hvp_of_a_zero_vector_is_zero_and_leaves_the_weights() -> None:
    w = nn.Parameter(torch.tensor([0.5, -1.0]))
    a = nn.Parameter(torch.tensor([2.0]))
    before = w.detach().clone()
    hvp = finite_difference_hvp(lambda: (a * w).pow(2).sum(), [w], [a], [torch.zeros(2)])
    assert hvp[0].equal(torch.zeros(1)) and w.detach().equal(before)


def test_finite_difference_hvp_matches_double_backward() -> None:
    net = ToySupernet(act=nn.Tanh).double()
    net.alpha.data.normal_(0, 0.5)
    trainer = BilevelTrainer(net, DartsOptions())
    bt, _ = batches(dtype=torch.float64)
    weights, arch = trainer.weights, trainer.arch
    g = torch.Generator().manual_seed(5)
    vector = [torch.randn(w.shape, generator=g, dtype=w.dtype) for w in weights]
    fd = finite_difference_hvp(lambda: trainer.loss(bt)[0], weights, arch, vector)
    gw = torch.autograd.grad(trainer.loss(bt)[0], weights, create_graph=True)
    exact = torch.autograd.grad(sum((a * v).sum() for a, v in zip(gw, vector)), arch)
    rel = (fd[0] - exact[0]).norm() / exact[0].norm()
    assert rel < 1e-3, rel
    assert exact[0].norm() > 0


def test_second_order_matches_autograd_through_the_virtual_sgd_step() -> None:
    """Exact ∇α L_val(w − ξ(∇w L_train + wd·w + m·buf), α) by autograd vs the FD estimate."""
    net = ToySupernet(act=nn.Tanh).double()
    net.alpha.data.normal_(0, 0.5)
    opts = DartsOptions(order=2, w_weight_decay=0.01, w_momentum=0.9)
    trainer = BilevelTrainer(net, opts)
    bt, bv = batches(dtype=torch.float64)
    trainer.weight_step(bt)  # creates momentum buffers
    xi = 0.05
    fd, _, _ = trainer.second_order_gradient(bt, bv, xi)

    names = [n for n, p in net.named_parameters() if p is not net.alpha]
    params = dict(net.named_parameters())
    g = torch.autograd.grad(trainer.loss(bt)[0], [params[n] for n in names], create_graph=True)
    unrolled = {}
    for n, gi in zip(names, g):
        w = params[n]
        buf = trainer.w_opt.state[w]["momentum_buffer"]
        unrolled[n] = w - xi * (gi + opts.w_weight_decay * w + opts.w_momentum * buf)
    unrolled["alpha"] = net.alpha
    logits = torch.func.functional_call(net, unrolled, (bv.images,))
    exact = torch.autograd.grad(nn.functional.cross_entropy(logits, bv.targets), net.alpha)[0]
    rel = (fd[0] - exact).norm() / exact.norm()
    assert rel < 1e-3, rel


def test_each_step_computes_only_its_own_gradients() -> None:
    net = ToySupernet()
    trainer = BilevelTrainer(net, DartsOptions())
    bt, bv = batches()
    before = net.alpha.detach().clone()
    trainer.weight_step(bt)
    assert net.alpha.grad is None and torch.equal(net.alpha, before)
    assert all(w.grad is None for w in trainer.weights)  # freed after the SGD step
    w_before = [w.detach().clone() for w in trainer.weights]
    trainer.arch_step(bt, bv)
    assert all(w.grad is None for w in trainer.weights)
    assert all(torch.equal(a, b) for a, b in zip(trainer.weights, w_before))
    assert net.alpha.grad is not None and not torch.equal(net.alpha, before)


# -- the search loop ----------------------------------------------------------------------------

def test_no_arch_update_during_warmup_then_updates() -> None:
    net = ToySupernet()
    start = net.alpha.detach().clone()
    snaps: list[torch.Tensor] = []
    c = controller(epochs=2, warmup_epochs=1)
    c.search(net, toy_data(), log=lambda line: line.startswith("epoch") and snaps.append(net.alpha.detach().clone()))
    assert torch.equal(snaps[0], start)
    assert not torch.equal(snaps[1], start)
    assert [h["arch_updated"] for h in c.history] == [0.0, 1.0]
    assert all(math.isfinite(h["val_acc"]) for h in c.history)


def test_gdas_temperature_runs_linearly_from_tau_max_to_tau_min() -> None:
    opts = DartsOptions(epochs=5, method="gdas")
    assert opts.tau_at(0) == 10.0 and opts.tau_at(4) == pytest.approx(0.1)
    net = ToySupernet(sampling="gumbel")
    c = controller(epochs=3, method="gdas")
    assert c.supernet_options() == {"sampling": "gumbel"}
    c.search(net, toy_data())
    assert net.taus == pytest.approx([10.0, 5.05, 0.1])
    assert [h["tau"] for h in c.history] == pytest.approx([10.0, 5.05, 0.1])


def test_gdas_resamples_a_non_finite_loss() -> None:
    net = ToySupernet(sampling="gumbel")
    calls = {"n": 0}
    forward = net.forward

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = forward(x)
        return out * math.inf if calls["n"] == 1 else out

    net.forward = flaky  # type: ignore[method-assign]
    trainer = BilevelTrainer(net, DartsOptions(method="gdas"))
    loss, _ = trainer.loss(batches()[0])
    assert calls["n"] == 2 and torch.isfinite(loss)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("options", [{"order": 2}, {"method": "gdas"}, {"method": "pcdarts", "warmup_epochs": 1}])
def test_resume_equals_an_uninterrupted_search(tmp_path: Any, options: dict[str, Any]) -> None:
    sampling = "gumbel" if options.get("method") == "gdas" else "softmax"
    full_net = ToySupernet(sampling=sampling)
    full = controller(epochs=3, top_k=3, **options).search(full_net, toy_data(), checkpoint_dir=tmp_path / "a")

    def stop_after_two(line: str) -> None:
        if line.startswith("epoch 2/3"):
            raise Interrupt

    with pytest.raises(Interrupt):
        controller(epochs=3, top_k=3, **options).search(ToySupernet(sampling=sampling), toy_data(),
                                                         checkpoint_dir=tmp_path / "b", log=stop_after_two)
    torch.manual_seed(123)  # a different global RNG state: resume must restore its own
    resumed_net = ToySupernet(sampling=sampling, seed=7)  # other init: overwritten by the checkpoint
    lines: list[str] = []
    c = controller(epochs=3, top_k=3, **options)
    resumed = c.search(resumed_net, toy_data(), checkpoint_dir=tmp_path / "b", log=lines.append)
    assert lines[0].startswith("darts settings:")
    assert [ln.split()[1] for ln in lines[1:] if ln.startswith("epoch")] == ["3/3"]
    assert resumed == full
    for (name, a), (_, b) in zip(full_net.state_dict().items(), resumed_net.state_dict().items()):
        assert torch.equal(a, b), name
    assert len(c.history) == 3


def test_resume_refuses_a_checkpoint_of_other_options(tmp_path: Any) -> None:
    controller(epochs=1).search(ToySupernet(), toy_data(), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different options"):
        controller(epochs=1, arch_lr=1e-2).search(ToySupernet(), toy_data(), checkpoint_dir=tmp_path)


def test_segmentation_loss_ignores_the_ignore_index() -> None:
    net = ToySupernet(kind="segmentation")
    c = controller(epochs=1)
    archs = c.search(net, toy_data(kind="segmentation"))
    assert archs and set(archs[0].values()) <= set(OPS[1:])
    trainer = BilevelTrainer(ToySupernet(kind="segmentation"), DartsOptions(), ignore_index=255)
    data = toy_data(4, kind="segmentation")
    stats = trainer.evaluate(Batch(data.images, data.targets))
    assert int(stats.count) == 4 * 5 * 6  # first row of every map ignored
    assert torch.isfinite(stats.loss)


def test_tensorboard_gets_losses_and_arch_distributions() -> None:
    class Writer:
        def __init__(self) -> None:
            self.scalars: dict[str, list[float]] = {}
            self.images: list[tuple[str, tuple[int, ...]]] = []

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            self.scalars.setdefault(tag, []).append(value)

        def add_image(self, tag: str, img: torch.Tensor, step: int, dataformats: str) -> None:
            self.images.append((tag, tuple(img.shape)))

    w = Writer()
    controller(epochs=2).search(ToySupernet(), toy_data(), writer=w)
    assert len(w.scalars["search/train_loss"]) == 2 and "search/val_acc" in w.scalars
    assert sum(w.scalars[f"arch/cell/{op}"][0] for op in OPS) == pytest.approx(1.0)
    assert w.images[0] == ("arch/cell", (1, 3 * 8, 4 * 8))


def test_top_k_candidates_best_first() -> None:
    net = ToySupernet()
    net.alpha.data[:, OPS.index("avg3")] += 1.0
    archs = controller(top_k=3, arch_lr=1e-6).search(net, toy_data())
    assert len(archs) == 3 and archs[0] == {"e01": "avg3", "e02": "avg3", "e12": "avg3"}
    assert len({tuple(a.values()) for a in archs}) == 3


# -- latency ------------------------------------------------------------------------------------

def test_expected_latency_gradient_matches_the_closed_form_and_finite_differences() -> None:
    net = ToySupernet().double()
    net.alpha.data.normal_(0, 1)
    lat = net.expected_latency(LUT)
    (grad,) = torch.autograd.grad(lat, net.alpha)
    p = net.alpha.detach().softmax(-1)
    cost = torch.tensor([LUT[o] for o in OPS], dtype=torch.float64)
    closed = p * (cost - (p * cost).sum(-1, keepdim=True))  # Σ_j c_j p_j (δ_ij − p_i)
    assert torch.allclose(grad, closed, atol=1e-12)
    for form in ("mul", "add"):
        ce = torch.tensor(1.3, dtype=torch.float64)
        f = lambda a: latency_penalised(ce, (a.softmax(-1) * cost).sum(), 4.0, form=form, weight=0.2, beta=0.3)  # noqa: E731
        alpha = net.alpha.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(alpha), alpha)
        h, num = 1e-6, torch.zeros_like(alpha)
        for idx in itertools.product(range(alpha.shape[0]), range(alpha.shape[1])):
            d = torch.zeros_like(alpha)
            d[idx] = h
            num[idx] = (f(alpha + d) - f(alpha - d)) / (2 * h)
        assert torch.allclose(g, num, atol=1e-8), form


def test_latency_penalty_at_the_target_leaves_the_mul_loss_scaled_by_weight() -> None:
    ce = torch.tensor(2.0)
    assert float(latency_penalised(ce, torch.tensor(80.0), 80.0, form="mul", weight=0.2, beta=0.3)) == pytest.approx(0.4)
    assert float(latency_penalised(ce, torch.tensor(80.0), 80.0, form="add", weight=0.5, beta=0.3)) == pytest.approx(2.5)


@pytest.mark.parametrize("form", ["mul", "add"])
def test_latency_penalty_pushes_alpha_towards_cheaper_ops(form: str) -> None:
    lut = {**LUT, "none": 0.2}
    net = ToySupernet()
    start = net.expected_latency(lut).item()
    c = controller(epochs=3, arch_lr=0.05, latency_target_ms=2.0, latency_loss=form, latency_weight=5.0,
                   w_lr=1e-4, w_lr_min=1e-4)
    c.search(net, toy_data(), latency_lut=lut)
    p = net.alpha.detach().softmax(-1)
    assert net.expected_latency(lut).item() < start - 0.5
    assert (p[:, OPS.index("conv3")] < p[:, OPS.index("skip")]).all()
    assert c.history[-1]["expected_latency_ms"] < c.history[0]["expected_latency_ms"]


def test_derived_arch_respects_the_hard_latency_target() -> None:
    net = ToySupernet()
    net.alpha.data[:, OPS.index("conv3")] += 3.0  # conv3 everywhere = 15 ms
    net.alpha.data[0, OPS.index("skip")] += 2.9
    lines: list[str] = []
    c = controller(arch_lr=1e-6, latency_target_ms=11.0, latency_loss="add", latency_weight=1e-6)
    (arch,) = c.search(net, toy_data(), latency_lut=LUT, log=lines.append)
    assert predicted_latency(net, net.derive(), LUT) == 15.0
    assert arch == {"e01": "skip", "e02": "conv3", "e12": "conv3"}  # 10.5 ms, the best within 11
    assert any("within the target" in ln for ln in lines)
    assert c.latency_report[0]["feasible"] is False

    lines.clear()
    c = controller(arch_lr=1e-6, latency_target_ms=1.2, latency_loss="add", latency_weight=1e-6)
    (arch,) = c.search(net, toy_data(), latency_lut=LUT, log=lines.append)
    assert arch == net.derive()  # no candidate of the pool fits: the best is returned, with a warning
    assert any("WARNING no derived architecture meets latency_target_ms=1.2" in ln for ln in lines)
    with pytest.warns(UserWarning, match="no derived architecture meets"):  # no log: a Python warning
        controller(arch_lr=1e-6, latency_target_ms=1.2, latency_loss="add").search(net, toy_data(), latency_lut=LUT)


def test_predicted_latency_uses_the_space_lut_decomposition() -> None:
    class LutSpace:
        offers = frozenset({"supernet", "lut"})

        def lut_keys(self, arch: dict[str, str], task: Any) -> list[str]:
            return ["base"] + [f"{op}@{edge}" for edge, op in arch.items()]

    net = ToySupernet()
    arch = {"e01": "skip", "e02": "conv3", "e12": "conv3"}
    assert predicted_latency(net, arch, LUT) == 10.5  # no space: the op names of the arch
    net.space, net.task = LutSpace(), None  # type: ignore[assignment]
    lut = {"base": 1.0, "skip@e01": 0.25, "conv3@e02": 2.0, "conv3@e12": 3.0}
    assert predicted_latency(net, arch, lut) == 6.25
    with pytest.raises(ValueError, match="no entry 'base'"):
        predicted_latency(net, arch, {k: v for k, v in lut.items() if k != "base"})


def test_latency_target_without_a_lut_is_an_error() -> None:
    with pytest.raises(ValueError, match="latency LUT"):
        controller(latency_target_ms=5.0).search(ToySupernet(), toy_data())
    with pytest.raises(ValueError, match="needs the supernet's expected latency: KeyError: 'none'"):
        controller(latency_target_ms=5.0).search(ToySupernet(), toy_data(), latency_lut={"skip": 1.0})
    c = controller()  # without a target a LUT the supernet cannot use is only not logged
    c.search(ToySupernet(), toy_data(), latency_lut={"skip": 1.0})
    assert "expected_latency_ms" not in c.history[0]


# -- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"order": 3}, "order must be 1"),
    ({"method": "enas"}, "method must be one of darts, pcdarts, gdas"),
    ({"method": "gdas", "order": 2}, "order=2 is not supported with method='gdas'"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs \\(5\\) must be < epochs"),
    ({"w_lr": -1.0}, "w_lr must be > 0"),
    ({"w_lr_min": 0.1}, "w_lr_min \\(0.1\\) must be <= w_lr"),
    ({"arch_betas": (0.5,)}, "arch_betas must be two numbers"),
    ({"tau_min": 20.0}, "tau_min \\(20.0\\) must be <= tau_max"),
    ({"latency_loss": "pow"}, "latency_loss must be 'mul'"),
    ({"latency_target_ms": 0.5}, "latency_loss='mul' needs latency_target_ms > 1"),
    ({"partial_channels": 0}, "partial_channels must be an integer >= 1"),
    ({"supernet": {"sampling": "gumbel"}}, "supernet options \\[.sampling.\\] are set by method"),
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"stop_at_skips": 0}, "stop_at_skips must be an integer >= 1"),
    ({"stop_when_stable": 0}, "stop_when_stable must be an integer >= 1"),
])
def test_options_are_validated_with_one_line_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^darts: {message}") as err:
        DartsController(**options)
    assert "\n" not in str(err.value)


def test_supernet_options_map_the_method_and_pass_sizes_through() -> None:
    assert DartsController(supernet={"C": 8, "layers": 5}).supernet_options() == {"C": 8, "layers": 5, "sampling": "softmax"}
    assert DartsController(method="pcdarts", partial_channels=2).supernet_options() == {
        "sampling": "softmax", "partial_channels": 2, "edge_norm": True}
    assert DartsController.requires == frozenset({"supernet"}) and DartsController.name == "darts"


# -- the real supernets (skipped while a space is missing) --------------------------------------

@pytest.mark.parametrize("options", [{"order": 2}, {"method": "pcdarts", "partial_channels": 2}])
def test_search_runs_on_the_darts_supernet(options: dict[str, Any]) -> None:
    darts = pytest.importorskip("search_spaces.darts")
    from automl.types import Task

    space = darts.DartsSpace()
    c = controller(epochs=1, top_k=2, supernet={"C": 4, "layers": 3}, **options)
    net = space.supernet(Task("classification", 3, (8, 8), 10), **c.supernet_options())
    data = SearchData(torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,)))
    archs = c.search(net, data)
    assert len(archs) == 2 and archs[0] != archs[1]
    for arch in archs:
        space.validate(arch)


def test_search_runs_on_the_seg_hierarchical_supernet() -> None:
    seg = pytest.importorskip("search_spaces.seg_hierarchical")
    from automl.types import Task

    space = seg.SegHierarchicalSpace(layers=2, blocks=2, filter_multiplier=2)
    c = controller(epochs=1, batch_size=2)
    net = space.supernet(Task("segmentation", 3, (16, 16), 3), **c.supernet_options())
    data = toy_data(4, kind="segmentation", size=16)
    (arch,) = c.search(net, data)
    space.validate(arch)
    assert math.isfinite(c.history[0]["val_loss"])


# -- each method's paper settings are its defaults -----------------------------------------------

@pytest.mark.parametrize(("method", "expected"), [
    ("darts", {"epochs": 50, "batch_size": 64, "w_lr": 0.025, "w_lr_min": 0.001, "arch_lr": 3e-4, "warmup_epochs": 0,
               "step_order": "arch_first"}),
    ("pcdarts", {"epochs": 50, "batch_size": 256, "w_lr": 0.1, "w_lr_min": 0.0, "arch_lr": 6e-4, "warmup_epochs": 15,
                 "step_order": "arch_first"}),
    ("gdas", {"epochs": 250, "batch_size": 256, "w_lr": 0.025, "w_lr_min": 0.001, "w_weight_decay": 5e-4,
              "w_nesterov": True, "arch_lr": 3e-4, "tau_max": 10.0, "tau_min": 0.1, "step_order": "weights_first"}),
])
def test_each_method_defaults_to_its_paper(method: str, expected: dict[str, Any]) -> None:
    options = DartsController(method=method).options
    assert {k: getattr(options, k) for k in expected} == expected


@pytest.mark.parametrize("augment", [True, False])
def test_both_halves_are_augmented_on_the_fly(monkeypatch: pytest.MonkeyPatch, augment: bool) -> None:
    """Every weight-step batch (half A) and architecture-step batch (half B) is a fresh output
    of the search's training transform, and none is with ``augment=False``."""
    from controllers.oneshot.batches import Augmenter

    made: set[int] = set()
    fed: list[tuple[str, int]] = []
    transform = Augmenter.__call__

    def spy(self: Augmenter, batch: Batch) -> Batch:
        out = transform(self, batch)
        if out is not batch:
            made.add(id(out.images))
        return out

    step = BilevelTrainer.search_step

    def record(self: BilevelTrainer, batch_a: Batch, batch_b: Batch | None) -> Any:
        fed.append(("A", id(batch_a.images)))
        if batch_b is not None:
            fed.append(("B", id(batch_b.images)))
        return step(self, batch_a, batch_b)

    monkeypatch.setattr(Augmenter, "__call__", spy)
    monkeypatch.setattr(BilevelTrainer, "search_step", record)
    controller(epochs=2, batch_size=4, augment=augment).search(ToySupernet(), toy_data(16))
    assert {half for half, _ in fed} == {"A", "B"} and len(fed) == 8  # 2 epochs x 2 steps x both halves
    assert all((key in made) == augment for _, key in fed)


def test_gdas_weight_step_uses_nesterov_and_second_order_refuses_it() -> None:
    from automl.types import Task
    from search_spaces.darts import DartsSpace

    c = DartsController(method="gdas")
    assert c.sources["w_nesterov"] == "gdas" and DartsController().options.w_nesterov is False
    net = DartsSpace(C=4, layers=2).supernet(Task("classification", 3, (8, 8), 3), sampling="gumbel")
    trainer = BilevelTrainer(net, c.options)
    assert trainer.w_opt.defaults["nesterov"] is True and trainer.w_opt.defaults["weight_decay"] == 5e-4
    with pytest.raises(ValueError, match="order=2 needs w_nesterov=false"):
        DartsOptions(order=2, w_nesterov=True)
    with pytest.raises(ValueError, match="w_nesterov needs w_momentum > 0"):
        DartsController(method="gdas", w_momentum=0.0)
    with pytest.raises(ValueError, match="w_nesterov must be true or false"):
        DartsOptions(w_nesterov="yes")  # type: ignore[arg-type]


def test_given_options_win_and_the_warmup_keeps_the_papers_proportion() -> None:
    c = DartsController(method="pcdarts", arch_lr=1e-3, epochs=20)
    assert c.options.arch_lr == 1e-3 and c.options.batch_size == 256 and c.options.warmup_epochs == 6  # 15/50 of 20
    assert c.sources["arch_lr"] == "given" and c.sources["batch_size"] == "pcdarts"
    assert "batch_size 256 (pcdarts)" in c.settings_line() and "arch_lr" not in c.settings_line()
    assert DartsController(method="pcdarts", warmup_epochs=0).options.warmup_epochs == 0


def test_seg_hierarchical_brings_auto_deeplabs_settings_for_darts_only() -> None:
    from automl import registry

    space = registry.create("space", "seg-hierarchical", {"layers": 4, "filter_multiplier": 4})
    adl = DartsController()
    adl.bind(space, space.default_task, [Objective("val_miou", "max")], 0)
    o = adl.options
    assert (o.epochs, o.batch_size, o.arch_lr, o.arch_betas, o.warmup_epochs) == (40, 2, 3e-3, (0.9, 0.999), 20)
    assert o.crop_size == 321 and adl.sources["crop_size"] == "space"  # random 321x321 crops at full size
    assert adl.sources["arch_lr"] == "space"
    short = DartsController(epochs=10)
    short.bind(space, space.default_task, [Objective("val_miou", "max")], 0)
    assert short.options.warmup_epochs == 5  # α/β start half way, as 20 of 40
    pc = DartsController(method="pcdarts")
    pc.bind(space, space.default_task, [Objective("val_miou", "max")], 0)
    assert (pc.options.arch_lr, pc.options.warmup_epochs, pc.options.batch_size) == (6e-4, 15, 256)
    assert pc.options.crop_size == 321 and pc.sources["crop_size"] == "space"  # the data settings stay the space's
    assert pc.sources["arch_lr"] == "pcdarts"


def test_weights_first_takes_the_weight_step_before_the_arch_step() -> None:
    for order, expected in (("arch_first", ["arch", "weight"]), ("weights_first", ["weight", "arch"])):
        trainer = BilevelTrainer(ToySupernet(), DartsOptions(step_order=order))
        calls: list[str] = []
        weight_step, arch_step = trainer.weight_step, trainer.arch_step
        trainer.weight_step = lambda b, _w=weight_step: calls.append("weight") or _w(b)  # type: ignore[method-assign]
        trainer.arch_step = lambda a, b, _a=arch_step: calls.append("arch") or _a(a, b)  # type: ignore[method-assign]
        bt, bv = batches()
        val, train = trainer.search_step(bt, bv)
        assert calls == expected and val is not None and train is not None
    with pytest.raises(ValueError, match="step_order must be"):
        DartsOptions(step_order="random")  # type: ignore[arg-type]


def test_undecided_architecture_parameters_are_reported() -> None:
    from controllers.oneshot.report import decidedness, undecided_warning

    near_uniform = {"cell": torch.softmax(1e-3 * torch.randn(14, 8, generator=torch.Generator().manual_seed(0)), -1)}
    message = undecided_warning(near_uniform)
    assert message is not None and "undecided" in message and "vs 0.125 uniform" in message
    decided = {"cell": torch.softmax(torch.eye(8)[:6] * 5, -1)}
    assert undecided_warning(decided) is None
    # one undecided table is reported on its own: a decided cell does not hide a noise-made path
    mixed = {**decided, "network": torch.full((4, 4, 3), 1 / 3)}
    message = undecided_warning(mixed)
    assert message is not None and "parameters network are still undecided" in message
    assert "network: largest p 0.333" in message and "cell" not in message
    top, uniform = decidedness({"network": torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])})["network"]
    assert top == pytest.approx(0.5) and uniform == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_search_parts_auto_takes_the_whole_training_set_only_beside_a_test_part() -> None:
    from evaluators.data.dataset import build_dataset

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (50, 6, 6, 3), dtype=np.uint8), rng.integers(0, 3, 50)
    with_test = build_dataset("toy", "classification", images, labels, num_classes=3,
                              test=(images[:10], labels[:10]))
    without = build_dataset("toy", "classification", images, labels, num_classes=3)
    assert DartsController().search_parts(with_test) == ("train", "val")  # DARTS: 25k/25k of CIFAR-10's 50k
    assert DartsController().search_parts(without) == ("train",)  # the evaluators' val stays unseen
    assert DartsController(search_parts="train").search_parts(with_test) == ("train",)
    assert DartsController(search_parts="train+val").search_parts(without) == ("train", "val")
    data = SearchData.from_dataset(with_test, ("train", "val"))
    assert data.source == "train+val" and len(data.images) == len(data.targets) == 50
    lines: list[str] = []
    c = controller(epochs=1, batch_size=5)
    c.search(ToySupernet(), SearchData(data.images, data.targets, stats=data.stats, source=data.source),
             log=lines.append)
    a, b = c.split
    assert len(a) == len(b) == 25 and sorted(a.tolist() + b.tolist()) == list(range(50))
    assert "search data: train+val, 50 samples -> halves 25 (weights) / 25 (architecture)" in lines
    with pytest.raises(ValueError, match="search_parts must be one of"):
        DartsController(search_parts="all")


def test_the_search_data_line_says_when_the_crop_is_cut_to_the_images() -> None:
    from controllers.oneshot.darts import _crop_note
    from controllers.oneshot.darts_options import DartsOptions

    images, masks = torch.zeros(4, 3, 32, 48), torch.zeros(4, 32, 48, dtype=torch.long)
    assert _crop_note(DartsOptions(crop_size=321), images, masks) == (
        "; random crops 32x48 (crop_size 321 cut to the images' 32x48)")
    assert _crop_note(DartsOptions(crop_size=16), images, masks) == ""  # a real 16x16 crop
    assert _crop_note(DartsOptions(crop_size=321, augment=False), images, masks) == ""
    assert _crop_note(DartsOptions(crop_size=321), images, torch.zeros(4, dtype=torch.long)) == ""  # labels


def test_options_added_later_enter_the_checkpoint_fingerprint_only_when_set() -> None:
    plain = controller()._fingerprint(ToySupernet(), 16)["options"]
    assert "crop_size" not in plain and "steps_per_epoch" not in plain and "search_parts" not in plain
    assert "crop_size" in controller(crop_size=8)._fingerprint(ToySupernet(), 16)["options"]
    assert "search_parts" in controller(search_parts="train")._fingerprint(ToySupernet(), 16)["options"]
    for option in ("stop_at_skips", "stop_when_stable"):
        assert option not in plain and option in controller(**{option: 2})._fingerprint(ToySupernet(), 16)["options"]


# -- DARTS+ early stopping -------------------------------------------------------------------------

def skip_heavy(skips: int) -> ToySupernet:
    """A toy supernet whose α decodes ``skips`` of its 3 edges as skip connections, firmly."""
    net = ToySupernet()
    with torch.no_grad():
        net.alpha.zero_()
        for e in range(3):
            net.alpha[e, OPS.index("skip" if e < skips else "conv3")] = 5.0
    return net


def test_darts_plus_stops_once_the_decoded_cell_has_enough_skips(tmp_path: Any) -> None:
    lines: list[str] = []
    c = controller(epochs=4, warmup_epochs=1, stop_at_skips=2)
    (arch,) = c.search(skip_heavy(2), toy_data(), checkpoint_dir=tmp_path, log=lines.append)
    epochs = [ln for ln in lines if ln.startswith("epoch")]
    assert [ln.split()[1] for ln in epochs] == ["1/4", "2/4"]  # warm-up, then one α epoch
    assert "skips" not in epochs[0] and epochs[1].endswith("skips 2")
    assert "darts: early stop (DARTS+) after epoch 2/4: the decoded cell has 2 skip connections (stop_at_skips=2)" in lines
    assert "decoded_skips" not in c.history[0] and c.history[1]["decoded_skips"] == 2.0
    assert sum(op == "skip" for op in arch.values()) == 2
    # a resumed run derives from the stopped state instead of training on
    again: list[str] = []
    resumed = controller(epochs=4, warmup_epochs=1, stop_at_skips=2)
    assert resumed.search(ToySupernet(seed=3), toy_data(), checkpoint_dir=tmp_path, log=again.append) == [arch]
    assert not [ln for ln in again if ln.startswith("epoch")] and len(resumed.history) == 2


def test_darts_plus_stops_once_the_derived_architecture_holds(tmp_path: Any) -> None:
    lines: list[str] = []
    c = controller(epochs=6, warmup_epochs=1, stop_when_stable=2)
    full = c.search(skip_heavy(0), toy_data(), checkpoint_dir=tmp_path / "a", log=lines.append)
    epochs = [ln for ln in lines if ln.startswith("epoch")]
    assert [ln.split()[1] for ln in epochs] == ["1/6", "2/6", "3/6", "4/6"]  # α is firm: epochs 2-4 derive alike
    assert [m.get("derived_held_epochs") for m in c.history] == [None, 0.0, 1.0, 2.0]
    assert epochs[3].endswith("arch held 2 ep")
    assert ("darts: early stop (DARTS+) after epoch 4/6: the derived architecture has not changed for 2 epochs "
            "(stop_when_stable=2)") in lines

    def stop_after_three(line: str) -> None:
        if line.startswith("epoch 3/6"):
            raise Interrupt

    with pytest.raises(Interrupt):
        controller(epochs=6, warmup_epochs=1, stop_when_stable=2).search(
            skip_heavy(0), toy_data(), checkpoint_dir=tmp_path / "b", log=stop_after_three)
    resumed = controller(epochs=6, warmup_epochs=1, stop_when_stable=2)
    again: list[str] = []
    assert resumed.search(ToySupernet(seed=3), toy_data(), checkpoint_dir=tmp_path / "b", log=again.append) == full
    assert [ln.split()[1] for ln in again if ln.startswith("epoch")] == ["4/6"]  # the count went on from the checkpoint
    assert resumed.history == c.history


def test_darts_plus_below_the_limit_runs_every_epoch() -> None:
    c = controller(epochs=3, stop_at_skips=3)
    c.search(skip_heavy(2), toy_data())
    assert [m["decoded_skips"] for m in c.history] == [2.0, 2.0, 2.0]


def test_a_batch_larger_than_the_halves_is_noted_once() -> None:
    lines: list[str] = []
    c = controller(epochs=2, batch_size=100_000)
    c.search(ToySupernet(), toy_data(), log=lines.append)
    notes = [ln for ln in lines if "larger than the halves" in ln]
    assert notes == ["darts: note: batch_size 100000 is larger than the halves (8 / 8 samples); each batch is a "
                     "whole half, 1 step(s) an epoch"]
    lines.clear()
    controller(epochs=1, batch_size=8).search(ToySupernet(), toy_data(), log=lines.append)
    assert not any("larger than the halves" in ln for ln in lines)


def test_darts_plus_needs_a_supernet_that_counts_skips() -> None:
    from automl.types import Task

    class NoSkips(ToySupernet):
        decoded_skips = Supernet.decoded_skips

    class Space:
        name, paper_settings = "toy", {}

        def supernet(self, task: Any, **options: Any) -> Supernet:
            return NoSkips()

    c = DartsController(epochs=1, batch_size=4, stop_at_skips=2)
    with pytest.raises(ValueError, match="^darts: stop_at_skips needs a supernet that decodes a cell with skip connections"):
        c.bind(Space(), Task("classification", 3, (6, 6), 3), [Objective("valid_acc")], 0)
    DartsController(epochs=1, batch_size=4).bind(Space(), Task("classification", 3, (6, 6), 3), [Objective("valid_acc")], 0)


def test_a_group_search_hands_its_final_checkpoint_to_the_driver_which_derives_from_it(tmp_path: Any) -> None:
    """``ctx.call_group`` (here in this process, as one member) runs the search; the driver stores
    the returned checkpoint in the run's supernet folder and derives without training again."""
    from controllers.base import PrepareContext
    from controllers.oneshot.group import GroupSearch

    class Held:
        images, targets = {"train": toy_data(16).images}, {"train": toy_data(16).targets}
        parts, ignore_index, mean, std = ("train", "val"), None, (0.0,) * 3, (1.0,) * 3

        def load(self) -> Any:
            return self

    jobs: list[GroupSearch] = []

    def call_group(fn: Any, job: GroupSearch, log: Any = None) -> Any:
        jobs.append(job)
        job.checkpoint_path = None  # the member keeps its own folder: only the bytes come back
        return fn(job, log=log)

    c = controller(epochs=2)
    c.supernet = ToySupernet()
    lines: list[str] = []
    c.prepare(PrepareContext(dataset=Held(), checkpoint_dir=tmp_path / "supernet", log=lines.append,
                             call_group=call_group, group_size=2, dataset_ref=Held()))
    assert len(jobs) == 1 and jobs[0].parts == ("train",) and jobs[0].checkpoint is None
    assert (tmp_path / "supernet" / "supernet.pt").is_file() and c.derived
    assert any("data-parallel search on 2 Ray Train workers (global batch 4 = 2 x 2" in ln for ln in lines)
    assert not any(ln.startswith("epoch") for ln in lines)  # the driver trained nothing itself
    assert sum(ln.startswith("rank 0: epoch") for ln in lines) == 2  # the member's epochs, passed on
    assert sum(ln.startswith("rank 0: darts settings:") for ln in lines) == 1
    said = [ln.removeprefix("rank 0: ") for ln in lines]
    assert len(said) == len(set(said)), lines  # deriving from the checkpoint repeats nothing rank 0 said
    assert len(c.history) == 2  # the members' epochs, from the checkpoint


def test_a_group_search_without_a_run_directory_leaves_no_folder_behind(tmp_path: Any, monkeypatch: Any) -> None:
    """With no checkpoint folder the driver and rank 0 work in temporary folders and remove them."""
    import tempfile

    from controllers.base import PrepareContext

    class Held:
        images, targets = {"train": toy_data(16).images}, {"train": toy_data(16).targets}
        parts, ignore_index, mean, std = ("train", "val"), None, (0.0,) * 3, (1.0,) * 3

        def load(self) -> Any:
            return self

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    c = controller(epochs=1)
    c.supernet = ToySupernet()
    c.prepare(PrepareContext(dataset=Held(), call_group=lambda fn, job, log=None: fn(job, log=log), group_size=2,
                             dataset_ref=Held()))
    assert c.derived and list(tmp_path.iterdir()) == []
