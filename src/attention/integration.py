"""Plugging a method into a transformers model through its public attention interface.

The prompt's prefill (several queries, no cache before them, no padding mask) goes to the method;
decode steps, chunked prefill and padded batches run dense (src/attention/decode.py: transformers'
own SDPA path, decode steps of grouped-query heads without repeating the KV cache). Decode steps
are dense by design; every other dense call is said once per installed method, with its reason
(a padded batch silently losing its sparsity would misreport a method's speed and accuracy).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AttentionInterface, AttentionMaskInterface, PreTrainedModel
from transformers.masking_utils import sdpa_mask

from src.attention.decode import decode_attention
from src.attention.methods import SparsePrefillMethod

log = logging.getLogger(__name__)


def dense_reason(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, dropout: float) -> str | None:
    """Why a call with several queries cannot go to the sparse method, or None when it can: the
    first forward over a whole prompt, unpadded, without dropout. Decode steps (one query) are
    not asked: they are dense by design."""
    if key.shape[2] != query.shape[2]:
        return "a prefill over an existing cache (chunked prefill or a cached prefix)"
    if attention_mask is not None:
        return "a padded batch (an attention mask; sparse methods need one unpadded prompt per prefill)"
    if dropout > 0.0:
        return f"dropout {dropout} (training mode)"
    return None


def make_attention_function(method: SparsePrefillMethod) -> Any:
    """A transformers attention function routing fresh prefills to `method`, the rest to SDPA;
    the first dense call of each reason other than decoding logs one warning."""
    warned: set[str] = set()

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
        reason = dense_reason(query, key, attention_mask, dropout) if query.shape[2] > 1 else "decode"
        if reason is not None:
            if reason not in warned and reason != "decode":
                warned.add(reason)
                log.warning("method %s: %s ran dense SDPA instead (said once per run)", method.name, reason)
            return decode_attention(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
            )
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        out = method.prefill(query, key, value, scale=scale, layer_idx=module.layer_idx)
        return out.transpose(1, 2).contiguous(), None

    return attention


def register_attention(name: str, method: SparsePrefillMethod) -> None:
    """Register `method` in transformers' attention interfaces as `name`, so that
    `from_pretrained(..., attn_implementation=name)` and `set_attn_implementation(name)` use it.
    Masks are built as for SDPA, so an unpadded prefill arrives with attention_mask None."""
    AttentionInterface.register(name, make_attention_function(method))
    AttentionMaskInterface.register(name, sdpa_mask)


def install_method(model: PreTrainedModel, method: SparsePrefillMethod) -> str:
    """Register `method` under a name of its own and switch `model` to it; returns the name."""
    name = f"pbs_lab_{method.name}_{id(method):x}"
    register_attention(name, method)
    model.set_attn_implementation(name)
    return name
