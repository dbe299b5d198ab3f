"""Key-permutation strategies and permutation targets (src/analysis/permutations.py) against
brute-force attention (tests/analysis/brute.py)."""

from __future__ import annotations

import pytest
import torch

from src.analysis.coverage import block_masses, mask_coverage, mask_density, oracle_mask_at_coverage, query_block_attention
from src.analysis.permutations import PERMUTATION_TARGETS, STRATEGIES, order_keys, order_target
from src.attention.key_order import KeyOrder
from tests.analysis.brute import (
    BLOCK,
    LENGTH,
    SCALE,
    SEGMENT,
    assert_within_segments,
    brute_masses,
    brute_oracle,
    full_attention,
    make_qk,
)


def test_no_permutation_is_the_natural_order(qk) -> None:
    """The baseline strategy is the identity permuter: the natural order, and the oracle's layout
    of one-block segments is that of no segments at all."""
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    assert order_keys("none", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT) == KeyOrder()
    masses = block_masses(rows, KeyOrder(), BLOCK)
    torch.testing.assert_close(block_masses(rows, KeyOrder(torch.arange(LENGTH).expand(2, 4, -1), BLOCK), BLOCK), masses)
    for target in (0.5, 0.9, 0.975):
        a = oracle_mask_at_coverage(masses, target, length=LENGTH, block_size=BLOCK, segment_size=None)
        b = oracle_mask_at_coverage(masses, target, length=LENGTH, block_size=BLOCK, segment_size=BLOCK)
        assert torch.equal(a, b)


