"""Vertical-slash attention in plain torch, from the definition: the ground truth of the kernel.

A vertical-slash mask is a block-sparse mask of one-token blocks, so the reference builds each
head's token mask and runs the block-sparse reference on it: fp32, O(L^2) memory per head.
"""
from __future__ import annotations

import torch

from src.attention.kernels.block_sparse.naive import block_sparse_attention_reference
from src.attention.kernels.vertical_slash.layout import index_bitmap


def vertical_slash_token_mask(
    vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int
) -> torch.Tensor:
    """Bool [L, L] for one (batch, head): query i may attend key j (j <= i, column or slash)."""
    positions = torch.arange(length, device=vertical_indices.device)
    offsets = positions[:, None] - positions[None, :]
    column = index_bitmap(vertical_indices[None, None], length)[0, 0].bool()
    slash = index_bitmap(slash_offsets[None, None], length)[0, 0].bool()
    causal = offsets >= 0
    return causal & (column[None, :] | slash[offsets.clamp(min=0)])


def vertical_slash_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Dense masked softmax in fp32 per (batch, head): the ground truth; O(L^2) memory per head.

    Rows with no visible key are zeros. Returns [B, Hq, L, D] in q's dtype.
    """
    batch, q_heads, length, _ = q.shape
    group = q_heads // k.shape[1]
    out = torch.empty_like(q)
    for b in range(batch):
        for h in range(q_heads):
            # A vertical-slash mask is a block-sparse mask of one-token blocks.
            allowed = vertical_slash_token_mask(vertical_indices[b, h], slash_offsets[b, h], length)
            kv = slice(b, b + 1), slice(h // group, h // group + 1)
            out[b, h] = block_sparse_attention_reference(
                q[b : b + 1, h : h + 1], k[kv], v[kv], allowed[None, None], block_size=1, scale=scale
            )[0, 0]
    return out
