"""The ``video`` space (clip classification): network, heads, space-time folding, presets, space."""

from search_spaces.video.network import SlowFastNet, VideoArch, VideoNet, build_network
from search_spaces.video.presets import PRESETS
from search_spaces.video.space import VideoSpace

__all__ = ["PRESETS", "SlowFastNet", "VideoArch", "VideoNet", "VideoSpace", "build_network"]
