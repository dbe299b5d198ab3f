"""Key-permutation strategies the paper compares (arXiv 2510.21270, Sec. 2.2, Fig. 1, Table 4), and
the permutation targets of its Fig. 6 ablation (keys, queries or both).

Every strategy is a registered permuter (src/attention/permute/), so any method can run it too
(`method.permuter.name=random`). Each reorders keys only inside full segments of `segment_size`
tokens (the tail of L mod S tokens stays in place) and leaves queries in order, so causality
between segments holds:

    none          natural order (the identity permuter: only the diagonal block is forced)
    random        a random order inside each segment (does permutation alone help?)
    greedy        local alignment: for each key block of a segment, the query block at the same
                  position takes, greedily and in block order, the B not yet taken keys of the
                  segment most cosine-similar to its mean-pooled query (the paper's "for each
                  query block, its centroid ... iteratively assigns the most similar available
                  key tokens")
    random_query  keys sorted by mean causal attention of B queries drawn at random
    average_query keys sorted by mean causal attention of all queries
    last_block    keys sorted by mean attention of the last B queries (PBS-Attn, Eq. 7-8): the
                  "segmented_key" permuter

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

from dataclasses import dataclass, replace

import torch

from src.analysis.coverage import causal_attention_rows, expand_kv_heads, identity_perm
from src.attention.components import PERMUTERS, Permuter
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.ops import sort_within_segments
from src.attention.permute.query_sorted import attention_sorted
from src.checks import check_choice

# strategy (the name the paper's figures and our analysis.json use) -> the permuter that runs it
STRATEGIES = {
    "average_query": "average_query",
    "greedy": "greedy",
    "last_block": "segmented_key",
    "none": "identity",
    "random": "random",
    "random_query": "random_query",
}


def check_segments(block_size: int, segment_size: int) -> None:
    """Segments must be whole blocks, so a permuted key never leaves its block's segment."""
    if block_size <= 0 or segment_size <= 0 or segment_size % block_size:
        raise ValueError(f"segment_size {segment_size} must be a positive multiple of block_size {block_size}")


def first_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    key_order: KeyOrder,
    *,
    scale: float,
    block_size: int,
    chunk_elements: int = 1 << 26,
) -> torch.Tensor:
    """Causal attention mass each query (original order) puts on the first key block of
    `key_order`: float32 [B, Hq, L]. The score of a query step (module docstring)."""
    batch, heads, length, _ = q.shape
    if key_order.key_perm is None:
        keys = identity_perm(batch, heads, length, q.device)
    else:
        keys = expand_kv_heads(key_order.key_perm, heads)
    first = keys[..., :block_size].to(q.device)
    mass = torch.zeros(batch, heads, length, dtype=torch.float32, device=q.device)
    queries = identity_perm(batch, heads, length, q.device)
    rows_per_chunk = max(1, chunk_elements // length)
    for chunk in causal_attention_rows(q, k, queries, scale=scale, rows_per_chunk=rows_per_chunk):
        rows = slice(chunk.start, chunk.start + chunk.probs.shape[0])
        mass[chunk.batch, chunk.head, rows] = chunk.probs[:, first[chunk.batch, chunk.head]].sum(-1)
    return mass


def strategy_permuter(strategy: str, *, block_size: int, segment_size: int, seed: int = 0) -> Permuter:
    """The permuter of `strategy` at block size B and segment size S: proxies of B queries (the
    last block, B drawn at random), greedy blocks of B, seeded draws, one order per query head."""
    name = STRATEGIES[check_choice("permutation strategy", strategy, list(STRATEGIES))]
    params = {
        "identity": {},
        "random": {"segment_size": segment_size, "seed": seed},
        "greedy": {"segment_size": segment_size, "block_size": block_size},
        "random_query": {"segment_size": segment_size, "num_queries": block_size, "seed": seed},
        "average_query": {"segment_size": segment_size},
        "segmented_key": {"segment_size": segment_size, "num_last_queries": block_size, "gqa_permutation": "head"},
    }[name]
    return PERMUTERS.build(name, params)


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
    permuter = strategy_permuter(strategy, block_size=block_size, segment_size=segment_size, seed=seed)
    return permuter(q, k, scale=scale)


PERMUTATION_TARGETS = ("K", "Q", "K+Q", "Q+K")


@dataclass(frozen=True)
class TargetOrder:
    """Key and query orders of a permutation target: the key order, query_perm int64 [B, Hq, L]
    (permuted position -> original query) or None for queries in order, and the segment size S
    both sides were permuted in (the diagonal segment the oracle must force)."""

    key_order: KeyOrder
    query_perm: torch.Tensor | None
    segment_size: int


@dataclass(frozen=True)
class TargetSettings:
    """What a target step uses besides q and k: the softmax scale, block size B, segment size S."""

    scale: float
    block_size: int
    segment_size: int


def permute_keys_step(q: torch.Tensor, k: torch.Tensor, order: TargetOrder, settings: TargetSettings) -> TargetOrder:
    """Keys sorted in segments by the mean attention of the last query block of the current query
    order. With queries in order that is PBS-Attn's own permuter, called as is so target K gives
    exactly the last_block strategy's numbers."""
    if order.query_perm is None:
        permuter = strategy_permuter("last_block", block_size=settings.block_size, segment_size=settings.segment_size)
        key_order = permuter(q, k, scale=settings.scale)
    else:
        last = order.query_perm[..., -settings.block_size :]
        key_order = attention_sorted(q, k, last, scale=settings.scale, segment_size=settings.segment_size)
    return replace(order, key_order=key_order)


def permute_queries_step(
    q: torch.Tensor, k: torch.Tensor, order: TargetOrder, settings: TargetSettings
) -> TargetOrder:
    """Queries sorted in segments by the attention they put on the first block of the current key order."""
    mass = first_block_attention(q, k, order.key_order, scale=settings.scale, block_size=settings.block_size)
    return replace(order, query_perm=sort_within_segments(mass, settings.segment_size))


TARGET_STEPS = {"K": permute_keys_step, "Q": permute_queries_step}


def order_target(
    target: str, q: torch.Tensor, k: torch.Tensor, *, scale: float, block_size: int, segment_size: int
) -> TargetOrder:
    """The key and query orders of permutation `target` ("K", "Q", "K+Q" or "Q+K", steps applied
    left to right) for q [B, Hq, L, D] and k [B, Hkv, L, D] in original order. Deterministic: no
    step draws at random."""
    if target not in PERMUTATION_TARGETS:
        raise ValueError(f"unknown permutation target {target!r}; allowed: {', '.join(PERMUTATION_TARGETS)}")
    check_segments(block_size, segment_size)
    settings = TargetSettings(scale, block_size, segment_size)
    order = TargetOrder(NATURAL_ORDER, None, segment_size)
    for side in target.split("+"):
        order = TARGET_STEPS[side](q, k, order, settings)
    return order
