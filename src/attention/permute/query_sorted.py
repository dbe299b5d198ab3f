"""Keys sorted inside segments by the mean causal attention of a set of queries: the paper's
proxies of global key importance (arXiv 2510.21270, Sec. 2.2, Fig. 1, Table 4).

    random_query   `num_queries` queries drawn uniformly without replacement
    average_query  every query (no proxy at all; O(L^2) work, for analysis)

PBS-Attn's own choice, the last block of queries, is the segmented_key permuter.
"""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS
from src.attention.key_order import KeyOrder
from src.attention.ops import causal_attention_rows, sort_within_segments
from src.checks import check_int


def mean_attention(
    q: torch.Tensor, k: torch.Tensor, query_positions: torch.Tensor, *, scale: float, chunk_elements: int = 1 << 26
) -> torch.Tensor:
    """Mean causal softmax attention over keys of the queries at `query_positions`: float32 [B, Hq, L].

    query_positions: original positions, int64 [n] (the same queries for every head) or [B, Hq, n]
    (one set per head, e.g. the last block of a per-head query order).
    """
    batch, heads, length, _ = q.shape
    positions = query_positions.expand(batch, heads, -1)
    rows_per_chunk = max(1, chunk_elements // length)
    total = torch.zeros(batch, heads, length, dtype=torch.float32, device=q.device)
    for chunk in causal_attention_rows(q, k, positions, scale=scale, rows_per_chunk=rows_per_chunk):
        total[chunk.batch, chunk.head] += chunk.probs.sum(0)
    return total / positions.shape[-1]


def attention_sorted(
    q: torch.Tensor, k: torch.Tensor, query_positions: torch.Tensor, *, scale: float, segment_size: int
) -> KeyOrder:
    """Keys sorted inside segments by the mean attention of the queries at `query_positions`."""
    importance = mean_attention(q, k, query_positions, scale=scale)
    return KeyOrder(sort_within_segments(importance, segment_size), segment_size)


@PERMUTERS.register("random_query")
class RandomQueryPermuter:
    """Keys sorted by the mean attention of `num_queries` queries drawn at random (one order per
    query head; every head uses the same draw).

    segment_size: tokens per segment. num_queries: queries drawn (all of them on shorter inputs).
    seed: seeds a fresh generator on every call, so a run is reproducible.
    """

    def __init__(self, segment_size: int = 256, num_queries: int = 128, seed: int = 0) -> None:
        self.segment_size: int | None = check_int("segment_size", segment_size)
        self.num_queries = check_int("num_queries", num_queries)
        self.seed = check_int("seed", seed, minimum=0)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder:
        """key_perm int64 [B, Hq, L]."""
        length = q.shape[2]
        generator = torch.Generator().manual_seed(self.seed)
        drawn = torch.randperm(length, generator=generator)[: min(self.num_queries, length)]
        return attention_sorted(q, k, drawn.sort().values, scale=scale, segment_size=self.segment_size)


@PERMUTERS.register("average_query")
class AverageQueryPermuter:
    """Keys sorted by the mean attention of every query (one order per query head).

    segment_size: tokens per segment.
    """

    def __init__(self, segment_size: int = 256) -> None:
        self.segment_size: int | None = check_int("segment_size", segment_size)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder:
        """key_perm int64 [B, Hq, L]."""
        return attention_sorted(q, k, torch.arange(q.shape[2]), scale=scale, segment_size=self.segment_size)
