"""Dataset pieces behind :func:`evaluators.datasets.load_dataset`.

``dataset``: the in-memory :class:`Dataset` and its seeded split; ``shapes``: the synthetic
segmentation generator; ``readers``: the file formats (npz, image folders, CIFAR-10 pickles).
"""

from evaluators.data.dataset import Dataset, DatasetError, build_dataset

__all__ = ["Dataset", "DatasetError", "build_dataset"]
