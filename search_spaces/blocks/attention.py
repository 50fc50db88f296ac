"""Blocks of the 'attention' table of BLOCKS.md (being written)."""
