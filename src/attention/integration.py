"""Plugging a method into a transformers model through its public attention interface.

The prompt's prefill (several queries, no cache before them, no padding mask) goes to the method;
decode steps, chunked prefill and padded batches run dense (src/attention/decode.py: transformers'
own SDPA path, decode steps of grouped-query heads without repeating the KV cache).
"""
from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface, AttentionMaskInterface, PreTrainedModel
from transformers.masking_utils import sdpa_mask

from src.attention.decode import decode_attention
from src.attention.methods import SparsePrefillMethod


def is_fresh_prefill(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None) -> bool:
    """True for the first forward over a whole prompt: the only call a sparse method handles."""
    return query.shape[2] > 1 and key.shape[2] == query.shape[2] and attention_mask is None


def make_attention_function(method: SparsePrefillMethod) -> Any:
    """A transformers attention function routing fresh prefills to `method`, the rest to SDPA."""

    def attention(
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        if not is_fresh_prefill(query, key, attention_mask) or dropout > 0.0:
            return decode_attention(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
            )
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        out = method.prefill(query, key, value, scale=scale, layer_idx=module.layer_idx)
        return out.transpose(1, 2).contiguous(), None

    return attention


def install_method(model: PreTrainedModel, method: SparsePrefillMethod) -> str:
    """Register `method` as an attention implementation and switch `model` to it.

    Returns the implementation name. Masks are built as for SDPA, so an unpadded prefill
    arrives with attention_mask None.
    """
    name = f"pbs_lab_{method.name}_{id(method):x}"
    AttentionInterface.register(name, make_attention_function(method))
    AttentionMaskInterface.register(name, sdpa_mask)
    model.set_attn_implementation(name)
    return name
