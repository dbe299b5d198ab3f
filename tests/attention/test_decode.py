"""Decode-step attention folded into KV heads equals transformers' SDPA path (which repeats K/V)."""
from __future__ import annotations

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from src.attention.decode import decode_attention, folds_into_kv_heads
from src.attention.testing import random_qkv


class Layer(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


@pytest.mark.parametrize(("q_heads", "kv_heads"), [(9, 3), (8, 2), (7, 1)])
@pytest.mark.parametrize("padded", [False, True])
def test_folded_decode_equals_repeated_kv(q_heads: int, kv_heads: int, padded: bool) -> None:
    _, k, v = random_qkv(3, q_heads, kv_heads, 37, 16, seed=q_heads)
    q = torch.randn(3, q_heads, 1, 16, generator=torch.Generator().manual_seed(1))
    mask = None
    if padded:  # left padding of 0, 5 and 11 keys, as a decode group's caches have
        keep = torch.arange(37)[None, :] >= torch.tensor([0, 5, 11])[:, None]
        mask = keep[:, None, None, :]
    module = Layer(q_heads // kv_heads)
    expected, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.25)
    got, _ = decode_attention(module, q, k, v, mask, scaling=0.25)
    assert got.shape == expected.shape == (3, 1, q_heads, 16)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_only_single_query_grouped_calls_fold() -> None:
    q, k, _ = random_qkv(1, 4, 2, 10, 8)
    assert folds_into_kv_heads(q[:, :, :1], k, 0.0, {})
    assert not folds_into_kv_heads(q, k, 0.0, {})  # several queries: transformers' path
    assert not folds_into_kv_heads(q[:, :2, :1], k, 0.0, {})  # no grouping to fold
    assert not folds_into_kv_heads(q[:, :, :1], k, 0.1, {})
    assert not folds_into_kv_heads(q[:, :, :1], k, 0.0, {"s_aux": torch.zeros(4)})
