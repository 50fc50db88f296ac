"""``load_dataset(spec)``: the datasets trained evaluators use, by spec string.

=========================  ==============  ============================================
spec                       kind            source
=========================  ==============  ============================================
``digits``                 classification  scikit-learn's bundled 8x8 digits (default)
``shapes``                 segmentation    synthetic shapes from ``data_seed`` (default)
``moving-shapes``          video           synthetic clips, the class given by the motion
``npz:PATH``               any             ``images`` + ``labels`` [N] or ``masks`` [N,H,W]; 5-D: clips
``image-folder:PATH``      classification  ``PATH/<class>/<image>``
``seg-folder:PATH``        segmentation    ``PATH/images/*`` + ``PATH/masks/*.png`` (255 ignored)
``cifar10:PATH``           classification  python pickles ``data_batch_1..5``, ``test_batch``
``video-folder:PATH``      video           ``PATH/<class>/<clip>``: frame folders or ``.npy`` clips
=========================  ==============  ============================================

Every spec gives a :class:`~evaluators.data.Dataset` with a seeded (stratified for
classification) train/val split; CIFAR-10 also keeps its official ``test`` part. Bad specs
and files raise :class:`~evaluators.data.DatasetError` (a ``ValueError``) with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluators.data import readers
from evaluators.data.dataset import Dataset, DatasetError, build_dataset
from evaluators.data.moving_shapes import CLASS_NAMES as MOVING_CLASSES
from evaluators.data.moving_shapes import generate_moving_shapes
from evaluators.data.shapes import CLASS_NAMES as SHAPES_CLASSES
from evaluators.data.shapes import generate_shapes

__all__ = ["ACCEPTED", "DEFAULT_SPECS", "SPECS", "load_dataset"]

# spec name -> (task kind or None when the file decides, takes a PATH)
SPECS: dict[str, tuple[str | None, bool]] = {
    "digits": ("classification", False),
    "shapes": ("segmentation", False),
    "npz": (None, True),
    "image-folder": ("classification", True),
    "seg-folder": ("segmentation", True),
    "cifar10": ("classification", True),
    "moving-shapes": ("video", False),
    "video-folder": ("video", True),
}
DEFAULT_SPECS = {"classification": "digits", "segmentation": "shapes", "video": "moving-shapes"}
ACCEPTED = ("digits, shapes, moving-shapes, npz:PATH, image-folder:PATH, seg-folder:PATH, cifar10:PATH, "
            "video-folder:PATH")
KINDS = ("classification", "segmentation", "video")
_RESIZABLE = ("shapes", "moving-shapes", "image-folder", "seg-folder", "video-folder")
_GENERATED = ("shapes", "moving-shapes")


def load_dataset(
    spec: str | None = None,
    *,
    task_kind: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    num_samples: int | None = None,
    data_seed: int = 0,
    **unknown: Any,
) -> Dataset:
    """Load ``spec`` (or the default for ``task_kind``) and split it with ``seed``.

    ``limit`` keeps a seeded subset of at most that many source samples; ``image_size``
    resizes folder images (and sets the generated size of ``shapes`` / ``moving-shapes``, default
    32x32); ``num_samples`` (default 512 / 768) and ``data_seed`` only apply to those two.
    """
    if unknown:
        raise DatasetError(
            f"load_dataset takes no option {sorted(unknown)}; options: task_kind, seed, val_fraction, limit, "
            "image_size, num_samples, data_seed"
        )
    if task_kind not in (None, *KINDS):
        raise DatasetError(f"task_kind must be one of {', '.join(KINDS)}, got {task_kind!r}")
    if spec is None or spec == "":
        if task_kind is None:
            raise DatasetError(f"no dataset spec and no task_kind; accepted specs: {ACCEPTED}")
        spec = DEFAULT_SPECS[task_kind]
    name, sep, raw_path = spec.partition(":")
    if name not in SPECS:
        raise DatasetError(f"unknown dataset spec {spec!r}; accepted: {ACCEPTED}")
    kind, takes_path = SPECS[name]
    if takes_path and not raw_path:
        raise DatasetError(f"dataset {name!r} needs a path: {name}:PATH")
    if not takes_path and sep:
        raise DatasetError(f"dataset {name!r} takes no path, got {spec!r}; accepted: {ACCEPTED}")
    if kind is not None and task_kind is not None and kind != task_kind:
        others = ", ".join(s + (":PATH" if SPECS[s][1] else "") for s, (k, _) in SPECS.items() if k in (task_kind, None))
        raise DatasetError(f"dataset {name!r} is for {kind} but the task is {task_kind}; {task_kind} datasets: {others}")
    _check_options(name, limit, image_size, num_samples, seed, data_seed)
    sizes = (image_size,) if _is_int(image_size) else image_size
    size = None if sizes is None else (sizes[0], sizes[-1])
    path = Path(raw_path).expanduser().absolute()  # a run (config.yaml, Ray workers) reads it from anywhere
    spec = f"{name}:{path}" if takes_path else name

    if name == "digits":
        images, targets, extras = readers.read_digits()
    elif name == "shapes":
        images, masks = generate_shapes(num_samples or 512, size or (32, 32), data_seed)
        images, targets, extras = images, masks, {"class_names": list(SHAPES_CLASSES)}
    elif name == "moving-shapes":
        images, targets = generate_moving_shapes(num_samples or 768, size or (32, 32), data_seed)
        extras = {"class_names": list(MOVING_CLASSES)}
    elif name == "npz":
        images, targets, extras = readers.read_npz(spec, path, task_kind)
        kind = extras.pop("kind")
    elif name == "image-folder":
        images, targets, extras = readers.read_image_folder(spec, path, size)
    elif name == "seg-folder":
        images, targets, extras = readers.read_seg_folder(spec, path, size)
    elif name == "video-folder":
        images, targets, extras = readers.read_video_folder(spec, path, size)
    else:
        images, targets, extras = readers.read_cifar10(spec, path)
    return build_dataset(
        spec, kind, images, targets, seed=seed, val_fraction=val_fraction, limit=limit, consume=True,
        **extras,  # type: ignore[arg-type]
    )


def _check_options(name: str, limit: Any, image_size: Any, num_samples: Any, seed: Any, data_seed: Any) -> None:
    for option, value in (("seed", seed), ("data_seed", data_seed)):
        if not _is_int(value):
            raise DatasetError(f"{option} must be an integer, got {value!r}")
    if limit is not None and not (_is_int(limit) and limit >= 2):
        raise DatasetError(f"limit must be an integer >= 2 or None, got {limit!r}")
    if num_samples is not None:
        if name not in _GENERATED:
            raise DatasetError(f"num_samples only applies to {', '.join(_GENERATED)}, not {name!r}")
        if not (_is_int(num_samples) and num_samples >= 2):
            raise DatasetError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    if image_size is not None:
        if name not in _RESIZABLE:
            raise DatasetError(f"image_size applies to {', '.join(_RESIZABLE)}, not {name!r}")
        sizes = (image_size,) if _is_int(image_size) else image_size
        if not (isinstance(sizes, (tuple, list)) and len(sizes) in (1, 2) and all(_is_int(s) and s >= 4 for s in sizes)):
            raise DatasetError(f"image_size must be an int or (H, W) of ints >= 4, got {image_size!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
