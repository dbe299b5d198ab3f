"""FlexPrefill's selector against a brute-force reading of get_active_blocks (Lai et al., 2025)."""
from __future__ import annotations

import math

import pytest
import torch

from src.attention.components import SELECTORS
from src.attention.permute.segmented_key import SegmentedKeyPermuter
from src.attention.plan import BlockSparsePlan, DensePlan
from src.attention.key_order import KeyOrder
from src.attention.ops import causal_block_layout
from src.attention.select.common import diagonal_sums
from src.attention.select.flexprefill import FlexPrefillSelector
from src.registry import ConfigError
from src.attention.testing import assert_cuda_selection_agrees_with_cpu, random_qkv


def _inputs(batch=2, q_heads=4, kv_heads=2, length=230, head_dim=16, seed=0):
    q, k, v = random_qkv(batch, q_heads, kv_heads, length, head_dim, seed=seed)
    k[:, :, :5] += 2.0 * q[:, ::2, -1:].mean(2, keepdim=True)  # a few strong columns
    return q, k, v


def _reference(q, k, *, block, gamma, tau, min_blocks, scale):
    """get_active_blocks for one (batch, head) at a time, with explicit loops; also returns the JS distances."""
    batch, q_heads, length, _ = q.shape
    group = q_heads // k.shape[1]
    nb = math.ceil(length / block)
    masks = torch.zeros(batch, q_heads, nb, nb, dtype=torch.bool)
    distances = torch.zeros(batch, q_heads)
    for b in range(batch):
        for h in range(q_heads):
            keys = k[b, h // group]
            last = q[b, h, -block:] * scale
            logits = last @ keys.T
            for r in range(block):
                logits[r, length - block + r + 1 :] = float("-inf")
            probs = torch.softmax(logits, -1)
            vertical = probs.mean(0)
            slash = torch.zeros(length)  # index c: diagonal query - key = L-1-c
            for r in range(block):
                for key in range(length - block + r + 1):
                    slash[length - 1 - (length - block + r - key)] += probs[r, key] / block

            def cover(x):
                return int((x.sort(descending=True).values.cumsum(0) <= gamma).sum()) + 1

            n_vertical = min(max(cover(vertical) // block + 1, min_blocks), nb)
            n_slash = min(max(cover(slash) // block + 1, min_blocks), nb)
            pad = nb * block - length
            vertical_blocks = torch.nn.functional.pad(vertical, (0, pad)).view(nb, block).sum(1)
            slash_blocks = torch.nn.functional.pad(slash, (0, pad)).view(nb, block).sum(1)
            pooled_k = torch.stack([keys[i * block : (i + 1) * block].mean(0) for i in range(nb)])
            estimate = torch.softmax(last.mean(0) @ pooled_k.T, -1)
            mean = (estimate + vertical_blocks) / 2
            js = 0.5 * (estimate * (estimate / mean).log()).sum() + 0.5 * (vertical_blocks * (vertical_blocks / mean).log()).sum()
            distances[b, h] = js.sqrt()
            if distances[b, h] < tau:
                n_vertical = n_slash = min_blocks
            vertical_blocks[0] = slash_blocks[-1] = math.inf
            columns = vertical_blocks.topk(n_vertical).indices.tolist()
            offsets = [nb - 1 - p for p in slash_blocks.topk(n_slash).indices.tolist()]
            for i in range(nb):
                for j in columns:
                    masks[b, h, i, j] |= j <= i
                for d in offsets:
                    if i - d >= 0:
                        masks[b, h, i, i - d] = True
            if distances[b, h] < tau:
                pooled_q = torch.stack([q[b, h, i * block : (i + 1) * block].mean(0) for i in range(nb)]) * scale
                attn = (pooled_q @ pooled_k.T).masked_fill(~torch.ones(nb, nb, dtype=torch.bool).tril(), float("-inf"))
                flat = torch.softmax(attn, -1).flatten()
                values, order = flat.sort(descending=True)
                for value_sum, index in zip(values.cumsum(0).tolist(), order.tolist()):
                    if value_sum <= gamma * nb:
                        masks[b, h, index // nb, index % nb] = True
    return masks, distances


def test_diagonal_sums_match_a_loop():
    probs = torch.rand(2, 3, 5, 11)
    got = diagonal_sums(probs)
    for c in range(11):
        offset = 10 - c
        expected = sum(probs[:, :, r, 11 - 5 + r - offset] for r in range(5) if 0 <= 11 - 5 + r - offset < 11)
        torch.testing.assert_close(got[..., c], expected)


def test_selector_matches_definition_with_both_head_kinds():
    q, k, _ = _inputs()
    block, gamma, scale = 16, 0.9, 0.25
    _, distances = _reference(q, k, block=block, gamma=gamma, tau=0.0, min_blocks=2, scale=scale)
    ordered = distances.flatten().sort().values
    tau = (ordered[3] + ordered[4]).item() / 2  # half the heads query-aware, none on the edge
    expected, _ = _reference(q, k, block=block, gamma=gamma, tau=tau, min_blocks=2, scale=scale)
    assert (distances < tau).any() and (distances >= tau).any()
    plan = FlexPrefillSelector(block_size=block, gamma=gamma, tau=tau, min_budget=2 * block)(
        q, k, scale=scale
    )
    assert isinstance(plan, BlockSparsePlan) and plan.block_size == block
    assert torch.equal(plan.block_mask, expected)
    assert plan.density(230).max() < 1.0


def test_full_gamma_is_dense_attention_and_short_inputs_run_dense():
    q, k, v = _inputs(length=203, seed=3)
    scale = 0.25
    for segment in (None, 64):
        order = KeyOrder() if segment is None else SegmentedKeyPermuter(segment_size=segment, num_last_queries=32)(q, k, scale=scale)
        plan = FlexPrefillSelector(block_size=32, gamma=1.0, min_budget=32)(q, k, key_order=order, scale=scale)
        dense = DensePlan().attend(q, k, v, scale=scale, backend="torch")
        torch.testing.assert_close(plan.attend(q, k, v, scale=scale, backend="torch"), dense, atol=1e-5, rtol=1e-5)
    short = FlexPrefillSelector(block_size=128, min_budget=1024)
    assert isinstance(short(q, k, scale=scale), DensePlan)


def test_permuted_keys_keep_diagonal_segments_and_stay_causal():
    q, k, _ = _inputs(seed=4)
    scale, segment = 0.25, 64
    order = SegmentedKeyPermuter(segment_size=segment, num_last_queries=32)(q, k, scale=scale)
    plan = FlexPrefillSelector(block_size=32, gamma=0.8, tau=0.1, min_budget=32)(q, k, key_order=order, scale=scale)
    allowed, diagonal = causal_block_layout(230, 32, segment, q.device)
    assert (plan.block_mask <= allowed).all() and plan.block_mask[..., diagonal].all()
    assert plan.key_order is order and plan.block_mask.sum() < allowed.sum() * 8


def test_registered_and_config_errors_are_clear():
    assert isinstance(SELECTORS.build("flexprefill", {"gamma": 0.9}), FlexPrefillSelector)
    with pytest.raises(ConfigError, match=r"gamma must be a number in \(0, 1\]"):
        FlexPrefillSelector(gamma=1.5)
    with pytest.raises(ConfigError, match=r"tau must be a number in \[0, 1\]"):
        FlexPrefillSelector(tau=-0.1)
    with pytest.raises(ConfigError, match="max_budget"):
        FlexPrefillSelector(max_budget=0)
    with pytest.raises(ConfigError, match="min_budget"):
        FlexPrefillSelector(min_budget=0)
    assert FlexPrefillSelector(min_budget=None).min_budget == 1


@pytest.mark.gpu
def test_cuda_selection_agrees_with_cpu():
    q, k, _ = _inputs(length=1000, head_dim=64, seed=6)
    selector = FlexPrefillSelector(block_size=64, gamma=0.9, tau=0.1, min_budget=128)
    assert_cuda_selection_agrees_with_cpu(selector, q, k, scale=0.125)
