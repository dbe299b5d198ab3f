"""Block masks turned into the compact per-query-block lists the kernels walk.

A kernel should spend nothing on key blocks a mask leaves out and no masking work on key blocks
every query of a query block can fully see. Both needs are met by listing the selected key
blocks of each query block in ascending (permuted) order: keys only move inside their segment,
so a key block's segment ends no earlier than any block before it, and the blocks needing
token-level causal masking form a suffix of the list. Everything here stays on the device with
no host synchronisation, so a whole prefill can run without stalls.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def compact_kv_blocks(block_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FlexAttention-style compact lists of a block mask, without a host sync.

    block_mask: bool [B, H, nq, nk]. Returns (kv_num_blocks int32 [B, H, nq], kv_indices int32
    [B, H, nq, nk]): row (b, h, i) of kv_indices starts with the kv_num_blocks[b, h, i] selected
    key blocks in ascending order, followed by the unselected ones (ascending, to be ignored).
    """
    selected = block_mask.to(torch.int32)
    kv_num_blocks = selected.sum(-1, dtype=torch.int32)
    rank_selected = selected.cumsum(-1, dtype=torch.int32) - 1
    rank_unselected = (1 - selected).cumsum(-1, dtype=torch.int32) - 1 + kv_num_blocks[..., None]
    slot = torch.where(block_mask, rank_selected, rank_unselected).long()
    key_blocks = torch.arange(block_mask.shape[-1], dtype=torch.int32, device=block_mask.device)
    kv_indices = torch.empty_like(selected).scatter_(-1, slot, key_blocks.expand_as(selected))
    return kv_num_blocks, kv_indices


def key_block_spans(
    length: int, block_size: int, segment_size: int | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) int64 [nk]: the original positions a permuted key block's keys can come from.

    That is the block's permutation segment for blocks inside the first floor(L/S)*S tokens and
    the block itself in the identity tail (or everywhere when segment_size is None).
    """
    segment = block_size if segment_size is None else segment_size
    nk = -(-length // block_size)
    block_start = torch.arange(nk, device=device) * block_size
    permuted_end = (length // segment) * segment
    in_segments = block_start < permuted_end
    start = torch.where(in_segments, block_start - block_start % segment, block_start)
    end = torch.where(in_segments, start + segment, block_start + block_size).clamp(max=length)
    return start, end


@dataclass(frozen=True)
class CausalKVLists:
    """What a causal block-sparse kernel walks for each (batch, head, query block).

    kv_indices: int32 [B, H, nq, nk], selected key blocks ascending (see compact_kv_blocks).
    num_full: int32 [B, H, nq], leading entries every query of the block sees entirely (no mask).
    num_live: int32 [B, H, nq], leading entries that can hold a visible key; entries from
        num_full to num_live need token-level causal masking, later ones are all in the future.
    """

    kv_indices: torch.Tensor
    num_full: torch.Tensor
    num_live: torch.Tensor


def causal_kv_lists(
    block_mask: torch.Tensor, *, block_size: int, segment_size: int | None, length: int
) -> CausalKVLists:
    """Compact lists of `block_mask` split into fully visible, partly visible and future blocks.

    block_mask: bool [B, H, nq, nk] over (query block in original order, permuted key block).
    Relies on keys moving only inside their segment (the tail past floor(L/S)*S in place).
    """
    _, kv_indices = compact_kv_blocks(block_mask)
    device = block_mask.device
    key_start, key_end = key_block_spans(length, block_size, segment_size, device)
    query_start = torch.arange(block_mask.shape[-2], device=device) * block_size
    query_end = (query_start + block_size).clamp(max=length)
    fully_visible = key_end[None, :] <= query_start[:, None]
    any_visible = key_start[None, :] < query_end[:, None]
    num_full = (block_mask & fully_visible).sum(-1, dtype=torch.int32)
    num_live = (block_mask & any_visible).sum(-1, dtype=torch.int32)
    return CausalKVLists(kv_indices=kv_indices, num_full=num_full, num_live=num_live)
