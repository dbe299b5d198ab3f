"""Block masses, the coverage oracle and real selectors' coverage (src/analysis/coverage.py)
against brute force (tests/analysis/brute.py)."""

from __future__ import annotations

import math

import pytest
import torch

from src.analysis.coverage import (
    block_masses,
    mask_coverage,
    mask_density,
    oracle_mask_at_coverage,
    oracle_mask_at_density,
    query_block_attention,
    selector_coverage,
)
from src.analysis.permutations import order_keys
from src.attention import SELECTORS
from src.attention.key_order import KeyOrder
from src.attention.ops import causal_block_count
from src.attention.plan import BlockSparsePlan
from tests.analysis.brute import BLOCK, LENGTH, SCALE, SEGMENT, brute_masses, brute_oracle, segment_of_block


@pytest.mark.parametrize("strategy", ["none", "random", "last_block"])
def test_block_masses_match_brute_force(qk, attention, strategy: str) -> None:
    q, k = qk
    order = order_keys(strategy, q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT, seed=3)
    # a tiny chunk forces several chunks, one of them ending in the short last block
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK, chunk_elements=3 * BLOCK * LENGTH)
    masses = block_masses(rows, order, BLOCK)
    torch.testing.assert_close(
        masses.double(), brute_masses(attention, order.key_perm, BLOCK), atol=1e-5, rtol=1e-5
    )


def test_random_permutation_keeps_every_row_summing_to_one(qk) -> None:
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    order = order_keys("random", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT, seed=7)
    assert not torch.equal(order.key_perm, torch.arange(LENGTH).expand_as(order.key_perm))
    masses = block_masses(rows, order, BLOCK)
    queries_per_block = torch.tensor([BLOCK] * (LENGTH // BLOCK) + [LENGTH % BLOCK], dtype=torch.float32)
    torch.testing.assert_close(masses.sum(-1), queries_per_block.expand(2, 4, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        masses.double().sum((-1, -2)), torch.full((2, 4), float(LENGTH), dtype=torch.float64)
    )


@pytest.mark.parametrize("budget", ["global", "row"])
@pytest.mark.parametrize("segment", [None, SEGMENT])
def test_oracle_matches_brute_force(attention, budget: str, segment: int | None) -> None:
    masses = brute_masses(attention, None, BLOCK).float()
    for target in (0.6, 0.9, 0.975):
        mask = oracle_mask_at_coverage(
            masses, target, length=LENGTH, block_size=BLOCK, segment_size=segment, budget=budget
        )
        density, coverage = mask_density(mask, LENGTH, BLOCK), mask_coverage(masses, mask)
        for b, h in [(0, 0), (1, 3)]:
            expected = brute_oracle(masses[b, h].double(), LENGTH, BLOCK, segment, coverage=target, budget=budget)
            assert density[b, h].item() == pytest.approx(expected[0])
            assert coverage[b, h].item() == pytest.approx(expected[1], abs=1e-6)
            assert coverage[b, h].item() >= target - 1e-9
    for budget_density in (0.1, 0.3, 0.6):
        mask = oracle_mask_at_density(
            masses, budget_density, length=LENGTH, block_size=BLOCK, segment_size=segment, budget=budget
        )
        density, coverage = mask_density(mask, LENGTH, BLOCK), mask_coverage(masses, mask)
        expected = brute_oracle(
            masses[1, 2].double(), LENGTH, BLOCK, segment, density=budget_density, budget=budget
        )
        assert density[1, 2].item() == pytest.approx(expected[0])
        assert coverage[1, 2].item() == pytest.approx(expected[1], abs=1e-6)


@pytest.mark.parametrize("budget", ["global", "row"])
def test_oracle_at_full_coverage_selects_every_block_with_mass(qk, budget: str) -> None:
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    order = order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    masses = block_masses(rows, order, BLOCK)
    mask = oracle_mask_at_coverage(
        masses, 1.0, length=LENGTH, block_size=BLOCK, segment_size=SEGMENT, budget=budget
    )
    nb = masses.shape[-1]
    segment_ids = torch.tensor([segment_of_block(j, LENGTH, BLOCK, SEGMENT) for j in range(nb)])
    diagonal = segment_ids[:, None] == segment_ids[None, :]
    assert torch.equal(mask, (masses > 0) | diagonal)
    torch.testing.assert_close(mask_coverage(masses, mask), torch.ones(2, 4, dtype=torch.float64))


def test_oracle_coverage_grows_with_density(attention) -> None:
    masses = brute_masses(attention, None, BLOCK).float()
    curve = [
        mask_coverage(
            masses, oracle_mask_at_density(masses, d, length=LENGTH, block_size=BLOCK, segment_size=None)
        )
        for d in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    ]
    assert all(bool((a <= b + 1e-12).all()) for a, b in zip(curve, curve[1:]))
    torch.testing.assert_close(curve[-1], torch.ones(2, 4, dtype=torch.float64))


def test_selector_coverage_measures_the_plan_mask(qk, attention) -> None:
    q, k = qk
    nb = math.ceil(LENGTH / BLOCK)
    plan_mask = torch.rand(2, 4, nb, nb, generator=torch.Generator().manual_seed(1)) < 0.4
    order = order_keys("random", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)

    def fake_selector(q, k, *, key_order, scale):
        assert key_order is order
        return BlockSparsePlan(plan_mask, BLOCK, key_order)

    masses = brute_masses(attention, order.key_perm, BLOCK)
    coverage, density, mask = selector_coverage(fake_selector, q, k, masses, key_order=order, scale=SCALE)
    assert torch.equal(mask, plan_mask)
    expected = (masses * plan_mask).sum((-1, -2)) / masses.sum((-1, -2))
    torch.testing.assert_close(coverage, expected)
    torch.testing.assert_close(density, plan_mask.sum((-1, -2)).double() / causal_block_count(LENGTH, BLOCK))


def test_meanpool_selector_coverage_on_the_natural_and_the_pbs_order(qk) -> None:
    """The "none" strategy is the natural order, so its selector numbers are the unpermuted method's;
    a threshold of 1 covers everything on the PBS order too."""
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    selector = SELECTORS.build("meanpool", {"block_size": BLOCK, "threshold": 0.9})
    plain = selector_coverage(selector, q, k, block_masses(rows, KeyOrder(), BLOCK), scale=SCALE)
    order = order_keys("none", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    same = selector_coverage(selector, q, k, block_masses(rows, order, BLOCK), key_order=order, scale=SCALE)
    assert order == KeyOrder() and torch.equal(plain[2], same[2])
    torch.testing.assert_close(plain[0], same[0])
    assert bool((plain[0] > 0.5).all()) and bool((plain[1] < 1.0).all())
    everything = SELECTORS.build("meanpool", {"block_size": BLOCK, "threshold": 1.0})
    pbs = order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    coverage, _, _ = selector_coverage(everything, q, k, block_masses(rows, pbs, BLOCK), key_order=pbs, scale=SCALE)
    torch.testing.assert_close(coverage, torch.ones(2, 4, dtype=torch.float64))
