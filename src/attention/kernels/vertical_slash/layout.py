"""A vertical-slash pattern as the per-head lookup tables its kernel and reference read, and its
exact density (all O(L) per head; nothing L x L is built)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


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


def index_bitmap(indices: torch.Tensor, length: int) -> torch.Tensor:
    """int8 [B, H, L] with 1 at every index in [0, L) of indices [B, H, N]; others ignored."""
    valid = (indices >= 0) & (indices < length)
    slots = torch.where(valid, indices.long(), length)
    bits = torch.zeros(*indices.shape[:-1], length + 1, dtype=torch.int8, device=indices.device)
    return bits.scatter_(-1, slots, 1)[..., :length]


def pattern_tables(vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int) -> PatternTables:
    """The lookup tables of one plan; entries outside [0, L) are padding and ignored."""
    column_bits = index_bitmap(vertical_indices, length)
    slash_bits = index_bitmap(slash_offsets, length)
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
    column_bits = index_bitmap(vertical_indices, length).float()
    slash_bits = index_bitmap(slash_offsets, length).float()
    remaining = torch.arange(length, 0, -1, device=column_bits.device, dtype=torch.float32)
    crossings = slash_bits.cumsum(-1).flip(-1)
    union = (column_bits * remaining).sum(-1) + (slash_bits * remaining).sum(-1) - (column_bits * crossings).sum(-1)
    return union / (length * (length + 1) / 2)
