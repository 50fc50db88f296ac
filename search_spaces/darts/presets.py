"""Published cells of the DARTS family, as genotypes (DARTS index convention, 0 = H(l-2)).

* ``darts-v2``: the second-order DARTS CIFAR-10 cell (quark0/darts ``genotypes.DARTS_V2``).
* ``nasnet-a``: NASNet-A (Zoph et al. 2018), converted from the TF arrays of
  ``tensorflow/models`` ``nasnet_utils.NasNetA{Normal,Reduction}Cell`` (0 = H(l-1),
  1 = H(l-2)) by :func:`~search_spaces.darts.genotype.from_nasnet_tf`. It has 5 nodes, uses
  ``sep_conv_7x7`` (outside the DARTS search set; built from the same ``sep_conv`` block) and
  TF's identity (``skip_connect``), and keeps TF's outputs: the normal cell concatenates
  H(l-2) and all five blocks (states 0, 2-6), the reduction cell blocks 2-5 (states 3-6).
  quark0/darts' own ``NASNet`` genotype drops H(l-2) from the normal output and block 2 from
  the reduction output; this preset follows TF. Executed with this package's cell (DARTS
  preprocessing and ``FactorizedReduce`` for strided identities, where TF uses a strided 1x1
  conv), as DARTS does for its NASNet baseline.
"""

from __future__ import annotations

from search_spaces.darts.genotype import Genotype, from_nasnet_tf

DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 0), ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip

# tensorflow/models research/slim/nets/nasnet/nasnet_utils.py (TF convention).
NASNET_A_TF: dict[str, tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]] = {
    "normal": (
        ("separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2", "avg_pool_3x3",
         "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"),
        (0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
        (1, 0, 0, 0, 0, 0, 0),
    ),
    "reduce": (
        ("separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2", "avg_pool_3x3",
         "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2", "max_pool_3x3"),
        (0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
        (1, 1, 1, 0, 0, 0, 0),
    ),
}  # fmt: skip


def _nasnet_a() -> Genotype:
    normal, normal_concat = from_nasnet_tf(*NASNET_A_TF["normal"])
    reduce, reduce_concat = from_nasnet_tf(*NASNET_A_TF["reduce"])
    return Genotype(normal, normal_concat, reduce, reduce_concat)


NASNET_A = _nasnet_a()

PRESETS: dict[str, Genotype] = {"darts-v2": DARTS_V2, "nasnet-a": NASNET_A}
