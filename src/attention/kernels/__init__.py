"""Permuted block-sparse causal attention: one entry point, three interchangeable backends.

    triton  the fast kernel (block_sparse.py): TMA tiles of K/V put in permuted order once, GQA native
    flex    PyTorch FlexAttention (flex.py), built from the same compact block lists
    torch   the dense-mask reference (reference.py): ground truth, small shapes only

All three compute the same function, so a method picks a backend by name in its config.
"""
from __future__ import annotations

import importlib
import os

import torch

from src.attention.kernels.reference import block_sparse_attention_reference

BACKEND_FUNCTIONS = {
    "triton": ("src.attention.kernels.block_sparse", "block_sparse_attention_triton"),
    "flex": ("src.attention.kernels.flex", "block_sparse_attention_flex"),
    "torch": ("src.attention.kernels.reference", "block_sparse_attention_reference"),
}
TRITON_HEAD_DIMS = (64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    block_size: int,
    key_perm: torch.Tensor | None,
    segment_size: int | None,
    backend: str,
) -> None:
    """Raise a one-line ValueError for the first input that breaks the contract."""
    if backend not in BACKEND_FUNCTIONS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKEND_FUNCTIONS)}")
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
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    nb = -(-length // block_size)
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
    if backend == "triton":
        _check_triton_inputs(q, block_size)


def _check_triton_inputs(q: torch.Tensor, block_size: int) -> None:
    """What the Triton kernel additionally needs: tile-friendly sizes and a device to run on."""
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(
            f"block_size {block_size} is not supported by the triton backend; allowed: powers of two >= 16"
        )
    if q.shape[-1] not in TRITON_HEAD_DIMS:
        raise ValueError(
            f"head dim {q.shape[-1]} is not supported by the triton backend; allowed: {TRITON_HEAD_DIMS}"
        )
    if not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"the triton backend needs CUDA tensors (got {q.device}) or TRITON_INTERPRET=1 set before "
            "import; use backend 'torch' or 'flex' on CPU"
        )


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
    backend: str = "triton",
) -> torch.Tensor:
    """Causal attention restricted to selected (query block, permuted key block) pairs.

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D], original order (Hq a multiple of Hkv).
    block_mask: bool [B, Hq, nb, nb], nb = ceil(L / block_size), over (query block in original
    order, key block in permuted order). key_perm: None or int [B, Hq or Hkv, L], permuted
    position -> original position, a permutation inside each segment of segment_size (the tail
    past floor(L / S) * S stays in place). Query i attends key j iff j <= i and the permuted
    block holding j is selected for i's query block; rows with no such key are zeros.
    Returns [B, Hq, L, D] in original query order, q's dtype; scale defaults to 1/sqrt(D).
    """
    _check_inputs(q, k, v, block_mask, block_size, key_perm, segment_size, backend)
    module_name, function_name = BACKEND_FUNCTIONS[backend]
    function = getattr(importlib.import_module(module_name), function_name)
    return function(
        q, k, v, block_mask, block_size=block_size, key_perm=key_perm, segment_size=segment_size, scale=scale
    )


__all__ = ["block_sparse_attention", "block_sparse_attention_reference"]
