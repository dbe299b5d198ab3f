"""PBS-Attn's estimation in plain torch, from the paper's definitions: the references of triton.py.

    segment_permutation_reference  keys sorted inside segments by the last queries' mean causal
                                   attention (Eq. 7-8)
    pool_blocks_reference          the mean of every (permuted) block of rows
    threshold_select_reference     per query block, softmax over its scored key blocks (the
                                   diagonal segment among them or not) and the fewest reaching
                                   the threshold, then the diagonal segment and the sink block
"""
from __future__ import annotations

import torch

from src.attention.ops import (
    causal_block_layout,
    causal_softmax,
    grouped_logits,
    mean_pool_blocks,
    pooled_permuted_keys,
    sink_blocks,
    sort_within_segments,
)


def last_query_attention(
    q: torch.Tensor, k: torch.Tensor, *, num_last_queries: int, scale: float, chunk_elements: int = 1 << 27
) -> torch.Tensor:
    """Mean causal softmax attention that the last queries give each key, per query head.

    q: [B, Hq, L, D], k: [B, Hkv, L, D] (Hq a multiple of Hkv; query head h reads kv head
    h // (Hq / Hkv)). Averages softmax(q k^T * scale) over the queries at original positions
    L-n..L-1, n = min(num_last_queries, L), with keys after a query masked out. Returns float
    (at least float32) [B, Hq, L]. The query heads of a kv group are stacked instead of K being
    replicated, and kv heads go in chunks of about `chunk_elements` logits, so memory stays
    O(n * L) per chunk, never L x L.
    """
    batch, q_heads, length, _ = q.shape
    kv_heads = k.shape[1]
    group = q_heads // kv_heads
    n = min(num_last_queries, length)
    positions = torch.arange(length - n, length, device=q.device)
    heads_per_chunk = max(1, chunk_elements // (batch * group * n * length))
    chunks = [
        causal_softmax(q[:, start * group : (start + heads_per_chunk) * group], k[:, start : start + heads_per_chunk], positions, scale=scale).mean(dim=2)
        for start in range(0, kv_heads, heads_per_chunk)
    ]
    return torch.cat(chunks, dim=1)


def full_segment_attention(q: torch.Tensor, k: torch.Tensor, *, segment_size: int, num_last_queries: int, scale: float) -> torch.Tensor:
    """The authors' key scores (pbs_attn/src/permute_states.py), float32 [B, Hq, L]: the mean over
    the last queries of a softmax over the keys of full segments only, nothing masked (when L is
    a multiple of segment_size the last queries see their future keys); tail keys score 0."""
    length = q.shape[2]
    full = (length // segment_size) * segment_size
    n = min(num_last_queries, length)
    logits = grouped_logits(q[:, :, length - n :] * scale, k[:, :, :full])
    scores = torch.softmax(logits.float(), dim=-1).mean(dim=2)
    return torch.nn.functional.pad(scores, (0, length - full))


def segment_permutation_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    segment_size: int,
    num_last_queries: int,
    scale: float,
    per_group: bool,
    scoring: str = "causal",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(key_perm int64, scores), both [B, P, L]: each full segment's keys by descending score.

    P is Hq, or Hkv when per_group (one order per kv group, scored by its heads' mean). scoring:
    "causal" (`last_query_attention`, the paper's definition) or "full_segments"
    (`full_segment_attention`, the authors' code).
    """
    if scoring == "full_segments":
        scores = full_segment_attention(q, k, segment_size=segment_size, num_last_queries=num_last_queries, scale=scale)
    else:
        scores = last_query_attention(q, k, num_last_queries=num_last_queries, scale=scale)
    if per_group:
        batch, _, length = scores.shape
        scores = scores.view(batch, k.shape[1], -1, length).mean(dim=2)
    return sort_within_segments(scores, segment_size), scores


def pool_blocks_reference(
    x: torch.Tensor,
    perm: torch.Tensor | None,
    *,
    block_size: int,
    segment_size: int | None,
    scale: float = 1.0,
    zero_padded: bool = False,
) -> torch.Tensor:
    """Mean of every block of `block_size` rows times `scale`, float32 [B, P, nb, D]; rows read
    through `perm` ([B, P, L], permuted inside segments of `segment_size`) when one is given.
    zero_padded: the short last block is divided by block_size, not by its token count."""
    if perm is None or segment_size is None:
        return mean_pool_blocks(x, block_size, zero_padded=zero_padded) * scale
    return pooled_permuted_keys(x, perm, block_size=block_size, segment_size=segment_size, zero_padded=zero_padded) * scale


def block_logits(pooled_q: torch.Tensor, pooled_k: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """Pooled-query . pooled-key logits, float32 [B, Hq, nb, nb] (query block, permuted key block).

    pooled_q: [B, Hq, nb, D]; pooled_k: [B, P, nb, D] with P = kv_heads, or Hq (one per query
    head); query head h reads key head h // (Hq / kv_heads) of each kv group.
    """
    batch, q_heads, nb, _ = pooled_q.shape
    pooled_q = pooled_q.view(batch, kv_heads, q_heads // kv_heads, nb, -1)
    pooled_k = pooled_k.view(batch, kv_heads, -1, nb, pooled_k.shape[-1])
    logits = torch.matmul(pooled_q, pooled_k.transpose(-1, -2))
    return logits.view(batch, q_heads, nb, nb)


def cumulative_threshold_select(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fewest entries per row (largest first) whose mass reaches `threshold` of the row total.

    probs: non-negative [..., n] (masked entries 0). Returns bool [..., n]. With threshold >= 1
    every positive entry is kept, so full threshold means full attention.
    """
    if threshold >= 1.0:
        return probs > 0
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    total = probs.sum(-1, keepdim=True)
    keep_sorted = (mass_before < threshold * total) & (sorted_probs > 0)
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def threshold_select_reference(
    logits: torch.Tensor,
    key_perm: torch.Tensor | None,
    *,
    block_size: int,
    segment_size: int | None,
    length: int,
    threshold: float,
    force_sink: bool,
    force_diagonal: bool,
    score_diagonal: bool = False,
) -> torch.Tensor:
    """The block mask, bool [B, Hq, nb, nb], from scaled block logits [B, Hq, nb, nb].

    Each query block keeps the fewest scored key blocks (causal ones; its own segment's only
    when score_diagonal) whose softmax mass reaches `threshold`, then its whole segment
    (force_diagonal) and the key block holding original token 0 (force_sink; key_perm int
    [B, Hq or Hkv, L] or None only locates it).
    """
    batch, q_heads = logits.shape[:2]
    allowed, diagonal = causal_block_layout(length, block_size, segment_size, logits.device)
    scored = allowed if score_diagonal else allowed & ~diagonal
    probs = torch.softmax(logits.masked_fill(~scored, float("-inf")), dim=-1).masked_fill(~scored, 0.0)
    selected = cumulative_threshold_select(probs, threshold)
    if force_diagonal:
        selected = selected | diagonal
    if force_sink:
        sink = sink_blocks(key_perm, q_heads, batch, block_size=block_size, length=length, device=logits.device)
        selected = selected | (sink[:, :, None, :] & allowed)
    return selected.contiguous()
