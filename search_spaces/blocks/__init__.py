"""Every block of the paper archive (``docs/blocks.md``) as a registered nn.Module.

The catalogue modules are imported on first use of the registry (:func:`get_block`,
:func:`block_names`, ...), so importing a single primitive (``search_spaces.blocks.ops``) stays
cheap.
"""

from search_spaces.blocks.registry import (
    KINDS,
    BlockSpec,
    all_blocks,
    block_names,
    create_block,
    get_block,
    register_block,
)

__all__ = [
    "KINDS",
    "BlockSpec",
    "all_blocks",
    "block_names",
    "create_block",
    "get_block",
    "register_block",
]
