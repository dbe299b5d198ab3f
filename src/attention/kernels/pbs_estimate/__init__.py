"""PBS-Attn's estimation: the key permutation and the mean-pooling block selection, two entries.

    triton  four fused launches (triton.py): no permuted or replicated copy of K, no host sync
    torch   the references (naive.py), written from the paper's definitions

`segment_permutation` is the permuter's op, `mean_pool_selection` the selector's; both take
backend "auto" (Triton on the CUDA inputs it supports, torch otherwise), "triton" or "torch".
"""
from __future__ import annotations

import torch

from src.attention.kernels.backends import resolve_backend
from src.attention.kernels.pbs_estimate.naive import (
    block_logits,
    last_query_attention,
    pool_blocks_reference,
    segment_permutation_reference,
    threshold_select_reference,
)
from src.attention.kernels.pbs_estimate.triton import (
    MAX_LAST_QUERIES,
    MAX_SEGMENT,
    PermutationLaunch,
    pool_blocks_triton,
    segment_permutation_triton,
    threshold_select_triton,
)
from src.attention.kernels.triton_utils import DTYPES, unsupported_device
from src.attention.ops import causal_block_layout


def triton_unsupported(q: torch.Tensor, *, num_last_queries: int = 1, segment_size: int | None = None) -> str | None:
    """Why the Triton estimation cannot run on these inputs, or None when it can."""
    head_dim = q.shape[-1]
    if q.dtype not in DTYPES:
        return f"dtype {q.dtype} (allowed: {', '.join(map(str, DTYPES))})"
    if head_dim < 16 or head_dim > 256 or head_dim & (head_dim - 1):
        return f"head dim {head_dim} (allowed: powers of two from 16 to 256)"
    if num_last_queries > MAX_LAST_QUERIES:
        return f"num_last_queries {num_last_queries} (at most {MAX_LAST_QUERIES})"
    if segment_size is not None and segment_size > MAX_SEGMENT:
        return f"segment_size {segment_size} (at most {MAX_SEGMENT})"
    return unsupported_device(q)


def segment_permutation(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    segment_size: int,
    num_last_queries: int,
    scale: float,
    per_group: bool,
    backend: str = "auto",
    launch: PermutationLaunch | None = None,
    scoring: str = "causal",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(key_perm int64, scores float32), both [B, P, L]: PBS-Attn's key order.

    q: [B, Hq, L, D], k: [B, Hkv, L, D]. Each full segment of `segment_size` keys is sorted by
    descending mean causal attention of the last `num_last_queries` queries (ties keep their
    order); the tail past floor(L / S) * S stays in place. P is Hq, or Hkv when per_group (one
    order per kv group, scored by its heads' mean). launch: the Triton kernels' launch shape
    (None: the tuned default), for benchmarks; the torch backend refuses one.
    scoring "full_segments" scores as the authors' code does (a softmax over full-segment keys
    only, unmasked); only the torch backend has it ("auto" takes torch, "triton" refuses).
    """
    if scoring != "causal":
        if backend == "triton":
            raise ValueError(f"permutation scoring {scoring!r} has no triton backend; use estimate_backend torch or auto")
        return segment_permutation_reference(
            q, k, segment_size=segment_size, num_last_queries=num_last_queries, scale=scale, per_group=per_group,
            scoring=scoring,
        )
    unsupported = triton_unsupported(q, num_last_queries=num_last_queries, segment_size=segment_size)
    kwargs = dict(segment_size=segment_size, num_last_queries=num_last_queries, scale=scale, per_group=per_group)
    if resolve_backend("key permutation", backend, q, unsupported) == "triton":
        return segment_permutation_triton(q, k, launch=launch, **kwargs)
    if launch is not None:
        raise ValueError("a launch shape applies to the triton backend only, not 'torch'")
    return segment_permutation_reference(q, k, **kwargs)


def mean_pool_selection(
    q: torch.Tensor,
    k: torch.Tensor,
    key_perm: torch.Tensor | None,
    *,
    block_size: int,
    segment_size: int | None,
    scale: float,
    threshold: float,
    force_sink: bool,
    force_diagonal: bool,
    score_diagonal: bool = False,
    zero_padded: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """PBS-Attn's (and MeanPooling's) block mask, bool [B, Hq, nb, nb] (query block, permuted key block).

    q: [B, Hq, L, D]; k: [B, Hkv, L, D] in original order; key_perm: None or int [B, P, L]
    (permuted -> original, inside segments of segment_size). Each query block's mean query
    scores each permuted key block's mean key (scaled dot product); the softmax over its causal
    key blocks (its own segment's among them only when score_diagonal) keeps the fewest blocks
    reaching `threshold` of the mass, then its whole segment (force_diagonal) and the sink block
    (force_sink). zero_padded: a short last block is pooled over block_size tokens (zeros
    padding it), not over the tokens it has. threshold >= 1 keeps every causal block without
    estimating anything.
    """
    batch, q_heads, length, _ = q.shape
    if threshold >= 1.0:
        allowed, _ = causal_block_layout(length, block_size, segment_size, q.device)
        return allowed.expand(batch, q_heads, -1, -1).contiguous()
    unsupported = triton_unsupported(q, segment_size=segment_size)
    triton = resolve_backend("block selection", backend, q, unsupported) == "triton"
    if triton:
        pooled_q = pool_blocks_triton(q, None, block_size=block_size, scale=scale, zero_padded=zero_padded)
        pooled_k = pool_blocks_triton(k, key_perm, block_size=block_size, zero_padded=zero_padded)
    else:
        pooled_q = pool_blocks_reference(q, None, block_size=block_size, segment_size=None, scale=scale, zero_padded=zero_padded)
        pooled_k = pool_blocks_reference(
            k, key_perm, block_size=block_size, segment_size=segment_size, zero_padded=zero_padded
        )
    logits = block_logits(pooled_q, pooled_k, k.shape[1])
    select = threshold_select_triton if triton else threshold_select_reference
    return select(
        logits, key_perm, block_size=block_size, segment_size=segment_size, length=length,
        threshold=threshold, force_sink=force_sink, force_diagonal=force_diagonal, score_diagonal=score_diagonal,
    )


__all__ = [
    "PermutationLaunch",
    "last_query_attention",
    "mean_pool_selection",
    "pool_blocks_reference",
    "pool_blocks_triton",
    "segment_permutation",
    "segment_permutation_reference",
    "segment_permutation_triton",
    "threshold_select_reference",
    "threshold_select_triton",
    "triton_unsupported",
]
