"""Attention kernels, one folder per op: its entry, Triton code and torch reference."""
from __future__ import annotations

from src.attention.kernels.block_sparse import block_sparse_attention, block_sparse_attention_reference

__all__ = ["block_sparse_attention", "block_sparse_attention_reference"]
