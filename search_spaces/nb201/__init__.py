"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020)."""

from search_spaces.nb201.network import NB201Network
from search_spaces.nb201.space import EDGES, OPS, NB201Space

__all__ = ["EDGES", "OPS", "NB201Network", "NB201Space"]
