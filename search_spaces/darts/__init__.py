"""The ``darts`` space: DARTS/NASNet cells, their retrain network and the DARTS supernet."""

from search_spaces.darts.genotype import Genotype, arch_to_genotype, genotype_to_arch
from search_spaces.darts.network import DartsNetwork
from search_spaces.darts.ops import KNOWN_OPS, PRIMITIVES
from search_spaces.darts.presets import DARTS_V2, NASNET_A, PRESETS
from search_spaces.darts.space import DartsSpace
from search_spaces.darts.supernet import DartsSupernet

__all__ = [
    "DARTS_V2",
    "KNOWN_OPS",
    "NASNET_A",
    "PRESETS",
    "PRIMITIVES",
    "DartsNetwork",
    "DartsSpace",
    "DartsSupernet",
    "Genotype",
    "arch_to_genotype",
    "genotype_to_arch",
]
