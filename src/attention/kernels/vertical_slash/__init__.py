"""Vertical-slash sparse causal attention (MInference's pattern)."""
from __future__ import annotations

from src.attention.kernels.vertical_slash.triton import (
    TileShape,
    pattern_tables,
    tile_index,
    vertical_slash_attention,
    vertical_slash_attention_reference,
    vertical_slash_attention_triton,
    vertical_slash_density,
    vertical_slash_token_mask,
)

__all__ = [
    "TileShape",
    "pattern_tables",
    "tile_index",
    "vertical_slash_attention",
    "vertical_slash_attention_reference",
    "vertical_slash_attention_triton",
    "vertical_slash_density",
    "vertical_slash_token_mask",
]
