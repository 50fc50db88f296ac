"""The one conv-norm-act unit and the factories every block and space builds from.

Modelled on timm's ``layers``: activations and normalisations are made by name
(:func:`create_act`, :func:`create_norm`) so a block or a space takes ``act=`` / ``norm=`` as
plain strings, and :class:`ConvNormAct` is the single conv -> norm -> act unit (2D or 3D).
"""

from search_spaces.layers.act import ACTIVATIONS, create_act
from search_spaces.layers.conv_norm_act import ConvNormAct, same_padding
from search_spaces.layers.norm import NORMS, create_norm, gn_groups

__all__ = ["ACTIVATIONS", "NORMS", "ConvNormAct", "create_act", "create_norm", "gn_groups", "same_padding"]
