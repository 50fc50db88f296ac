"""The ``mobile`` space: decisions, presets, catalogue coverage, export, the layer-wise latency LUT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from automl.config import Component, RunConfig
from automl.export import check_parity, export_model
from automl.run import Run
from automl.types import Task
from evaluators.data import load_dataset
from evaluators.latency_lut import build_lut, median_ms, predict
from search_spaces.blocks import get_block
from search_spaces.mobile import MobileSpace
from search_spaces.mobile.plan import HEADS, STAGES

DIGITS = Task("classification", 1, (8, 8), 10)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _forward(space: MobileSpace, arch: dict, task: Task = DIGITS) -> torch.nn.Module:
    model = space.build(arch, task)
    out = model(torch.randn(2, task.in_channels, *task.input_size))
    assert out.shape == (2, task.num_classes)
    return model


def test_decisions_are_finite_and_categorical():
    space = MobileSpace()
    names = [d.name for d in space.decisions()]
    assert names[0] == "width" and names[-1] == "head" and len(names) == 2 + 5 * len(STAGES)
    assert space.size() == 3 * (8 * 3 * 3 * 3 * 3) ** len(STAGES) * 4


@pytest.mark.parametrize("name", ["width", "block", "kernel", "expand", "attn", "layers", "head"])
def test_every_decision_value_builds_and_runs(name):
    space = MobileSpace()
    for d in space.decisions():
        if d.name.split(".")[-1] != name or (name not in ("width", "head") and not d.name.startswith("s0.")):
            continue
        for value in d.choices:  # the value in every stage at once
            arch = space.sample(np.random.default_rng(0))
            arch.update({k: value for k in arch if k.split(".")[-1] == name})
            _forward(space, arch)


def test_block_choices_put_each_block_class_in_the_network():
    space = MobileSpace()
    choices = space.block_choices()
    assert set(choices) == {"mbconv", "blaze", "double_blaze", "octave_conv", "shift_conv", "ternary_conv",
                            "inception", "factorized_conv", "se", "gc",
                            "bilinear_pool", "factorized_bilinear", "attention_estimator"}
    for block, arch in choices.items():
        model = _forward(space, arch)
        assert any(isinstance(m, get_block(block).cls) for m in model.modules()), block
    heads = {b: choices[b]["head"] for b in ("bilinear_pool", "factorized_bilinear", "attention_estimator")}
    assert heads == {"bilinear_pool": "bilinear", "factorized_bilinear": "factorized_bilinear",
                     "attention_estimator": "attention"}


# -- heads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_every_head_builds_forwards_and_trains_on_both_input_sizes(head):
    """Every head maps 1x8x8 (digits) and 3x32x32 (the default task, also with stem stride 1: a
    2x2 last stage, so attention and bilinear pooling see several positions) to ``[N, classes]``,
    and every head parameter gets a gradient (nothing in a head is dead) -- except the attention
    scorer u on a 1x1 last stage, where the softmax over one position is the constant 1."""
    for space, task, one_by_one in [(MobileSpace(), DIGITS, True), (MobileSpace(), MobileSpace.default_task, True),
                                    (MobileSpace(stem_stride=1), MobileSpace.default_task, False)]:
        arch = dict(space.preset("blazeface-backbone"), width=0.5, head=head)
        model = _forward(space, arch, task)
        x = torch.randn(4, task.in_channels, *task.input_size)
        model(x).logsumexp(dim=1).sum().backward()
        dead = [n for n, p in model.head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert dead == (["estimator.u.weight"] if head == "attention" and one_by_one else []), (head, task, dead)


def test_head_designs():
    """pool: MobileNetV2's; bilinear: the head features reduced to 64 x width, c^2 descriptor;
    factorized_bilinear: head features -> logits; attention: local = last stage, global = pooled head."""
    space, blocks = MobileSpace(), {b: get_block(b).cls for b in ("bilinear_pool", "factorized_bilinear",
                                                                   "attention_estimator")}
    base = space.preset("mobilenetv2-like")
    assert space.build(base).head[3].in_features == 640 and base["head"] == "pool"
    bilinear = space.build(dict(base, head="bilinear", width=0.5)).head
    assert isinstance(bilinear[1], blocks["bilinear_pool"]) and bilinear[1].proj_a.out_channels == 32
    assert bilinear[2].in_features == 32 * 32
    fb = space.build(dict(base, head="factorized_bilinear")).head
    assert isinstance(fb[1], blocks["factorized_bilinear"]) and fb[1].linear.in_features == 640
    attention = space.build(dict(base, head="attention")).head
    assert isinstance(attention.estimator, blocks["attention_estimator"])
    assert attention.estimator.project_local.in_channels == 160 and attention.fc.in_features == 2 * 640


@pytest.mark.parametrize("head", HEADS)
def test_every_head_exports_to_every_format_with_parity(head, tmp_path):
    """TorchScript, pt2 and ONNX (dynamo) all export every head (bilinear's sign/sqrt/normalise,
    factorized_bilinear's squared factors, attention's softmax over positions) within tolerance;
    stem stride 1 on 3x32x32 so the head sees a 2x2 map."""
    pytest.importorskip("onnxruntime")
    space, task = MobileSpace(stem_stride=1), MobileSpace.default_task
    model = space.build(dict(space.preset("blazeface-backbone"), width=0.5, head=head), task).eval()
    x = torch.randn(7, *task.input_shape()[1:])
    files = export_model(model, x[:2], tmp_path, ["torchscript", "pt2", "onnx"])
    parity = check_parity(model, files, {"batch2": x[:2], "batch5": x[2:7]})
    assert set(parity) == {"torchscript", "pt2", "onnx"}
    assert all(diff < 1e-4 for per in parity.values() for diff in per.values()), parity


def test_layer_counts_strides_and_widths():
    space = MobileSpace()
    model = space.build(space.preset("mobilenetv2-like")).eval()
    assert [len(stage) for stage in model.stages] == [1, 2, 3, 4, 3, 3]  # MobileNetV2's first six stages
    first = model.stages[0][0]
    assert isinstance(first.expand, torch.nn.Identity) and first.depthwise.conv.kernel_size == (3, 3)
    assert model.stages[1][0].expand.conv.out_channels == 16 * 6 and not model.stages[1][0].residual
    assert model.stages[1][1].residual
    assert isinstance(model.stem[2], torch.nn.ReLU6)
    half = dict(space.preset("mobilenetv2-like"), width=0.5)
    assert space.build(half).stages[5][0].project.conv.out_channels == 80
    x = torch.randn(1, 3, 32, 32)
    feats = model.stages(model.stem(x))
    assert feats.shape[-2:] == (1, 1)  # total stride 32


def test_blazeface_preset_has_five_single_and_six_double_blocks_in_the_first_four_stages():
    space = MobileSpace()
    model = space.build(space.preset("blazeface-backbone"))
    kinds = [type(m).__name__ for stage in list(model.stages)[:4] for m in stage]
    assert kinds == ["BlazeBlock"] * 5 + ["DoubleBlazeBlock"] * 6
    assert [m.body[0].stride[0] for stage in list(model.stages)[:4] for m in stage] == [1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1]


@pytest.mark.parametrize("preset", ["mobilenetv2-like", "blazeface-backbone"])
def test_presets_train_on_digits_and_export_with_parity(preset, tmp_path):
    space = MobileSpace()
    data = load_dataset("digits", task_kind="classification", seed=0)
    x, y = data.tensors("train")
    model = space.build(space.preset(preset), data.task)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss = torch.nn.functional.cross_entropy(model(x[:32]), y[:32])
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    model.eval()
    # every format for the smaller preset; TorchScript for both (all blocks export: see the report)
    formats = ["torchscript", "pt2", "onnx"] if preset == "blazeface-backbone" else ["torchscript"]
    if "onnx" in formats:
        pytest.importorskip("onnxruntime")
    files = export_model(model, x[:2], tmp_path, formats)
    parity = check_parity(model, files, {"batch2": x[:2], "batch5": x[2:7]})
    assert set(parity) == set(formats)
    assert all(diff < 1e-4 for per in parity.values() for diff in per.values()), parity


def test_describe_parse_round_trip_and_canonical_values():
    space = MobileSpace()
    rng = np.random.default_rng(3)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.parse(space.describe(arch)) == arch
        assert space.parse(json.dumps(arch)) == arch
    for head in HEADS:
        arch = dict(space.preset("blazeface-backbone"), head=head)
        assert space.describe(arch).endswith(f"/-1 {head}") and space.parse(space.describe(arch)) == arch
    text = space.describe(space.preset("mobilenetv2-like"))
    assert text.startswith("w1.0 mbconv/k3/e1/none/-1 mbconv/k3/e6/none/+0") and text.endswith(" pool")
    assert space.validate(dict(space.preset("mobilenetv2-like"), width=1))["width"] == 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [({"s0.block": "conv"}, "s0.block='conv' is not one of"), ({"s2.kernel": 4}, "s2.kernel=4"),
     ({"s1.layers": True}, "s1.layers=True"), ({"width": 2.0}, "width=2.0"), ({"head": "gap"}, "head='gap'")],
)
def test_bad_archs_are_one_line(change, message):
    space = MobileSpace()
    with pytest.raises(ValueError, match=message) as err:
        space.build(dict(space.preset("mobilenetv2-like"), **change))
    assert len(str(err.value).splitlines()) == 1


def test_bad_options_and_text_are_one_line():
    for options, message in [({"stem_stride": 3}, "stem_stride must be one of 1, 2"), ({"act": "mish"}, "act must be")]:
        with pytest.raises(ValueError, match=message):
            MobileSpace(**options)
    stages = " ".join(["mbconv/k3/e6/none/+0"] * 6)
    for text in ["w1.0 mbconv", f"wX {stages} pool", "w1.0 " + " ".join(["mbconv-k3"] * 6) + " pool",
                 f"w1.0 {stages}", f"w1.0 {stages} gap"]:
        with pytest.raises(ValueError) as err:
            MobileSpace().parse(text)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ValueError, match="2D classification"):
        MobileSpace().build(MobileSpace().preset("mobilenetv2-like"), Task("segmentation", 3, (32, 32), 5))


# -- latency look-up table -----------------------------------------------------------------------


def test_every_arch_decomposes_into_table_entries():
    space = MobileSpace()
    for task in (space.default_task, DIGITS):
        entries = space.lut_entries(task)
        rng = np.random.default_rng(0)
        for _ in range(200):
            assert set(space.lut_keys(space.sample(rng), task)) <= set(entries)
        heads = [k for k in entries if k.startswith("mobile/head/")]
        assert len(heads) == 4 * 3  # a head per kind per width
        for head in HEADS:
            arch = dict(space.sample(rng), head=head)
            assert space.lut_keys(arch, task)[-1].startswith(f"mobile/head/{head}/")
            assert space.lut_keys(arch, task)[-1] in entries
    keys = space.lut_keys(space.preset("mobilenetv2-like"))
    assert len(keys) == 1 + 16 + 1  # stem, 16 layers, head
    assert keys[1] == "mobile/s0/mbconv-k3-e1/32x16x16->16/s1" and keys[0].startswith("mobile/stem/3x32x32/s2")
    assert keys[-1] == "mobile/head/pool/160x1x1->640->10"


def test_prediction_is_stem_plus_layers_plus_attention_plus_head():
    space = MobileSpace()
    entries = {k: 0.0 for k in space.lut_entries()}
    for k in entries:
        entries[k] = 10.0 if k.startswith(("mobile/stem", "mobile/head")) else 1.0 if "/attn-" in k else 0.5
    arch = dict(space.preset("blazeface-backbone"), **{"s1.attn": "gc", "s4.attn": "se"})
    layers = 2 + 3 + 3 + 3 + 2 + 1
    assert predict(space, arch, space.default_task, entries) == pytest.approx(20.0 + 0.5 * layers + 2 * 1.0)
    mb_se = dict(space.preset("mobilenetv2-like"), **{"s0.attn": "se"})  # SE inside the MBConv: no stage entry
    assert not any("/attn-" in k for k in space.lut_keys(mb_se)) and "mbconv-k3-e1-se" in space.lut_keys(mb_se)[1]


def test_lut_prediction_ranks_measured_latency():
    """A table of just the entries 8 archs of spread-out cost need (tiny timings) ranks their
    measured latency (each the faster of two medians: the machine may be shared)."""
    space = MobileSpace()
    task = space.default_task
    choices = space.block_choices()
    archs = [space.preset("mobilenetv2-like"), space.preset("blazeface-backbone"),
             *(dict(choices[b], width=w) for b, w in [("shift_conv", 0.5), ("ternary_conv", 0.75), ("inception", 1.0),
                                                     ("factorized_conv", 0.5), ("mbconv", 0.75), ("blaze", 1.0)])]
    needed = {k for a in archs for k in space.lut_keys(a, task)}

    class Needed(MobileSpace):
        def lut_entries(self, task=None):
            return {k: e for k, e in super().lut_entries(task).items() if k in needed}

    table = build_lut(Needed(), task, threads=1, min_run_time=0.01)["entries"]
    predicted = [predict(space, a, task, table) for a in archs]
    measured = []
    for a in archs:
        model, x = space.build(a, task).eval(), torch.randn(1, *task.input_shape()[1:])
        with torch.inference_mode():
            measured.append(min(median_ms(lambda m=model, x=x: m(x), 1, 0.02, torch.device("cpu")) for _ in range(2)))
    assert spearmanr(predicted, measured)[0] > 0.7, (predicted, measured)


def test_random_search_with_the_latency_lut_evaluator(tmp_path):
    space = MobileSpace()
    lut = tmp_path / "lut.json"
    entries = {k: 0.1 + 0.01 * i for i, k in enumerate(sorted(space.lut_entries()))}
    lut.write_text(json.dumps({"space": "mobile", "entries": entries}))
    cfg = RunConfig(space=Component("mobile"), controller=Component("random"), objectives=["latency_ms:min"],
                    evaluators=[Component("latency-lut", {"lut": str(lut)})], budget=2, run_dir=str(tmp_path / "r"))
    summary = Run(cfg, tensorboard=False).execute()
    assert [r.state for r in summary.records] == ["complete", "complete"]
    for r in summary.records:
        assert r.metrics["latency_ms"] == pytest.approx(predict(space, r.arch, space.default_task, entries))
