"""Permuted block-sparse attention on PyTorch FlexAttention, the comparison backend.

The BlockMask is built straight from the same compact lists the Triton kernel walks: blocks
wholly before the query block go in as "full" blocks (no mask_mod call), the query's own
segment as partial blocks whose mask_mod checks causality by original key position. Nothing
L x L is built. FlexAttention cannot gather rows, so K/V are copied into permuted order (per
query head when the permutation is per query head).
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from src.attention.kernels.block_sparse.triton import causal_kv_lists_triton
from src.attention.kernels.block_sparse.layout import CausalKVLists, causal_kv_lists

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@functools.cache
def _compiled_flex_attention() -> Callable[..., torch.Tensor]:
    """flex_attention compiled once per process (a fused Triton kernel on CUDA)."""
    return torch.compile(flex_attention)


def selected_and_causal(
    block_mask: torch.Tensor, key_pos: torch.Tensor | None, *, block_size: int, perm_group_size: int
) -> MaskMod:
    """mask_mod of the whole contract for keys in permuted order.

    Key slot kv_idx is visible to query q_idx iff its (query block, key block) pair is selected
    and its original position is <= q_idx. key_pos: int [B, P, >= L] (slot -> original position)
    or None (identity); query head h reads row h // perm_group_size. The compiled kernel only
    calls it on partial blocks, but FlexAttention's eager (CPU) path applies mask_mod alone and
    ignores the block lists, so the block selection is repeated here.
    """

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        selected = block_mask[b, h, q_idx // block_size, kv_idx // block_size]
        original = kv_idx if key_pos is None else key_pos[b, h // perm_group_size, kv_idx]
        return selected & (original <= q_idx)

    return mask_mod


def flex_block_mask(lists: CausalKVLists, mask_mod: MaskMod, *, block_size: int, length: int) -> BlockMask:
    """BlockMask with the fully visible blocks as full blocks and the masked ones as partial."""
    num_full, kv_indices = lists.num_full, lists.kv_indices
    nk = kv_indices.shape[-1]
    offsets = torch.arange(nk, device=kv_indices.device, dtype=torch.int32)
    partial_slots = (num_full[..., None] + offsets).clamp(max=nk - 1).long()
    partial_indices = kv_indices.gather(-1, partial_slots)
    return BlockMask.from_kv_blocks(
        lists.num_live - num_full,
        partial_indices,
        num_full,
        kv_indices,
        BLOCK_SIZE=block_size,
        mask_mod=mask_mod,
        seq_lengths=(length, length),
        compute_q_blocks=False,
    )


def permuted_kv(
    k: torch.Tensor, v: torch.Tensor, key_perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """K and V in permuted order, one copy per permutation head ([B, P, L, D] each)."""
    perm_heads = key_perm.shape[1]
    if perm_heads != k.shape[1]:
        k, v = (t.repeat_interleave(perm_heads // t.shape[1], dim=1) for t in (k, v))
    index = key_perm.long()[..., None].expand(-1, -1, -1, k.shape[-1])
    return k.gather(2, index), v.gather(2, index)


def block_sparse_attention_flex(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    *,
    block_size: int,
    key_perm: torch.Tensor | None = None,
    segment_size: int | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """FlexAttention backend of `block_sparse_attention` (inputs already validated there).

    Compiled on CUDA; on CPU FlexAttention's unfused eager path runs (small shapes only).
    """
    length = q.shape[2]
    build_lists = causal_kv_lists_triton if q.is_cuda else causal_kv_lists
    lists = build_lists(block_mask, block_size=block_size, segment_size=segment_size, length=length)
    key_pos = None
    if key_perm is not None:
        k, v = permuted_kv(k, v, key_perm)
        padded = lists.kv_indices.shape[-1] * block_size
        key_pos = torch.nn.functional.pad(key_perm, (0, padded - length), value=length)
    perm_group_size = 1 if key_perm is None else q.shape[1] // key_perm.shape[1]
    mask_mod = selected_and_causal(
        block_mask, key_pos, block_size=block_size, perm_group_size=perm_group_size
    )
    sparse_mask = flex_block_mask(lists, mask_mod, block_size=block_size, length=length)
    kwargs = dict(block_mask=sparse_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
    if q.is_cuda:
        # The fused kernel's tiles must divide the sparse block; its defaults assume 128.
        tiles = {} if block_size >= 128 else {"BLOCK_M": min(block_size, 64), "BLOCK_N": min(block_size, 64)}
        return _compiled_flex_attention()(q, k, v, kernel_options=tiles, **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, **kwargs)
