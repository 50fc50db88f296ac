"""Blocks of the 'conv' table of BLOCKS.md (being written)."""
