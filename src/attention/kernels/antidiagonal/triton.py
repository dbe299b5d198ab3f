"""XAttention's antidiagonal block estimate as two Triton kernels (the torch reference: naive.py).

With stride S, keys regrouped as concat_j K[j::S] and queries as concat_j Q[S-1-j::S] turn the
antidiagonal sums of every S x S tile of q k^T into one (L/S) x (L/S) product. Scaled by
scale / S, causally masked at the strided level and softmaxed over each strided query row, it
is summed into block x block tiles: the estimated attention mass of every (query block, key
block) pair.

The torch reference materialises one chunk of those strided logits and its softmax (fp32,
O(chunk * L / S^2) per head) in HBM. The Triton version never does:

1. `_strided_lse_kernel` runs the strided GEMM tile by tile (one stride step = one head-dim
   wide dot per tile), keeps an online row max / row sum, and writes only each strided row's
   log-sum-exp over every key block, fp32 [rows, key blocks]: block_size / S times less than
   the logits. Keys are read in place, through `key_perm` when permuted, and grouped-query
   heads read their shared key head, so no permuted or replicated copy of K is made.
2. `_block_mass_kernel` turns those into softmax block masses, sum over a query block's rows
   of exp(block lse - row lse), once the row totals are known.

As in x-attention's Triton estimate the GEMM runs once, but its logits never reach HBM
(x-attention writes them and reads them twice); only the log-sum-exp table does. Work is
O(L^2 D / (2 S)) per head (only causal tiles are computed), memory O(chunk * L / (S * block)).
"""
from __future__ import annotations

from dataclasses import replace

import torch
import triton
import triton.language as tl

from src.attention.kernels.triton_utils import LOG2E, TileConfig, dot_precision
from src.attention.ops import num_blocks

MAX_HEAD_DIM = 256
MAX_ROWS_PER_BLOCK = 128
# Largest log-sum-exp table (fp32 elements, 1 GiB) one Triton launch may fill; longer inputs
# are estimated in several query chunks.
SCRATCH_ELEMENTS = 1 << 28


# Not swept on hardware yet: a plain GEMM's 128 x 128 tile for 16-bit inputs up to head dim 128
# (3 stages of a Q and a K tile fit shared memory), a smaller one otherwise.
_TILE_16BIT = TileConfig(block_m=128, block_n=128, num_warps=8, num_stages=3)
_TILE_WIDE = TileConfig(block_m=64, block_n=64, num_warps=4, num_stages=2)


def default_tile_config(head_dim: int, dtype: torch.dtype, rows_per_block: int) -> TileConfig:
    """The tile for this head dim and dtype, its columns widened to a whole key block at least.

    Wide rows (fp32 or head dim above 128, over 512 bytes) run unpipelined to fit shared memory.
    """
    row_bytes = head_dim * dtype.itemsize
    if dtype != torch.float32 and head_dim <= 128:
        config = _TILE_16BIT
    else:
        config = replace(_TILE_WIDE, num_stages=_TILE_WIDE.num_stages if row_bytes <= 512 else 1)
    return replace(config, block_n=max(config.block_n, rows_per_block))


def check_tile_config(config: TileConfig, rows_per_block: int) -> None:
    """Raise a one-line ValueError unless `config` can launch `_strided_lse_kernel` for this block.

    Tile rows and columns must be powers of two of at least 16 (tl.arange and tl.dot need it),
    and a column tile must hold whole key blocks (its log-sum-exp is summed per key block).
    """
    for name, value in (("block_m", config.block_m), ("block_n", config.block_n)):
        if value < 16 or value & (value - 1):
            raise ValueError(f"tile {name} {value} must be a power of two >= 16")
    if config.block_n % rows_per_block:
        raise ValueError(f"tile block_n {config.block_n} must be a multiple of block_size / stride = {rows_per_block}")
    if config.num_warps < 1 or config.num_warps & (config.num_warps - 1):
        raise ValueError(f"tile num_warps {config.num_warps} must be a power of two")
    if config.num_stages < 1:
        raise ValueError(f"tile num_stages {config.num_stages} must be >= 1")


