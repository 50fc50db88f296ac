"""`automl export`: artefacts, model card, parity, and loading where automl is not importable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers import run_cli

LOADER = textwrap.dedent("""
    import sys
    for name in ("automl", "search_spaces", "controllers", "evaluators"):
        sys.modules[name] = None  # make sure nothing of automl can be imported
    import json, numpy as np, torch, onnxruntime as ort
    folder = sys.argv[1]
    x = torch.from_numpy(np.load(folder + "/x.npy"))
    ts = torch.jit.load(folder + "/model.ts")(x)
    pt2 = torch.export.load(folder + "/model.pt2").module()(x)
    sess = ort.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
    onnx = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    print(json.dumps({"ts": ts.tolist(), "pt2": pt2.tolist(), "onnx": onnx.tolist()}))
""")




@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    from automl.config import Component, RunConfig
    from automl.run import Run

    root = tmp_path_factory.mktemp("export")
    cfg = RunConfig(space=Component("nb201", {"channels": 4, "cells_per_stage": 1}), controller=Component("random"),
                    evaluators=[Component("train", {"epochs": 1, "save_weights": True, "batch_size": 128})],
                    dataset="digits", budget=2, run_dir=str(root / "run"))
    Run(cfg, tensorboard=False).execute()
    return root / "run"


def test_export_all_formats_and_load_without_automl(capsys, trained_run, tmp_path):
    out = tmp_path / "artefacts"
    code, text, err = run_cli(capsys, "export", str(trained_run), "--format", "all", "--out", str(out))
    assert code == 0, err
    assert "parity" in text and "ABOVE" not in text
    card = json.loads((out / "model_card.json").read_text())
    assert card["input_shape"] == ["batch", 1, 8, 8] and card["num_classes"] == 10
    assert card["class_names"] == [str(i) for i in range(10)] and len(card["normalisation"]["mean"]) == 1
    assert card["arch_str"].startswith("|") and "val_acc" in card["metrics"]
    for fmt, tol in (("torchscript", 1e-5), ("pt2", 1e-5), ("onnx", 1e-4)):
        assert set(card["parity_max_abs_diff"][fmt]) == {"random", "real"}
        assert max(card["parity_max_abs_diff"][fmt].values()) <= tol

    # Reference predictions from the in-framework model, then a fresh process without automl.
    import torch

    from automl.report import open_run
    from evaluators.data import load_dataset
    from search_spaces.nb201 import NB201Space

    view = open_run(trained_run)
    rec = next(r for r in view.records if r.number == card["trial"])
    data = load_dataset("digits", task_kind="classification", seed=0)
    model = NB201Space(channels=4, cells_per_stage=1).build(rec.arch, data.task)
    model.load_state_dict(torch.load(trained_run / "trials" / f"{rec.number:05d}" / "weights.pt", weights_only=True))
    x = data.tensors("val")[0][:5]
    np.save(out / "x.npy", x.numpy())
    with torch.no_grad():
        ref = model.eval()(x)
    proc = subprocess.run([sys.executable, "-c", LOADER, str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for fmt, tol in (("ts", 1e-5), ("pt2", 1e-5), ("onnx", 1e-4)):
        assert torch.allclose(torch.tensor(got[fmt]), ref, atol=tol), fmt
        assert torch.equal(torch.tensor(got[fmt]).argmax(1), ref.argmax(1))


def test_export_errors(capsys, trained_run, tmp_path):
    code, _, err = run_cli(capsys, "export", str(trained_run), "--trial", "99", "--out", str(tmp_path / "a"))
    assert code == 2 and "has no finished trial 99" in err
    code, _, err = run_cli(capsys, "export", str(trained_run), "--format", "tflite", "--out", str(tmp_path / "b"))
    assert code == 2 and "unknown format(s) ['tflite']" in err
    (trained_run / "trials" / "00000" / "weights.pt").rename(trained_run / "w.bak")
    try:
        code, _, err = run_cli(capsys, "export", str(trained_run), "--trial", "0", "--out", str(tmp_path / "c"))
        assert code == 2 and "--train-epochs" in err
        assert not (tmp_path / "c").exists()  # nothing half-written
        code, text, err = run_cli(capsys, "export", str(trained_run), "--trial", "0", "--format", "pt2",
                               "--train-epochs", "1", "--out", str(tmp_path / "c"))
        assert code == 0, err
        assert "retrained" in text and (tmp_path / "c" / "model.pt2").is_file()
    finally:
        (trained_run / "w.bak").rename(trained_run / "trials" / "00000" / "weights.pt")


def test_a_training_search_keeps_the_weights_of_its_front_and_exports_without_flags(capsys, tmp_path):
    """save_weights defaults to 'front': every trial on the Pareto front has weights.pt, no other does."""
    from automl.report import open_run

    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "search", "--space", "nb201", "--controller", "random", "--dataset", "digits",
                             "--evaluator", "train", "--evaluator", "cost", "--objective", "val_acc:max",
                             "--objective", "params_M:min", "--set", "space.channels=4", "--set",
                             "space.cells_per_stage=1", "--set", "train.batch_size=128", "--budget", "6",
                             "--run-dir", str(run_dir), "--no-progress")
    assert code == 0, err
    assert f"run directory: {run_dir} (new)" in out and f"export: automl export {run_dir}\n" in out
    view = open_run(run_dir)
    front = {r.number for r in view.front()}
    saved = {int(p.parent.name) for p in run_dir.glob("trials/*/weights.pt")}
    assert front and saved == front and len(view.records) == 6 > len(front)
    code, out, err = run_cli(capsys, "export", str(run_dir), "--format", "torchscript", "--out", str(tmp_path / "x"))
    assert code == 0, err
    assert "weights: " + str(run_dir) in out.replace("\n", "")

    code, out, err = run_cli(capsys, "show", str(run_dir), "--top", "2")
    assert code == 0 and "the best 2 of 6 trials (--top 0 lists all)" in out
