"""Permuted block-sparse attention in plain torch, straight from the definition.

The ground truth every fast backend is tested against: the block mask and key permutation are
expanded into a dense token mask and attention is a masked softmax in fp32. Memory is O(L^2)
per head, so it is meant for small shapes (and as the "torch" backend on CPU).
"""
from __future__ import annotations

import torch


def token_mask(
    block_mask: torch.Tensor, key_perm: torch.Tensor | None, *, block_size: int, length: int
) -> torch.Tensor:
    """Bool [L, L]: whether query i may attend key j (both at original positions).

    block_mask: bool [nq, nk] for one (batch, head); key_perm: int [L] (permuted -> original) or
    None. Key j is visible to query i iff j <= i and the permuted block holding j is selected
    for i's query block.
    """
    device = block_mask.device
    positions = torch.arange(length, device=device)
    if key_perm is None:
        permuted_slot = positions
    else:
        permuted_slot = torch.empty_like(positions).scatter_(0, key_perm.long(), positions)
    block_of_query = positions // block_size
    block_of_key = permuted_slot // block_size
    selected = block_mask[block_of_query][:, block_of_key]
    return selected & (positions[None, :] <= positions[:, None])


def block_sparse_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    *,
    block_size: int,
    key_perm: torch.Tensor | None = None,
    segment_size: int | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Masked-softmax attention over the token mask of each (batch, head); [B, Hq, L, D] in q's dtype.

    Same contract as `block_sparse_attention`. segment_size only tells fast kernels where masking
    is needed; the result does not depend on it. Rows with no visible key are zeros.
    """
    batch, q_heads, length, head_dim = q.shape
    group = q_heads // k.shape[1]
    scale = head_dim**-0.5 if scale is None else scale
    out = torch.empty_like(q)
    for b in range(batch):
        for h in range(q_heads):
            perm = None if key_perm is None else key_perm[b, h * key_perm.shape[1] // q_heads]
            allowed = token_mask(block_mask[b, h], perm, block_size=block_size, length=length)
            scores = (q[b, h].float() @ k[b, h // group].float().T) * scale
            weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
            weights = torch.nan_to_num(weights, nan=0.0)
            out[b, h] = (weights @ v[b, h // group].float()).to(q.dtype)
    return out
