"""Search spaces: the block catalogue, the named spaces, presets and supernets."""

from search_spaces.base import (
    CAPABILITIES,
    Arch,
    CapabilityError,
    Decision,
    SearchSpace,
    Task,
    arch_from_key,
    arch_key,
)

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
