"""The ``morph`` space: Auto-Keras network morphisms on a JSON layer graph."""

from search_spaces.morph.arch import validate_arch
from search_spaces.morph.morphisms import KINDS, deeper, skip, wider
from search_spaces.morph.network import MorphNetwork
from search_spaces.morph.presets import STARTS, cnn, resnet
from search_spaces.morph.space import MorphSpace
from search_spaces.morph.transfer import transfer_weights

__all__ = [
    "KINDS",
    "STARTS",
    "MorphNetwork",
    "MorphSpace",
    "cnn",
    "deeper",
    "resnet",
    "skip",
    "transfer_weights",
    "validate_arch",
    "wider",
]
