"""Blocks of the 'video' table of BLOCKS.md (being written)."""
