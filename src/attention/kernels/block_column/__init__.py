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

Public entry points: `block_column_index` (the official conversion, one Triton launch, no host
sync), `block_column_attention` (the attention over an index) and `BlockColumnIndex.density`.
Backends: "triton" (triton.py) and "torch" (naive.py, plain torch, the reference); "flex" has no
path of its own and runs the torch one.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch

BLOCK = 64  # query block and key-range granularity of MInference's kernel (its 64x64 build)
BACKENDS = ("triton", "flex", "torch")
HEAD_DIMS = (64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_MODULES = {"triton": "src.attention.kernels.block_column.triton", "flex": "src.attention.kernels.block_column.naive",
            "torch": "src.attention.kernels.block_column.naive"}


def num_query_blocks(length: int) -> int:
    """Query blocks (and 64-key windows) covering `length` tokens."""
    return -(-length // BLOCK)


@dataclass(frozen=True)
class BlockColumnIndex:
    """What MInference's kernel computes for every (batch, head, 64-query block).

    length: the sequence length L; nb = ceil(L / 64) blocks, which are also the key windows.
    coverage: uint8 [B, H, nb, nb, 2]; (x, y) = coverage[b, h, m, j] says which keys of the aligned
        window [64 j, 64 j + 64) the ranges of query block m hold: offsets r < x or r >= y (so
        (0, 64) is none and x >= y is all). Ranges are at least 64 keys wide, so that is exact.
    range_end: int32 [B, H, nb], end of the block's last range (its end when no slash reaches it):
        columns at or past it are dropped, as in the official loop.
    columns: int32 [B, H, NV], the head's valid vertical columns ascending, each once, then L.
    pairs: int32 [B, H, nb], causal (query, key) pairs each query block computes.
    """

    length: int
    coverage: torch.Tensor
    range_end: torch.Tensor
    columns: torch.Tensor
    pairs: torch.Tensor

    def density(self) -> torch.Tensor:
        """Computed causal (query, key) pairs / all causal pairs, float [B, H]."""
        return self.pairs.sum(-1, dtype=torch.float64).float() / (self.length * (self.length + 1) / 2)


def sorted_columns(vertical_indices: torch.Tensor, length: int) -> torch.Tensor:
    """int32 [B, H, max(NV, 1)]: the valid columns ascending, each once, padded with `length`."""
    columns = vertical_indices.long()
    if columns.shape[-1] == 0:
        return torch.full((*columns.shape[:-1], 1), length, dtype=torch.int32, device=columns.device)
    columns = torch.where((columns >= 0) & (columns < length), columns, length).sort(dim=-1).values
    if columns.shape[-1] > 1:
        repeated = torch.nn.functional.pad(columns[..., 1:] == columns[..., :-1], (1, 0))
        columns = torch.where(repeated, length, columns).sort(dim=-1).values
    return columns.to(torch.int32).contiguous()


def descending_slashes(slash_offsets: torch.Tensor, length: int) -> torch.Tensor:
    """int32 [B, H, NS]: the valid slash offsets from the largest down (the official order), then -1."""
    offsets = slash_offsets.long()
    offsets = torch.where((offsets >= 0) & (offsets < length), offsets, -1)
    return offsets.sort(dim=-1, descending=True).values.to(torch.int32).contiguous()


def _backend(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return importlib.import_module(_MODULES[name])


def _check_indices(vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int) -> None:
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"length must be an int >= 1, got {length!r}")
    for name, index in (("vertical_indices", vertical_indices), ("slash_offsets", slash_offsets)):
        if index.dim() != 3 or index.is_floating_point() or index.dtype == torch.bool:
            raise ValueError(f"{name} must be int [B, H, N]; got {index.dtype} {tuple(index.shape)}")
    if vertical_indices.shape[:2] != slash_offsets.shape[:2] or vertical_indices.device != slash_offsets.device:
        raise ValueError(
            f"vertical_indices {tuple(vertical_indices.shape)} on {vertical_indices.device} and slash_offsets "
            f"{tuple(slash_offsets.shape)} on {slash_offsets.device} must share B, H and the device"
        )
    if length >= 2**24:
        raise ValueError(f"length {length} is too long for the int32 index; allowed: < 2**24")


def _check_triton_device(x: torch.Tensor) -> None:
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"the triton backend needs CUDA tensors (got {x.device}) or TRITON_INTERPRET=1 set before import; "
            "use backend 'torch' on CPU"
        )


def block_column_index(
    vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int, *, backend: str = "triton"
) -> BlockColumnIndex:
    """The official conversion of a vertical-slash pattern into per-block key ranges and columns.

    vertical_indices: int [B, H, NV] key positions; slash_offsets: int [B, H, NS] offsets
    query - key (entries outside [0, L) are padding). See the module docstring for the rule.
    """
    module = _backend(backend)
    _check_indices(vertical_indices, slash_offsets, length)
    if backend == "triton":
        _check_triton_device(vertical_indices)
    return module.build_index(sorted_columns(vertical_indices, length), descending_slashes(slash_offsets, length), length)


def _check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: BlockColumnIndex, backend: str) -> None:
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
    if backend == "triton":
        if head_dim not in HEAD_DIMS:
            raise ValueError(f"head dim {head_dim} is not supported by the triton backend; allowed: {HEAD_DIMS}")
        _check_triton_device(q)


def block_column_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    index: BlockColumnIndex,
    *,
    scale: float | None = None,
    backend: str = "triton",
) -> torch.Tensor:
    """Causal attention over each query block's key ranges and columns, [B, Hq, L, D] in q's dtype.

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D] (Hq a multiple of Hkv); index from `block_column_index`
    for [B, Hq]. Query i attends key j <= i iff j lies in a range or is a column of i's block; rows
    with no such key are zeros. scale defaults to 1/sqrt(D).
    """
    module = _backend(backend)
    _check_attention_inputs(q, k, v, index, backend)
    return module.attention(q, k, v, index, scale=q.shape[-1] ** -0.5 if scale is None else scale)


__all__ = ["BLOCK", "BlockColumnIndex", "block_column_attention", "block_column_index", "num_query_blocks"]
