"""XAttention's antidiagonal block estimate: the entry point, its contract, two backends.

    triton  two kernels (triton.py): the strided GEMM with an online log-sum-exp per key block,
            then the block masses; the strided logits never reach HBM
    torch   the reference (naive.py): one chunk of strided logits and their softmax at a time

The entry walks the query blocks in chunks, so the estimate's memory stays at one chunk's.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from src.attention.kernels.antidiagonal.naive import (
    antidiagonal_block_mass_reference,
    antidiagonal_scores,
    xattention_chunk_size,
)
from src.attention.kernels.antidiagonal.triton import (
    MAX_HEAD_DIM,
    MAX_ROWS_PER_BLOCK,
    antidiagonal_block_mass_triton,
    check_tile_config,
    triton_chunk_blocks,
)
from src.attention.kernels.backends import resolve_backend
from src.attention.kernels.triton_utils import DTYPES, TileConfig, unsupported_device
from src.attention.ops import num_blocks


def triton_unsupported(q: torch.Tensor, k: torch.Tensor, block_size: int, stride: int) -> str | None:
    """Why the Triton backend cannot estimate these inputs, or None when it can."""
    rows_per_block = block_size // stride
    if rows_per_block & (rows_per_block - 1) or rows_per_block > MAX_ROWS_PER_BLOCK:
        return f"block_size / stride = {rows_per_block} must be a power of two <= {MAX_ROWS_PER_BLOCK}"
    if q.shape[-1] > MAX_HEAD_DIM:
        return f"head dim {q.shape[-1]} is above {MAX_HEAD_DIM}"
    if q.dtype not in DTYPES or k.dtype != q.dtype:
        return f"q and k must share one dtype in {DTYPES}; got {q.dtype}, {k.dtype}"
    return unsupported_device(q)


def antidiagonal_block_masses(
    q: torch.Tensor,
    k: torch.Tensor,
    key_perm: torch.Tensor | None,
    *,
    block_size: int,
    stride: int,
    scale: float,
    chunk_blocks: int | None = None,
    backend: str = "auto",
    config: TileConfig | None = None,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Each chunk of query blocks, first to last, with its estimated mass float32 [B, Hq, rows, nb].

    q: [B, Hq, L, D]; k: [B, Hkv, L, D] in original order; key_perm: None or int [B, P, L]
    (permuted -> original, P = Hq or Hkv): keys are scored in that order. block_size must be a
    multiple of stride. Strided row r holds queries rS..rS+S-1 and column c keys cS..cS+S-1
    (permuted); column c is masked when c > r or all its tokens are padding, a row that is all
    padding gets zero mass, and the partly padded last row and column keep their zero tokens, as
    x-attention does. Each real strided row's softmax sums to 1, so a query block's masses sum to
    its number of real strided rows.

    chunk_blocks: query blocks per chunk; None takes the backend's default (x-attention's
    length-dependent one for torch, whose memory is O(chunk * L / stride^2) per head; for Triton
    as many as keep its O(chunk * L / (stride * block_size)) log-sum-exp table within 1 GiB).
    backend: "auto", "triton" or "torch". config: the Triton estimate's tile (None: its default),
    for benchmarks sweeping launch shapes; the torch backend has no tile and refuses one.
    Bad arguments raise here, before the first chunk.
    """
    backend = resolve_backend("antidiagonal estimate", backend, q, triton_unsupported(q, k, block_size, stride))
    if config is not None:
        if backend != "triton":
            raise ValueError(f"a tile config applies to the triton backend only, not {backend!r}")
        check_tile_config(config, block_size // stride)
    batch, q_heads, length, _ = q.shape
    if chunk_blocks is None:
        if backend == "triton":
            chunk_blocks = triton_chunk_blocks(batch, q_heads, length, block_size, stride)
        else:
            chunk_blocks = xattention_chunk_size(length, block_size) // block_size
    kwargs = dict(block_size=block_size, stride=stride, scale=scale)
    if backend == "triton":
        kwargs["config"] = config
    estimate = antidiagonal_block_mass_triton if backend == "triton" else antidiagonal_block_mass_reference
    nb = num_blocks(length, block_size)
    chunks = (slice(start, min(start + chunk_blocks, nb)) for start in range(0, nb, chunk_blocks))
    return ((rows, estimate(q, k, key_perm, row_blocks=rows, **kwargs)) for rows in chunks)


__all__ = [
    "antidiagonal_block_mass_reference",
    "antidiagonal_block_mass_triton",
    "antidiagonal_block_masses",
    "antidiagonal_scores",
    "triton_unsupported",
]
