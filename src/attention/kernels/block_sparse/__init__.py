"""Permuted block-sparse causal attention: the entry point, its contract, three backends.

    triton  the fast kernel (triton.py): gathers permuted K/V rows in place, GQA native
    flex    PyTorch FlexAttention (flex.py), built from the same compact block lists (layout.py)
    torch   the dense-mask reference (naive.py): ground truth, small shapes only

All three compute the same function, so a method picks a backend by name in its config.
"""
from __future__ import annotations

import torch

from src.attention.kernels.backends import resolve_backend
from src.attention.kernels.block_sparse.flex import block_sparse_attention_flex
from src.attention.kernels.block_sparse.naive import block_sparse_attention_reference
from src.attention.kernels.block_sparse.triton import block_sparse_attention_triton
from src.attention.kernels.triton_utils import DTYPES, unsupported_attention
from src.attention.ops import num_blocks
from src.checks import check_int

IMPLEMENTATIONS = {
    "triton": block_sparse_attention_triton,
    "flex": block_sparse_attention_flex,
    "torch": block_sparse_attention_reference,
}


def check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    block_size: int,
    key_perm: torch.Tensor | None,
    segment_size: int | None,
) -> None:
    """Raise a one-line ValueError for the first input that breaks the contract."""
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        shapes = ", ".join(str(tuple(t.shape)) for t in (q, k, v))
        raise ValueError(f"q must be [B, Hq, L, D] and k, v [B, Hkv, L, D]; got {shapes}")
    batch, q_heads, length, head_dim = q.shape
    if k.shape[0] != batch or k.shape[2:] != (length, head_dim) or q_heads % k.shape[1]:
        raise ValueError(
            f"k/v shape {tuple(k.shape)} does not fit q {tuple(q.shape)}: "
            "need same B, L, D and Hq a multiple of Hkv"
        )
    if length < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one dtype in {DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}")
    check_int("block_size", block_size)
    nb = num_blocks(length, block_size)
    if block_mask.dtype != torch.bool or block_mask.shape != (batch, q_heads, nb, nb):
        got = f"{block_mask.dtype} {tuple(block_mask.shape)}"
        raise ValueError(f"block_mask must be bool [{batch}, {q_heads}, {nb}, {nb}]; got {got}")
    if key_perm is not None and (
        key_perm.is_floating_point() or key_perm.dtype == torch.bool
        or key_perm.shape not in ((batch, q_heads, length), (batch, k.shape[1], length))
    ):
        got = f"{key_perm.dtype} {tuple(key_perm.shape)}"
        raise ValueError(f"key_perm must be int [{batch}, {q_heads} or {k.shape[1]}, {length}]; got {got}")
    if segment_size is not None and (segment_size < block_size or segment_size % block_size):
        raise ValueError(
            f"segment_size {segment_size} must be a positive multiple of block_size {block_size} (or None)"
        )
    devices = {t.device for t in (q, k, v, block_mask) + (() if key_perm is None else (key_perm,))}
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device; got {sorted(map(str, devices))}")


def triton_unsupported(q: torch.Tensor, block_size: int) -> str | None:
    """Why the Triton kernel cannot run these inputs (tile-friendly sizes, a device), or None."""
    if block_size < 16 or block_size & (block_size - 1):
        return f"block_size {block_size} (allowed: powers of two >= 16)"
    return unsupported_attention(q)


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    *,
    block_size: int,
    key_perm: torch.Tensor | None = None,
    segment_size: int | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention restricted to selected (query block, permuted key block) pairs.

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D], original order (Hq a multiple of Hkv).
    block_mask: bool [B, Hq, nb, nb], nb = ceil(L / block_size), over (query block in original
    order, key block in permuted order). key_perm: None or int [B, Hq or Hkv, L], permuted
    position -> original position, a permutation inside each segment of segment_size (the tail
    past floor(L / S) * S stays in place). Query i attends key j iff j <= i and the permuted
    block holding j is selected for i's query block; rows with no such key are zeros.
    Returns [B, Hq, L, D] in original query order, q's dtype; scale defaults to 1/sqrt(D).
    backend: "auto" (Triton on CUDA, otherwise see backends.FALLBACK), "triton", "flex" or "torch".
    """
    check_inputs(q, k, v, block_mask, block_size, key_perm, segment_size)
    backend = resolve_backend("block-sparse attention", backend, q, triton_unsupported(q, block_size))
    return IMPLEMENTATIONS[backend](
        q, k, v, block_mask, block_size=block_size, key_perm=key_perm, segment_size=segment_size, scale=scale
    )


__all__ = [
    "block_sparse_attention",
    "block_sparse_attention_flex",
    "block_sparse_attention_reference",
    "block_sparse_attention_triton",
    "check_inputs",
    "triton_unsupported",
]
