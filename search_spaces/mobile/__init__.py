"""``mobile``: a latency-aware MnasNet / FBNet-style backbone of catalogue blocks with a layer-wise LUT."""

from search_spaces.mobile.network import MobileNetwork
from search_spaces.mobile.space import MobileSpace

__all__ = ["MobileNetwork", "MobileSpace"]
