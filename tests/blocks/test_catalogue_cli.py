"""`automl blocks` and the generated docs/blocks.md."""

from __future__ import annotations

from pathlib import Path

from automl import catalogue
from tests.helpers import run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "blocks.md"




def test_docs_page_is_current():
    assert DOC.read_text() == catalogue.render_markdown(), (
        "docs/blocks.md is out of date: run `python -m automl.catalogue --write docs/blocks.md`"
    )


def test_blocks_listing_and_detail(capsys):
    code, out, _ = run_cli(capsys, "blocks")
    assert code == 0 and f"{len(catalogue.all_blocks())} block(s)" in out and "deform_conv" in out and "aspp" in out
    code, out, _ = run_cli(capsys, "blocks", "--kind", "video")
    assert code == 0 and "slowfast" in out and "deform_conv" not in out
    code, out, _ = run_cli(capsys, "blocks", "sep_conv")
    assert code == 0 and "kernel_size = 3" in out and "ONNX:      yes" in out and "9,600" in out


def test_blocks_bad_input(capsys):
    code, _, err = run_cli(capsys, "blocks", "sepconv")
    assert code == 2 and "unknown block 'sepconv'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "blocks", "--kind", "mlp")
    assert code == 2 and "unknown kind 'mlp'" in err


def test_params_for_reference_instance():
    spec = catalogue.get_block("conv")
    # ReLU-Conv3x3-BN 64->64: 64*64*9 weights + 2*64 BN affine parameters.
    assert catalogue.count_params(spec) == 64 * 64 * 9 + 128
