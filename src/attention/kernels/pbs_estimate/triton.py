"""PBS-Attn's estimation (key permutation and mean-pooling block selection) as four Triton launches.

The torch versions (naive.py) are the references; they take some sixty small kernels per layer,
so below ~32K tokens their launch overhead, not their arithmetic, cost more than the dense
attention they were meant to save. Here:

1. `_last_query_lse_kernel`: log-sum-exp (base 2) of every last query's causal logits, split over
   key ranges so a few heads still fill the GPU; the splits are merged by the next kernel.
2. `_segment_order_kernel`: one program per (segment, permutation head) scores the segment's
   keys by the mean softmax attention of the last queries (of every query head sharing the
   permutation) and places each key at its rank, descending, ties in position order, so it
   equals `sort_within_segments(last_query_attention(...))`.
3. `_pool_blocks_kernel`: the mean of every block of rows, read through a permutation when one
   is given, so neither a permuted nor a head-replicated copy of K is ever made.
4. `_threshold_select_kernel`: per query block, softmax over its scored key blocks, the fewest
   reaching the threshold (a bisection for the probability cutoff: 31 masked sums instead of a
   sort), then the diagonal segment and the sink block.

Both orderings avoid `tl.sort`: on an H200, with its bitonic stages, permutation + selection took
0.35 + 0.27 ms at 8K (61% of SDPA's 1.02 ms), without them 0.31 + 0.20 ms.

Everything stays on the device without host synchronisation, so it can be captured in a CUDA
graph; nothing L x L is built (the pooled block logits are (L/B)^2 per head).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from src.attention.kernels.triton_utils import LOG2E, dot_precision
from src.attention.ops import num_blocks

MAX_LAST_QUERIES = 128
MAX_SEGMENT = 4096
MAX_SPLITS = 64


@dataclass(frozen=True)
class PermutationLaunch:
    """Launch shape of the two permutation kernels; the defaults won an H200 sweep (experiments/NOTES.md:
    4 warps for the scoring pass made it 1.4-1.7x faster than 8).

    lse_keys / order_keys: keys per tile of the log-sum-exp pass / the scoring pass.
    lse_programs: programs the log-sum-exp pass aims for, by splitting each head's keys into up
        to MAX_SPLITS ranges (few heads or a short input would leave SMs idle otherwise).
    lse_warps / order_warps: warps per program; num_stages: software pipelining depth.
    """

    lse_keys: int = 64
    lse_programs: int = 256
    lse_warps: int = 8
    order_keys: int = 64
    order_warps: int = 4
    num_stages: int = 3


@triton.jit
def _last_query_lse_kernel(
    Q, K, PartMax, PartSum,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    num_q_heads, kv_group, seq_len, num_last, keys_per_split, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, SPLITS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Running max and sum (base 2) of one query head's last queries over one key range.

    Grid (splits, B * Hq); writes PartMax / PartSum [B * Hq, SPLITS, BLOCK_Q].
    """
    split = tl.program_id(0)
    batch_head = tl.program_id(1)
    b = (batch_head // num_q_heads).to(tl.int64)
    h = batch_head % num_q_heads
    offs_d = tl.arange(0, HEAD_DIM)
    rows = tl.arange(0, BLOCK_Q)
    q_pos = seq_len - num_last + rows
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + q_pos.to(tl.int64)[:, None] * stride_ql + offs_d[None, :],
        mask=(rows < num_last)[:, None], other=0.0,
    )
    k_base = K + b * stride_kb + (h // kv_group) * stride_kh
    m_i = tl.full([BLOCK_Q], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_Q], dtype=tl.float32)
    start = split * keys_per_split
    end = tl.minimum(start + keys_per_split, seq_len)
    for key_start in range(start, end, BLOCK_N):
        key_pos = key_start + tl.arange(0, BLOCK_N)
        k = tl.load(k_base + key_pos.to(tl.int64)[:, None] * stride_kl + offs_d[None, :],
                    mask=(key_pos < end)[:, None], other=0.0)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        visible = (key_pos[None, :] <= q_pos[:, None]) & (key_pos[None, :] < end)
        qk = tl.where(visible, qk * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.math.exp2(m_i - m_shift) + tl.sum(tl.math.exp2(qk - m_shift[:, None]), 1)
        m_i = m_new
    out = (batch_head * SPLITS + split) * BLOCK_Q + rows
    tl.store(PartMax + out, m_i)
    tl.store(PartSum + out, l_i)


@triton.jit
def _segment_order_kernel(
    Q, K, PartMax, PartSum, Scores, Perm,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    num_q_heads, kv_group, perm_heads, seq_len, num_last, num_splits, qk_scale, inv_count,
    HEAD_DIM: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, SPLITS: tl.constexpr,
    SEGMENT: tl.constexpr, RANK_TILE: tl.constexpr, HEADS_PER_PERM: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Scores of one segment's keys for one permutation head, then their descending order.

    Grid (ceil(L / S), B * P). Scores [B, P, L] float32 (mean last-query attention);
    Perm [B, P, L] int64, permuted position -> original; a partial last segment stays in place.
    A key's permuted position is its rank: how many keys of the segment score higher, or the
    same with a lower position (one comparison tile instead of a sort's many shuffles).
    """
    segment = tl.program_id(0)
    batch_perm = tl.program_id(1)
    b = (batch_perm // perm_heads).to(tl.int64)
    p = batch_perm % perm_heads
    seg_start = segment * SEGMENT
    row_base = batch_perm.to(tl.int64) * seq_len
    offs_d = tl.arange(0, HEAD_DIM)
    rows = tl.arange(0, BLOCK_Q)
    q_pos = seq_len - num_last + rows
    q_valid = rows < num_last
    splits = tl.arange(0, SPLITS)
    for g in tl.static_range(HEADS_PER_PERM):
        h = p * HEADS_PER_PERM + g
        part = ((b * num_q_heads + h) * SPLITS + splits[:, None]) * BLOCK_Q + rows[None, :]
        live = splits[:, None] < num_splits
        part_max = tl.load(PartMax + part, mask=live, other=float("-inf"))
        part_sum = tl.load(PartSum + part, mask=live, other=0.0)
        row_max = tl.max(part_max, 0)
        row_max = tl.where(row_max == float("-inf"), 0.0, row_max)
        total = tl.sum(part_sum * tl.math.exp2(part_max - row_max[None, :]), 0)
        lse = row_max + tl.math.log2(tl.where(total > 0.0, total, 1.0))
        q = tl.load(
            Q + b * stride_qb + h * stride_qh + q_pos.to(tl.int64)[:, None] * stride_ql + offs_d[None, :],
            mask=q_valid[:, None], other=0.0,
        )
        k_base = K + b * stride_kb + (h // kv_group) * stride_kh
        for chunk in range(0, SEGMENT, BLOCK_N):
            in_chunk = chunk + tl.arange(0, BLOCK_N)
            key_pos = seg_start + in_chunk
            key_valid = (in_chunk < SEGMENT) & (key_pos < seq_len)
            k = tl.load(k_base + key_pos.to(tl.int64)[:, None] * stride_kl + offs_d[None, :],
                        mask=key_valid[:, None], other=0.0)
            # keys x queries, so each key's sum over queries stays inside a warp
            kq = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale
            visible = (key_pos[:, None] <= q_pos[None, :]) & q_valid[None, :] & key_valid[:, None]
            score = tl.sum(tl.where(visible, tl.math.exp2(kq - lse[None, :]), 0.0), 1) * inv_count
            if g > 0:
                score += tl.load(Scores + row_base + key_pos, mask=key_valid, other=0.0, volatile=True)
            tl.store(Scores + row_base + key_pos, score, mask=key_valid)
        tl.debug_barrier()
    if seg_start + SEGMENT <= seq_len:
        for j_start in range(0, SEGMENT, RANK_TILE):
            j = j_start + tl.arange(0, RANK_TILE)
            j_valid = j < SEGMENT
            score_j = tl.load(Scores + row_base + seg_start + j, mask=j_valid, other=0.0, volatile=True)
            rank = tl.zeros([RANK_TILE], dtype=tl.int32)
            for i_start in range(0, SEGMENT, RANK_TILE):
                i = i_start + tl.arange(0, RANK_TILE)
                score_i = tl.load(Scores + row_base + seg_start + i, mask=i < SEGMENT, other=-1.0, volatile=True)
                ahead = (score_i[None, :] > score_j[:, None]) | (
                    (score_i[None, :] == score_j[:, None]) & (i[None, :] < j[:, None])
                )
                rank += tl.sum(ahead.to(tl.int32), 1)
            tl.store(Perm + row_base + seg_start + rank, (seg_start + j).to(tl.int64), mask=j_valid)
    else:
        for j_start in range(0, SEGMENT, RANK_TILE):
            tail = seg_start + j_start + tl.arange(0, RANK_TILE)
            tl.store(Perm + row_base + tail, tail.to(tl.int64), mask=(tail < seq_len) & (tail < seg_start + SEGMENT))


def segment_permutation_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    segment_size: int,
    num_last_queries: int,
    scale: float,
    per_group: bool,
    launch: PermutationLaunch | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(key_perm int64, scores float32), both [B, P, L]: `SegmentedKeyPermuter`'s result.

    P is Hq, or Hkv when per_group (one order per kv group, scored by its heads' mean).
    """
    launch = launch or PermutationLaunch()
    batch, q_heads, length, head_dim = q.shape
    kv_heads = k.shape[1]
    q, k = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k))
    n = min(num_last_queries, length)
    block_q = max(16, triton.next_power_of_2(n))
    tiles = triton.cdiv(length, launch.lse_keys)
    splits = max(1, min(MAX_SPLITS, tiles, triton.cdiv(launch.lse_programs, batch * q_heads)))
    keys_per_split = triton.cdiv(tiles, splits) * launch.lse_keys
    splits = triton.cdiv(length, keys_per_split)
    splits_pow2 = triton.next_power_of_2(splits)
    part_max = torch.empty(batch * q_heads, splits_pow2, block_q, dtype=torch.float32, device=q.device)
    part_sum = torch.empty_like(part_max)
    qk_scale = scale * LOG2E
    precision = dot_precision(q.dtype)
    _last_query_lse_kernel[(splits, batch * q_heads)](
        q, k, part_max, part_sum, *q.stride()[:3], *k.stride()[:3],
        q_heads, q_heads // kv_heads, length, n, keys_per_split, qk_scale,
        HEAD_DIM=head_dim, BLOCK_Q=block_q, BLOCK_N=launch.lse_keys, SPLITS=splits_pow2,
        DOT_PRECISION=precision, num_warps=launch.lse_warps, num_stages=launch.num_stages,
    )
    perm_heads = kv_heads if per_group else q_heads
    heads_per_perm = q_heads // perm_heads
    scores = torch.empty(batch, perm_heads, length, dtype=torch.float32, device=q.device)
    key_perm = torch.empty(batch, perm_heads, length, dtype=torch.int64, device=q.device)
    _segment_order_kernel[(triton.cdiv(length, segment_size), batch * perm_heads)](
        q, k, part_max, part_sum, scores, key_perm, *q.stride()[:3], *k.stride()[:3],
        q_heads, q_heads // kv_heads, perm_heads, length, n, splits, qk_scale, 1.0 / (n * heads_per_perm),
        HEAD_DIM=head_dim, BLOCK_Q=block_q, BLOCK_N=min(launch.order_keys, triton.next_power_of_2(segment_size)),
        SPLITS=splits_pow2, SEGMENT=segment_size, RANK_TILE=min(128, triton.next_power_of_2(segment_size)),
        HEADS_PER_PERM=heads_per_perm, DOT_PRECISION=precision, num_warps=launch.order_warps,
        num_stages=launch.num_stages,
    )
    return key_perm, scores


@triton.jit
def _pool_blocks_kernel(
    X, Perm, Out,
    stride_xb, stride_xh, stride_xl, stride_pb, stride_ph,
    out_heads, heads_per_x, seq_len, num_blocks, scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr, ROWS: tl.constexpr, HAS_PERM: tl.constexpr,
    ZERO_PADDED: tl.constexpr,
):
    """Mean of one block of rows (through Perm when given) for one output head; grid (nb, B * P)."""
    block = tl.program_id(0)
    batch_head = tl.program_id(1)
    b = (batch_head // out_heads).to(tl.int64)
    h = batch_head % out_heads
    offs_d = tl.arange(0, HEAD_DIM)
    x_base = X + b * stride_xb + (h // heads_per_x) * stride_xh
    acc = tl.zeros([HEAD_DIM], dtype=tl.float32)
    for row in range(0, BLOCK_SIZE, ROWS):
        slot = block * BLOCK_SIZE + row + tl.arange(0, ROWS)
        valid = slot < seq_len
        if HAS_PERM:
            pos = tl.load(Perm + b * stride_pb + h * stride_ph + slot, mask=valid, other=0)
        else:
            pos = slot
        x = tl.load(x_base + pos.to(tl.int64)[:, None] * stride_xl + offs_d[None, :], mask=valid[:, None], other=0.0)
        acc += tl.sum(x.to(tl.float32), 0)
    if ZERO_PADDED:
        count = BLOCK_SIZE
    else:
        count = tl.minimum(BLOCK_SIZE, seq_len - block * BLOCK_SIZE)
    tl.store(Out + (batch_head.to(tl.int64) * num_blocks + block) * HEAD_DIM + offs_d, acc * (scale / count))


def pool_blocks_triton(
    x: torch.Tensor, perm: torch.Tensor | None, *, block_size: int, scale: float = 1.0, zero_padded: bool = False
) -> torch.Tensor:
    """Mean of every block of `block_size` rows times `scale`, float32 [B, P, nb, D] (the last block
    may be short, and is divided by block_size when zero_padded; scale saves the caller a launch to
    scale pooled queries).

    x: [B, Hx, L, D]. perm: None (P = Hx, natural order) or int [B, P, L] (P a multiple of Hx,
    row p of block j is x[perm[p, j * B + r]]): the pooled permuted keys without permuting K.
    """
    batch, x_heads, length, head_dim = x.shape
    x = x if x.stride(-1) == 1 else x.contiguous()
    out_heads = x_heads if perm is None else perm.shape[1]
    nb = num_blocks(length, block_size)
    out = torch.empty(batch, out_heads, nb, head_dim, dtype=torch.float32, device=x.device)
    if perm is not None and perm.stride(-1) != 1:
        perm = perm.contiguous()
    perm_strides = (0, 0) if perm is None else perm.stride()[:2]
    _pool_blocks_kernel[(nb, batch * out_heads)](
        x, x if perm is None else perm, out, *x.stride()[:3], *perm_strides,
        out_heads, out_heads // x_heads, length, nb, scale,
        HEAD_DIM=head_dim, BLOCK_SIZE=block_size, ROWS=min(block_size, 64), HAS_PERM=perm is not None,
        ZERO_PADDED=zero_padded, num_warps=4,
    )
    return out


@triton.jit
def _threshold_select_kernel(
    Logits, Perm, Mask,
    stride_pb, stride_ph, num_q_heads, heads_per_perm, seq_len, num_blocks, sink_span, threshold,
    BLOCK_SIZE: tl.constexpr, SEGMENT: tl.constexpr, NB_POW2: tl.constexpr, SINK_POW2: tl.constexpr,
    HAS_PERM: tl.constexpr, FORCE_SINK: tl.constexpr, FORCE_DIAGONAL: tl.constexpr, SCORE_DIAGONAL: tl.constexpr,
):
    """One query block's row of the block mask; grid (nb, B * Hq). Logits already scaled."""
    q_block = tl.program_id(0)
    batch_head = tl.program_id(1)
    row = batch_head.to(tl.int64) * num_blocks + q_block
    blocks = tl.arange(0, NB_POW2)
    exists = blocks < num_blocks
    per_segment = SEGMENT // BLOCK_SIZE
    full_blocks = (seq_len // SEGMENT) * per_segment
    segment_of = tl.where(blocks < full_blocks, blocks // per_segment, seq_len // SEGMENT + blocks - full_blocks)
    own = tl.where(q_block < full_blocks, q_block // per_segment, seq_len // SEGMENT + q_block - full_blocks)
    allowed = exists & (segment_of <= own)
    diagonal = exists & (segment_of == own)
    scored = allowed if SCORE_DIAGONAL else allowed & ~diagonal
    logits = tl.load(Logits + row * num_blocks + blocks, mask=scored, other=float("-inf"))
    row_max = tl.max(logits, 0)
    row_max = tl.where(row_max == float("-inf"), 0.0, row_max)
    probs = tl.where(scored, tl.math.exp2((logits - row_max) * 1.4426950408889634), 0.0)
    target = threshold * tl.sum(probs, 0)
    # A block is kept when the mass of the blocks ahead of it (higher probability, or equal and a
    # lower index) is below target. That mass only grows as the probability falls, so the kept
    # blocks are those at or above a cutoff: the least float bit pattern c (non-negative floats
    # order as their bits) whose strictly higher blocks hold less than target, found by bisection.
    bits = probs.to(tl.int32, bitcast=True)
    low = tl.zeros([], dtype=tl.int32)
    high = tl.full([], 0x7F800000, dtype=tl.int32)
    for _ in range(31):
        mid = low + (high - low) // 2
        below = tl.sum(tl.where(bits > mid, probs, 0.0), 0) < target
        high = tl.where(below, mid, high)
        low = tl.where(below, low, mid + 1)
    at_cutoff = (bits == high).to(tl.int32)
    ahead_at_cutoff = (tl.cumsum(at_cutoff, 0) - at_cutoff).to(tl.float32)
    higher_mass = tl.sum(tl.where(bits > high, probs, 0.0), 0)
    selected = (probs > 0.0) & ((bits > high) | ((at_cutoff != 0) & (higher_mass + ahead_at_cutoff * probs < target)))
    if FORCE_DIAGONAL:
        selected = selected | diagonal
    if FORCE_SINK:
        if HAS_PERM:
            batch = batch_head // num_q_heads
            perm_head = (batch_head % num_q_heads) // heads_per_perm
            first = tl.arange(0, SINK_POW2)
            order = tl.load(Perm + batch.to(tl.int64) * stride_pb + perm_head * stride_ph + first,
                            mask=first < sink_span, other=-1)
            sink = tl.sum(tl.where(order == 0, first, 0), 0) // BLOCK_SIZE
        else:
            sink = 0
        selected = selected | (allowed & (blocks == sink))
    tl.store(Mask + row * num_blocks + blocks, selected.to(tl.uint8), mask=exists)


def threshold_select_triton(
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
    """`MeanPoolSelector`'s block mask, bool [B, Hq, nb, nb], from scaled block logits [B, Hq, nb, nb].

    key_perm (int [B, Hq or Hkv, L] or None) only locates the sink: original token 0's block.
    """
    batch, q_heads, nb, _ = logits.shape
    logits = logits.contiguous()
    mask = torch.empty(batch, q_heads, nb, nb, dtype=torch.bool, device=logits.device)
    segment = segment_size or block_size
    if key_perm is not None and key_perm.stride(-1) != 1:
        key_perm = key_perm.contiguous()
    sink_span = min(segment, length)
    nb_pow2 = triton.next_power_of_2(nb)
    _threshold_select_kernel[(nb, batch * q_heads)](
        logits, logits if key_perm is None else key_perm, mask.view(torch.uint8),
        *((0, 0) if key_perm is None else key_perm.stride()[:2]),
        q_heads, 1 if key_perm is None else q_heads // key_perm.shape[1], length, nb, sink_span, float(threshold),
        BLOCK_SIZE=block_size, SEGMENT=segment, NB_POW2=nb_pow2, SINK_POW2=triton.next_power_of_2(sink_span),
        HAS_PERM=key_perm is not None, FORCE_SINK=force_sink, FORCE_DIAGONAL=force_diagonal,
        SCORE_DIAGONAL=score_diagonal, num_warps=max(1, min(4, nb_pow2 // 512)),
    )
    return mask