@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES) - {"none"}))
def test_strategies_return_valid_within_segment_permutations(qk, strategy: str) -> None:
    q, k = qk
    order = order_keys(strategy, q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    assert order.segment_size == SEGMENT and order.key_perm.shape == (2, 4, LENGTH)
    assert_within_segments(order.key_perm, LENGTH, SEGMENT)


@pytest.mark.parametrize(
    "strategy,queries", [("last_block", slice(LENGTH - BLOCK, LENGTH)), ("average_query", slice(0, LENGTH))]
)
def test_attention_proxies_sort_segments_by_mean_attention(qk, attention, strategy: str, queries: slice) -> None:
    q, k = qk
    perm = order_keys(strategy, q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT).key_perm
    scores = attention[:, :, queries].mean(2)
    full = (LENGTH // SEGMENT) * SEGMENT
    permuted = scores.gather(-1, perm)[..., :full].view(2, 4, -1, SEGMENT)
    assert bool((permuted[..., :-1] >= permuted[..., 1:] - 1e-6).all())


def test_greedy_fills_each_block_with_the_most_similar_free_keys(qk) -> None:
    q, k = qk
    perm = order_keys("greedy", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT).key_perm
    b, h, segment = 1, 3, 2
    keys = k[b, h // 2, segment * SEGMENT : (segment + 1) * SEGMENT]
    centroid = q[b, h, segment * SEGMENT : segment * SEGMENT + BLOCK].mean(0)
    similarity = torch.nn.functional.cosine_similarity(keys, centroid[None], dim=-1)
    first_block = set((perm[b, h, segment * SEGMENT : segment * SEGMENT + BLOCK] - segment * SEGMENT).tolist())
    assert first_block == set(similarity.topk(BLOCK).indices.tolist())


def test_bad_inputs_fail_with_one_clear_line(qk) -> None:
    q, k = qk
    with pytest.raises(ValueError, match="segment_size 40 must be a positive multiple of block_size 16"):
        order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=40)
    with pytest.raises(ValueError, match="unknown permutation strategy 'sorted'; allowed: average_query"):
        order_keys("sorted", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    with pytest.raises(ValueError, match="unknown budget 'local'; allowed: global, row"):
        oracle_mask_at_coverage(
            torch.ones(1, 1, 13, 13), 0.9, length=LENGTH, block_size=BLOCK, segment_size=None, budget="local"
        )


def oracle_densities(masses: torch.Tensor, segment: int | None) -> list[torch.Tensor]:
    """Density the oracle needs for a few coverages, [B, H] each."""
    return [
        mask_density(
            oracle_mask_at_coverage(masses, c, length=LENGTH, block_size=BLOCK, segment_size=segment), LENGTH, BLOCK
        )
        for c in (0.5, 0.9, 0.975)
    ]


def test_target_k_is_exactly_the_last_block_strategy(qk) -> None:
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    strategy = order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    target = order_target("K", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    assert target.query_perm is None and target.segment_size == strategy.segment_size
    assert torch.equal(target.key_order.key_perm, strategy.key_perm)
    expected = oracle_densities(block_masses(rows, strategy, BLOCK), strategy.segment_size)
    got = oracle_densities(block_masses(rows, target.key_order, BLOCK), target.segment_size)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


def test_identity_query_permutation_changes_nothing(qk) -> None:
    q, k = qk
    identity = torch.arange(LENGTH).expand(2, 4, -1)
    chunk = 3 * BLOCK * LENGTH
    plain = query_block_attention(q, k, scale=SCALE, block_size=BLOCK, chunk_elements=chunk)
    same = query_block_attention(q, k, scale=SCALE, block_size=BLOCK, query_perm=identity, chunk_elements=chunk)
    assert torch.equal(plain, same)
    key_order = order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    expected = oracle_densities(block_masses(plain, key_order, BLOCK), SEGMENT)
    got = oracle_densities(block_masses(same, key_order, BLOCK), SEGMENT)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.parametrize("target", ["Q", "K+Q", "Q+K"])
def test_query_permuted_coverage_matches_brute_force(target: str) -> None:
    length, block, segment = 64, 8, 16
    q, k = make_qk(seed=5, hq=2, hkv=1, length=length)
    order = order_target(target, q, k, scale=SCALE, block_size=block, segment_size=segment)
    assert order.query_perm is not None and not torch.equal(order.query_perm, torch.arange(length).expand(1, 2, -1))
    rows = query_block_attention(q, k, scale=SCALE, block_size=block, query_perm=order.query_perm)
    masses = block_masses(rows, order.key_order, block)
    expected = brute_masses(full_attention(q, k, SCALE), order.key_order.key_perm, block, order.query_perm)
    torch.testing.assert_close(masses.double(), expected, atol=1e-5, rtol=1e-5)
    for coverage in (0.6, 0.9, 0.975):
        mask = oracle_mask_at_coverage(masses, coverage, length=length, block_size=block, segment_size=segment)
        density, got = mask_density(mask, length, block), mask_coverage(masses, mask)
        for h in range(2):
            want = brute_oracle(expected[0, h], length, block, segment, coverage=coverage)
            assert density[0, h].item() == pytest.approx(want[0])
            assert got[0, h].item() == pytest.approx(want[1], abs=1e-5)


@pytest.mark.parametrize("target", PERMUTATION_TARGETS)
def test_targets_permute_within_segments_by_their_scores(qk, attention, target: str) -> None:
    q, k = qk
    order = order_target(target, q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    assert order.segment_size == SEGMENT
    key_perm = order.key_order.key_perm
    assert (key_perm is not None) == ("K" in target) and (order.query_perm is not None) == ("Q" in target)
    full = (LENGTH // SEGMENT) * SEGMENT

    def sorted_in_segments(scores: torch.Tensor, perm: torch.Tensor) -> bool:
        permuted = scores.gather(-1, perm)[..., :full].view(2, 4, -1, SEGMENT)
        return bool((permuted[..., :-1] >= permuted[..., 1:] - 1e-6).all())

    queries_first = target.startswith("Q")
    natural = torch.arange(LENGTH).expand(2, 4, -1)
    if order.query_perm is not None:
        assert_within_segments(order.query_perm, LENGTH, SEGMENT)
        keys = natural if queries_first else key_perm
        first_block_mass = attention.gather(-1, keys[:, :, None, :BLOCK].expand(-1, -1, LENGTH, -1)).sum(-1)
        assert sorted_in_segments(first_block_mass, order.query_perm)
    if key_perm is not None:
        assert_within_segments(key_perm, LENGTH, SEGMENT)
        last = (order.query_perm if queries_first else natural)[..., -BLOCK:]
        key_scores = attention.gather(2, last[..., None].expand(-1, -1, -1, LENGTH)).mean(2)
        assert sorted_in_segments(key_scores, key_perm)


def test_unknown_target_lists_the_allowed_ones(qk) -> None:
    q, k = qk
    with pytest.raises(ValueError, match=r"unknown permutation target 'KQ'; allowed: K, Q, K\+Q, Q\+K"):
        order_target("KQ", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
