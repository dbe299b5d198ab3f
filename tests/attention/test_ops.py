"""The torch floor of the attention package (src/attention/ops.py) against definitions."""
from __future__ import annotations

import pytest
import torch

from src.attention.ops import (
    block_segment_ids,
    causal_attention_rows,
    causal_block_count,
    causal_softmax,
    grouped_logits,
    invert_permutation,
    mean_pool_blocks,
    num_blocks,
    permute_rows,
    sink_blocks,
    sort_within_segments,
)
from src.attention.testing import random_qkv, random_segment_permutation


def brute_causal_softmax(q, k, positions, scale, key_positions=None):
    """Per (batch, query head, chosen query) loop over every key, in float64."""
    batch, heads, _, _ = q.shape
    group = heads // k.shape[1]
    length = k.shape[2]
    out = torch.zeros(batch, heads, len(positions), length, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            key_pos = torch.arange(length) if key_positions is None else key_positions[b, h]
            for r, p in enumerate(positions.tolist()):
                logits = (k[b, h // group].double() @ q[b, h, p].double()) * scale
                out[b, h, r] = torch.softmax(logits.masked_fill(key_pos > p, float("-inf")), 0)
    return out


def test_block_counts_and_segments() -> None:
    assert num_blocks(100, 16) == 7 and causal_block_count(100, 16) == 28
    # L=100, block 16, segment 32: segments [0,32) [32,64) [64,96), then tail block 6 alone.
    assert block_segment_ids(100, 16, 32, torch.device("cpu")).tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert block_segment_ids(100, 16, None, torch.device("cpu")).tolist() == list(range(7))
    with pytest.raises(ValueError, match="segment_size 24 must be a multiple of block_size 16"):
        block_segment_ids(100, 16, 24, torch.device("cpu"))


def test_causal_softmax_is_the_definition_with_gqa_and_permuted_keys() -> None:
    q, k, _ = random_qkv(2, 4, 2, 37, 8, seed=1)
    positions = torch.tensor([36, 3, 20, 0])
    got = causal_softmax(q, k, positions, scale=0.3)
    torch.testing.assert_close(got.double(), brute_causal_softmax(q, k, positions, 0.3), atol=1e-6, rtol=1e-5)
    assert got.dtype == torch.float32 and torch.equal(got[..., 3, 1:], torch.zeros_like(got[..., 3, 1:]))
    perm = random_segment_permutation(2, 4, 37, 16, seed=2)
    keys = permute_rows(k.repeat_interleave(2, dim=1), perm)
    got = causal_softmax(q, keys, positions, scale=0.3, key_positions=perm)
    torch.testing.assert_close(got.double(), brute_causal_softmax(q, keys, positions, 0.3, perm), atol=1e-6, rtol=1e-5)


def test_grouped_logits_keep_float64_and_lift_16_bit_to_float32() -> None:
    q, k, _ = random_qkv(1, 4, 2, 9, 8, seed=3)
    assert grouped_logits(q.double(), k.double()).dtype == torch.float64
    assert grouped_logits(q.half(), k.half()).dtype == torch.float32
    expected = torch.einsum("bhrd,bhcd->bhrc", q, k.repeat_interleave(2, dim=1))
    torch.testing.assert_close(grouped_logits(q, k), expected)


def test_attention_rows_walk_every_head_and_chunk() -> None:
    q, k, _ = random_qkv(2, 4, 2, 30, 8, seed=4)
    positions = torch.stack([torch.randperm(30, generator=torch.Generator().manual_seed(h)) for h in range(4)]).expand(2, -1, -1)
    rows = {}
    for chunk in causal_attention_rows(q, k, positions, scale=0.3, rows_per_chunk=7):
        assert chunk.probs.dtype == torch.float32 and chunk.probs.shape[0] <= 7
        rows[chunk.batch, chunk.head, chunk.start] = chunk.probs
    assert len(rows) == 2 * 4 * 5
    expected = brute_causal_softmax(q, k, positions[0, 1], 0.3)[1, 1]
    torch.testing.assert_close(rows[1, 1, 7].double(), expected[7:14], atol=1e-6, rtol=1e-5)


def test_sink_block_follows_token_zero() -> None:
    perm = torch.arange(64).repeat(1, 2, 1)
    perm[0, 1, :32] = torch.arange(32).flip(0)  # token 0 now sits in block 1 of head 1
    sink = sink_blocks(perm, 4, 1, block_size=16, length=64, device=torch.device("cpu"))
    assert sink.shape == (1, 4, 4) and sink[0, :, 0].tolist() == [True, True, False, False]
    assert sink[0, 2:, 1].all()


def test_mean_pool_blocks_average_the_short_last_block_over_its_tokens() -> None:
    x = torch.arange(10.0).view(1, 1, 10, 1)
    assert mean_pool_blocks(x, 4).flatten().tolist() == [1.5, 5.5, 8.5]


def test_sort_within_segments_keeps_ties_in_order() -> None:
    scores = torch.tensor([[[1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 0.0, 9.0]]])
    assert sort_within_segments(scores, 4).tolist() == [[[1, 2, 3, 0, 4, 5, 6, 7, 8]]]


def test_invert_and_permute_rows_round_trip() -> None:
    _, k, _ = random_qkv(2, 2, 2, 50, 8, seed=5)
    perm = random_segment_permutation(2, 2, 50, 16, seed=6)
    inverse = invert_permutation(perm)
    assert torch.equal(perm.gather(-1, inverse), torch.arange(50).expand_as(perm))
    permuted = permute_rows(k, perm)
    assert torch.equal(permuted[1, 0, 5], k[1, 0, perm[1, 0, 5]])
    assert torch.equal(permute_rows(permuted, inverse), k)
