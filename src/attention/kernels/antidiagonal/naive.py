"""XAttention's antidiagonal block estimate in plain torch, from the definition (the reference of
the Triton kernels in triton.py).

With stride S, keys regrouped as concat_j K[j::S] and queries as concat_j Q[S-1-j::S] turn the
antidiagonal sums of every S x S tile of q k^T into one (L/S) x (L/S) product; the reference
materialises one chunk of those strided logits and their softmax (fp32, O(chunk * L / S^2) per
head).
"""
from __future__ import annotations

import torch

from src.attention.ops import grouped_logits, num_blocks, pad_tokens


def strided_queries(q: torch.Tensor, stride: int) -> torch.Tensor:
    """Row r = (q[rS+S-1], ..., q[rS]) concatenated: [B, H, L/S, S*D] (L a multiple of S)."""
    batch, heads, length, head_dim = q.shape
    return q.view(batch, heads, length // stride, stride, head_dim).flip(3).reshape(batch, heads, length // stride, -1)


def strided_keys(k: torch.Tensor, stride: int) -> torch.Tensor:
    """Row r = (k[rS], ..., k[rS+S-1]) concatenated: [B, H, L/S, S*D] (L a multiple of S)."""
    batch, heads, length, head_dim = k.shape
    return k.reshape(batch, heads, length // stride, stride * head_dim)


def antidiagonal_scores(q: torch.Tensor, k: torch.Tensor, *, stride: int) -> torch.Tensor:
    """Antidiagonal sums of every stride x stride tile of q k^T, float32 [B, Hq, R, R].

    Entry (r, c) = sum_j q[rS + S-1-j] . k[cS + j], R = ceil(L / S); tokens past L count as
    zero vectors. q: [B, Hq, L, D], k: [B, Hkv, L, D] (unscaled, no mask). Small inputs only:
    `antidiagonal_block_mass_reference` computes the same numbers one chunk of rows at a time.
    """
    padded = -(-q.shape[2] // stride) * stride
    return grouped_logits(strided_queries(pad_tokens(q, padded), stride), strided_keys(pad_tokens(k, padded), stride))


def scoring_keys(k: torch.Tensor, key_perm: torch.Tensor | None, tokens: int) -> torch.Tensor:
    """The first `tokens` (at most L) keys in scored order: [B, Hkv, ., D], or [B, P, ., D] permuted.

    key_perm [B, P, L] (permuted -> original, P a multiple of Hkv) is gathered from k directly,
    head p from kv head p // (P / Hkv), so K is never replicated per query head.
    """
    if key_perm is None:
        return k[:, :, :tokens]
    batch, kv_heads, _, head_dim = k.shape
    index = key_perm[..., :tokens].reshape(batch, kv_heads, -1)
    gathered = k.gather(2, index[..., None].expand(-1, -1, -1, head_dim))
    return gathered.view(batch, key_perm.shape[1], -1, head_dim)


def antidiagonal_block_mass_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    key_perm: torch.Tensor | None,
    *,
    block_size: int,
    stride: int,
    scale: float,
    row_blocks: slice,
) -> torch.Tensor:
    """Reference of `antidiagonal_block_mass_triton`: the chunk's strided logits and softmax, in HBM."""
    length = q.shape[2]
    rows_per_block = block_size // stride
    real_rows = -(-length // stride)
    first, last = row_blocks.start * rows_per_block, row_blocks.stop * rows_per_block
    # Strided columns past the chunk's last row are all in the future: leave them out.
    queries = strided_queries(pad_tokens(q[:, :, first * stride : last * stride], (last - first) * stride), stride)
    keys = strided_keys(pad_tokens(scoring_keys(k, key_perm, last * stride), last * stride), stride)
    logits = grouped_logits(queries, keys) * (scale / stride)
    row = torch.arange(first, last, device=q.device)[:, None]
    column = torch.arange(last, device=q.device)[None, :]
    logits = logits.masked_fill_((column > row) | (column >= real_rows), float("-inf"))
    probs = torch.softmax(logits, dim=-1).masked_fill_(row >= real_rows, 0.0)
    batch, q_heads = probs.shape[:2]
    blocks = probs.view(batch, q_heads, row_blocks.stop - row_blocks.start, rows_per_block, -1, rows_per_block)
    return torch.nn.functional.pad(blocks.sum(dim=(3, 5)), (0, num_blocks(length, block_size) - row_blocks.stop))


def xattention_chunk_size(length: int, block_size: int) -> int:
    """x-attention's default query chunk in tokens (smaller for longer inputs), in whole blocks."""
    power = 1 << max(length - 1, 1).bit_length()
    tokens = max(min(max(2048, power), 128 * 1024 * 2048 // power), 2048)
    return max(tokens // block_size, 1) * block_size
