"""Every block of the paper archive (``../shared/design/BLOCKS.md``) as a registered nn.Module.

Importing this package registers all blocks; use :func:`get_block` / :func:`create_block`.
"""

from search_spaces.blocks import attention, conv, multiscale, video  # noqa: F401  (registration)
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
