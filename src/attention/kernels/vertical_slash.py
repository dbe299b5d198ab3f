"""Vertical-slash sparse causal attention (MInference's pattern), exact at token level.

Query i attends key j (j <= i) iff j is one of the head's vertical columns or i - j is one of
its slash offsets; a pair lying on both is counted once. MInference's own kernel rounds slash
bands out to whole 64 x 64 tiles; this one computes exactly the union, so density and output
depend only on the indices.

The Triton kernel walks, per tile of queries, (1) the key blocks that some slash band crosses,
masking each (query, key) pair by a bitmap lookup of its offset and column, then (2) the
vertical columns that fell outside those blocks, gathered as key rows. Each pair therefore enters
the online softmax once. Everything it needs is O(L) per head: sorted columns, two bitmaps and a
prefix count of slash offsets; nothing L x L is built.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# Imported for its interpreter fix (loop bounds computed from scalars under NumPy >= 2.4), which
# this kernel's per-tile loop bounds need too when run with TRITON_INTERPRET=1.
import src.attention.kernels.block_sparse  # noqa: F401

LOG2E = 1.4426950408889634
BACKENDS = ("triton", "flex", "torch")
HEAD_DIMS = (64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


TileShape = tuple[int, int, int, int]  # query rows, key rows per tile, warps, pipeline stages
TILE_TABLE: dict[tuple[int, bool], TileShape] = {  # (head_dim, 16-bit inputs) -> tile, swept on an H100
    (64, True): (64, 64, 4, 2),
    (128, True): (64, 64, 4, 2),
    (64, False): (64, 32, 4, 2),
    (128, False): (64, 32, 4, 2),
}


@dataclass(frozen=True)
class PatternTables:
    """Per-head lookup tables of a vertical-slash pattern over a sequence of `length` tokens.

    columns: int32 [B, H, NV] valid vertical columns ascending, duplicates and out-of-range
        entries replaced by `length` (so they sort last and are masked).
    column_bits: int8 [B, H, L], 1 where a column is vertical.
    slash_bits: int8 [B, H, L], 1 where an offset is a slash.
    slash_prefix: int32 [B, H, L + 1], number of slash offsets below each offset.
    """

    columns: torch.Tensor
    column_bits: torch.Tensor
    slash_bits: torch.Tensor
    slash_prefix: torch.Tensor


def _bitmap(indices: torch.Tensor, length: int) -> torch.Tensor:
    """int8 [B, H, L] with 1 at every index in [0, L) of indices [B, H, N]; others ignored."""
    valid = (indices >= 0) & (indices < length)
    slots = torch.where(valid, indices.long(), length)
    bits = torch.zeros(*indices.shape[:-1], length + 1, dtype=torch.int8, device=indices.device)
    return bits.scatter_(-1, slots, 1)[..., :length]


def pattern_tables(vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int) -> PatternTables:
    """The lookup tables of one plan; entries outside [0, L) are padding and ignored."""
    column_bits = _bitmap(vertical_indices, length)
    slash_bits = _bitmap(slash_offsets, length)
    zero = torch.zeros(*slash_bits.shape[:-1], 1, dtype=torch.int32, device=slash_bits.device)
    slash_prefix = torch.cat([zero, slash_bits.cumsum(-1, dtype=torch.int32)], dim=-1)
    columns = vertical_indices.long()
    columns = torch.where((columns >= 0) & (columns < length), columns, length).sort(dim=-1).values
    if columns.shape[-1] > 1:
        repeated = columns[..., 1:] == columns[..., :-1]
        columns[..., 1:] = torch.where(repeated, length, columns[..., 1:])
        columns = columns.sort(dim=-1).values
    if columns.shape[-1] == 0:
        columns = torch.full((*columns.shape[:-1], 1), length, device=columns.device)
    return PatternTables(columns.to(torch.int32).contiguous(), column_bits, slash_bits, slash_prefix)


def vertical_slash_density(vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int) -> torch.Tensor:
    """Computed (query, key) pairs / causal pairs, float [B, H], counted exactly in O(L).

    Column j covers L - j pairs, offset s covers L - s, and column j meets the slashes s <= L-1-j
    once each, so the union is the two sums minus those crossings.
    """
    column_bits = _bitmap(vertical_indices, length).float()
    slash_bits = _bitmap(slash_offsets, length).float()
    remaining = torch.arange(length, 0, -1, device=column_bits.device, dtype=torch.float32)
    crossings = slash_bits.cumsum(-1).flip(-1)
    union = (column_bits * remaining).sum(-1) + (slash_bits * remaining).sum(-1) - (column_bits * crossings).sum(-1)
    return union / (length * (length + 1) / 2)


def vertical_slash_token_mask(
    vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int
) -> torch.Tensor:
    """Bool [L, L] for one (batch, head): query i may attend key j (j <= i, column or slash)."""
    positions = torch.arange(length, device=vertical_indices.device)
    offsets = positions[:, None] - positions[None, :]
    column = _bitmap(vertical_indices[None, None], length)[0, 0].bool()
    slash = _bitmap(slash_offsets[None, None], length)[0, 0].bool()
    causal = offsets >= 0
    return causal & (column[None, :] | slash[offsets.clamp(min=0)])


def vertical_slash_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Dense masked softmax in fp32 per (batch, head): the ground truth; O(L^2) memory per head.

    Rows with no visible key are zeros. Returns [B, Hq, L, D] in q's dtype.
    """
    batch, q_heads, length, head_dim = q.shape
    group = q_heads // k.shape[1]
    scale = head_dim**-0.5 if scale is None else scale
    out = torch.empty_like(q)
    for b in range(batch):
        for h in range(q_heads):
            allowed = vertical_slash_token_mask(vertical_indices[b, h], slash_offsets[b, h], length)
            scores = (q[b, h].float() @ k[b, h // group].float().T) * scale
            weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
            out[b, h] = (weights @ v[b, h // group].float()).to(q.dtype)
    return out


@triton.jit
def _online_softmax_step(acc, l_i, m_i, qk, visible, v, DOT_PRECISION: tl.constexpr):
    """Fold one tile of scaled logits (base 2) into the running max, sum and output."""
    qk = tl.where(visible, qk, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    # A row that has seen no visible key yet keeps m = -inf; shift it by 0 instead.
    m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.math.exp2(qk - m_shift[:, None])
    alpha = tl.math.exp2(m_i - m_shift)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
    return acc, l_i, m_new


@triton.jit
def _slash_count(slash_prefix, q_start, q_end, key_start, key_stop, seq_len):
    """Slash offsets joining some query in [q_start, q_end) to some key in [key_start, key_stop)."""
    lowest = tl.maximum(q_start - key_stop + 1, 0)
    highest = tl.minimum(q_end - 1 - key_start, seq_len - 1)
    return tl.load(slash_prefix + highest + 1) - tl.load(slash_prefix + lowest)


@triton.jit
def _vertical_slash_fwd_kernel(
    Q,
    K,
    V,
    Out,
    Columns,
    ColumnBits,
    SlashBits,
    SlashPrefix,
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
    num_columns,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SKIP_BLOCKS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One BLOCK_M query tile of one (batch, query head); grid (query tiles, B * Hq)."""
    batch_head = tl.program_id(1)
    b = (batch_head // num_q_heads).to(tl.int64)
    h = batch_head % num_q_heads
    q_start = tl.program_id(0) * BLOCK_M
    q_pos = q_start + tl.arange(0, BLOCK_M)
    q_end = tl.minimum(q_start + BLOCK_M, seq_len)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)

    q = tl.load(
        Q + b * stride_qb + h.to(tl.int64) * stride_qh + q_pos[:, None] * stride_ql + offs_d[None, :],
        mask=q_pos[:, None] < seq_len,
        other=0.0,
    )
    k_base = K + b * stride_kb + (h // group_size).to(tl.int64) * stride_kh
    v_base = V + b * stride_vb + (h // group_size).to(tl.int64) * stride_vh
    table_row = batch_head.to(tl.int64) * seq_len
    column_bits = ColumnBits + table_row
    slash_bits = SlashBits + table_row
    slash_prefix = SlashPrefix + batch_head.to(tl.int64) * (seq_len + 1)
    columns = Columns + batch_head.to(tl.int64) * num_columns

    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)

    # (1) Key blocks some slash band crosses: every column or slash pair inside them. Groups of
    # SKIP_BLOCKS blocks no band crosses are skipped with one prefix-count lookup.
    live_blocks = tl.cdiv(q_end, BLOCK_N)
    for group in range(0, tl.cdiv(live_blocks, SKIP_BLOCKS)):
        first = group * SKIP_BLOCKS
        stop = tl.minimum(first + SKIP_BLOCKS, live_blocks)
        if _slash_count(slash_prefix, q_start, q_end, first * BLOCK_N, stop * BLOCK_N, seq_len) > 0:
            for n in range(first, stop):
                key_start = n * BLOCK_N
                crossing = _slash_count(slash_prefix, q_start, q_end, key_start, key_start + BLOCK_N, seq_len)
                if crossing > 0:
                    k_pos = key_start + offs_n
                    in_range = k_pos < seq_len
                    offset = q_pos[:, None] - k_pos[None, :]
                    causal = (offset >= 0) & (q_pos[:, None] < seq_len) & in_range[None, :]
                    # When every offset the block spans is a slash, no bitmap lookup is needed.
                    spanned = tl.minimum(q_end - 1 - key_start, seq_len - 1) - tl.maximum(q_start - key_start - BLOCK_N + 1, 0) + 1
                    on_slash = tl.load(slash_bits + offset, mask=causal & (crossing < spanned), other=1) != 0
                    on_column = tl.load(column_bits + k_pos, mask=in_range, other=0) != 0
                    k = tl.load(k_base + k_pos[:, None] * stride_kl + offs_d[None, :], mask=in_range[:, None], other=0.0)
                    v = tl.load(v_base + k_pos[:, None] * stride_vl + offs_d[None, :], mask=in_range[:, None], other=0.0)
                    qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
                    acc, l_i, m_i = _online_softmax_step(
                        acc, l_i, m_i, qk, causal & (on_slash | on_column[None, :]), v, DOT_PRECISION
                    )

    # (2) Vertical columns outside those blocks, gathered as key rows (ascending, so a chunk
    # starting after the tile's last query holds no visible column).
    for chunk in range(0, num_columns, BLOCK_N):
        if tl.load(columns + chunk) < q_end:
            slot = chunk + offs_n
            k_pos = tl.load(columns + slot, mask=slot < num_columns, other=seq_len)
            in_range = k_pos < seq_len
            key_start = (k_pos // BLOCK_N) * BLOCK_N
            in_loop = in_range & (key_start < q_end)
            lowest = tl.maximum(q_start - key_start - BLOCK_N + 1, 0)
            highest = tl.minimum(q_end - 1 - key_start, seq_len - 1)
            crossing = tl.load(slash_prefix + highest + 1, mask=in_loop, other=0) - tl.load(
                slash_prefix + lowest, mask=in_loop, other=0
            )
            fresh = in_range & ~(in_loop & (crossing > 0))
            k = tl.load(k_base + k_pos[:, None] * stride_kl + offs_d[None, :], mask=fresh[:, None], other=0.0)
            v = tl.load(v_base + k_pos[:, None] * stride_vl + offs_d[None, :], mask=fresh[:, None], other=0.0)
            qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
            visible = fresh[None, :] & (k_pos[None, :] <= q_pos[:, None]) & (q_pos[:, None] < seq_len)
            acc, l_i, m_i = _online_softmax_step(acc, l_i, m_i, qk, visible, v, DOT_PRECISION)

    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_ptrs = Out + b * stride_ob + h.to(tl.int64) * stride_oh + q_pos[:, None] * stride_ol + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=q_pos[:, None] < seq_len)


def vertical_slash_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    *,
    scale: float | None = None,
    skip_blocks: int = 16,
    tile: TileShape | None = None,
) -> torch.Tensor:
    """Triton backend of `vertical_slash_attention` (inputs already validated there).

    skip_blocks: key blocks per group the kernel skips at once when no slash band crosses it.
    tile: overrides the launch shape of TILE_TABLE (for benchmarks).
    """
    batch, q_heads, length, head_dim = q.shape
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    tables = pattern_tables(vertical_indices, slash_offsets, length)
    block_m, block_n, num_warps, num_stages = tile or TILE_TABLE[(head_dim, q.dtype != torch.float32)]
    out = torch.empty_like(q)
    grid = (triton.cdiv(length, block_m), batch * q_heads)
    _vertical_slash_fwd_kernel[grid](
        q, k, v, out,
        tables.columns, tables.column_bits.contiguous(), tables.slash_bits.contiguous(), tables.slash_prefix,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3],
        q_heads, q_heads // k.shape[1], length, tables.columns.shape[-1],
        (head_dim**-0.5 if scale is None else scale) * LOG2E,
        HEAD_DIM=head_dim,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        SKIP_BLOCKS=skip_blocks,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out


def _check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    backend: str,
) -> None:
    """Raise a one-line ValueError for the first input that breaks the contract."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"q must be [B, Hq, L, D] and k, v [B, Hkv, L, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    batch, q_heads, length, head_dim = q.shape
    if k.shape[0] != batch or k.shape[2:] != (length, head_dim) or q_heads % k.shape[1]:
        raise ValueError(f"k/v shape {tuple(k.shape)} does not fit q {tuple(q.shape)}: need same B, L, D and Hq a multiple of Hkv")
    if length < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one dtype in {DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}")
    for name, index in (("vertical_indices", vertical_indices), ("slash_offsets", slash_offsets)):
        if index.dim() != 3 or index.shape[:2] != (batch, q_heads) or index.is_floating_point() or index.dtype == torch.bool:
            raise ValueError(f"{name} must be int [{batch}, {q_heads}, N]; got {index.dtype} {tuple(index.shape)}")
        if index.device != q.device:
            raise ValueError(f"{name} is on {index.device} but q is on {q.device}")
    if backend == "triton" and head_dim not in HEAD_DIMS:
        raise ValueError(f"head dim {head_dim} is not supported by the triton backend; allowed: {HEAD_DIMS}")
    if backend == "triton" and not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"the triton backend needs CUDA tensors (got {q.device}) or TRITON_INTERPRET=1 set before import; use backend 'torch' on CPU")


def vertical_slash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    *,
    scale: float | None = None,
    backend: str = "triton",
) -> torch.Tensor:
    """Causal attention restricted to vertical columns and slash bands, [B, Hq, L, D].

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D] (Hq a multiple of Hkv). vertical_indices int
    [B, Hq, NV]: key positions every later query attends; slash_offsets int [B, Hq, NS]: offsets
    d such that query i attends key i - d. Entries outside [0, L) are padding; duplicates are
    harmless. backend "triton" runs the kernel; "torch" the dense reference; "flex" has no
    FlexAttention path of its own (a vertical-slash mask is not block-aligned) and runs the torch
    reference too. scale defaults to 1/sqrt(D).
    """
    _check_inputs(q, k, v, vertical_indices, slash_offsets, backend)
    if backend == "triton":
        return vertical_slash_attention_triton(q, k, v, vertical_indices, slash_offsets, scale=scale)
    return vertical_slash_attention_reference(q, k, v, vertical_indices, slash_offsets, scale=scale)
