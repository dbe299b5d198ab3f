"""Key-permutation strategies the paper compares (arXiv 2510.21270, Sec. 2.2, Fig. 1, Table 4), and
the permutation targets of its Fig. 6 ablation (keys, queries or both).

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

Permutation targets (the paper's Fig. 6 ablation: which side is permuted). Every target permutes
inside full segments of S tokens (the tail of L mod S tokens stays in place, so causality between
segments holds), one side after the other, each step scored on the order the previous one left;
causal masking is always by original positions:

    K    keys only: PBS-Attn's default, exactly the last_block strategy
    Q    queries only
    K+Q  keys first, then queries scored on the key-permuted attention
    Q+K  queries first, then keys scored using the query-permuted order

The paper does not spell out how queries are scored, so these are our definitions. A key step
sorts keys by descending mean causal attention from the last B queries, "last" meaning the last
query block in the current query order (the last B original queries when queries are unpermuted,
which is PBS-Attn's own permuter, reused as is). A query step sorts queries (descending, stable)
by the attention mass each puts on the first key block in the current key order: the block holding
the attention sink, visible to every query, so the queries that lean on the sink gather into the
first blocks of their segment and the others into the last ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from src.analysis.coverage import causal_attention_rows, expand_kv_heads, identity_perm
from src.attention.components import PERMUTERS
from src.attention.ops import mean_pool_blocks, sort_within_segments
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


def first_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    key_perm: torch.Tensor | None,
    *,
    scale: float,
    block_size: int,
    chunk_elements: int = 1 << 26,
) -> torch.Tensor:
    """Causal attention mass each query (original order) puts on the first key block of the key
    order `key_perm` (None: natural order; else int64 [B, Hq or Hkv, L]): float32 [B, Hq, L].
    The score of a query step (module docstring)."""
    batch, heads, length, _ = q.shape
    keys = identity_perm(batch, heads, length, q.device) if key_perm is None else expand_kv_heads(key_perm, heads)
    first = keys[..., :block_size].to(q.device)
    mass = torch.zeros(batch, heads, length, dtype=torch.float32, device=q.device)
    queries = identity_perm(batch, heads, length, q.device)
    rows_per_chunk = max(1, chunk_elements // length)
    for chunk in causal_attention_rows(q, k, queries, scale=scale, rows_per_chunk=rows_per_chunk):
        rows = slice(chunk.start, chunk.start + chunk.probs.shape[0])
        mass[chunk.batch, chunk.head, rows] = chunk.probs[:, first[chunk.batch, chunk.head]].sum(-1)
    return mass


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


PERMUTATION_TARGETS = ("K", "Q", "K+Q", "Q+K")


@dataclass(frozen=True)
class TargetOrder:
    """Key and query orders of a permutation target: key_perm and query_perm int64 [B, Hq, L]
    (permuted position -> original token) or None for the natural order, and the segment size S
    both sides were permuted in (the diagonal segment the oracle must force)."""

    key_perm: torch.Tensor | None
    query_perm: torch.Tensor | None
    segment_size: int


def permute_keys_step(q: torch.Tensor, k: torch.Tensor, order: TargetOrder, settings: OrderSettings) -> TargetOrder:
    """Keys sorted in segments by the mean attention of the last query block of the current query
    order. With queries in order that is PBS-Attn's own permuter, called as is so target K gives
    exactly the last_block strategy's numbers."""
    if order.query_perm is None:
        key_perm = last_block_permutation(q, k, settings).key_perm
    else:
        key_perm = attention_sorted(q, k, order.query_perm[..., -settings.block_size :], settings).key_perm
    return replace(order, key_perm=key_perm)


def permute_queries_step(
    q: torch.Tensor, k: torch.Tensor, order: TargetOrder, settings: OrderSettings
) -> TargetOrder:
    """Queries sorted in segments by the attention they put on the first block of the current key order."""
    mass = first_block_attention(q, k, order.key_perm, scale=settings.scale, block_size=settings.block_size)
    return replace(order, query_perm=sort_within_segments(mass, settings.segment_size))


TARGET_STEPS = {"K": permute_keys_step, "Q": permute_queries_step}


def order_target(
    target: str, q: torch.Tensor, k: torch.Tensor, *, scale: float, block_size: int, segment_size: int
) -> TargetOrder:
    """The key and query orders of permutation `target` ("K", "Q", "K+Q" or "Q+K", steps applied
    left to right) for q [B, Hq, L, D] and k [B, Hkv, L, D] in original order. Deterministic: no
    step draws at random, so the settings' generator is a fresh unused one."""
    if target not in PERMUTATION_TARGETS:
        raise ValueError(f"unknown permutation target {target!r}; allowed: {', '.join(PERMUTATION_TARGETS)}")
    check_segments(block_size, segment_size)
    settings = OrderSettings(scale, block_size, segment_size, torch.Generator())
    order = TargetOrder(None, None, segment_size)
    for side in target.split("+"):
        order = TARGET_STEPS[side](q, k, order, settings)
    return order
