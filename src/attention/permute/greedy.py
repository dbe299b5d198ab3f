"""The paper's Greedy Query-Aware Key Permutation (arXiv 2510.21270, Sec. 2.2, Fig. 1): local
alignment of each segment's keys to the query blocks at the same positions."""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS
from src.attention.key_order import KeyOrder
from src.attention.ops import mean_pool_blocks
from src.checks import check_int
from src.registry import ConfigError


def greedy_alignment(q: torch.Tensor, k: torch.Tensor, block_size: int, segment_size: int) -> torch.Tensor:
    """Fill each segment's key blocks in order with the free keys most similar to the aligned
    query block's centroid (cosine similarity). int64 [B, Hq, L]; the tail stays in place."""
    batch, heads, length, _ = q.shape
    k = k.repeat_interleave(heads // k.shape[1], dim=1)
    perm = torch.arange(length, device=q.device).expand(batch, heads, length).clone()
    segments = length // segment_size
    if not segments:
        return perm
    full = segments * segment_size
    slots = segment_size // block_size
    centroids = mean_pool_blocks(q[:, :, :full], block_size).view(batch, heads, segments, slots, -1)
    keys = k[:, :, :full].float().reshape(batch, heads, segments, segment_size, -1)
    normalize = torch.nn.functional.normalize
    similarity = normalize(centroids, dim=-1) @ normalize(keys, dim=-1).transpose(-1, -2)
    taken = torch.zeros(batch, heads, segments, segment_size, dtype=torch.bool, device=q.device)
    picks = []
    for slot in range(slots):
        chosen = similarity[..., slot, :].masked_fill(taken, float("-inf")).topk(block_size, dim=-1).indices
        taken.scatter_(-1, chosen, True)
        picks.append(chosen)
    offsets = torch.arange(0, full, segment_size, device=q.device)[:, None]
    perm[..., :full] = (torch.cat(picks, -1) + offsets).reshape(batch, heads, full)
    return perm


@PERMUTERS.register("greedy")
class GreedyPermuter:
    """For each key block of a segment, in order, the query block at the same position takes the
    `block_size` not yet taken keys of the segment most cosine-similar to its mean query (the
    paper's "for each query block, its centroid ... iteratively assigns the most similar
    available key tokens"). One order per query head.

    segment_size: tokens per segment, a multiple of block_size.
    block_size: tokens per query block and per key block filled (the selector's block size).
    """

    def __init__(self, segment_size: int = 256, block_size: int = 128) -> None:
        self.segment_size: int | None = check_int("segment_size", segment_size)
        self.block_size = check_int("block_size", block_size)
        if segment_size % block_size:
            raise ConfigError(f"segment_size {segment_size} must be a multiple of block_size {block_size}")

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder:
        """key_perm int64 [B, Hq, L]."""
        return KeyOrder(greedy_alignment(q, k, self.block_size, self.segment_size), self.segment_size)
