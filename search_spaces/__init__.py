"""Search spaces: the block catalogue, the named spaces, presets and supernets."""

from automl.types import Arch, Decision, Task, arch_from_key, arch_key
from search_spaces.base import CAPABILITIES, CapabilityError, SearchSpace

__all__ = [
    "CAPABILITIES",
    "Arch",
    "CapabilityError",
    "Decision",
    "SearchSpace",
    "Task",
    "arch_from_key",
    "arch_key",
]
