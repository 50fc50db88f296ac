"""Generic checks run for every registered block (parametrised over the registry).

A block added to the registry is tested here automatically; its own property (the last column of
docs/algorithms.md Block notes) is tested in ``tests/blocks/test_<table>_blocks.py``. ``test_every_block_has_property_test``
fails when a block has no property test.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from search_spaces.blocks import block_names, get_block

# Names of every row of docs/blocks.md (copied so the test does not need ../shared).
BLOCKS_MD_NAMES = {
    # Convolutions and cell operations
    "conv", "dil_conv", "sep_conv", "factorized_conv", "inception", "blaze", "double_blaze",
    "octave_conv", "deform_conv", "shift_conv", "ternary_conv", "fickle_conv",
    "coord_channels", "gated_residual", "dense_block", "conv_lstm",
    # Attention and context
    "se", "non_local", "gc", "attention_gate", "fpa", "gau", "self_attention", "mhsa",
    "attention_estimator", "spatial_attention_module", "context_enhancement",
    "bilinear_pool", "factorized_bilinear", "attentional_pool",
    # Multi-scale, decoders, aggregation
    "aspp", "ppm", "fpn", "cascade_feature_fusion", "nested_skip", "ida", "hda",
    "gated_shape_stream", "dual_encoder", "dense_comparison", "iterative_refine",
    # Video
    "inflated_conv3d", "temporal_transition", "mict", "fast3d", "cost", "gst", "slowfast",
    "temporal_bilinear", "st_attention", "attention_cluster",
}

NAMES = block_names()
C_IN, C_OUT = 8, 12
H, W, T = 33, 47, 5


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    flat = []
    for o in out:
        flat.extend(_flat(o))
    return flat


def _make(name: str, stride: int = 1):
    spec = get_block(name)
    torch.manual_seed(0)
    block = spec.create(C_IN, C_OUT, stride=stride, **spec.test_kwargs)
    inputs = spec.example_inputs(C_IN, batch=2, height=H, width=W, frames=T)
    return spec, block, inputs


def test_registry_covers_blocks_md():
    missing = BLOCKS_MD_NAMES - set(NAMES)
    assert not missing, f"docs/algorithms.md Block notes rows without a registered block: {sorted(missing)}"


def test_every_block_has_property_test():
    text = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*_blocks.py"))
    untested = [n for n in NAMES if not re.search(rf"def test_{n}_\w+", text)]
    assert not untested, f"blocks without a property test (def test_<name>_...): {untested}"


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name):
    spec = get_block(name)
    assert spec.paper and spec.summary, name
    assert spec.cls.__doc__ and len(spec.cls.__doc__.strip()) > 20, f"{name} needs a docstring"
    if not spec.onnx:
        assert spec.onnx_reason, f"{name} is not ONNX-exportable but gives no reason"
    if not spec.torch_export:
        assert spec.export_reason, f"{name} is not torch.export-able but gives no reason"


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_standard_shape(name, stride):
    spec = get_block(name)
    if not spec.standard_io:
        pytest.skip("non-standard signature: shape checked by the block's own test")
    if stride == 2 and not spec.supports_stride:
        pytest.skip("block has no stride")
    spec, block, inputs = _make(name, stride)
    out = block(*inputs)
    expect = [2, C_OUT, math.ceil(H / stride), math.ceil(W / stride)]
    if spec.video:
        expect = [2, C_OUT, T, math.ceil(H / stride), math.ceil(W / stride)]
    assert list(out.shape) == expect


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    spec, block, inputs = _make(name)
    block.train()
    with torch.no_grad():  # break zero initialisations so every path carries signal
        for p in block.parameters():
            p.add_(0.05 * torch.randn_like(p))
    inputs = tuple(i.requires_grad_(True) if i.is_floating_point() else i for i in inputs)
    outs = _flat(block(*inputs))
    sum(o.float().pow(2).mean() for o in outs).backward()
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient in {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic(name):
    spec, block, inputs = _make(name)
    block.eval()
    with torch.no_grad():
        a = _flat(block(*inputs))
        b = _flat(block(*inputs))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("name", NAMES)
def test_torch_export(name):
    spec, block, inputs = _make(name)
    if not spec.torch_export:
        pytest.skip(spec.export_reason)
    block.eval()
    exported = torch.export.export(block, inputs)
    with torch.no_grad():
        ref = _flat(block(*inputs))
        got = _flat(exported.module()(*inputs))
    for x, y in zip(ref, got, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if not get_block(n).video])
def test_onnx_matches_torch(name, tmp_path):
    spec, block, inputs = _make(name)
    if not spec.onnx:
        pytest.skip(spec.onnx_reason)
    ort = pytest.importorskip("onnxruntime")
    block.eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(block, inputs, str(path), dynamo=True, verbose=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs, strict=True)}
    got = sess.run(None, feeds)
    with torch.no_grad():
        ref = _flat(block(*inputs))
    assert len(got) == len(ref)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(torch.from_numpy(g), r, rtol=1e-4, atol=1e-4)
