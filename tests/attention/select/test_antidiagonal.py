"""XAttention's antidiagonal selector against brute-force definitions (Xu et al., 2025)."""
from __future__ import annotations

import pytest
import torch

from src.attention.components import SELECTORS
from src.attention.key_order import KeyOrder
from src.attention.ops import causal_block_layout, permute_rows
from src.attention.permute.segmented_key import SegmentedKeyPermuter
from src.attention.plan import DensePlan
from src.attention.kernels.antidiagonal import antidiagonal_scores
from src.attention.select.antidiagonal import AntidiagonalSelector
from src.registry import ConfigError
from src.attention.testing import assert_cuda_selection_agrees_with_cpu, random_qkv


def _inputs(batch=2, q_heads=4, kv_heads=2, length=250, head_dim=16, seed=0):
    return random_qkv(batch, q_heads, kv_heads, length, head_dim, seed=seed)


def test_antidiagonal_sums_match_a_naive_loop():
    q, k, _ = _inputs(batch=1, q_heads=2, kv_heads=1, length=23, head_dim=4)
    stride = 4
    got = antidiagonal_scores(q, k, stride=stride)
    rows = -(-23 // stride)
    assert got.shape == (1, 2, rows, rows)
    for h in range(2):
        for r in range(rows):
            for c in range(rows):
                total = 0.0
                for j in range(stride):
                    qi, kj = r * stride + stride - 1 - j, c * stride + j
                    if qi < 23 and kj < 23:
                        total += float(q[0, h, qi] @ k[0, 0, kj])
                assert got[0, h, r, c].item() == pytest.approx(total, abs=1e-4)


def _reference_mask(q, keys, *, block_size, stride, threshold, scale, forced, allowed):
    """XAttention from its definition: strided softmax, block sums, forced-first greedy per row."""
    batch, q_heads, length, _ = q.shape
    rows = -(-length // stride)
    padded_rows = -(-length // block_size) * block_size // stride
    per_block = block_size // stride
    scores = torch.zeros(batch, q_heads, padded_rows, padded_rows)
    scores[:, :, :rows, :rows] = antidiagonal_scores(q, keys, stride=stride) * scale / stride
    index = torch.arange(padded_rows)
    scores = scores.masked_fill((index[None, :] > index[:, None]) | (index[None, :] >= rows), float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    probs[:, :, rows:] = 0.0
    nb = padded_rows // per_block
    mass = probs.view(batch, q_heads, nb, per_block, nb, per_block).sum((3, 5))
    mask = torch.zeros(batch, q_heads, nb, nb, dtype=torch.bool)
    for b in range(batch):
        for h in range(q_heads):
            for i in range(nb):
                row = mass[b, h, i]
                must = [j for j in range(nb) if forced[b, h, i, j] and allowed[i, j]]
                kept, total = sum(row[j].item() for j in must), row[allowed[i]].sum().item()
                others = sorted((j for j in range(nb) if allowed[i, j] and j not in must), key=lambda j: -row[j].item())
                chosen = list(must)
                for j in others:
                    if kept >= threshold * total:
                        break
                    chosen.append(j)
                    kept += row[j].item()
                mask[b, h, i, chosen] = True
    return mask


def test_selector_matches_definition_without_permutation():
    q, k, _ = _inputs()
    block, stride, threshold, scale = 32, 4, 0.8, 0.25
    plan = AntidiagonalSelector(block_size=block, stride=stride, threshold=threshold, chunk_size=64)(
        q, k, scale=scale
    )
    allowed, diagonal = causal_block_layout(250, block, None, q.device)
    forced = (diagonal | (torch.arange(8) == 0)[None, :]).expand(2, 4, -1, -1)
    expected = _reference_mask(q, k, block_size=block, stride=stride, threshold=threshold, scale=scale, forced=forced, allowed=allowed)
    assert torch.equal(plan.block_mask, expected)
    assert plan.block_mask.sum() < allowed.sum() * 8  # sparse
    assert plan.block_mask[..., torch.arange(8), torch.arange(8)].all() and plan.block_mask[..., 0].all()


def test_selector_scores_permuted_keys_with_segments_forced():
    q, k, _ = _inputs(seed=1)
    block, stride, segment, threshold, scale = 32, 4, 64, 0.7, 0.25
    order = SegmentedKeyPermuter(segment_size=segment, num_last_queries=block)(q, k, scale=scale)
    perm = order.key_perm
    plan = AntidiagonalSelector(block_size=block, stride=stride, threshold=threshold)(q, k, key_order=order, scale=scale)
    keys = permute_rows(k.repeat_interleave(2, dim=1), perm)
    allowed, diagonal = causal_block_layout(250, block, segment, q.device)
    sink = (perm == 0).int().argmax(-1) // block
    forced = diagonal | (torch.arange(8)[None, None, None, :] == sink[..., None, None])
    expected = _reference_mask(q, keys, block_size=block, stride=stride, threshold=threshold, scale=scale, forced=forced, allowed=allowed)
    assert torch.equal(plan.block_mask, expected)
    assert plan.key_order is order


@pytest.mark.parametrize("segment", [None, 64])
def test_full_threshold_is_dense_attention(segment):
    q, k, v = _inputs(length=203, seed=2)
    scale = 0.25
    order = KeyOrder() if segment is None else SegmentedKeyPermuter(segment_size=segment, num_last_queries=32)(q, k, scale=scale)
    plan = AntidiagonalSelector(block_size=32, stride=4, threshold=1.0)(q, k, key_order=order, scale=scale)
    dense = DensePlan().attend(q, k, v, scale=scale, backend="torch")
    torch.testing.assert_close(plan.attend(q, k, v, scale=scale, backend="torch"), dense, atol=1e-5, rtol=1e-5)


def test_registered_and_config_errors_are_clear():
    assert isinstance(SELECTORS.build("antidiagonal", {"block_size": 64, "stride": 8}), AntidiagonalSelector)
    with pytest.raises(ConfigError, match="multiple of stride 8"):
        AntidiagonalSelector(block_size=60, stride=8)
    with pytest.raises(ConfigError, match=r"threshold must be a number in \(0, 1\]"):
        AntidiagonalSelector(threshold=0.0)
    with pytest.raises(ConfigError, match="chunk_size"):
        AntidiagonalSelector(block_size=128, chunk_size=100)
    with pytest.raises(ConfigError, match="force_sink"):
        AntidiagonalSelector(force_sink="yes")


@pytest.mark.gpu
def test_cuda_selection_agrees_with_cpu():
    q, k, _ = _inputs(length=1000, head_dim=64, seed=5)
    selector = AntidiagonalSelector(block_size=64, stride=8, threshold=0.9, chunk_size=256)
    assert_cuda_selection_agrees_with_cpu(selector, q, k, scale=0.125)
