"""FlexPrefill's block selection (Lai et al., 2025; bytedance/FlexPrefill get_active_blocks).

The last block of queries attends every key exactly; its mean attention per key (vertical) and
its summed attention per diagonal (slash) give vertical and slash blocks, as many as cover
`gamma` of that attention. Where the block-pooled estimate softmax(mean(q_last) . pooled_k)
already agrees with the true vertical distribution (Jensen-Shannon distance below `tau`) the
head is "query-aware": its blocks are also chosen from pooled-query x pooled-key block attention,
the largest entries of the whole causal block matrix up to gamma of its mass. The first key
block and the diagonal are always computed.

With a key permutation the permuted keys are scored the same way (columns and diagonals in
permuted order), causality follows the segment layout, and the query block's own segment is
always computed.
"""
from __future__ import annotations

import math

import torch

from src.attention.components import SELECTORS
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.ops import (
    causal_block_layout,
    causal_softmax,
    grouped_logits,
    mean_pool_blocks,
    num_blocks,
    pooled_permuted_keys,
    permute_rows,
)
from src.attention.plan import BlockSparsePlan, DensePlan
from src.attention.select.common import check_inputs, diagonal_sums, top_ranked
from src.checks import check_int, check_number


def sum_pool(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Sums over consecutive runs of block_size along the last dim (the last run may be short)."""
    pad = num_blocks(x.shape[-1], block_size) * block_size - x.shape[-1]
    return torch.nn.functional.pad(x, (0, pad)).unflatten(-1, (-1, block_size)).sum(-1)


def cover_count(scores: torch.Tensor, gamma: float) -> torch.Tensor:
    """Tokens FlexPrefill keeps to cover gamma of each row's mass: #(sorted cumsum <= gamma) + 1.

    scores: [..., n] summing to 1 per row; gamma >= 1 keeps all n.
    """
    if gamma >= 1.0:
        return torch.full(scores.shape[:-1], scores.shape[-1], device=scores.device, dtype=torch.long)
    cumulative = scores.sort(dim=-1, descending=True).values.cumsum(-1)
    return (cumulative <= gamma).sum(-1) + 1


def js_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Square root of the Jensen-Shannon divergence (natural log) along the last dim; 0 log 0 = 0."""
    m = (p + q) / 2
    divergence = 0.5 * (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(-1) + 0.5 * (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(-1)
    return divergence.clamp(min=0.0).sqrt()


def global_cover(probs: torch.Tensor, budget: torch.Tensor | float) -> torch.Tensor:
    """Largest entries of each flattened [..., n, n] matrix while their running sum stays <= budget."""
    flat = probs.flatten(-2)
    sorted_values, order = flat.sort(dim=-1, descending=True)
    keep_sorted = sorted_values.cumsum(-1) <= budget
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted).view_as(probs)


@SELECTORS.register("flexprefill")
class FlexPrefillSelector:
    """FlexPrefill: JS-distance switch between query-aware and vertical-slash blocks.

    block_size: tokens per block (the last block_size queries make the estimate).
    gamma: attention coverage in (0, 1]; 1.0 computes every causal block.
    tau: JS-distance threshold in [0, 1]; heads below it are query-aware.
    min_budget, max_budget: tokens, turned into blocks (ceil) bounding the vertical and the slash
        block counts; None min_budget means 1 token (one block) and None max_budget no cap, as
        flex_prefill_attention reads them. The default None is what the PBS-Attn paper evaluated
        (its configs pass no min_budget); FlexPrefill's own patch.py default is 1024, available
        as min_budget=1024. Inputs of at most max(2 * block_size, min_budget rounded up to
        blocks) tokens run dense, as flex_prefill_attention does.
    """

    def __init__(
        self,
        block_size: int = 128,
        gamma: float = 0.95,
        tau: float = 0.1,
        min_budget: int | None = None,
        max_budget: int | None = None,
    ) -> None:
        self.block_size = check_int("block_size", block_size)
        self.gamma = check_number("gamma", gamma, 0.0, 1.0)
        self.tau = check_number("tau", tau, 0.0, 1.0, low_open=False)
        self.min_budget = check_int("min_budget", min_budget, optional=True, unit="tokens") or 1
        self.max_budget = check_int("max_budget", max_budget, optional=True, unit="tokens")

    def dense_below(self) -> int:
        """Inputs of at most this many tokens run dense (FlexPrefill's short-input fallback)."""
        return max(2 * self.block_size, math.ceil(self.min_budget / self.block_size) * self.block_size)

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        layer_idx: int | None = None,
    ) -> BlockSparsePlan | DensePlan:
        """The block plan for q [B, Hq, L, D] and k [B, Hkv, L, D] (original order)."""
        check_inputs(q, k, key_order, self.block_size)
        batch, q_heads, length, _ = q.shape
        if length <= self.dense_below():
            return DensePlan()
        bs = self.block_size
        nb = num_blocks(length, bs)
        key_perm, segment_size = key_order.key_perm, key_order.segment_size
        allowed, diagonal = causal_block_layout(length, bs, segment_size, q.device)
        if key_perm is None:
            keys, key_pos, pooled_k = k, None, mean_pool_blocks(k, bs)
        else:
            keys = permute_rows(k.repeat_interleave(key_perm.shape[1] // k.shape[1], dim=1), key_perm)
            key_pos = key_perm.repeat_interleave(q_heads // key_perm.shape[1], dim=1)
            pooled_k = pooled_permuted_keys(k, key_perm, block_size=bs, segment_size=segment_size)

        # Exact attention of the last block of queries (causal by original position).
        n = min(bs, length)
        last_q = q[:, :, length - n :] * scale
        probs = causal_softmax(q, keys, torch.arange(length - n, length, device=q.device), scale=scale, key_positions=key_pos)
        vertical = probs.mean(-2)
        slash = diagonal_sums(probs) / n

        min_blocks = math.ceil(self.min_budget / bs)
        max_blocks = nb if self.max_budget is None else min(math.ceil(self.max_budget / bs), nb)
        vertical_count = (cover_count(vertical, self.gamma) // bs + 1).clamp(min=min_blocks).clamp(max=max_blocks)
        slash_count = (cover_count(slash, self.gamma) // bs + 1).clamp(min=min_blocks).clamp(max=max_blocks)
        vertical_blocks = sum_pool(vertical, bs)
        slash_blocks = sum_pool(slash, bs)

        estimate = torch.softmax(grouped_logits(last_q.float().mean(2, keepdim=True), pooled_k).squeeze(2), dim=-1)
        query_aware = js_distance(estimate, vertical_blocks) < self.tau
        vertical_count = torch.where(query_aware, min_blocks, vertical_count)
        slash_count = torch.where(query_aware, min_blocks, slash_count)

        first_block = torch.arange(nb, device=q.device) == 0
        keep_columns = top_ranked(vertical_blocks.masked_fill(first_block, math.inf), vertical_count)
        keep_slashes = top_ranked(slash_blocks.masked_fill(first_block.flip(0), math.inf), slash_count).flip(-1)
        block_offset = torch.arange(nb, device=q.device)[:, None] - torch.arange(nb, device=q.device)[None, :]
        selected = keep_columns[:, :, None, :] | keep_slashes[:, :, block_offset.clamp(min=0)] & (block_offset >= 0)

        if self.tau > 0.0:
            pooled_q = mean_pool_blocks(q, bs) * scale
            block_logits = grouped_logits(pooled_q, pooled_k).masked_fill(~allowed, float("-inf"))
            block_probs = torch.softmax(block_logits, dim=-1)
            budget = math.inf if self.gamma >= 1.0 else self.gamma * nb
            selected = selected | (query_aware[:, :, None, None] & global_cover(block_probs, budget))
        selected = (selected | diagonal) & allowed
        return BlockSparsePlan(block_mask=selected.contiguous(), block_size=bs, key_order=key_order)
