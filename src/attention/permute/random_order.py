"""A random key order inside each segment: does reordering alone, without guidance, help?
(the "random" strategy of the paper's Fig. 1, arXiv 2510.21270 Sec. 2.2)."""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS
from src.attention.key_order import KeyOrder
from src.attention.ops import sort_within_segments
from src.checks import check_int


@PERMUTERS.register("random")
class RandomPermuter:
    """Keys in a uniformly random order inside each full segment, the tail in place.

    segment_size: tokens per segment (the selector's block_size must divide it).
    seed: seeds a fresh generator on every call, so the same shape always gets the same order
        (each query head its own): runs are reproducible.
    """

    def __init__(self, segment_size: int = 256, seed: int = 0) -> None:
        self.segment_size: int | None = check_int("segment_size", segment_size)
        self.seed = check_int("seed", seed, minimum=0)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder:
        """An order per query head, key_perm int64 [B, Hq, L]."""
        batch, heads, length, _ = q.shape
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.rand(batch, heads, length, generator=generator).to(q.device)
        return KeyOrder(sort_within_segments(noise, self.segment_size), self.segment_size)