@triton.jit
def _strided_lse_kernel(
    Q, K, KeyPerm, BlockLse, RowLse,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl, stride_pb, stride_ph,
    num_q_heads, group_size, perm_group_size, seq_len, real_rows, first_row, chunk_rows, lse_blocks, qk_scale,
    HEAD_DIM: tl.constexpr, HEAD_DIM_POW2: tl.constexpr, STRIDE: tl.constexpr, ROWS_PER_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HAS_PERM: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Base-2 log-sum-exp of one tile of strided rows, per key block and in total; grid (tiles, B * Hq).

    Strided row r of the chunk meets strided column c (c <= r, c < real_rows) with logit
    qk_scale * sum_j q[rS + S-1-j] . k[perm(cS + j)]; tokens past seq_len are zeros. Writes
    BlockLse[bh, r, c // ROWS_PER_BLOCK] for every key block up to the tile's last row, and
    RowLse[bh, r]. Row tiles run last to first, so the longest programs start early.
    """
    tile = tl.num_programs(0) - 1 - tl.program_id(0)
    batch_head = tl.program_id(1)
    b = (batch_head // num_q_heads).to(tl.int64)
    h = (batch_head % num_q_heads).to(tl.int64)
    local_rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = first_row + local_rows
    dims = tl.arange(0, HEAD_DIM_POW2)
    dim_ok = dims < HEAD_DIM
    q_base = Q + b * stride_qb + h * stride_qh
    k_base = K + b * stride_kb + (h // group_size) * stride_kh
    perm_base = KeyPerm + b * stride_pb + (h // perm_group_size) * stride_ph
    lse_rows = BlockLse + (batch_head.to(tl.int64) * chunk_rows + local_rows.to(tl.int64)[:, None]) * lse_blocks
    row_live = local_rows < chunk_rows

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    col_end = tl.minimum(first_row + (tile + 1) * BLOCK_M, real_rows)
    for col_start in range(0, col_end, BLOCK_N):
        cols = col_start + tl.arange(0, BLOCK_N)
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for j in range(STRIDE):
            q_tok = (rows * STRIDE + (STRIDE - 1 - j)).to(tl.int64)
            q_mask = (q_tok < seq_len)[:, None] & dim_ok[None, :]
            q = tl.load(q_base + q_tok[:, None] * stride_ql + dims[None, :], mask=q_mask, other=0.0)
            k_slot = cols * STRIDE + j
            k_ok = k_slot < seq_len
            if HAS_PERM:
                k_tok = tl.load(perm_base + k_slot, mask=k_ok, other=0).to(tl.int64)
            else:
                k_tok = k_slot.to(tl.int64)
            k_mask = k_ok[:, None] & dim_ok[None, :]
            k = tl.load(k_base + k_tok[:, None] * stride_kl + dims[None, :], mask=k_mask, other=0.0)
            acc = tl.dot(q, tl.trans(k), acc, input_precision=DOT_PRECISION)
        visible = (cols[None, :] <= rows[:, None]) & (cols[None, :] < real_rows)
        logits = tl.where(visible, acc * qk_scale, float("-inf"))
        m_tile = tl.max(logits, 1)
        m_safe = tl.where(m_tile == float("-inf"), 0.0, m_tile)
        p = tl.exp2(logits - m_safe[:, None])
        block_sums = tl.sum(tl.reshape(p, [BLOCK_M, BLOCK_N // ROWS_PER_BLOCK, ROWS_PER_BLOCK]), 2)
        key_blocks = col_start // ROWS_PER_BLOCK + tl.arange(0, BLOCK_N // ROWS_PER_BLOCK)
        tl.store(
            lse_rows + key_blocks[None, :],
            tl.log2(block_sums) + m_safe[:, None],
            mask=row_live[:, None] & (key_blocks < lse_blocks)[None, :],
        )
        m_new = tl.maximum(m_i, m_tile)
        l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(p, 1) * tl.exp2(m_safe - m_new)
        m_i = m_new
    tl.store(RowLse + batch_head.to(tl.int64) * chunk_rows + local_rows, m_i + tl.log2(l_i), mask=row_live)


@triton.jit
def _block_mass_kernel(
    BlockLse, RowLse, Mass, real_rows, first_block, chunk_blocks, lse_blocks, total_blocks,
    ROWS_PER_BLOCK: tl.constexpr, BLOCK_KB: tl.constexpr,
):
    """Softmax mass of one query block over every key block; grid (chunk query blocks, B * Hq).

    Mass[bh, i, j] = sum over the block's strided rows r < real_rows of 2^(BlockLse[r, j] -
    RowLse[r]) for causal key blocks j <= first_block + i, 0 for the others.
    """
    local_block = tl.program_id(0)
    batch_head = tl.program_id(1).to(tl.int64)
    chunk_rows = chunk_blocks * ROWS_PER_BLOCK
    local_rows = local_block * ROWS_PER_BLOCK + tl.arange(0, ROWS_PER_BLOCK)
    row_ok = (first_block * ROWS_PER_BLOCK + local_rows) < real_rows
    row_lse = tl.load(RowLse + batch_head * chunk_rows + local_rows)
    lse_rows = BlockLse + (batch_head * chunk_rows + local_rows.to(tl.int64)[:, None]) * lse_blocks
    out = Mass + (batch_head * chunk_blocks + local_block) * total_blocks
    for kb_start in range(0, total_blocks, BLOCK_KB):
        key_blocks = kb_start + tl.arange(0, BLOCK_KB)
        causal = key_blocks <= first_block + local_block
        lse = tl.load(lse_rows + key_blocks[None, :], mask=row_ok[:, None] & causal[None, :], other=float("-inf"))
        mass = tl.sum(tl.exp2(lse - row_lse[:, None]), 0)
        tl.store(out + key_blocks, mass, mask=key_blocks < total_blocks)


def antidiagonal_block_mass_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    key_perm: torch.Tensor | None,
    *,
    block_size: int,
    stride: int,
    scale: float,
    row_blocks: slice,
    config: TileConfig | None = None,
) -> torch.Tensor:
    """Estimated block masses of the query blocks `row_blocks`, float32 [B, Hq, rows, nb] (see the
    package entry `antidiagonal_block_masses`; inputs checked there).

    config overrides the default tile of the strided GEMM (checked by `check_tile_config`), so
    tests can cover many tiles on small inputs and a benchmark can sweep shapes.
    """
    batch, q_heads, length, head_dim = q.shape
    rows_per_block = block_size // stride
    config = config or default_tile_config(head_dim, q.dtype, rows_per_block)
    check_tile_config(config, rows_per_block)
    q, k = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k))
    if key_perm is None:
        perm, perm_strides, perm_group = q, (0, 0), 1
    else:
        perm = key_perm if key_perm.stride(-1) == 1 else key_perm.contiguous()
        perm_strides, perm_group = (perm.stride(0), perm.stride(1)), q_heads // perm.shape[1]
    chunk_blocks = row_blocks.stop - row_blocks.start
    chunk_rows = chunk_blocks * rows_per_block
    lse_blocks = row_blocks.stop
    block_lse = torch.empty(batch * q_heads, chunk_rows, lse_blocks, dtype=torch.float32, device=q.device)
    row_lse = torch.empty(batch * q_heads, chunk_rows, dtype=torch.float32, device=q.device)
    real_rows = -(-length // stride)
    _strided_lse_kernel[(triton.cdiv(chunk_rows, config.block_m), batch * q_heads)](
        q, k, perm, block_lse, row_lse,
        *q.stride()[:3], *k.stride()[:3], *perm_strides,
        q_heads, q_heads // k.shape[1], perm_group, length, real_rows,
        row_blocks.start * rows_per_block, chunk_rows, lse_blocks, scale / stride * LOG2E,
        HEAD_DIM=head_dim,
        HEAD_DIM_POW2=max(16, triton.next_power_of_2(head_dim)),
        STRIDE=stride,
        ROWS_PER_BLOCK=rows_per_block,
        BLOCK_M=config.block_m,
        BLOCK_N=config.block_n,
        HAS_PERM=key_perm is not None,
        DOT_PRECISION=dot_precision(q.dtype),
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    total_blocks = num_blocks(length, block_size)
    mass = torch.empty(batch, q_heads, chunk_blocks, total_blocks, dtype=torch.float32, device=q.device)
    _block_mass_kernel[(chunk_blocks, batch * q_heads)](
        block_lse, row_lse, mass, real_rows, row_blocks.start, chunk_blocks, lse_blocks, total_blocks,
        ROWS_PER_BLOCK=rows_per_block, BLOCK_KB=max(16, 2048 // rows_per_block), num_warps=4,
    )
    return mass


def triton_chunk_blocks(batch: int, q_heads: int, length: int, block_size: int, stride: int) -> int:
    """Query blocks per Triton launch keeping its log-sum-exp table within SCRATCH_ELEMENTS."""
    per_query_block = batch * q_heads * (block_size // stride) * num_blocks(length, block_size)
    return max(1, SCRATCH_ELEMENTS // per_query_block)
