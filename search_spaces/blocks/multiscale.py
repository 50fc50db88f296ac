"""Blocks of the 'multiscale' table of BLOCKS.md (being written)."""
