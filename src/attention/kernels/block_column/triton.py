"""Triton backend of the block-column op: MInference's conversion in one launch, then its attention.

`build_index` is `convert_vertical_slash_indexes` as one program per (head, 32 query blocks),
one lane per block, walking the head's slash offsets from the largest down as the official
thread does; each step records at most one 64-key block in the lane's row of the window table,
so no list has to be merged or sorted afterwards, and the columns' pairs are counted at the end.

`attention` runs two launches. The first lists, per tile of G query blocks (G * 64 query rows),
the aligned key units (P windows of 64 keys) that every row of the tile fully sees — walked with
no mask at all — the remaining windows some block's ranges touch, walked with a per-row range
mask read from the window table, and the union of the tile's columns, flagged per block. The
second is a FlashAttention-2 style loop over those three lists. A tile of two blocks runs on
128-row tiles (two warpgroups share each K/V load), at the cost of walking the union of both
blocks' ranges; G = 1 is MInference's own 64-row shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from src.attention.kernels.block_column.layout import BLOCK, BlockColumnIndex, num_query_blocks
from src.attention.kernels.triton_utils import LOG2E, append_kept, dot_precision, fold_tile, tma_ready

MERGE_LANES = 32  # query blocks per program of the conversion (one warp, one block per thread)


@dataclass(frozen=True)
class BlockColumnTile:
    """Launch shape of the attention: query blocks per tile (G), 64-key windows per unmasked key
    tile (P), warps, pipeline stages, whether contiguous K/V tiles load through tensor descriptors
    (Hopper's copy engine) instead of pointer loads, and a register cap per thread (None: the
    compiler's choice; 128 fits two programs per SM, see the block-sparse kernel)."""

    blocks: int
    windows: int
    num_warps: int
    num_stages: int
    tma: bool = False
    maxnreg: int | None = None

    def __post_init__(self) -> None:
        if self.blocks not in (1, 2) or self.windows not in (1, 2):
            raise ValueError(f"tile blocks and windows must be 1 or 2, got {self.blocks}, {self.windows}")


# 16-bit inputs, head dim 128, from one H200 sweep on bench_attention's MInference plans
# (results/bench/bench_minference_h200.json; L 8K, 32K, 128K; experiments/NOTES.md): 128-row tiles
# over 128-key units were fastest at 8K (1.21 ms), 128-row tiles over 64-key units at two programs
# per SM at 32K (18.0 ms) and the fastest GPU-checked shape at 128K (290 ms; 64-row tiles ran 276
# ms there, but were not checked on the GPU). The 16K switch between the two lies between measured
# lengths. fp32 (tests): 64-row tiles, whose K/V tiles fit shared memory.
DEFAULT_TILE = BlockColumnTile(blocks=2, windows=2, num_warps=8, num_stages=3, tma=True)
LONG_TILE = BlockColumnTile(blocks=2, windows=1, num_warps=8, num_stages=2, tma=True, maxnreg=128)
LONG_FROM = 16384
FP32_TILE = BlockColumnTile(blocks=1, windows=1, num_warps=4, num_stages=2)


@triton.jit
def _range_block_pairs(block_start, q_start, q_end, BLOCK: tl.constexpr):
    """Causal pairs between keys [block_start, block_start + BLOCK) and queries [q_start, q_end)."""
    before = tl.maximum(tl.minimum(block_start + BLOCK, q_start + 1) - block_start, 0)
    low = tl.maximum(block_start, q_start + 1)
    count = tl.maximum(tl.minimum(block_start + BLOCK, q_end) - low, 0)
    return before * (q_end - q_start) + count * q_end - count * (2 * low + count - 1) // 2


@triton.jit
def _load_window(rows, window, mask, BLOCK: tl.constexpr):
    """(x, y) int32 of the window table at `rows` (pointers to query-block rows) and `window`:
    the window's offsets r < x or r >= y are in a range; masked entries read as empty (0, BLOCK)."""
    x = tl.load(rows + window * 2, mask=mask, other=0).to(tl.int32)
    y = tl.load(rows + window * 2 + 1, mask=mask, other=BLOCK).to(tl.int32)
    return x, y


@triton.jit
def _merge_kernel(
    Slashes, Columns, Coverage, RangeEnd, Pairs,
    seq_len, num_blocks, num_slashes, num_columns,
    LANES: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr,
):
    """Lanes = query blocks [pid0 * LANES, ...) of head pid1; see the module docstring."""
    head = tl.program_id(1).to(tl.int64)
    blocks = tl.program_id(0) * LANES + tl.arange(0, LANES)
    live = blocks < num_blocks
    q_start = blocks * BLOCK
    q_end = q_start + BLOCK
    q_end_in = tl.minimum(q_end, seq_len)
    slashes = Slashes + head * num_slashes
    offs = tl.arange(0, CHUNK)

    # Offsets at or past the last lane's block end reach no lane; they come first, so skip them.
    reach = tl.minimum(tl.program_id(0) * LANES + LANES, num_blocks) * BLOCK
    first_rank = tl.full((), 0, tl.int32)
    num_valid = tl.full((), 0, tl.int32)
    for first in range(0, num_slashes, CHUNK):
        offset = tl.load(slashes + first + offs, mask=first + offs < num_slashes, other=-1)
        first_rank += tl.sum((offset >= reach).to(tl.int32), 0)
        num_valid += tl.sum((offset >= 0).to(tl.int32), 0)

    rows = Coverage + (head * num_blocks + blocks) * (num_blocks * 2)
    started = tl.zeros([LANES], dtype=tl.int32)
    range_end = tl.zeros([LANES], dtype=tl.int32)
    pairs = tl.zeros([LANES], dtype=tl.int32)
    for rank in range(first_rank, num_valid):
        offset = tl.load(slashes + rank)
        active = live & (offset < q_end)
        window_end = tl.maximum(q_end - offset, BLOCK)
        opens = active & ((started == 0) | (window_end > range_end + BLOCK))
        grows = active & (started != 0) & (window_end <= range_end + BLOCK) & (window_end > range_end)
        block_start = tl.where(opens, window_end - BLOCK, range_end)
        range_end = tl.where(opens, window_end, tl.where(grows, range_end + BLOCK, range_end))
        started = tl.where(active, 1, started)
        emitted = opens | grows
        # The block fills its window from offset r on and the next window below r (all of it if r = 0).
        window = block_start // BLOCK
        r = block_start % BLOCK
        tl.store(rows + window * 2 + 1, r.to(tl.uint8), mask=emitted & (window < num_blocks))
        prefix = window + (r > 0).to(tl.int32)
        tl.store(rows + prefix * 2, tl.where(r > 0, r, BLOCK).to(tl.uint8), mask=emitted & (prefix < num_blocks))
        pairs += tl.where(emitted, _range_block_pairs(block_start, q_start, q_end_in, BLOCK), 0)
    range_end = tl.where(started != 0, range_end, q_end)
    tl.store(RangeEnd + head * num_blocks + blocks, range_end, mask=live)

    tl.debug_barrier()  # the table rows written above are read back by other threads
    columns = Columns + head * num_columns
    for first in range(0, num_columns, CHUNK):
        column = tl.load(columns + first + offs, mask=first + offs < num_columns, other=seq_len)
        candidate = live[:, None] & (column[None, :] < range_end[:, None]) & (column[None, :] < q_end_in[:, None])
        x, y = _load_window(rows[:, None], (column // BLOCK)[None, :], candidate, BLOCK)
        r = (column % BLOCK)[None, :]
        is_column = candidate & (r >= x) & (r < y)
        seen = q_end_in[:, None] - tl.maximum(q_start[:, None], column[None, :])
        pairs += tl.sum(tl.where(is_column, seen, 0), 1)
    tl.store(Pairs + head * num_blocks + blocks, pairs, mask=live)


def build_index(columns: torch.Tensor, slashes: torch.Tensor, length: int) -> BlockColumnIndex:
    """`block_column_index` on sorted columns and descending slashes: one launch."""
    batch, heads, num_slashes = slashes.shape
    num_columns = columns.shape[-1]
    nb = num_query_blocks(length)
    device = slashes.device
    # int16 0x4000 is the byte pair (x, y) = (0, 64) in memory: every window starts empty.
    coverage = torch.full((batch, heads, nb, nb), BLOCK << 8, dtype=torch.int16, device=device)
    coverage = coverage.view(torch.uint8).view(batch, heads, nb, nb, 2)
    range_end = torch.empty(batch, heads, nb, dtype=torch.int32, device=device)
    pairs = torch.empty(batch, heads, nb, dtype=torch.int32, device=device)
    _merge_kernel[(triton.cdiv(nb, MERGE_LANES), batch * heads)](
        slashes, columns, coverage, range_end, pairs,
        length, nb, num_slashes, num_columns,
        LANES=MERGE_LANES, BLOCK=BLOCK, CHUNK=32, num_warps=1,
    )
    return BlockColumnIndex(length, coverage, range_end, columns, pairs)


@dataclass(frozen=True)
class TileLists:
    """What the attention walks for each (batch * head, tile of G query blocks).

    units: int32 [B * H, T, nb]: from the front, the fully seen key units (unit u = keys
        [u * 64P, (u + 1) * 64P)); from the back, the other windows holding a pair of the tile.
    counts: int32 [B * H, T, 3]: numbers of units, of back windows and of columns.
    columns: int32 [B * H, T, NV]: column * 4 + bit g for every block g computing it as a column.
    """

    units: torch.Tensor
    counts: torch.Tensor
    columns: torch.Tensor


@triton.jit
def _tile_lists_kernel(
    Coverage, RangeEnd, Columns, Units, Counts, TileColumns,
    seq_len, num_blocks, num_tiles, num_columns,
    G: tl.constexpr, P: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr,
):
    """One row of `TileLists`: tile pid0 of head pid1."""
    tile = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    row = head * num_tiles + tile
    tile_start = tile * (G * BLOCK)
    windows = tl.cdiv(tl.minimum(tile_start + G * BLOCK, seq_len), BLOCK)
    table = Coverage + head * num_blocks * num_blocks * 2
    units = Units + row * num_blocks
    offs = tl.arange(0, CHUNK)

    num_full = tl.full((), 0, tl.int32)
    num_partial = tl.full((), 0, tl.int32)
    for first in range(0, tl.cdiv(windows, P), CHUNK):
        unit = first + offs
        window = unit[:, None] * P + tl.arange(0, P)[None, :]
        touched = tl.zeros([CHUNK, P], dtype=tl.int32)
        whole = tl.full([CHUNK, P], 1, dtype=tl.int32)
        for g in tl.static_range(G):
            block = tile * G + g
            exists = block < num_blocks
            seen = exists & (window * BLOCK < tl.minimum(block * BLOCK + BLOCK, seq_len))
            x, y = _load_window(table + block.to(tl.int64) * num_blocks * 2, window, seen, BLOCK)
            touched |= ((x > 0) | (y < BLOCK)).to(tl.int32)
            whole &= ((x >= y) | (block >= num_blocks)).to(tl.int32)
        full_unit = (tl.min(whole, 1) > 0) & ((unit + 1) * (P * BLOCK) <= tile_start)
        num_full = append_kept(units, num_full, unit, full_unit)
        keep = tl.reshape((touched > 0) & (~full_unit[:, None]), [CHUNK * P])
        kept = keep.to(tl.int32)
        slot = num_partial + tl.cumsum(kept, 0) - kept
        tl.store(units + num_blocks - 1 - slot, tl.reshape(window, [CHUNK * P]), mask=keep)
        num_partial += tl.sum(kept, 0)

    columns = Columns + head * num_columns
    num_tile_columns = tl.full((), 0, tl.int32)
    for first in range(0, num_columns, CHUNK):
        column = tl.load(columns + first + offs, mask=first + offs < num_columns, other=seq_len)
        flags = tl.zeros([CHUNK], dtype=tl.int32)
        for g in tl.static_range(G):
            block = tile * G + g
            exists = block < num_blocks
            range_end = tl.load(RangeEnd + head * num_blocks + block, mask=exists, other=0)
            candidate = exists & (column < range_end) & (column < tl.minimum(block * BLOCK + BLOCK, seq_len))
            x, y = _load_window(table + block.to(tl.int64) * num_blocks * 2, column // BLOCK, candidate, BLOCK)
            r = column % BLOCK
            flags |= (candidate & (r >= x) & (r < y)).to(tl.int32) << g
        num_tile_columns = append_kept(TileColumns + row * num_columns, num_tile_columns, column * 4 + flags, flags > 0)
    tl.store(Counts + row * 3, num_full)
    tl.store(Counts + row * 3 + 1, num_partial)
    tl.store(Counts + row * 3 + 2, num_tile_columns)


def tile_lists(index: BlockColumnIndex, blocks: int, windows: int) -> TileLists:
    """The lists the attention walks for tiles of `blocks` query blocks and units of `windows` windows."""
    batch, heads, nb = index.range_end.shape
    num_tiles = triton.cdiv(nb, blocks)
    num_columns = index.columns.shape[-1]
    device = index.coverage.device
    lists = TileLists(
        units=torch.empty(batch * heads, num_tiles, nb, dtype=torch.int32, device=device),
        counts=torch.empty(batch * heads, num_tiles, 3, dtype=torch.int32, device=device),
        columns=torch.empty(batch * heads, num_tiles, max(num_columns, 1), dtype=torch.int32, device=device),
    )
    _tile_lists_kernel[(num_tiles, batch * heads)](
        index.coverage, index.range_end, index.columns, lists.units, lists.counts, lists.columns,
        index.length, nb, num_tiles, num_columns,
        G=blocks, P=windows, BLOCK=BLOCK, CHUNK=128 if windows == 1 else 64, num_warps=4,
    )
    return lists


@triton.jit
def _load_rows(
    base, desc, b, kv_head, start, stride, seq_len,
    ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, TMA: tl.constexpr, MASKED: tl.constexpr,
):
    """K or V rows [start, start + ROWS) of one (batch, KV head): through the tensor descriptor
    (rows past the end read as zeros), or as pointer loads, masked at seq_len when MASKED."""
    if TMA:
        tile = desc.load([b, kv_head, start, 0]).reshape(ROWS, HEAD_DIM)
    else:
        rows = (start + tl.arange(0, ROWS)).to(tl.int64)[:, None]
        ptrs = base + rows * stride + tl.arange(0, HEAD_DIM)[None, :]
        if MASKED:
            tile = tl.load(ptrs, mask=rows < seq_len, other=0.0)
        else:
            tile = tl.load(ptrs)
    return tile


@triton.jit
def _block_column_fwd_kernel(
    Q, K, V, Out, QTiles, OutTiles, KUnits, VUnits, KWindows, VWindows, Coverage, Units, Counts, TileColumns,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    stride_vb, stride_vh, stride_vl, stride_ob, stride_oh, stride_ol,
    num_q_heads, group_size, seq_len, num_blocks, num_tiles, num_columns, qk_scale,
    HEAD_DIM: tl.constexpr, G: tl.constexpr, P: tl.constexpr, BLOCK: tl.constexpr,
    TMA: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """One tile of G * BLOCK queries of one (batch, query head); grid (T, B * Hq), last tile first
    (late tiles hold the most keys, so the long programs start early). With TMA, QTiles / OutTiles
    are descriptors of q / out [B, Hq, L, D] with G * BLOCK rows, KUnits / VUnits and KWindows /
    VWindows of K / V [B, Hkv, L, D] with P * BLOCK and BLOCK rows (pointer loads gather columns)."""
    head = tl.program_id(1)
    b32 = head // num_q_heads  # int32 coordinates for the descriptors, int64 for pointer offsets
    h = head % num_q_heads
    kv_head32 = h // group_size
    b = b32.to(tl.int64)
    kv_head = kv_head32.to(tl.int64)
    tile = num_tiles - 1 - tl.program_id(0)
    row = head.to(tl.int64) * num_tiles + tile
    offs_m = tl.arange(0, G * BLOCK)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, HEAD_DIM)
    q_pos = tile * (G * BLOCK) + offs_m
    if TMA:
        q = QTiles.load([b32, h, tile * (G * BLOCK), 0]).reshape(G * BLOCK, HEAD_DIM)
    else:
        q = tl.load(
            Q + b * stride_qb + h.to(tl.int64) * stride_qh + q_pos.to(tl.int64)[:, None] * stride_ql + offs_d[None, :],
            mask=(q_pos < seq_len)[:, None], other=0.0,
        )
    k_base = K + b * stride_kb + kv_head * stride_kh
    v_base = V + b * stride_vb + kv_head * stride_vh
    if TMA:
        shape = [seq_len, HEAD_DIM]
        k_units = tl.make_tensor_descriptor(k_base, shape, [stride_kl, 1], [P * BLOCK, HEAD_DIM])
        v_units = tl.make_tensor_descriptor(v_base, shape, [stride_vl, 1], [P * BLOCK, HEAD_DIM])
        k_windows = tl.make_tensor_descriptor(k_base, shape, [stride_kl, 1], [BLOCK, HEAD_DIM])
        v_windows = tl.make_tensor_descriptor(v_base, shape, [stride_vl, 1], [BLOCK, HEAD_DIM])
    else:
        k_units = None
        v_units = None
        k_windows = None
        v_windows = None
    units = Units + row * num_blocks
    acc = tl.zeros([G * BLOCK, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([G * BLOCK], dtype=tl.float32)
    m_i = tl.full([G * BLOCK], float("-inf"), dtype=tl.float32)

    # (1) Units every row sees entirely: no mask. The next unit is fetched one step ahead.
    num_full = tl.load(Counts + row * 3)
    unit = tl.load(units, mask=num_full > 0, other=0)
    for i in range(0, num_full):
        next_unit = tl.load(units + i + 1, mask=i + 1 < num_full, other=0)
        k = _load_rows(k_base, KUnits, b32, kv_head32, unit * (P * BLOCK), stride_kl, seq_len, P * BLOCK, HEAD_DIM, TMA, False)
        v = _load_rows(v_base, VUnits, b32, kv_head32, unit * (P * BLOCK), stride_vl, seq_len, P * BLOCK, HEAD_DIM, TMA, False)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        acc, l_i, m_i = fold_tile(acc, l_i, m_i, qk, v, None, qk_scale, False, DOT_PRECISION)
        unit = next_unit

    # (2) Windows the ranges touch partly (or the tile's own diagonal): per-row range mask.
    table = Coverage + head.to(tl.int64) * num_blocks * num_blocks * 2
    row_block = offs_m // BLOCK
    num_partial = tl.load(Counts + row * 3 + 1)
    for i in range(0, num_partial):
        window = tl.load(units + num_blocks - 1 - i)
        x_row = tl.zeros([G * BLOCK], dtype=tl.int32)
        y_row = tl.zeros([G * BLOCK], dtype=tl.int32)
        for g in tl.static_range(G):
            block = tile * G + g
            x, y = _load_window(table + block.to(tl.int64) * num_blocks * 2, window, block < num_blocks, BLOCK)
            x_row = tl.where(row_block == g, x, x_row)
            y_row = tl.where(row_block == g, y, y_row)
        k_pos = window * BLOCK + offs_n
        in_range = (offs_n[None, :] < x_row[:, None]) | (offs_n[None, :] >= y_row[:, None])
        visible = in_range & (k_pos[None, :] <= q_pos[:, None]) & (k_pos < seq_len)[None, :]
        k = _load_rows(k_base, KWindows, b32, kv_head32, window * BLOCK, stride_kl, seq_len, BLOCK, HEAD_DIM, TMA, True)
        v = _load_rows(v_base, VWindows, b32, kv_head32, window * BLOCK, stride_vl, seq_len, BLOCK, HEAD_DIM, TMA, True)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        acc, l_i, m_i = fold_tile(acc, l_i, m_i, qk, v, visible, qk_scale, True, DOT_PRECISION)

    # (3) Columns outside the ranges, gathered 32 at a time, each for the blocks it is flagged for.
    num_tile_columns = tl.load(Counts + row * 3 + 2)
    tile_columns = TileColumns + row * num_columns
    offs_c = tl.arange(0, 32)  # 32 gathered rows at a time keep the loop within 128 registers
    for first in range(0, num_tile_columns, 32):
        entry = tl.load(tile_columns + first + offs_c, mask=first + offs_c < num_tile_columns, other=0)
        column = entry >> 2  # a slot past the count reads entry 0: key 0 with no flag, never visible
        if G == 1:
            flagged = ((entry & 1) != 0)[None, :]
        else:
            flagged = tl.where((offs_m < BLOCK)[:, None], ((entry & 1) != 0)[None, :], ((entry & 2) != 0)[None, :])
        visible = flagged & (column[None, :] <= q_pos[:, None])
        rows = column.to(tl.int64)[:, None]
        k = tl.load(k_base + rows * stride_kl + offs_d[None, :])
        v = tl.load(v_base + rows * stride_vl + offs_d[None, :])
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        acc, l_i, m_i = fold_tile(acc, l_i, m_i, qk, v, visible, qk_scale, True, DOT_PRECISION)

    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    if TMA:  # rows past the end are clipped by the descriptor
        OutTiles.store([b32, h, tile * (G * BLOCK), 0], out.to(OutTiles.dtype).reshape(1, 1, G * BLOCK, HEAD_DIM))
    else:
        o_ptrs = Out + b * stride_ob + h.to(tl.int64) * stride_oh + q_pos.to(tl.int64)[:, None] * stride_ol + offs_d[None, :]
        tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=(q_pos < seq_len)[:, None])


def default_tile(dtype: torch.dtype, length: int) -> BlockColumnTile:
    """The launch shape for inputs of this dtype and length (see DEFAULT_TILE)."""
    if dtype == torch.float32:
        return FP32_TILE
    return DEFAULT_TILE if length <= LONG_FROM else LONG_TILE


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: BlockColumnIndex, *, scale: float,
    tile: BlockColumnTile | None = None,
) -> torch.Tensor:
    """`block_column_attention` (inputs validated there): the tile lists, then the attention.

    tile overrides the launch shape (benchmarks sweep it).
    """
    batch, q_heads, length, head_dim = q.shape
    tile = tile or default_tile(q.dtype, length)
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty_like(q)
    if tile.tma:
        q, k, v = (tma_ready(t) for t in (q, k, v))
        out = tma_ready(out)
        rows = [tile.blocks * BLOCK] * 2 + [tile.windows * BLOCK] * 2 + [BLOCK] * 2
        descriptors = [TensorDescriptor.from_tensor(t, [1, 1, n, head_dim]) for t, n in zip((q, out, k, v, k, v), rows)]
    else:
        descriptors = [None] * 6
    lists = tile_lists(index, tile.blocks, tile.windows)
    num_tiles = lists.counts.shape[1]
    launch = {} if tile.maxnreg is None else {"maxnreg": tile.maxnreg}
    _block_column_fwd_kernel[(num_tiles, batch * q_heads)](
        q, k, v, out, *descriptors, index.coverage, lists.units, lists.counts, lists.columns,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3],
        q_heads, q_heads // k.shape[1], length, index.range_end.shape[-1], num_tiles, lists.columns.shape[-1],
        scale * LOG2E,
        HEAD_DIM=head_dim,
        G=tile.blocks,
        P=tile.windows,
        BLOCK=BLOCK,
        TMA=tile.tma,
        DOT_PRECISION=dot_precision(q.dtype),
        num_warps=tile.num_warps,
        num_stages=tile.num_stages,
        **launch,
    )
    return out
