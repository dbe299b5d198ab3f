"""MInference's vertical-slash attention as its official kernel computes it: key ranges plus columns.

MInference turns a head's vertical columns and slash offsets into, per 64-query block, whole
64-key ranges and leftover columns (`convert_vertical_slash_indexes` in its csrc/), then runs a
mixed block / column attention over them (`_triton_mixed_sparse_attn_fwd_kernel`). Re-derived
from that code, for a query block [start, end = start + 64):

- Every slash offset s < end gives the 64 keys [end - s - 64, end - s) its diagonal crosses in
  the block, clamped to [0, 64) when that would start before key 0.
- Offsets are taken from the largest down, so those key windows come in ascending order. The
  first opens a range; each next window either lies inside the range (nothing), reaches at most
  64 keys past its end (the range grows by exactly 64 keys, so a range is always a whole number of
  64-key blocks and may overshoot the window by up to 63 keys), or starts after it (the range is
  closed and a new one opens at the window).
- A vertical column is computed as a column when no range holds it and it lies before the end of
  the block's last range (the official loop stops at its last slash; columns past that range are
  dropped). Every causal pair of every range is computed, whether or not it lies on a slash.

So a band of nearby slashes costs whole 64-key ranges, and at 6096 slashes over 32K tokens
nearly every pair is computed. Two deliberate differences, both unreachable with MInference's own
selection (it always keeps the offsets 0..99, so the block's own diagonal range [start, end) is
always there): columns are masked causally (the official column loop has no causal mask, so a
column inside its own query block outside every range would attend future keys), and a block no
slash reaches (the official loop then reads past the slash list) keeps its columns before the
block's end. Indices are sets: entries outside [0, L) are padding, duplicates count once.

Entry points: `block_column_index` (the official conversion; backends "auto", "triton": one
launch, no host sync, "torch"), `block_column_attention` (the attention over an index; backends
"triton", "torch": the dense-mask reference, small shapes) and `BlockColumnIndex.density`.
layout.py holds the index type; there is no FlexAttention backend (ranges are not aligned to
blocks), and asking for one is an error.
"""
from __future__ import annotations

import torch

from src.attention.kernels.backends import resolve_backend
from src.attention.kernels.block_column import naive, triton
from src.attention.kernels.block_column.layout import BLOCK, BlockColumnIndex, descending_slashes, num_query_blocks
from src.attention.kernels.triton_utils import DTYPES, unsupported_attention, unsupported_device
from src.attention.ops import sorted_unique_positions

INDEX_IMPLEMENTATIONS = {"triton": triton.build_index, "torch": naive.build_index}
ATTENTION_IMPLEMENTATIONS = {"triton": triton.attention, "torch": naive.attention}
MAX_LENGTH = 2**24  # the index's int32 pair counts and packed column entries stay exact below it


def check_indices(vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int) -> None:
    """Raise a one-line ValueError for the first index input that breaks the contract."""
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length < MAX_LENGTH:
        raise ValueError(f"length must be an int in [1, {MAX_LENGTH}), got {length!r}")
    for name, index in (("vertical_indices", vertical_indices), ("slash_offsets", slash_offsets)):
        if index.dim() != 3 or index.is_floating_point() or index.dtype == torch.bool:
            raise ValueError(f"{name} must be int [B, H, N]; got {index.dtype} {tuple(index.shape)}")
    if vertical_indices.shape[:2] != slash_offsets.shape[:2] or vertical_indices.device != slash_offsets.device:
        raise ValueError(
            f"vertical_indices {tuple(vertical_indices.shape)} on {vertical_indices.device} and slash_offsets "
            f"{tuple(slash_offsets.shape)} on {slash_offsets.device} must share B, H and the device"
        )


def block_column_index(
    vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int, *, backend: str = "auto"
) -> BlockColumnIndex:
    """The official conversion of a vertical-slash pattern into per-block key ranges and columns.

    vertical_indices: int [B, H, NV] key positions; slash_offsets: int [B, H, NS] offsets
    query - key (entries outside [0, L) are padding). See the module docstring for the rule.
    """
    check_indices(vertical_indices, slash_offsets, length)
    backend = resolve_backend("block-column index", backend, slash_offsets, unsupported_device(slash_offsets))
    columns, slashes = sorted_unique_positions(vertical_indices, length), descending_slashes(slash_offsets, length)
    return INDEX_IMPLEMENTATIONS[backend](columns, slashes, length)


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: BlockColumnIndex) -> None:
    """Raise a one-line ValueError for the first attention input that breaks the contract."""
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"q must be [B, Hq, L, D] and k, v [B, Hkv, L, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    batch, q_heads, length, head_dim = q.shape
    if k.shape[0] != batch or k.shape[2:] != (length, head_dim) or q_heads % k.shape[1]:
        raise ValueError(f"k/v shape {tuple(k.shape)} does not fit q {tuple(q.shape)}: need same B, L, D and Hq a multiple of Hkv")
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one dtype in {DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}")
    if index.length != length or index.coverage.shape[:2] != (batch, q_heads):
        raise ValueError(
            f"the index is for [B, H] = {list(index.coverage.shape[:2])} and L = {index.length}; "
            f"q has [B, Hq] = {[batch, q_heads]} and L = {length}"
        )
    devices = {t.device for t in (q, k, v, index.coverage)}
    if len(devices) > 1:
        raise ValueError(f"q, k, v and the index must be on one device; got {sorted(map(str, devices))}")



def block_column_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    index: BlockColumnIndex,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention over each query block's key ranges and columns, [B, Hq, L, D] in q's dtype.

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D] (Hq a multiple of Hkv); index from `block_column_index`
    for [B, Hq]. Query i attends key j <= i iff j lies in a range or is a column of i's block; rows
    with no such key are zeros. scale defaults to 1/sqrt(D).
    """
    check_attention_inputs(q, k, v, index)
    backend = resolve_backend("block-column attention", backend, q, unsupported_attention(q))
    return ATTENTION_IMPLEMENTATIONS[backend](q, k, v, index, scale=q.shape[-1] ** -0.5 if scale is None else scale)


__all__ = [
    "BLOCK",
    "BlockColumnIndex",
    "block_column_attention",
    "block_column_index",
    "check_attention_inputs",
    "check_indices",
    "num_query_blocks",
]
