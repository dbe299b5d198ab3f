"""The index type of the block-column op and the slash order the official conversion walks."""
from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK = 64  # query block and key-range granularity of MInference's kernel (its 64x64 build)


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
    columns: int32 [B, H, max(NV, 1)], the head's valid vertical columns ascending, each once, then
        L (`ops.sorted_unique_positions`).
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


def descending_slashes(slash_offsets: torch.Tensor, length: int) -> torch.Tensor:
    """int32 [B, H, NS]: the valid slash offsets from the largest down (the official order), then -1."""
    offsets = slash_offsets.long()
    offsets = torch.where((offsets >= 0) & (offsets < length), offsets, -1)
    return offsets.sort(dim=-1, descending=True).values.to(torch.int32).contiguous()
