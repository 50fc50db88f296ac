"""``seg-unet``: the encoder-decoder family space (see :mod:`search_spaces.seg_unet.space`).

Files: ``space.py`` (decisions, validation, text), ``network.py`` (the built module), ``encoder.py``
(level blocks), ``skips.py`` (skip types), ``decoder.py`` (aggregation, FPN), ``context.py`` (the
module at the bottom), ``presets.py`` (published networks and one arch per catalogue block).
"""

from search_spaces.seg_unet.context import CONTEXTS
from search_spaces.seg_unet.decoder import AGGREGATIONS
from search_spaces.seg_unet.encoder import ENCODER_BLOCKS
from search_spaces.seg_unet.network import Layout, SegUNet
from search_spaces.seg_unet.presets import MAX_DEPTH
from search_spaces.seg_unet.skips import SKIPS
from search_spaces.seg_unet.space import SegUNetSpace

__all__ = ["AGGREGATIONS", "CONTEXTS", "ENCODER_BLOCKS", "MAX_DEPTH", "SKIPS", "Layout", "SegUNet", "SegUNetSpace"]
