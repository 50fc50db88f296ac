"""Auto-DeepLab hierarchical segmentation space (``seg-hierarchical``): space, network, supernet."""

from search_spaces.seg_hierarchical.genotype import (
    AUTODEEPLAB_CITYSCAPES,
    CELL_OPS,
    OPS,
    Genotype,
    from_tf_hnasnet,
)
from search_spaces.seg_hierarchical.network import SegHierarchicalNet
from search_spaces.seg_hierarchical.paths import count_paths, k_best_paths, viterbi_path
from search_spaces.seg_hierarchical.space import SegHierarchicalSpace, cell_graph
from search_spaces.seg_hierarchical.decode import decode_cell
from search_spaces.seg_hierarchical.supernet import SegHierarchicalSupernet

__all__ = [
    "AUTODEEPLAB_CITYSCAPES",
    "CELL_OPS",
    "OPS",
    "Genotype",
    "SegHierarchicalNet",
    "SegHierarchicalSpace",
    "SegHierarchicalSupernet",
    "cell_graph",
    "count_paths",
    "decode_cell",
    "from_tf_hnasnet",
    "k_best_paths",
    "viterbi_path",
]
