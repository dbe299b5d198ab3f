"""Attention coverage versus block density: how much true attention mass a set of blocks holds.

The paper's yardstick (arXiv 2510.21270, Sec. 2 Eq. 2, Fig. 1, App. B): for one head the true
causal attention A = softmax(q k^T * scale) is grouped into B x B blocks, in the permuted key
order (queries stay in order, except in the permutation-target ablation of Fig. 6, where they may
be permuted too); a block's mass is the sum of A over it; coverage of a block mask is the mass
inside it over the total mass, which equals the mean over query rows of the fraction of
each row's attention captured (every row sums to 1). Density is computed blocks over the T(T+1)/2
causal blocks, the convention of `BlockSparsePlan.density`.

The oracle picks the heaviest blocks. The blocks of each query block's own segment are always
computed (they hold the causally masked keys), so they are selected first and counted. The budget
is either "global" (one budget over all query blocks of a head: the optimal solution of Eq. 2 with
its budget shared by the whole head, i.e. "the density needed for the head to reach coverage C"
of App. B.3) or "row" (each query block must reach the coverage, or gets the density share of its
own causal blocks). The analysis script uses "global".

Everything works from `query_block_attention`, the attention summed over the queries of each
query block, [B, H, nq, L]: computed once in chunks of query blocks (memory O(chunk x L)), it
gives the block masses of any key permutation by a gather and a sum. A query permutation changes
which queries form a block, so it is applied there (one pass per query order). Causal masking is
always by original positions. Queries, like keys, may only move inside their segment of S tokens,
so the blocks of a query block's own segment are still the ones holding masked entries, and the
oracle's forced diagonal (`segment_size` = S) stays right for permuted queries.
"""

from __future__ import annotations

from typing import Literal

import torch

from src.attention.components import Selector
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.ops import causal_attention_rows, causal_block_count, causal_block_layout, num_blocks
from src.attention.plan import Plan

Budget = Literal["global", "row"]
BUDGETS = ("global", "row")


def expand_kv_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Repeat [B, Hkv, ...] along heads to [B, num_heads, ...] (GQA groups are consecutive)."""
    heads = x.shape[1]
    if num_heads % heads:
        raise ValueError(f"{heads} key heads do not divide {num_heads} query heads")
    return x.repeat_interleave(num_heads // heads, dim=1)


def identity_perm(batch: int, heads: int, length: int, device: torch.device) -> torch.Tensor:
    """The natural token order, int64 [B, H, L] (a fresh tensor, safe to write into)."""
    return torch.arange(length, device=device).expand(batch, heads, length).clone()


def query_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    scale: float,
    block_size: int,
    query_perm: torch.Tensor | None = None,
    chunk_elements: int = 1 << 26,
) -> torch.Tensor:
    """Causal attention probabilities summed over each query block: float32 [B, Hq, nq, L].

    q: [B, Hq, L, D]; k: [B, Hkv, L, D] in original order. query_perm: None (queries in order) or
    int64 [B, Hq or Hkv, L], permuted position -> original query, permuted inside the segments
    given to the oracle; query block i is then the queries at permuted positions iB..iB+B-1.
    Entry (i, t) is the attention mass the queries of block i give to key t (original order).
    Rows are processed one head and at most `chunk_elements` scores at a time (whole query blocks,
    at least one), so temporaries stay O(chunk x L); the result itself is L/B times smaller than
    the attention matrix (1 GiB for 32 heads at 32K, B=128).
    """
    batch, heads, length, _ = q.shape
    nq = num_blocks(length, block_size)
    if query_perm is None:
        positions = identity_perm(batch, heads, length, q.device)
    else:
        positions = expand_kv_heads(query_perm, heads)
    rows_per_chunk = max(1, chunk_elements // (length * block_size)) * block_size
    out = torch.zeros(batch, heads, nq, length, dtype=torch.float32, device=q.device)
    for chunk in causal_attention_rows(q, k, positions, scale=scale, rows_per_chunk=rows_per_chunk):
        rows = chunk.probs.shape[0]
        padded_rows = num_blocks(rows, block_size) * block_size
        probs = torch.nn.functional.pad(chunk.probs, (0, 0, 0, padded_rows - rows))
        first = chunk.start // block_size
        out[chunk.batch, chunk.head, first : first + padded_rows // block_size] = probs.view(
            -1, block_size, length
        ).sum(1)
    return out


def block_masses(row_attention: torch.Tensor, key_order: KeyOrder, block_size: int) -> torch.Tensor:
    """Attention mass of every (query block, key block in `key_order`): float32 [B, H, nq, nk].

    row_attention: `query_block_attention` output [B, H, nq, L]. key_order: the natural order, or
    a key_perm int64 [B, H or Hkv, L], permuted position -> original key position.
    """
    batch, heads, nq, length = row_attention.shape
    if key_order.key_perm is not None:
        perm = expand_kv_heads(key_order.key_perm, heads).to(row_attention.device)
        row_attention = row_attention.gather(-1, perm[:, :, None, :].expand(-1, -1, nq, -1))
    nk = num_blocks(length, block_size)
    padded = torch.nn.functional.pad(row_attention, (0, nk * block_size - length))
    return padded.view(batch, heads, nq, nk, block_size).sum(-1)


def mask_coverage(masses: torch.Tensor, block_mask: torch.Tensor) -> torch.Tensor:
    """Fraction of the true attention mass inside `block_mask` (bool, broadcastable): float [B, H]."""
    total = masses.double().sum((-1, -2))
    return (masses.double() * block_mask).sum((-1, -2)) / total


def mask_density(block_mask: torch.Tensor, length: int, block_size: int) -> torch.Tensor:
    """Computed blocks over causal blocks, float [B, H] (as `BlockSparsePlan.density`)."""
    return block_mask.sum((-1, -2)).double() / causal_block_count(length, block_size)


def _check_budget(budget: str) -> None:
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; allowed: {', '.join(BUDGETS)}")


def _layout(
    masses: torch.Tensor, length: int, block_size: int, segment_size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(forced, optional) bool [nq, nk]: the diagonal segment's blocks, the other causal blocks."""
    allowed, diagonal = causal_block_layout(length, block_size, segment_size, masses.device)
    if masses.shape[-2:] != allowed.shape:
        raise ValueError(
            f"masses of shape {tuple(masses.shape)} do not fit length {length} with block_size {block_size}"
        )
    return diagonal & allowed, allowed & ~diagonal


