"""Key-permutation strategies the paper compares (arXiv 2510.21270, Sec. 2.2, Fig. 1, Table 4).

Every strategy reorders keys only inside full segments of `segment_size` tokens (the tail of
L mod S tokens stays in place) and leaves queries in order, so causality between segments holds:

    none          natural order (segments of one block: only the diagonal block is forced)
    random        a random order inside each segment (does permutation alone help?)
    greedy        local alignment: for each key block of a segment, the query block at the same
                  position takes, greedily and in block order, the B not yet taken keys of the
                  segment most cosine-similar to its mean-pooled query (the paper's "for each
                  query block, its centroid ... iteratively assigns the most similar available
                  key tokens")
    random_query  keys sorted by mean causal attention of B queries drawn at random
    average_query keys sorted by mean causal attention of all queries
    last_block    keys sorted by mean attention of the last B queries (PBS-Attn, Eq. 7-8): the
                  registered "segmented_key" permuter of src/attention/permute.py

Heads are permuted independently (one permutation per query head, the paper's default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from src.analysis.coverage import expand_kv_heads
from src.attention.components import PERMUTERS
from src.attention.permute import sort_within_segments
from src.attention.select.common import mean_pool_blocks
from src.registry import Registry


@dataclass
class KeyOrder:
    """A key order to analyse: key_perm int64 [B, Hq, L] (permuted position -> original key) and
    the segment size keys were permuted in (block_size for the natural order: only the diagonal
    block needs token-level masking, exactly as with no permutation at all)."""

    key_perm: torch.Tensor
    segment_size: int


@dataclass(frozen=True)
class OrderSettings:
    """What a strategy may use besides q and k, bundled so every strategy has one short signature:
    the softmax scale, block size B, segment size S and the generator of its random draws."""

    scale: float
    block_size: int
    segment_size: int
    generator: torch.Generator


Strategy = Callable[[torch.Tensor, torch.Tensor, OrderSettings], KeyOrder]
STRATEGIES: Registry[Strategy] = Registry("permutation strategy")


def check_segments(block_size: int, segment_size: int) -> None:
    """Segments must be whole blocks, so a permuted key never leaves its block's segment."""
    if block_size <= 0 or segment_size <= 0 or segment_size % block_size:
        raise ValueError(f"segment_size {segment_size} must be a positive multiple of block_size {block_size}")


def identity_perm(batch: int, heads: int, length: int, device: torch.device) -> torch.Tensor:
    """The natural key order, int64 [B, H, L]."""
    return torch.arange(length, device=device).expand(batch, heads, length).clone()


def mean_attention(
    q: torch.Tensor, k: torch.Tensor, query_positions: torch.Tensor, *, scale: float, chunk_elements: int = 1 << 26
) -> torch.Tensor:
    """Mean causal softmax attention over keys of the queries at `query_positions`: float32 [B, Hq, L]."""
    batch, heads, length, _ = q.shape
    k = expand_kv_heads(k, heads).float()
    key_pos = torch.arange(length, device=q.device)
    per_chunk = max(1, chunk_elements // (batch * heads * length))
    total = torch.zeros(batch, heads, length, dtype=torch.float32, device=q.device)
    for start in range(0, query_positions.numel(), per_chunk):
        positions = query_positions[start : start + per_chunk].to(q.device)
        scores = (q[:, :, positions].float() @ k.transpose(-1, -2)) * scale
        future = key_pos[None, :] > positions[:, None]
        total += scores.masked_fill(future, float("-inf")).softmax(-1).sum(-2)
    return total / query_positions.numel()


def random_within_segments(
    batch: int, heads: int, length: int, segment_size: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """A uniformly random key order inside each full segment; the tail stays. int64 [B, H, L]."""
    noise = torch.rand(batch, heads, length, generator=generator).to(device)
    return sort_within_segments(noise, segment_size)


def greedy_alignment(q: torch.Tensor, k: torch.Tensor, block_size: int, segment_size: int) -> torch.Tensor:
    """Fill each segment's key blocks in order with the free keys most similar to the aligned
    query block's centroid (cosine similarity). int64 [B, Hq, L]."""
    batch, heads, length, _ = q.shape
    k = expand_kv_heads(k, heads)
    perm = identity_perm(batch, heads, length, q.device)
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


def attention_sorted(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """Keys sorted inside segments by the mean attention of the queries at `positions`: the common
    step of every strategy that proxies global key importance by a set of queries."""
    importance = mean_attention(q, k, positions, scale=settings.scale)
    return KeyOrder(sort_within_segments(importance, settings.segment_size), settings.segment_size)


@STRATEGIES.register("none")
def no_permutation(q: torch.Tensor, k: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """The natural order: the unpermuted baseline (segments of one block, nothing extra forced)."""
    batch, heads, length, _ = q.shape
    return KeyOrder(identity_perm(batch, heads, length, q.device), settings.block_size)


@STRATEGIES.register("random")
def random_permutation(q: torch.Tensor, k: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """Random order inside segments: tests whether reordering without guidance helps."""
    batch, heads, length, _ = q.shape
    perm = random_within_segments(batch, heads, length, settings.segment_size, settings.generator, q.device)
    return KeyOrder(perm, settings.segment_size)


@STRATEGIES.register("greedy")
def greedy_permutation(q: torch.Tensor, k: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """Local query-block alignment (the paper's Greedy Query-Aware Key Permutation)."""
    perm = greedy_alignment(q, k, settings.block_size, settings.segment_size)
    return KeyOrder(perm, settings.segment_size)


@STRATEGIES.register("random_query")
def random_query_permutation(q: torch.Tensor, k: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """Global importance proxied by `block_size` queries drawn uniformly without replacement."""
    length = q.shape[2]
    drawn = torch.randperm(length, generator=settings.generator)[: min(settings.block_size, length)]
    return attention_sorted(q, k, drawn.sort().values, settings)


@STRATEGIES.register("average_query")
def average_query_permutation(q: torch.Tensor, k: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """Global importance voted by every query (no proxy at all; O(L^2) work, for analysis only)."""
    return attention_sorted(q, k, torch.arange(q.shape[2]), settings)


@STRATEGIES.register("last_block")
def last_block_permutation(q: torch.Tensor, k: torch.Tensor, settings: OrderSettings) -> KeyOrder:
    """Global importance from the last `block_size` queries: PBS-Attn's own permuter, per query head."""
    permuter = PERMUTERS.build(
        "segmented_key",
        {"segment_size": settings.segment_size, "num_last_queries": settings.block_size, "gqa_permutation": "head"},
    )
    return KeyOrder(permuter(q, k, scale=settings.scale), settings.segment_size)


def order_keys(
    strategy: str,
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    scale: float,
    block_size: int,
    segment_size: int,
    seed: int = 0,
) -> KeyOrder:
    """The key order `strategy` gives q [B, Hq, L, D] and k [B, Hkv, L, D] (original order)."""
    check_segments(block_size, segment_size)
    strategy_fn = STRATEGIES.get(strategy)
    generator = torch.Generator().manual_seed(seed)
    return strategy_fn(q, k, OrderSettings(scale, block_size, segment_size, generator))
