"""Vertical-slash sparse causal attention (MInference's pattern): the entry point and its contract.

    triton  the kernel (triton.py): per query tile, the key blocks slash bands cross plus the
            leftover vertical columns, exact at token level
    torch   the dense-mask reference (naive.py): ground truth, small shapes only

There is no FlexAttention backend (a vertical-slash mask is not block-aligned); asking for one is
an error. layout.py turns a pattern into the lookup tables both read, and counts its density.
"""
from __future__ import annotations

import torch

from src.attention.kernels.backends import resolve_backend
from src.attention.kernels.triton_utils import DTYPES, unsupported_attention
from src.attention.kernels.vertical_slash.layout import PatternTables, pattern_tables, vertical_slash_density
from src.attention.kernels.vertical_slash.naive import vertical_slash_attention_reference, vertical_slash_token_mask
from src.attention.kernels.vertical_slash.triton import TileShape, tile_index, vertical_slash_attention_triton

IMPLEMENTATIONS = {"triton": vertical_slash_attention_triton, "torch": vertical_slash_attention_reference}


def check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, vertical_indices: torch.Tensor, slash_offsets: torch.Tensor
) -> None:
    """Raise a one-line ValueError for the first input that breaks the contract."""
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



def vertical_slash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    vertical_indices: torch.Tensor,
    slash_offsets: torch.Tensor,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention restricted to vertical columns and slash bands, [B, Hq, L, D].

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D] (Hq a multiple of Hkv). vertical_indices int
    [B, Hq, NV]: key positions every later query attends; slash_offsets int [B, Hq, NS]: offsets
    d such that query i attends key i - d. Entries outside [0, L) are padding; duplicates are
    harmless. backend: "auto" (Triton on CUDA, torch elsewhere), "triton" (the kernel) or "torch" (the dense reference). scale defaults to
    1/sqrt(D).
    """
    check_inputs(q, k, v, vertical_indices, slash_offsets)
    backend = resolve_backend("vertical-slash attention", backend, q, unsupported_attention(q))
    return IMPLEMENTATIONS[backend](q, k, v, vertical_indices, slash_offsets, scale=scale)


__all__ = [
    "PatternTables",
    "TileShape",
    "check_inputs",
    "pattern_tables",
    "tile_index",
    "vertical_slash_attention",
    "vertical_slash_attention_reference",
    "vertical_slash_attention_triton",
    "vertical_slash_density",
    "vertical_slash_token_mask",
]
