"""Dense attention of decode steps against a grouped-query KV cache, without repeating K/V.

transformers' SDPA path repeats every KV head for its query heads (`repeat_kv`) whenever a mask is
given, so a padded decode group copies its whole cache several times per layer and step. One new
query per sequence sees the same keys through the same mask in every query head of a KV group, so
the group's query heads can stand in the query-length axis of their KV head instead: the same
attention, one read of the cache (measured on CPU: one 16 x 4096 call 952 -> 155 ms, identical
greedy tokens; experiments/NOTES.md).
"""
from __future__ import annotations

from typing import Any

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward


def folds_into_kv_heads(query: torch.Tensor, key: torch.Tensor, dropout: float, kwargs: dict[str, Any]) -> bool:
    """A single-query, grouped-query call with nothing besides a mask to honour (no dropout, no
    attention sinks, no position bias, no attention weights asked for)."""
    return (
        query.shape[2] == 1 and query.shape[1] != key.shape[1] and dropout == 0.0
        and kwargs.get("s_aux") is None and kwargs.get("position_bias") is None
        and not kwargs.get("output_attentions", False)
    )


def decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float | None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract ([B, T, Hq, D] out); grouped single-query calls
    fold their query heads into the KV heads, everything else goes to transformers' SDPA."""
    if not folds_into_kv_heads(query, key, dropout, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    batch, q_heads, _, head_dim = query.shape
    kv_heads = key.shape[1]
    folded = query.reshape(batch, kv_heads, q_heads // kv_heads, head_dim)
    mask = None if attention_mask is None else attention_mask[:, :, -1:, : key.shape[2]]
    out = torch.nn.functional.scaled_dot_product_attention(folded, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(batch, q_heads, 1, head_dim).transpose(1, 2).contiguous(), None
