"""Plain-torch operations the whole attention package stands on, each written once.

Blocks and segments (what a causal key block is, in permuted order), grouped-query products,
permutations, block pooling, and the causal softmax of chosen queries. Kernels (their torch
references), permuters, selectors, plans and the analyses import these; nothing here imports
them back.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch


def num_blocks(length: int, block_size: int) -> int:
    """Number of blocks of `block_size` covering `length` tokens (the last one may be short)."""
    return (length + block_size - 1) // block_size


def causal_block_count(length: int, block_size: int) -> int:
    """Blocks on or below the block diagonal: the denominator of every block density."""
    n = num_blocks(length, block_size)
    return n * (n + 1) // 2


def block_segment_ids(length: int, block_size: int, segment_size: int | None, device: torch.device) -> torch.Tensor:
    """Segment id of every block, int64 [nb]; keys of a block stay inside its segment.

    Only the first floor(L/S)*S tokens are segmented; each tail block is a segment of its own, as
    is every block when there is no permutation (segment_size None).
    """
    nb = num_blocks(length, block_size)
    blocks = torch.arange(nb, device=device)
    if segment_size is None:
        return blocks
    if segment_size % block_size:
        raise ValueError(f"segment_size {segment_size} must be a multiple of block_size {block_size}")
    blocks_per_segment = segment_size // block_size
    full_segments = length // segment_size
    in_segments = blocks < full_segments * blocks_per_segment
    tail_ids = full_segments + (blocks - full_segments * blocks_per_segment)
    return torch.where(in_segments, blocks // blocks_per_segment, tail_ids)


def causal_block_layout(
    length: int, block_size: int, segment_size: int | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed, diagonal) bool [nb, nb] over (query block, permuted key block).

    allowed: the key block can hold a key at or before some query of the query block.
    diagonal: the key block lies in the query block's own segment (needs token-level masking).
    """
    seg = block_segment_ids(length, block_size, segment_size, device)
    allowed = seg[None, :] <= seg[:, None]
    diagonal = seg[None, :] == seg[:, None]
    return allowed, diagonal


