"""Vertical-slash sparse causal attention (MInference's pattern), exact at token level.

Query i attends key j (j <= i) iff j is one of the head's vertical columns or i - j is one of
its slash offsets; a pair lying on both is counted once. MInference's own kernel rounds slash
bands out to whole 64 x 64 tiles; this one computes exactly the union, so density and output
depend only on the indices.

Two launches, as in MInference (whose index builder is convert_vertical_slash_indexes). First
`tile_index` lists, for every tile of BLOCK_M queries, the BLOCK_N-key blocks some slash band
crosses and the vertical columns outside those blocks. Then the attention kernel walks just
those lists: each block as one contiguous key tile, its pairs masked by a bitmap lookup of offset
and column (none when the bands cover the block completely), then the leftover columns gathered
BLOCK_N keys at a time, where no slash can reach. A query tile thus costs its crossed blocks plus
ceil(leftover columns / BLOCK_N) key tiles, nothing for the blocks in between, and each pair enters
the online softmax once. Every table is O(L) per head; nothing L x L is built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from src.attention.kernels.triton_utils import LOG2E, dot_precision
from src.attention.kernels.vertical_slash.layout import PatternTables, pattern_tables

TileShape = tuple[int, int, int, int]  # query rows, key rows per tile, warps, pipeline stages
# (head_dim, 16-bit inputs) -> tile. Swept on an H100 for the kernel's earlier layout (a scan over
# all key blocks); not yet re-swept for the listed blocks: pass `tile` to sweep.
TILE_TABLE: dict[tuple[int, bool], TileShape] = {
    (64, True): (64, 64, 4, 2),
    (128, True): (64, 64, 4, 2),
    (64, False): (64, 32, 4, 2),
    (128, False): (64, 32, 4, 2),
}


@dataclass(frozen=True)
class TileIndex:
    """What the attention kernel visits for each (batch * head, query tile), as built by `tile_index`.

    blocks: int32 [B * H, nq, W], ascending, the BLOCK_N-key blocks some slash band crosses: block
        j is stored as j, or as -1 - j when every offset a pair of it and the tile can take is a
        slash (then each causal pair in it counts, with no lookup).
    block_counts: int32 [B * H, nq], how many entries of each `blocks` row are valid.
    columns: int32 [B * H, nq, NV], ascending, the vertical columns before the tile's end that lie
        in no listed block (those inside a listed block are computed there).
    column_counts: int32 [B * H, nq], how many entries of each `columns` row are valid.
    """

    blocks: torch.Tensor
    block_counts: torch.Tensor
    columns: torch.Tensor
    column_counts: torch.Tensor


@triton.jit
def _slash_span(slash_prefix, q_start, q_end, key_start, live, seq_len, BLOCK_N: tl.constexpr):
    """For key blocks starting at key_start: slash offsets joining a query of [q_start, q_end) to
    one of their keys, and how many offsets such a pair can have (the first is 0 where not live)."""
    lowest = tl.maximum(q_start - key_start - BLOCK_N + 1, 0)
    highest = tl.minimum(q_end - 1 - key_start, seq_len - 1)
    crossing = tl.load(slash_prefix + highest + 1, mask=live, other=0) - tl.load(slash_prefix + lowest, mask=live, other=0)
    return crossing, highest - lowest + 1


@triton.jit
def _append(row, count, values, keep):
    """Store the kept values in order at row[count:]; returns the new count."""
    kept = keep.to(tl.int32)
    tl.store(row + count + tl.cumsum(kept, 0) - kept, values, mask=keep)
    return count + tl.sum(kept, 0)


@triton.jit
def _tile_index_kernel(
    Columns,
    SlashPrefix,
    Blocks,
    BlockCounts,
    TileColumns,
    ColumnCounts,
    seq_len,
    num_tiles,
    num_columns,
    block_width,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CHUNK: tl.constexpr,
):
    """One row of `TileIndex`: a (query tile, batch * head); grid (nq, B * H).

    A key block is tested with two prefix-count loads, CHUNK blocks (or columns) at a time, and
    the hits are compacted with a cumulative sum, so the lists hold only what is computed.
    """
    tile = tl.program_id(0)
    batch_head = tl.program_id(1).to(tl.int64)
    row = batch_head * num_tiles + tile
    q_start = tile * BLOCK_M
    q_end = tl.minimum(q_start + BLOCK_M, seq_len)
    slash_prefix = SlashPrefix + batch_head * (seq_len + 1)
    offs = tl.arange(0, CHUNK)

    blocks = Blocks + row * block_width
    count = tl.full((), 0, tl.int32)
    live_blocks = tl.cdiv(q_end, BLOCK_N)
    for first in range(0, live_blocks, CHUNK):
        block = first + offs
        live = block < live_blocks
        crossing, spanned = _slash_span(slash_prefix, q_start, q_end, block * BLOCK_N, live, seq_len, BLOCK_N)
        count = _append(blocks, count, tl.where(crossing == spanned, -1 - block, block), crossing > 0)
    tl.store(BlockCounts + row, count)

    columns = Columns + batch_head * num_columns
    tile_columns = TileColumns + row * num_columns
    count = tl.full((), 0, tl.int32)
    for first in range(0, num_columns, CHUNK):
        slot = first + offs
        column = tl.load(columns + slot, mask=slot < num_columns, other=seq_len)
        live = column < q_end
        crossing, _ = _slash_span(slash_prefix, q_start, q_end, column - column % BLOCK_N, live, seq_len, BLOCK_N)
        count = _append(tile_columns, count, column, live & (crossing == 0))
    tl.store(ColumnCounts + row, count)


def tile_index(tables: PatternTables, length: int, max_slashes: int, block_m: int, block_n: int) -> TileIndex:
    """The per-query-tile visiting lists of a pattern (one launch; MInference's
    convert_vertical_slash_indexes, at block granularity).

    max_slashes bounds the slash offsets of a head: one offset crosses at most
    cdiv(block_m - 1, block_n) + 1 key blocks of a tile, which bounds the list width.
    """
    batch, heads, num_columns = tables.columns.shape
    num_tiles = triton.cdiv(length, block_m)
    width = max(min(triton.cdiv(length, block_n), max_slashes * (triton.cdiv(block_m - 1, block_n) + 1)), 1)
    device = tables.columns.device
    index = TileIndex(
        blocks=torch.empty(batch * heads, num_tiles, width, dtype=torch.int32, device=device),
        block_counts=torch.empty(batch * heads, num_tiles, dtype=torch.int32, device=device),
        columns=torch.empty(batch * heads, num_tiles, num_columns, dtype=torch.int32, device=device),
        column_counts=torch.empty(batch * heads, num_tiles, dtype=torch.int32, device=device),
    )
    chunk = min(max(triton.next_power_of_2(max(triton.cdiv(length, block_n), num_columns)), 16), 1024)
    _tile_index_kernel[(num_tiles, batch * heads)](
        tables.columns, tables.slash_prefix, index.blocks, index.block_counts, index.columns, index.column_counts,
        length, num_tiles, num_columns, width,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        CHUNK=chunk,
        num_warps=4,
    )
    return index


@triton.jit
def _attend(
    acc, l_i, m_i, q, k_pos, visible, k_base, v_base, stride_kl, stride_vl, seq_len, qk_scale,
    HEAD_DIM: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Fold the keys at positions k_pos (those >= seq_len are padding) into the tile's running
    max, sum and output (base-2 logits); only the pairs in `visible` count."""
    offs_d = tl.arange(0, HEAD_DIM)
    rows = k_pos.to(tl.int64)[:, None]
    k = tl.load(k_base + rows * stride_kl + offs_d[None, :], mask=rows < seq_len, other=0.0)
    v = tl.load(v_base + rows * stride_vl + offs_d[None, :], mask=rows < seq_len, other=0.0)
    qk = tl.where(visible, tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    # A row that has seen no visible key yet keeps m = -inf; shift it by 0 instead.
    m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.math.exp2(qk - m_shift[:, None])
    alpha = tl.math.exp2(m_i - m_shift)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
    return acc, l_i, m_new


@triton.jit
def _vertical_slash_fwd_kernel(
    Q,
    K,
    V,
    Out,
    ColumnBits,
    SlashBits,
    Blocks,
    BlockCounts,
    TileColumns,
    ColumnCounts,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_vb,
    stride_vh,
    stride_vl,
    stride_ob,
    stride_oh,
    stride_ol,
    num_q_heads,
    group_size,
    seq_len,
    num_tiles,
    block_width,
    num_columns,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One BLOCK_M query tile of one (batch, query head); grid (nq, B * Hq).

    Tiles run last to first: late tiles cross the most blocks, so the long programs start early.
    """
    batch_head = tl.program_id(1)
    b = (batch_head // num_q_heads).to(tl.int64)
    h = batch_head % num_q_heads
    tile = num_tiles - 1 - tl.program_id(0)
    row = batch_head.to(tl.int64) * num_tiles + tile
    q_pos = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    q_live = q_pos < seq_len
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)

    q = tl.load(
        Q + b * stride_qb + h.to(tl.int64) * stride_qh + q_pos.to(tl.int64)[:, None] * stride_ql + offs_d[None, :],
        mask=q_live[:, None],
        other=0.0,
    )
    k_base = K + b * stride_kb + (h // group_size).to(tl.int64) * stride_kh
    v_base = V + b * stride_vb + (h // group_size).to(tl.int64) * stride_vh
    column_bits = ColumnBits + batch_head.to(tl.int64) * seq_len
    slash_bits = SlashBits + batch_head.to(tl.int64) * seq_len
    blocks = Blocks + row * block_width
    tile_columns = TileColumns + row * num_columns

    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)

    # (1) The key blocks slash bands cross, as contiguous tiles: a pair counts when it lies on a
    # slash or a column (one bitmap lookup each), or just when causal in a fully covered block.
    num_blocks = tl.load(BlockCounts + row)
    entry = tl.load(blocks, mask=num_blocks > 0, other=0)
    for i in range(0, num_blocks):
        next_entry = tl.load(blocks + i + 1, mask=i + 1 < num_blocks, other=0)
        partial = entry >= 0
        k_pos = tl.where(partial, entry, -1 - entry) * BLOCK_N + offs_n
        in_range = k_pos < seq_len
        offset = q_pos[:, None] - k_pos[None, :]
        causal = (offset >= 0) & q_live[:, None] & in_range[None, :]
        on_slash = tl.load(slash_bits + offset, mask=causal & partial, other=1) != 0
        on_column = tl.load(column_bits + k_pos, mask=in_range & partial, other=0) != 0
        visible = causal & (on_slash | on_column[None, :])
        acc, l_i, m_i = _attend(
            acc, l_i, m_i, q, k_pos, visible, k_base, v_base, stride_kl, stride_vl, seq_len, qk_scale, HEAD_DIM, DOT_PRECISION
        )
        entry = next_entry

    # (2) The columns outside those blocks, gathered BLOCK_N at a time: no slash reaches them.
    column_count = tl.load(ColumnCounts + row)
    for first in range(0, column_count, BLOCK_N):
        slot = first + offs_n
        k_pos = tl.load(tile_columns + slot, mask=slot < column_count, other=seq_len)
        visible = (k_pos[None, :] <= q_pos[:, None]) & q_live[:, None]
        acc, l_i, m_i = _attend(
            acc, l_i, m_i, q, k_pos, visible, k_base, v_base, stride_kl, stride_vl, seq_len, qk_scale, HEAD_DIM, DOT_PRECISION
        )

    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_ptrs = Out + b * stride_ob + h.to(tl.int64) * stride_oh + q_pos.to(tl.int64)[:, None] * stride_ol + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=q_live[:, None])


def vertical_slash_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    *,
    scale: float | None = None,
    tile: TileShape | None = None,
) -> torch.Tensor:
    """Triton backend of `vertical_slash_attention` (inputs already validated there).

    Two launches: `tile_index` lists what each query tile visits, then the attention kernel.
    tile: overrides the launch shape of TILE_TABLE (for benchmarks).
    """
    batch, q_heads, length, head_dim = q.shape
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    block_m, block_n, num_warps, num_stages = tile or TILE_TABLE[(head_dim, q.dtype != torch.float32)]
    tables = pattern_tables(vertical_indices, slash_offsets, length)
    index = tile_index(tables, length, slash_offsets.shape[-1], block_m, block_n)
    out = torch.empty_like(q)
    num_tiles = index.blocks.shape[1]
    _vertical_slash_fwd_kernel[(num_tiles, batch * q_heads)](
        q, k, v, out,
        tables.column_bits.contiguous(), tables.slash_bits.contiguous(),
        index.blocks, index.block_counts, index.columns, index.column_counts,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3],
        q_heads, q_heads // k.shape[1], length, num_tiles, index.blocks.shape[-1], index.columns.shape[-1],
        (head_dim**-0.5 if scale is None else scale) * LOG2E,
        HEAD_DIM=head_dim,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        DOT_PRECISION=dot_precision(q.dtype),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out
