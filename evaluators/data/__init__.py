"""Datasets, in one place: :func:`load_dataset` by spec string and the pieces behind it.

``load``: the spec table and :func:`load_dataset`; ``dataset``: the in-memory :class:`Dataset`
and its seeded split; ``shapes``: the synthetic segmentation generator; ``readers``: the file
formats (npz, image folders, CIFAR-10 pickles); ``ref``: :class:`DatasetRef`, the picklable
reference a trial worker loads once per process.
"""

from evaluators.data.dataset import Dataset, DatasetError, build_dataset
from evaluators.data.load import ACCEPTED, DEFAULT_SPECS, SPECS, load_dataset
from evaluators.data.ref import DatasetRef

__all__ = ["ACCEPTED", "DEFAULT_SPECS", "SPECS", "Dataset", "DatasetError", "DatasetRef", "build_dataset", "load_dataset"]