def sink_blocks(
    key_perm: torch.Tensor | None, q_heads: int, batch: int, *, block_size: int, length: int, device: torch.device
) -> torch.Tensor:
    """bool [B, Hq, nb]: the permuted key block holding original token 0, per query head."""
    blocks = torch.arange(num_blocks(length, block_size), device=device)
    if key_perm is None:
        return (blocks == 0).expand(batch, q_heads, -1)
    sink = (key_perm == 0).int().argmax(dim=-1) // block_size
    sink = sink.repeat_interleave(q_heads // key_perm.shape[1], dim=1)
    return blocks == sink[..., None]


def pad_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """x [B, H, L, D] followed by zero tokens up to `length`."""
    return torch.nn.functional.pad(x, (0, 0, 0, length - x.shape[2]))


def grouped_logits(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """queries [B, Hq, R, E] . keys [B, P, C, E] -> [B, Hq, R, C]; query head h reads key head h // (Hq/P).

    The product runs in the inputs' common dtype (bf16 stays bf16, as x-attention and FlexPrefill
    compute it) and no replicated copy of the keys is made; the logits come back in at least
    float32.
    """
    batch, q_heads, rows, width = queries.shape
    key_heads = keys.shape[1]
    dtype = torch.promote_types(queries.dtype, keys.dtype)
    grouped = queries.to(dtype).reshape(batch, key_heads, (q_heads // key_heads) * rows, width)
    logits = torch.matmul(grouped, keys.to(dtype).transpose(-1, -2))
    return logits.to(torch.promote_types(dtype, torch.float32)).view(batch, q_heads, rows, keys.shape[2])


def causal_softmax(
    q: torch.Tensor,
    k: torch.Tensor,
    query_positions: torch.Tensor,
    *,
    scale: float,
    key_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal softmax attention of the queries at `query_positions` over every key: [B, Hq, n, Lk].

    q: [B, Hq, L, D]; k: [B, P, Lk, D] (Hq a multiple of P). query_positions: int64 [n], original
    positions of the chosen queries, in any order. key_positions: None (key slot t holds original
    position t) or int [B, Hq, Lk], the original position of every key slot (permuted keys). The
    query at position p gives no weight to a key at a position after p. Logits as
    `grouped_logits` computes them (q scaled first), softmax in at least float32.
    """
    logits = grouped_logits(q[:, :, query_positions] * scale, k)
    if key_positions is None:
        key_positions = torch.arange(k.shape[2], device=q.device)
    future = key_positions[..., None, :] > query_positions[:, None]
    return torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)


class AttentionRows(NamedTuple):
    """Causal softmax rows of one head: float32 [rows, L] over keys in original order, for the
    queries at query_positions[batch, head, start : start + rows]."""

    batch: int
    head: int
    start: int
    probs: torch.Tensor


def causal_attention_rows(
    q: torch.Tensor, k: torch.Tensor, query_positions: torch.Tensor, *, scale: float, rows_per_chunk: int
) -> Iterator[AttentionRows]:
    """The float32 causal attention rows of the queries at `query_positions`, one head and at most
    `rows_per_chunk` rows at a time, so temporaries stay O(rows_per_chunk x L).

    q: [B, Hq, L, D]; k: [B, Hkv, L, D] in original order; query_positions: int64 [B, Hq, n],
    original positions in any order (one order per head). Each chunk is `causal_softmax` of one
    head, computed in float32 whatever the inputs' dtype (what the analyses of true attention need).
    """
    batch, heads, _, _ = q.shape
    group = heads // k.shape[1]
    positions = query_positions.to(q.device)
    for b in range(batch):
        for h in range(heads):
            queries = q[b : b + 1, h : h + 1].float()
            keys = k[b : b + 1, h // group : h // group + 1].float()
            for start in range(0, positions.shape[-1], rows_per_chunk):
                rows = positions[b, h, start : start + rows_per_chunk]
                yield AttentionRows(b, h, start, causal_softmax(queries, keys, rows, scale=scale)[0, 0])


def invert_permutation(perm: torch.Tensor) -> torch.Tensor:
    """The inverse of each permutation along the last dim: inverse[..., perm[..., p]] = p.

    For a key permutation this maps an original key position to its permuted position.
    """
    positions = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(-1, perm, positions)


def permute_rows(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Rows of x [B, H, L, D] in the order perm [B, H, L] gives: out[..., p, :] = x[..., perm[p], :]."""
    return x.gather(2, perm[..., None].expand(-1, -1, -1, x.shape[-1]))


def sort_within_segments(scores: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Key order putting each full segment's keys by descending score (ties keep order).

    scores: [B, H, L]; returns int64 [B, H, L], permuted position -> original position; the
    tail of L mod segment_size keys stays in place.
    """
    length = scores.shape[-1]
    full = (length // segment_size) * segment_size
    segments = scores[..., :full].unflatten(-1, (-1, segment_size))
    order = segments.argsort(dim=-1, descending=True, stable=True)
    starts = torch.arange(0, full, segment_size, device=scores.device)[:, None]
    sorted_part = (order + starts).flatten(-2)
    tail = torch.arange(full, length, device=scores.device).expand(*scores.shape[:-1], -1)
    return torch.cat([sorted_part, tail], dim=-1)


def mean_pool_blocks(x: torch.Tensor, block_size: int, *, zero_padded: bool = False) -> torch.Tensor:
    """Mean over each block of `block_size` tokens: [B, H, L, D] -> float32 [B, H, nb, D].

    The last, shorter block is averaged over the tokens it really has, or, with zero_padded, over
    block_size tokens as if padded with zeros (the PBS-Attn code's pooling). Sums accumulate in
    fp32 without an upcast copy, and nothing is copied from the host (CUDA-graph safe).
    """
    b, h, length, d = x.shape
    nb = num_blocks(length, block_size)
    pad = nb * block_size - length
    summed = torch.nn.functional.pad(x, (0, 0, 0, pad)).view(b, h, nb, block_size, d).sum(3, dtype=torch.float32)
    if zero_padded:
        return summed / block_size
    starts = torch.arange(nb, device=x.device) * block_size
    counts = (length - starts).clamp(max=block_size).float()
    return summed / counts[:, None]


def pooled_permuted_keys(
    k: torch.Tensor, key_perm: torch.Tensor, *, block_size: int, segment_size: int, zero_padded: bool = False
) -> torch.Tensor:
    """Mean key of every permuted key block: float32 [B, P, nb, D], P = key_perm's heads.

    k: [B, Hkv, L, D] in original order; key_perm: [B, P, L] (permuted -> original),
    P a multiple of Hkv, each full segment permuted within itself and the tail in place.
    Every original key is added to the permuted block it lands in (a 0/1 matrix per segment times
    that segment's keys), so neither a permuted nor a head-replicated copy of K is made. The tail's
    blocks are pooled by `mean_pool_blocks` (zero_padded: the short last one over block_size).
    """
    batch, kv_heads, length, head_dim = k.shape
    repeats = key_perm.shape[1] // kv_heads
    segments = length // segment_size
    full = segments * segment_size
    blocks_per_segment = segment_size // block_size
    slot = (invert_permutation(key_perm[..., :full]) % segment_size) // block_size
    slot = slot.view(batch, kv_heads, repeats, segments, segment_size).transpose(2, 3)
    slots = torch.arange(blocks_per_segment, device=k.device)[:, None]
    assign = (slot[..., None, :] == slots).float()
    assign = assign.reshape(batch, kv_heads, segments, repeats * blocks_per_segment, segment_size)
    keys = k[:, :, :full].float().view(batch, kv_heads, segments, segment_size, head_dim)
    sums = torch.matmul(assign, keys).view(batch, kv_heads, segments, repeats, blocks_per_segment, head_dim)
    pooled = sums.transpose(2, 3).reshape(batch, key_perm.shape[1], segments * blocks_per_segment, head_dim)
    pooled = pooled / block_size
    if full == length:
        return pooled
    tail = mean_pool_blocks(k[:, :, full:], block_size, zero_padded=zero_padded).repeat_interleave(repeats, dim=1)
    return torch.cat([pooled, tail], dim=2)


def sorted_unique_positions(indices: torch.Tensor, length: int) -> torch.Tensor:
    """int32 [..., max(N, 1)]: the entries of indices [..., N] in [0, length) ascending, each once,
    then `length` in every slot left over (so padding sorts last and fails any `< length` test)."""
    positions = indices.long()
    if positions.shape[-1] == 0:
        return torch.full((*positions.shape[:-1], 1), length, dtype=torch.int32, device=positions.device)
    positions = torch.where((positions >= 0) & (positions < length), positions, length).sort(dim=-1).values
    repeated = torch.nn.functional.pad(positions[..., 1:] == positions[..., :-1], (1, 0))
    return torch.where(repeated, length, positions).sort(dim=-1).values.to(torch.int32).contiguous()
