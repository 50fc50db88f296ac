"""CR-NAS computation reallocation space (``cr-resnet``): allocations, network, supernet, space."""

from search_spaces.cr_resnet.allocations import (
    alloc_name,
    allocations,
    baseline_allocation,
    parse_alloc,
)
from search_spaces.cr_resnet.network import CRResNet
from search_spaces.cr_resnet.space import CRResNetSpace
from search_spaces.cr_resnet.supernet import CRSupernet

__all__ = [
    "CRResNet",
    "CRResNetSpace",
    "CRSupernet",
    "alloc_name",
    "allocations",
    "baseline_allocation",
    "parse_alloc",
]
