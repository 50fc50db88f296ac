"""Every seg-unet preset exports (TorchScript, torch.export, ONNX) with parity (slow: ~5-15 s each)."""

from __future__ import annotations

import pytest
import torch

from automl.export import TOLERANCE, check_parity, export_model
from search_spaces.seg_unet import SegUNetSpace

SPACE = SegUNetSpace()


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(SegUNetSpace.presets()))
def test_preset_exports_with_parity(tmp_path, preset):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = SPACE.build(SPACE.preset(preset)).eval()
    x = torch.randn(2, 3, 32, 32)
    files = export_model(model, x, tmp_path, ["torchscript", "pt2", "onnx"])
    parity = check_parity(model, files, {"batch2": x, "batch3": torch.randn(3, 3, 32, 32)})
    for fmt, diffs in parity.items():
        assert max(diffs.values()) < TOLERANCE[fmt], (fmt, diffs)
