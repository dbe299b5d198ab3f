"""Block-selection utilities every selector shares: pooling, causal block layout, top-mass picks.

Selectors differ in how they score key blocks; they agree on what a causal key block is (in
permuted order, keys move only inside their segment) and on picking the fewest blocks that
reach a cumulative mass.
"""
from __future__ import annotations

import torch

from src.attention.plan import num_blocks


def mean_pool_blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Mean over each block of `block_size` tokens: [B, H, L, D] -> float32 [B, H, nb, D].

    The last, shorter block is averaged over the tokens it really has. Sums accumulate in fp32
    without an upcast copy, and nothing is copied from the host (CUDA-graph safe).
    """
    b, h, length, d = x.shape
    nb = num_blocks(length, block_size)
    pad = nb * block_size - length
    summed = torch.nn.functional.pad(x, (0, 0, 0, pad)).view(b, h, nb, block_size, d).sum(3, dtype=torch.float32)
    starts = torch.arange(nb, device=x.device) * block_size
    counts = (length - starts).clamp(max=block_size).float()
    return summed / counts[:, None]


def block_segment_ids(length: int, block_size: int, segment_size: int | None, device: torch.device) -> torch.Tensor:
    """Segment id of every block, int64 [nb]; keys of a block stay inside its segment.

    Only the first floor(L/S)*S tokens are segmented; each tail block is a segment of its own, as
    is every block when there is no permutation (segment_size None).
    """
    nb = num_blocks(length, block_size)
    blocks = torch.arange(nb, device=device)
    if segment_size is None:
        return blocks
    if segment_size % block_size:
        raise ValueError(f"segment_size {segment_size} must be a multiple of block_size {block_size}")
    blocks_per_segment = segment_size // block_size
    full_segments = length // segment_size
    in_segments = blocks < full_segments * blocks_per_segment
    tail_ids = full_segments + (blocks - full_segments * blocks_per_segment)
    return torch.where(in_segments, blocks // blocks_per_segment, tail_ids)


def causal_block_layout(
    length: int, block_size: int, segment_size: int | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed, diagonal) bool [nb, nb] over (query block, permuted key block).

    allowed: the key block can hold a key at or before some query of the query block.
    diagonal: the key block lies in the query block's own segment (needs token-level masking).
    """
    seg = block_segment_ids(length, block_size, segment_size, device)
    allowed = seg[None, :] <= seg[:, None]
    diagonal = seg[None, :] == seg[:, None]
    return allowed, diagonal


def cumulative_threshold_select(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fewest entries per row (largest first) whose mass reaches `threshold` of the row total.

    probs: non-negative [..., n] (masked entries 0). Returns bool [..., n]. With threshold >= 1
    every positive entry is kept, so full threshold means full attention.
    """
    if threshold >= 1.0:
        return probs > 0
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    total = probs.sum(-1, keepdim=True)
    keep_sorted = (mass_before < threshold * total) & (sorted_probs > 0)
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
