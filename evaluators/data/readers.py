"""Source readers: each turns one spec into arrays for :func:`build_dataset`.

Every reader returns ``(images uint8 [N, H, W, C], targets, extras)`` (video readers: clips
``[N, T, H, W, C]``) where ``extras`` holds
``class_names`` / ``ignore_index`` / ``test`` when the source has them. Readers check their
format and raise :class:`DatasetError` with one line naming the file and what is accepted.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.data.dataset import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
Arrays = tuple[np.ndarray, np.ndarray, dict[str, Any]]


def read_digits() -> Arrays:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16 rescaled to 0..255)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64), {"class_names": [str(c) for c in bunch.target_names]}


def read_npz(spec: str, path: Path, kind: str | None) -> Arrays:
    """``images`` [N,H,W] / [N,H,W,C] uint8 with ``labels`` [N] or ``masks`` [N,H,W]; video clips
    ``images`` [N,T,H,W,C] (or [N,T,H,W] with task kind video) with ``labels`` [N].

    Optional keys: ``ignore_index`` (scalar), ``class_names`` (strings), ``num_classes``
    (scalar; targets outside 0..num_classes-1 other than ``ignore_index`` are an error). When both ``labels``
    and ``masks`` are present the task kind decides which is used.
    """
    _need_file(spec, path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip / format errors from numpy
        raise DatasetError(f"{spec}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    if "images" not in arrays:
        raise DatasetError(f"{spec}: no 'images' array; found {sorted(arrays)}, expected images + labels or masks")
    has = [k for k in ("labels", "masks") if k in arrays]
    if not has:
        raise DatasetError(f"{spec}: no 'labels' [N] or 'masks' [N,H,W] array; found {sorted(arrays)}")
    if kind is None and len(has) == 2:
        raise DatasetError(f"{spec}: has both 'labels' and 'masks'; pass task_kind to choose")
    key = {"classification": "labels", "segmentation": "masks", "video": "labels"}.get(kind or "", has[0])
    if key not in arrays:
        raise DatasetError(f"{spec}: task kind {kind} needs a {key!r} array; found {sorted(arrays)}")
    images = arrays["images"]
    if images.ndim == 3 or (images.ndim == 4 and kind == "video"):
        images = images[..., None]
    video = images.ndim == 5
    if video and key != "labels":
        raise DatasetError(f"{spec}: 5-D images are video clips [N,T,H,W,C] and need 'labels' [N], not masks")
    if kind is not None and video != (kind == "video"):
        raise DatasetError(f"{spec}: images {list(arrays['images'].shape)} are "
                           f"{'video clips' if video else 'not video clips [N,T,H,W,C]'} but the task is {kind}")
    extras: dict[str, Any] = {"kind": "video" if video else "classification" if key == "labels" else "segmentation"}
    if "ignore_index" in arrays:
        ignore = arrays["ignore_index"]
        if ignore.size != 1 or not np.issubdtype(ignore.dtype, np.integer):
            raise DatasetError(f"{spec}: ignore_index must be one integer, got {ignore.dtype} {list(ignore.shape)}")
        extras["ignore_index"] = int(ignore.reshape(()))
    if "class_names" in arrays:
        extras["class_names"] = [str(n) for n in arrays["class_names"].reshape(-1)]
    if "num_classes" in arrays:
        count = arrays["num_classes"]
        if count.size != 1 or not np.issubdtype(count.dtype, np.integer) or int(count.reshape(())) < 2:
            raise DatasetError(f"{spec}: num_classes must be one integer >= 2, got {count.dtype} {count.reshape(-1)[:3].tolist()}")
        extras["num_classes"] = int(count.reshape(()))
    if images.size == 0:
        raise DatasetError(f"{spec}: 'images' holds no samples (shape {list(arrays['images'].shape)})")
    return images, arrays[key], extras


def read_image_folder(spec: str, root: Path, image_size: tuple[int, int] | None) -> Arrays:
    """``ROOT/<class>/<image>``: one sub-folder per class, sorted names give class ids."""
    _need_dir(spec, root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(f"{spec}: needs at least 2 class sub-folders of images, found {classes}")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = _image_files(root / name)
        if not found:
            raise DatasetError(f"{spec}: class folder {name!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    images = _load_images(spec, files, image_size, mask=False)
    return images, np.asarray(labels, dtype=np.int64), {"class_names": classes}


def read_video_folder(spec: str, root: Path, image_size: tuple[int, int] | None) -> Arrays:
    """``ROOT/<class>/<clip>``: a clip is a folder of frames (sorted by name) or an ``.npy`` array
    ``[T, H, W]`` / ``[T, H, W, C]`` uint8; every clip needs the same number of frames (and size,
    unless ``image_size`` resizes folder frames)."""
    _need_dir(spec, root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(f"{spec}: needs at least 2 class sub-folders of clips, found {classes}")
    clips: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".npy"))
        if not found:
            raise DatasetError(f"{spec}: class folder {name!r} has no clips (frame folders or .npy files)")
        clips += [_read_clip(spec, p, image_size) for p in found]
        labels += [label] * len(found)
    odd = next((i for i, c in enumerate(clips) if c.shape != clips[0].shape), None)
    if odd is not None:
        raise DatasetError(f"{spec}: clips differ in shape [T,H,W,C] ({list(clips[0].shape)} and {list(clips[odd].shape)}); "
                           "give every clip the same frames and size")
    return np.stack(clips), np.asarray(labels, dtype=np.int64), {"class_names": classes}


def _read_clip(spec: str, path: Path, image_size: tuple[int, int] | None) -> np.ndarray:
    """One clip ``uint8 [T, H, W, C]`` from a frame folder or an ``.npy`` file."""
    if path.is_dir():
        frames = _image_files(path)
        if not frames:
            raise DatasetError(f"{spec}: clip folder {path} has no frames ({', '.join(IMAGE_SUFFIXES)})")
        return _load_images(spec, frames, image_size, mask=False)
    try:
        clip = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
        raise DatasetError(f"{spec}: cannot read clip {path} as .npy ({type(exc).__name__}: {exc})") from None
    clip = clip[..., None] if clip.ndim == 3 else clip
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] not in (1, 2, 3, 4) or 0 in clip.shape:
        raise DatasetError(f"{spec}: clip {path.name} must be uint8 [T,H,W] or [T,H,W,C], got {clip.dtype} {list(clip.shape)}")
    if image_size is not None and tuple(clip.shape[1:3]) != tuple(image_size):
        raise DatasetError(f"{spec}: clip {path.name} is {list(clip.shape[1:3])}; image_size resizes frame folders only")
    return clip


def read_seg_folder(spec: str, root: Path, image_size: tuple[int, int] | None) -> Arrays:
    """``ROOT/images/<name>.*`` with ``ROOT/masks/<name>.png`` of class ids; 255 is ignored (VOC).
    An optional ``ROOT/classes.txt`` (one class name per line) fixes the class count.

    Or the two parts of a benchmark (Cityscapes' train_fine / val): ``ROOT/train`` and
    ``ROOT/val``, each with ``images/`` and ``masks/``. ``train`` is then split as above and
    ``val`` is kept whole as the held-out ``test`` part, like CIFAR-10's test batch: a darts search
    (``search_parts=auto``) splits the whole training folder 50/50 and the ``train`` evaluator
    reports ``test_miou`` on the official validation images, which no search step saw."""
    _need_dir(spec, root)
    split = not (root / "images").is_dir() and (root / "train").is_dir()
    if split and not (root / "val").is_dir():
        raise DatasetError(f"{spec}: {root}/train has no {root}/val beside it; expected {root}/images and "
                           f"{root}/masks, or train/ and val/ each holding images/ and masks/")
    images, masks = _read_seg_part(spec, root / "train" if split else root, image_size)
    extras: dict[str, Any] = {"ignore_index": 255}
    if split:
        extras["test"] = _read_seg_part(spec, root / "val", image_size)
    names = next((d / "classes.txt" for d in (root, root / "train") if (d / "classes.txt").is_file()), None)
    if names is not None:
        extras["class_names"] = [n.strip() for n in names.read_text().splitlines() if n.strip()]
    return images, masks, extras


def _read_seg_part(spec: str, root: Path, image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W, C]`` and uint8 class-id masks ``[N, H, W]`` of ``root/images``, ``root/masks``."""
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise DatasetError(f"{spec}: missing folder {sub!r}; expected {root}/images and {root}/masks")
    image_files = _image_files(root / "images")
    if not image_files:
        raise DatasetError(f"{spec}: no images in {root / 'images'} ({', '.join(IMAGE_SUFFIXES)})")
    masks_by_stem = {p.stem: p for p in _image_files(root / "masks")}
    missing = [p.name for p in image_files if p.stem not in masks_by_stem]
    if missing:
        raise DatasetError(f"{spec}: {len(missing)} images have no mask of the same name in {root}/masks, "
                           f"e.g. {missing[:3]}")
    images = _load_images(spec, image_files, image_size, mask=False)
    masks = _load_images(spec, [masks_by_stem[p.stem] for p in image_files], image_size, mask=True)
    mask_hw = masks.shape[1:3]
    if mask_hw != images.shape[1:3]:
        raise DatasetError(f"{spec}: masks are {list(mask_hw)} but images are {list(images.shape[1:3])} in {root}")
    return images, masks[..., 0]  # uint8 class ids, kept compact


CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_cifar10(spec: str, root: Path) -> Arrays:
    """The python-pickle CIFAR-10 (``data_batch_1..5``, ``test_batch``) in ROOT or ROOT/cifar-10-batches-py."""
    _need_dir(spec, root)
    if not (root / "data_batch_1").exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DatasetError(f"{spec}: missing {missing} in {root}; expected data_batch_1..5 and test_batch")
    parts = [_cifar_batch(spec, root / n) for n in names]
    images = np.concatenate([p[0] for p in parts[:-1]])
    labels = np.concatenate([p[1] for p in parts[:-1]])
    return images, labels, {"class_names": list(CIFAR10_NAMES), "test": parts[-1]}


class _NumpyUnpickler(pickle.Unpickler):
    """Loads only plain containers and numpy arrays: a CIFAR batch cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _cifar_batch(spec: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = _NumpyUnpickler(fh, encoding="bytes").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data = np.asarray(batch["data"])
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except Exception as exc:
        raise DatasetError(
            f"{spec}: {path.name} is not a CIFAR-10 python batch (dict with data [N,3072] uint8 and labels): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetError(
            f"{spec}: {path.name} data must be uint8 [N, 3072] with N labels, got {data.dtype} {list(data.shape)}"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_images(spec: str, files: list[Path], size: tuple[int, int] | None, *, mask: bool) -> np.ndarray:
    """Stack images as uint8 ``[N, H, W, C]``: all-grey folders give C=1, otherwise RGB.

    Headers are read first (modes, sizes), then each image is decoded straight into the one
    output array: loading takes no more memory than the stacked pixels."""
    from PIL import Image

    modes, sizes = [], []
    for path in files:
        with _open(spec, path, load=False) as im:
            modes.append(im.mode)
            sizes.append((im.height, im.width))
    if mask:
        bad = [p.name for p, m in zip(files, modes) if m not in ("L", "P", "I", "I;16", "1")]
        if bad:
            raise DatasetError(
                f"{spec}: masks must be single-channel PNGs of class ids (mode L or P), e.g. {bad[0]} is not"
            )
    mode = "L" if all(m in ("L", "1", "I;16", "I") for m in modes) else "RGB"
    if size is None:
        odd = next((i for i, hw in enumerate(sizes) if hw != sizes[0]), None)
        if odd is not None:
            raise DatasetError(
                f"{spec}: images differ in size ({files[0].name} is {sizes[0]}, {files[odd].name} "
                f"is {sizes[odd]}); pass image_size=(H, W) to resize them"
            )
        size = sizes[0]
    out = np.empty((len(files), *size, 1 if mask or mode == "L" else 3), dtype=np.uint8)
    for i, path in enumerate(files):
        with _open(spec, path) as im:
            if mask:  # class ids as stored: palette indices (P), grey values (L), 0/1 (1), ints (I)
                values = np.asarray(im).astype(np.int64)
                if values.min() < 0 or values.max() > 255:
                    raise DatasetError(f"{spec}: mask {path.name} has class ids outside 0..255")
                im = Image.fromarray(values.astype(np.uint8))
            else:
                im = im.convert(mode)
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.NEAREST if mask else Image.BILINEAR)
            out[i] = np.asarray(im, dtype=np.uint8).reshape(out.shape[1:])
    return out


def _open(spec: str, path: Path, *, load: bool = True) -> Any:
    """``path`` opened with PIL (pixels decoded with ``load``); one line when it is no readable image."""
    from PIL import Image

    try:
        im = Image.open(path)
        if load:
            im.load()
    except Exception as exc:
        raise DatasetError(f"{spec}: cannot read image {path} ({type(exc).__name__}: {exc})") from None
    return im


def _need_file(spec: str, path: Path) -> None:
    if not path.is_file():
        raise DatasetError(f"{spec}: file not found: {path}")


def _need_dir(spec: str, path: Path) -> None:
    if not path.is_dir():
        raise DatasetError(f"{spec}: folder not found: {path}")
