"""Permuted block-sparse causal attention forward, as a FlashAttention-2 style Triton kernel.

One program computes one tile of queries (a query block or a part of one) and walks only the
compact list of key blocks selected for its query block, so skipped blocks cost nothing.
Grouped-query heads read their shared K/V head directly. Blocks whose whole segment lies before
the query block run without any per-element masking; only the few blocks of the query's own
segment (or later) are masked by original position. The per-query-block lists come from a
one-launch Triton version of `layout.causal_kv_lists`.

Two ways to read K/V (`KernelOptions.kv_loads`). "tma", the default: one launch copies K/V into
permuted order (one copy per permutation head, as FlexAttention needs too; none without a
permutation), then every key tile is one contiguous block that Hopper's copy engine loads
through a tensor descriptor; three launches in all. "gather": K/V stay in original order and the
kernel gathers the rows of a permuted block through `key_perm` (no copy, two launches). On the
H200 the TMA path with two programs per SM is 11-17% faster at 32K-128K (NOTES.md, issue #16).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from src.attention.kernels.block_sparse.layout import CausalKVLists
from src.attention.kernels.triton_utils import LOG2E, TileConfig, dot_precision

# (head_dim, permuted keys) -> (tile, register cap) of the TMA path for 16-bit inputs. Head dim 128:
# the fastest of the H200 sweep (experiments/sweep_block_sparse.py, results/bench/
# sweep_block_sparse_{llama,qwen}_h200.json): 128x64 tiles capped at 128 registers fit two programs
# per SM (99 KB shared memory each), so one's softmax runs under the other's matrix products.
# Head dim 64: not timed since the TMA path; 128-row tiles that compile without spills.
_TILE_TABLE: dict[tuple[int, bool], tuple[TileConfig, int | None]] = {
    (128, False): (TileConfig(block_m=128, block_n=64, num_warps=8, num_stages=2), 128),
    (128, True): (TileConfig(block_m=128, block_n=64, num_warps=8, num_stages=2), 128),
    (64, False): (TileConfig(block_m=128, block_n=64, num_warps=4, num_stages=3), None),
    (64, True): (TileConfig(block_m=128, block_n=128, num_warps=8, num_stages=3), None),
}
_FP32_TILE = TileConfig(block_m=64, block_n=32, num_warps=4, num_stages=2)


@dataclass(frozen=True)
class KernelOptions:
    """How the attention kernel reads K/V, beyond its tile shape (swept by
    experiments/sweep_block_sparse.py).

    kv_loads: "tma" copies K/V into permuted order once per call (one launch, about the bytes of
        K and V per permutation head) and reads every key tile whole through tensor descriptors
        (Hopper's copy engine); "gather" reads the rows of permuted tiles through key_perm in the
        kernel and makes no copy.
    maxnreg: register cap per thread (None: the compiler's choice), to fit two programs per SM.
    """

    kv_loads: str = "tma"
    maxnreg: int | None = None


def default_launch(head_dim: int, dtype: torch.dtype, block_size: int, permuted: bool) -> tuple[TileConfig, KernelOptions]:
    """Tile and options from the table for this head dim, dtype and key order, clipped to the block.

    Tiles of fewer than 128 query rows get at most 4 warps (one warpgroup per 64 rows); a clipped
    tile drops the register cap, which was chosen for the table's own tile.
    """
    config, maxnreg = (_FP32_TILE, None) if dtype == torch.float32 else _TILE_TABLE[(head_dim, permuted)]
    block_m = min(config.block_m, block_size)
    num_warps = config.num_warps if block_m >= 128 else min(config.num_warps, 4)
    clipped = replace(config, block_m=block_m, block_n=min(config.block_n, block_size), num_warps=num_warps)
    return clipped, KernelOptions(maxnreg=maxnreg if clipped == config else None)


@triton.jit
def _tile_key_positions(
    kv_list, key_pos_base, tile, tile_hi, seq_len,
    BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, HAS_PERM: tl.constexpr,
):
    """Original positions (int32 [BLOCK_N]) of the keys in tile `tile` of a block list.

    Tile t is the (t % tiles-per-block)-th BLOCK_N slice of key block kv_list[t // tiles-per-block].
    Slots past the sequence end, and every slot once t reaches tile_hi, read as seq_len.
    """
    live = tile < tile_hi
    kv_block = tl.load(kv_list + tile // (BLOCK_SIZE // BLOCK_N), mask=live, other=0)
    slots = kv_block * BLOCK_SIZE + (tile % (BLOCK_SIZE // BLOCK_N)) * BLOCK_N + tl.arange(0, BLOCK_N)
    valid = live & (slots < seq_len)
    if HAS_PERM:
        key_pos = tl.load(key_pos_base + slots, mask=valid, other=seq_len).to(tl.int32)
    else:
        key_pos = tl.where(valid, slots, seq_len)
    return key_pos


@triton.jit
def _fold_tile(acc, l_i, m_i, qk, v, q_pos, key_pos, qk_scale, MASKED: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Fold one key tile's raw scores qk [BLOCK_M, BLOCK_N] and values v into the online softmax.

    MASKED hides keys whose original position key_pos (seq_len for slots past the end) is past
    the query; unmasked tiles ignore key_pos. The scale is folded into the exp2 argument.
    """
    if MASKED:
        qk = tl.where(key_pos[None, :] <= q_pos[:, None], qk * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        # A row that has seen no visible key yet keeps m = -inf; shift it by 0 instead.
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(qk - m_shift[:, None])
    else:
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        m_shift = m_new
        p = tl.math.exp2(qk * qk_scale - m_shift[:, None])
    alpha = tl.math.exp2(m_i - m_shift)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
    return acc, l_i, m_new


@triton.jit
def _attend_key_tiles(
    acc, l_i, m_i, q, q_pos, k_base, v_base, key_pos_base, kv_list, tile_lo, tile_hi,
    stride_kl, stride_vl, seq_len, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_PERM: tl.constexpr, MASKED: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Online-softmax update of one query tile over key tiles [tile_lo, tile_hi) of its list.

    The key positions of the next tile are fetched one iteration ahead, so the K/V gathers of
    a tile never wait on the list and permutation loads and the compiler can pipeline them.
    MASKED adds causal masking by original position (and bounds for the short tail block).
    """
    offs_d = tl.arange(0, HEAD_DIM)
    key_pos = _tile_key_positions(
        kv_list, key_pos_base, tile_lo, tile_hi, seq_len, BLOCK_SIZE, BLOCK_N, HAS_PERM
    )
    for tile in range(tile_lo, tile_hi):
        k_ptrs = k_base + key_pos.to(tl.int64)[:, None] * stride_kl + offs_d[None, :]
        v_ptrs = v_base + key_pos.to(tl.int64)[:, None] * stride_vl + offs_d[None, :]
        if MASKED:
            in_range = key_pos[:, None] < seq_len
            k = tl.load(k_ptrs, mask=in_range, other=0.0)
            v = tl.load(v_ptrs, mask=in_range, other=0.0)
        else:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        next_key_pos = _tile_key_positions(
            kv_list, key_pos_base, tile + 1, tile_hi, seq_len, BLOCK_SIZE, BLOCK_N, HAS_PERM
        )
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        acc, l_i, m_i = _fold_tile(acc, l_i, m_i, qk, v, q_pos, key_pos, qk_scale, MASKED, DOT_PRECISION)
        key_pos = next_key_pos
    return acc, l_i, m_i


@triton.jit
def _query_tile(
    KvIndices, NumFull, NumLive, num_q_heads, num_blocks,
    BLOCK_SIZE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """This program's query tile on grid (query tiles, B * Hq): batch, head, first query, its
    block's key list, and the list's tile counts (fully visible, and up to the last live one).

    Query blocks run last to first: under causal attention the late blocks carry the most key
    blocks, so the long programs start early and the short ones fill the tail of the launch.
    """
    batch_head = tl.program_id(1)
    q_block = num_blocks - 1 - tl.program_id(0) // (BLOCK_SIZE // BLOCK_M)
    q_start = q_block * BLOCK_SIZE + (tl.program_id(0) % (BLOCK_SIZE // BLOCK_M)) * BLOCK_M
    list_row = batch_head.to(tl.int64) * num_blocks + q_block
    tiles_per_block = BLOCK_SIZE // BLOCK_N
    full_tiles = tl.load(NumFull + list_row) * tiles_per_block
    live_tiles = tl.load(NumLive + list_row) * tiles_per_block
    kv_list = KvIndices + list_row * num_blocks
    return batch_head // num_q_heads, batch_head % num_q_heads, q_start, kv_list, full_tiles, live_tiles


@triton.jit
def _block_sparse_fwd_kernel(
    Q, K, V, Out, KeyPos, KvIndices, NumFull, NumLive,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    stride_vb, stride_vh, stride_vl, stride_ob, stride_oh, stride_ol, stride_pb, stride_ph,
    num_q_heads, group_size, perm_group_size, seq_len, num_blocks, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_PERM: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """One BLOCK_M query tile of one (batch, query head), K/V gathered through KeyPos; grid
    (query tiles, B * Hq), see `_query_tile`."""
    b, h, q_start, kv_list, full_tiles, live_tiles = _query_tile(
        KvIndices, NumFull, NumLive, num_q_heads, num_blocks, BLOCK_SIZE, BLOCK_M, BLOCK_N
    )
    b = b.to(tl.int64)

    offs_d = tl.arange(0, HEAD_DIM)
    q_pos = q_start + tl.arange(0, BLOCK_M)
    q_rows = q_pos.to(tl.int64)[:, None]
    q_ptrs = Q + b * stride_qb + h * stride_qh + q_rows * stride_ql + offs_d[None, :]
    q = tl.load(q_ptrs, mask=q_rows < seq_len, other=0.0)
    k_base = K + b * stride_kb + (h // group_size) * stride_kh
    v_base = V + b * stride_vb + (h // group_size) * stride_vh
    key_pos_base = KeyPos + b * stride_pb + (h // perm_group_size) * stride_ph

    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _attend_key_tiles(
        acc, l_i, m_i, q, q_pos, k_base, v_base, key_pos_base, kv_list, 0, full_tiles,
        stride_kl, stride_vl, seq_len, qk_scale,
        HEAD_DIM, BLOCK_SIZE, BLOCK_N, HAS_PERM, False, DOT_PRECISION,
    )
    acc, l_i, m_i = _attend_key_tiles(
        acc, l_i, m_i, q, q_pos, k_base, v_base, key_pos_base, kv_list, full_tiles, live_tiles,
        stride_kl, stride_vl, seq_len, qk_scale,
        HEAD_DIM, BLOCK_SIZE, BLOCK_N, HAS_PERM, True, DOT_PRECISION,
    )
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_ptrs = Out + b * stride_ob + h * stride_oh + q_rows * stride_ol + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=q_rows < seq_len)


@triton.jit
def _tile_start(kv_list, tile, tile_hi, BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr):
    """First key slot of tile `tile` of a block list (slot 0 once `tile` reaches tile_hi)."""
    kv_block = tl.load(kv_list + tile // (BLOCK_SIZE // BLOCK_N), mask=tile < tile_hi, other=0)
    return kv_block * BLOCK_SIZE + (tile % (BLOCK_SIZE // BLOCK_N)) * BLOCK_N


@triton.jit
def _attend_tiles_tma(
    acc, l_i, m_i, q, q_pos, k_desc, v_desc, b, kv_head, key_pos_base, kv_list, tile_lo, tile_hi,
    seq_len, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, HAS_PERM: tl.constexpr,
    MASKED: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Online-softmax update of one query tile over key tiles [tile_lo, tile_hi) of its list, K/V
    tiles read whole through tensor descriptors (keys already in permuted order in memory).

    The next tile's list entry is read one iteration ahead: a descriptor load whose coordinate
    comes from a load in the same iteration is pipelined one stage shallower (two K/V buffers at
    num_stages 3 instead of three, seen in the compiled code).
    """
    start = _tile_start(kv_list, tile_lo, tile_hi, BLOCK_SIZE, BLOCK_N)
    for tile in range(tile_lo, tile_hi):
        next_start = _tile_start(kv_list, tile + 1, tile_hi, BLOCK_SIZE, BLOCK_N)
        k = k_desc.load([b, kv_head, start, 0]).reshape(BLOCK_N, HEAD_DIM)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        v = v_desc.load([b, kv_head, start, 0]).reshape(BLOCK_N, HEAD_DIM)
        key_pos = start + tl.arange(0, BLOCK_N)
        if MASKED:  # original positions of the tile's slots; slots past the end read as seq_len
            if HAS_PERM:
                key_pos = tl.load(key_pos_base + key_pos, mask=key_pos < seq_len, other=seq_len).to(tl.int32)
            else:
                key_pos = tl.where(key_pos < seq_len, key_pos, seq_len)
        acc, l_i, m_i = _fold_tile(acc, l_i, m_i, qk, v, q_pos, key_pos, qk_scale, MASKED, DOT_PRECISION)
        start = next_start
    return acc, l_i, m_i


@triton.jit
def _block_sparse_fwd_tma_kernel(
    q_desc, k_desc, v_desc, o_desc, KeyPos, KvIndices, NumFull, NumLive, stride_pb, stride_ph,
    num_q_heads, kv_group_size, perm_group_size, seq_len, num_blocks, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_PERM: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """One BLOCK_M query tile of one (batch, query head) with K/V in permuted order in memory;
    grid (query tiles, B * Hq), see `_query_tile`."""
    b, h, q_start, kv_list, full_tiles, live_tiles = _query_tile(
        KvIndices, NumFull, NumLive, num_q_heads, num_blocks, BLOCK_SIZE, BLOCK_M, BLOCK_N
    )

    q = q_desc.load([b, h, q_start, 0]).reshape(BLOCK_M, HEAD_DIM)
    q_pos = q_start + tl.arange(0, BLOCK_M)
    kv_head = h // kv_group_size
    key_pos_base = KeyPos + b.to(tl.int64) * stride_pb + (h // perm_group_size) * stride_ph
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _attend_tiles_tma(
        acc, l_i, m_i, q, q_pos, k_desc, v_desc, b, kv_head, key_pos_base, kv_list, 0, full_tiles,
        seq_len, qk_scale, HEAD_DIM, BLOCK_SIZE, BLOCK_N, HAS_PERM, False, DOT_PRECISION,
    )
    acc, l_i, m_i = _attend_tiles_tma(
        acc, l_i, m_i, q, q_pos, k_desc, v_desc, b, kv_head, key_pos_base, kv_list, full_tiles, live_tiles,
        seq_len, qk_scale, HEAD_DIM, BLOCK_SIZE, BLOCK_N, HAS_PERM, True, DOT_PRECISION,
    )
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_desc.store([b, h, q_start, 0], out.to(o_desc.dtype).reshape(1, 1, BLOCK_M, HEAD_DIM))


@triton.jit
def _permute_kv_kernel(
    K, V, KeyPos, KOut, VOut,
    stride_kb, stride_kh, stride_kl, stride_vb, stride_vh, stride_vl, stride_pb, stride_ph,
    perm_heads, perm_per_kv_head, seq_len,
    HEAD_DIM: tl.constexpr, BLOCK_ROWS: tl.constexpr,
):
    """K and V rows of one (batch, permutation head) in permuted order, BLOCK_ROWS slots per
    program: out[b, p, slot] = in[b, p // perm_per_kv_head, KeyPos[b, p, slot]]; out contiguous.

    Grid (B * P, row blocks), heads fastest: the permutation heads sharing a KV head copy the same
    segments at the same time, so each K/V row comes from DRAM about once, not once per head.
    """
    batch_head = tl.program_id(0)
    b = (batch_head // perm_heads).to(tl.int64)
    p = batch_head % perm_heads
    slots = tl.program_id(1) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    live = slots < seq_len
    pos = tl.load(KeyPos + b * stride_pb + p * stride_ph + slots, mask=live, other=0).to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_head = p // perm_per_kv_head
    rows = live[:, None]
    k = tl.load(K + b * stride_kb + kv_head * stride_kh + pos[:, None] * stride_kl + offs_d[None, :], mask=rows)
    v = tl.load(V + b * stride_vb + kv_head * stride_vh + pos[:, None] * stride_vl + offs_d[None, :], mask=rows)
    out_rows = batch_head.to(tl.int64) * seq_len + slots
    out_offsets = out_rows[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(KOut + out_offsets, k, mask=rows)
    tl.store(VOut + out_offsets, v, mask=rows)


@triton.jit
def _causal_kv_lists_kernel(
    Mask, KvIndices, NumFull, NumLive, num_blocks, seq_len, segment_size,
    BLOCK_SIZE: tl.constexpr, NUM_BLOCKS_POW2: tl.constexpr,
):
    """One (batch, head, query block) row of `layout.causal_kv_lists`; grid (nq, B * H)."""
    q_block = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64) * num_blocks + q_block
    kv_block = tl.arange(0, NUM_BLOCKS_POW2)
    exists = kv_block < num_blocks
    selected = tl.load(Mask + row * num_blocks + kv_block, mask=exists, other=0) != 0
    block_start = kv_block * BLOCK_SIZE
    in_segments = block_start < (seq_len // segment_size) * segment_size
    key_start = tl.where(in_segments, block_start - block_start % segment_size, block_start)
    key_end = tl.where(in_segments, key_start + segment_size, block_start + BLOCK_SIZE)
    key_end = tl.minimum(key_end, seq_len)
    q_start = q_block * BLOCK_SIZE
    q_end = tl.minimum(q_start + BLOCK_SIZE, seq_len)
    tl.store(NumFull + row, tl.sum((selected & (key_end <= q_start)).to(tl.int32), 0))
    tl.store(NumLive + row, tl.sum((selected & (key_start < q_end)).to(tl.int32), 0))
    count = selected.to(tl.int32)
    selected_before = tl.cumsum(count, 0) - count
    slot = tl.where(selected, selected_before, tl.sum(count, 0) + kv_block - selected_before)
    tl.store(KvIndices + row * num_blocks + slot, kv_block, mask=exists)


def causal_kv_lists_triton(
    block_mask: torch.Tensor, *, block_size: int, segment_size: int | None, length: int
) -> CausalKVLists:
    """`layout.causal_kv_lists` in one launch (the torch version takes a dozen small kernels)."""
    batch, heads, nq, nk = block_mask.shape
    kv_indices = torch.empty(batch, heads, nq, nk, dtype=torch.int32, device=block_mask.device)
    num_full = torch.empty(batch, heads, nq, dtype=torch.int32, device=block_mask.device)
    num_live = torch.empty_like(num_full)
    pow2 = triton.next_power_of_2(nk)
    _causal_kv_lists_kernel[(nq, batch * heads)](
        block_mask.contiguous().view(torch.uint8), kv_indices, num_full, num_live, nk, length,
        segment_size or block_size, BLOCK_SIZE=block_size, NUM_BLOCKS_POW2=pow2,
        num_warps=4 if pow2 <= 2048 else 8,
    )
    return CausalKVLists(kv_indices=kv_indices, num_full=num_full, num_live=num_live)


def _tma_ready(t: torch.Tensor) -> torch.Tensor:
    """t itself when a tensor descriptor can address it (16-byte aligned base and row strides),
    else a contiguous copy."""
    aligned = t.data_ptr() % 16 == 0 and all((s * t.element_size()) % 16 == 0 for s in t.stride()[:-1])
    return t if aligned and t.stride(-1) == 1 else t.clone(memory_format=torch.contiguous_format)


def permute_kv(k: torch.Tensor, v: torch.Tensor, key_perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K and V in permuted order, one contiguous copy per permutation head ([B, P, L, D] each):
    out[b, p, slot] = in[b, p // (P / Hkv), key_perm[b, p, slot]]. One launch."""
    batch, kv_heads, length, head_dim = k.shape
    perm_heads = key_perm.shape[1]
    k_out = torch.empty(batch, perm_heads, length, head_dim, dtype=k.dtype, device=k.device)
    v_out = torch.empty_like(k_out)
    block_rows = 64
    _permute_kv_kernel[(batch * perm_heads, triton.cdiv(length, block_rows))](
        k, v, key_perm, k_out, v_out, *k.stride()[:3], *v.stride()[:3], *key_perm.stride()[:2],
        perm_heads, perm_heads // kv_heads, length, HEAD_DIM=head_dim, BLOCK_ROWS=block_rows, num_warps=4,
    )
    return k_out, v_out


def block_sparse_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    *,
    block_size: int,
    key_perm: torch.Tensor | None = None,
    segment_size: int | None = None,
    scale: float | None = None,
    config: TileConfig | None = None,
) -> torch.Tensor:
    """Triton backend of `block_sparse_attention` (inputs already validated there).

    config overrides the tile table (block_m and block_n must divide block_size), so a
    benchmark can sweep tile shapes, warps and pipeline depth.
    """
    return run_block_sparse_kernel(
        q, k, v, block_mask, block_size=block_size, key_perm=key_perm, segment_size=segment_size,
        scale=scale, config=config, options=None,
    )


def run_block_sparse_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    *,
    block_size: int,
    key_perm: torch.Tensor | None,
    segment_size: int | None,
    scale: float | None,
    config: TileConfig | None,
    options: KernelOptions | None,
) -> torch.Tensor:
    """`block_sparse_attention_triton` with the kernel options explicit (for sweeps).

    config None takes tile and options from the table (options, when given, replace the table's);
    a config of one's own runs with `options` or, if None, the default KernelOptions().
    """
    batch, q_heads, length, head_dim = q.shape
    kv_heads = k.shape[1]
    if config is None:
        config, table_options = default_launch(head_dim, q.dtype, block_size, key_perm is not None)
        options = options or table_options
    options = options or KernelOptions()
    if block_size % config.block_m or block_size % config.block_n:
        raise ValueError(f"tile {config.block_m}x{config.block_n} must divide block_size {block_size}")
    if options.kv_loads not in ("tma", "gather"):
        raise ValueError(f"kv_loads {options.kv_loads!r} is not one of 'tma', 'gather'")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    lists = causal_kv_lists_triton(
        block_mask, block_size=block_size, segment_size=segment_size, length=length
    )
    if key_perm is None:
        key_pos, perm_strides, perm_group = lists.num_live, (0, 0), 1
    else:
        key_pos = key_perm if key_perm.stride(-1) == 1 else key_perm.contiguous()
        perm_strides, perm_group = (key_pos.stride(0), key_pos.stride(1)), q_heads // key_pos.shape[1]
    num_blocks = block_mask.shape[-1]
    grid = (num_blocks * (block_size // config.block_m), batch * q_heads)
    qk_scale = (head_dim**-0.5 if scale is None else scale) * LOG2E
    launch = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    if options.maxnreg is not None:
        launch["maxnreg"] = options.maxnreg
    if options.kv_loads == "gather":
        out = torch.empty_like(q)
        _block_sparse_fwd_kernel[grid](
            q, k, v, out, key_pos, lists.kv_indices, lists.num_full, lists.num_live,
            *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3], *perm_strides,
            q_heads, q_heads // kv_heads, perm_group, length, num_blocks, qk_scale,
            HEAD_DIM=head_dim, BLOCK_SIZE=block_size, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
            HAS_PERM=key_perm is not None, DOT_PRECISION=dot_precision(q.dtype), **launch,
        )
        return out
    if key_perm is not None:
        k, v = permute_kv(k, v, key_pos)
    q, k, v = (_tma_ready(t) for t in (q, k, v))
    out = torch.empty_like(q)
    q_block, kv_block = [1, 1, config.block_m, head_dim], [1, 1, config.block_n, head_dim]
    _block_sparse_fwd_tma_kernel[grid](
        TensorDescriptor.from_tensor(q, q_block), TensorDescriptor.from_tensor(k, kv_block),
        TensorDescriptor.from_tensor(v, kv_block), TensorDescriptor.from_tensor(out, q_block),
        key_pos, lists.kv_indices, lists.num_full, lists.num_live, *perm_strides,
        q_heads, q_heads // k.shape[1], perm_group, length, num_blocks, qk_scale,
        HEAD_DIM=head_dim, BLOCK_SIZE=block_size, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
        HAS_PERM=key_perm is not None, DOT_PRECISION=dot_precision(q.dtype),
        **launch,
    )
    return out
