"""XAttention's antidiagonal block estimate."""
from __future__ import annotations

from src.attention.kernels.antidiagonal.triton import (
    TileConfig,
    antidiagonal_block_mass,
    antidiagonal_block_mass_reference,
    antidiagonal_block_mass_triton,
    antidiagonal_scores,
    grouped_logits,
    pad_tokens,
    resolve_backend,
    triton_chunk_blocks,
)

__all__ = [
    "TileConfig",
    "antidiagonal_block_mass",
    "antidiagonal_block_mass_reference",
    "antidiagonal_block_mass_triton",
    "antidiagonal_scores",
    "grouped_logits",
    "pad_tokens",
    "resolve_backend",
    "triton_chunk_blocks",
]