def _as_rows(x: torch.Tensor, budget: Budget) -> torch.Tensor:
    """[..., nq, nk] -> [..., R, M]: one row per head (global) or per query block (row)."""
    return x.flatten(-2).unsqueeze(-2) if budget == "global" else x


def _select_sorted(
    masses: torch.Tensor, optional: torch.Tensor, forced: torch.Tensor, budget: Budget, counts: torch.Tensor
) -> torch.Tensor:
    """Forced blocks plus the `counts` [..., R] heaviest optional blocks of each budget row."""
    rows = _as_rows(masses.masked_fill(~optional, -1.0), budget)
    order = rows.argsort(dim=-1, descending=True, stable=True)
    rank = torch.arange(rows.shape[-1], device=masses.device)
    keep_sorted = rank < counts[..., None]
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.view(masses.shape) | forced


def oracle_mask_at_coverage(
    masses: torch.Tensor,
    coverage: float,
    *,
    length: int,
    block_size: int,
    segment_size: int | None,
    budget: Budget = "global",
) -> torch.Tensor:
    """Fewest blocks (heaviest first, diagonal segment always) reaching `coverage`: bool [B, H, nq, nk].

    global: the head's selected mass reaches `coverage` of its total; row: every query block's
    does. coverage >= 1 keeps every block with non-zero mass.
    """
    _check_budget(budget)
    forced, optional = _layout(masses, length, block_size, segment_size)
    rows = _as_rows(masses.double(), budget)
    optional_rows = _as_rows(masses.double().masked_fill(~optional, 0.0), budget)
    positive = (optional_rows > 0).sum(-1)
    if coverage >= 1.0:
        counts = positive
    else:
        need = coverage * rows.sum(-1) - _as_rows(masses.double().masked_fill(~forced, 0.0), budget).sum(-1)
        cumulative = optional_rows.sort(-1, descending=True).values.cumsum(-1)
        counts = torch.where(need > 0, (cumulative < need[..., None]).sum(-1) + 1, 0).clamp(max=positive)
    return _select_sorted(masses, optional, forced, budget, counts)


def oracle_mask_at_density(
    masses: torch.Tensor,
    density: float,
    *,
    length: int,
    block_size: int,
    segment_size: int | None,
    budget: Budget = "global",
) -> torch.Tensor:
    """Heaviest blocks within a budget of `density` x causal blocks: bool [B, H, nq, nk].

    global: round(density x T(T+1)/2) blocks for the head; row: round(density x (i + 1)) for
    query block i. The diagonal segment is always selected, even past the budget.
    """
    _check_budget(budget)
    forced, optional = _layout(masses, length, block_size, segment_size)
    nq = masses.shape[-2]
    if budget == "global":
        causal = torch.tensor([causal_block_count(length, block_size)], device=masses.device)
    else:
        causal = torch.arange(1, nq + 1, device=masses.device)
    budgets = torch.round(density * causal.double()).long()
    counts = (budgets - _as_rows(forced, budget).sum(-1)).clamp(min=0)
    counts = torch.minimum(counts, _as_rows(optional, budget).sum(-1)).expand(*masses.shape[:-2], -1)
    return _select_sorted(masses, optional, forced, budget, counts)


def plan_coverage(plan: Plan, masses: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(coverage, density) float [B, Hq] and block mask of a block-sparse plan.

    `masses` must be the block masses of the plan's key order (`block_masses` with its key_order).
    """
    if not hasattr(plan, "block_mask"):
        raise ValueError(f"a {type(plan).__name__} has no block mask; coverage needs one")
    block_mask = plan.block_mask.to(masses.device)
    density = plan.density(length).double().to(masses.device)
    return mask_coverage(masses, block_mask), density, block_mask


def selector_coverage(
    selector: Selector,
    q: torch.Tensor,
    k: torch.Tensor,
    masses: torch.Tensor,
    *,
    key_order: KeyOrder = NATURAL_ORDER,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`plan_coverage` of a real selector's plan on this key order (Fig. 1's markers: one
    method's selector on another strategy's order); `masses` are that order's block masses."""
    return plan_coverage(selector(q, k, key_order=key_order, scale=scale), masses, q.shape[2])
