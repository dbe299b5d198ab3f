"""Coverage vs density, key-permutation strategies, permutation targets and attention maps
against brute force.

References are written straight from the paper's definitions: the full L x L causal softmax,
block masses by explicit loops over (permuted query block, permuted key block), and the oracle as
a plain greedy over a Python list of blocks.
"""

from __future__ import annotations

import math

import pytest
import torch

from src.analysis.attention_maps import MapPanel, save_attention_maps, selection_outline
from src.analysis.coverage import (
    block_masses,
    mask_coverage,
    mask_density,
    oracle_mask_at_coverage,
    oracle_mask_at_density,
    query_block_attention,
    selector_coverage,
)
from src.analysis.permutations import PERMUTATION_TARGETS, STRATEGIES, order_keys, order_target
from src.attention.plan import BlockSparsePlan, causal_block_count

BLOCK, SEGMENT, LENGTH = 16, 32, 200  # 6 full segments and a tail of 8 tokens (a short last block)


def make_qk(
    seed: int = 0, batch: int = 1, hq: int = 4, hkv: int = 2, length: int = LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random q/k with a few heavy keys every query likes, so attention is far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, hq, length, 16, generator=gen)
    k = torch.randn(batch, hkv, length, 16, generator=gen)
    heavy = torch.rand(batch, hkv, length, generator=gen) < 0.1
    direction = torch.randn(16, generator=gen)
    k += 2.0 * heavy[..., None] * direction
    q += direction
    return q, k


def full_attention(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """The true causal attention matrix [B, Hq, L, L] in original order."""
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q.double() @ k.double().transpose(-1, -2)) * scale
    length = q.shape[2]
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)


def brute_masses(
    attention: torch.Tensor, key_perm: torch.Tensor | None, block: int, query_perm: torch.Tensor | None = None
) -> torch.Tensor:
    """Block masses by explicit loops: sum of A over (permuted) query block i x permuted key block j."""
    batch, heads, length, _ = attention.shape
    nb = math.ceil(length / block)
    out = torch.zeros(batch, heads, nb, nb, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            key_order = torch.arange(length) if key_perm is None else key_perm[b, h]
            query_order = torch.arange(length) if query_perm is None else query_perm[b, h]
            for i in range(nb):
                queries = query_order[i * block : (i + 1) * block]
                for j in range(nb):
                    keys = key_order[j * block : (j + 1) * block]
                    out[b, h, i, j] = attention[b, h][queries][:, keys].sum()
    return out


def assert_within_segments(perm: torch.Tensor, length: int, segment: int) -> None:
    """perm [B, H, L] is a permutation moving tokens only inside full segments, the tail in place."""
    assert perm.dtype == torch.int64
    assert torch.equal(perm.sort(-1).values, torch.arange(length).expand_as(perm))
    full = (length // segment) * segment
    position = torch.arange(length)
    assert torch.equal(perm[..., :full] // segment, (position[:full] // segment).expand(*perm.shape[:-1], -1))
    assert torch.equal(perm[..., full:], position[full:].expand(*perm.shape[:-1], -1))


def segment_of_block(j: int, length: int, block: int, segment: int | None) -> int:
    """Segment index of key block j (tail blocks are their own segments) written out by hand."""
    if segment is None:
        return j
    per = segment // block
    full_blocks = (length // segment) * per
    return j // per if j < full_blocks else length // segment + (j - full_blocks)


def brute_oracle(
    masses: torch.Tensor,
    length: int,
    block: int,
    segment: int | None,
    *,
    coverage: float | None = None,
    density: float | None = None,
    budget: str = "global",
) -> tuple[float, float]:
    """(density, coverage) of the greedy oracle for one head [nq, nk], from a list of blocks."""
    nb = masses.shape[-1]
    causal = causal_block_count(length, block)
    seg = [segment_of_block(j, length, block, segment) for j in range(nb)]
    chosen = {(i, j) for i in range(nb) for j in range(nb) if seg[i] == seg[j]}
    groups = [[i] for i in range(nb)] if budget == "row" else [list(range(nb))]
    for rows in groups:
        candidates = sorted(
            ((float(masses[i, j]), i, j) for i in rows for j in range(nb) if seg[j] < seg[i]), reverse=True
        )
        forced = [(i, j) for (i, j) in chosen if i in rows]
        if coverage is not None:
            got = sum(float(masses[i, j]) for i, j in forced)
            goal = coverage * float(masses[rows].sum())
            for mass, i, j in candidates:
                if got >= goal or mass <= 0:
                    break
                chosen.add((i, j))
                got += mass
        else:
            causal_row = causal if budget == "global" else rows[0] + 1
            for _, i, j in candidates[: max(0, round(density * causal_row) - len(forced))]:
                chosen.add((i, j))
    return len(chosen) / causal, sum(float(masses[i, j]) for i, j in chosen) / float(masses.sum())


SCALE = 0.25


@pytest.fixture(scope="module")
def qk() -> tuple[torch.Tensor, torch.Tensor]:
    return make_qk(batch=2)


@pytest.fixture(scope="module")
def attention(qk: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return full_attention(*qk, SCALE)


@pytest.mark.parametrize("strategy", ["none", "random", "last_block"])
def test_block_masses_match_brute_force(qk, attention, strategy: str) -> None:
    q, k = qk
    order = order_keys(strategy, q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT, seed=3)
    # a tiny chunk forces several chunks, one of them ending in the short last block
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK, chunk_elements=3 * BLOCK * LENGTH)
    masses = block_masses(rows, order.key_perm, BLOCK)
    torch.testing.assert_close(
        masses.double(), brute_masses(attention, order.key_perm, BLOCK), atol=1e-5, rtol=1e-5
    )


def test_identity_permutation_reproduces_unpermuted_numbers(qk) -> None:
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    order = order_keys("none", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    assert order.segment_size == BLOCK
    unpermuted = block_masses(rows, None, BLOCK)
    torch.testing.assert_close(block_masses(rows, order.key_perm, BLOCK), unpermuted)
    for target in (0.5, 0.9, 0.975):
        a = oracle_mask_at_coverage(unpermuted, target, length=LENGTH, block_size=BLOCK, segment_size=None)
        b = oracle_mask_at_coverage(
            block_masses(rows, order.key_perm, BLOCK),
            target,
            length=LENGTH,
            block_size=BLOCK,
            segment_size=order.segment_size,
        )
        assert torch.equal(a, b)


def test_random_permutation_keeps_every_row_summing_to_one(qk) -> None:
    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    order = order_keys("random", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT, seed=7)
    assert not torch.equal(order.key_perm, torch.arange(LENGTH).expand_as(order.key_perm))
    masses = block_masses(rows, order.key_perm, BLOCK)
    queries_per_block = torch.tensor([BLOCK] * (LENGTH // BLOCK) + [LENGTH % BLOCK], dtype=torch.float32)
    torch.testing.assert_close(masses.sum(-1), queries_per_block.expand(2, 4, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        masses.double().sum((-1, -2)), torch.full((2, 4), float(LENGTH), dtype=torch.float64)
    )


@pytest.mark.parametrize("strategy", sorted(STRATEGIES.names()))
def test_strategies_return_valid_within_segment_permutations(qk, strategy: str) -> None:
    q, k = qk
    perm = order_keys(strategy, q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT).key_perm
    assert perm.shape == (2, 4, LENGTH)
    assert_within_segments(perm, LENGTH, SEGMENT)


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
    masses = block_masses(rows, order.key_perm, BLOCK)
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
    perm = order_keys("random", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT).key_perm

    def fake_selector(q, k, *, key_perm, segment_size, scale):
        assert key_perm is perm and segment_size == SEGMENT
        return BlockSparsePlan(plan_mask, BLOCK, key_perm, segment_size)

    masses = brute_masses(attention, perm, BLOCK)
    coverage, density, mask = selector_coverage(
        fake_selector, q, k, masses, key_perm=perm, segment_size=SEGMENT, scale=SCALE
    )
    assert torch.equal(mask, plan_mask)
    expected = (masses * plan_mask).sum((-1, -2)) / masses.sum((-1, -2))
    torch.testing.assert_close(coverage, expected)
    torch.testing.assert_close(density, plan_mask.sum((-1, -2)).double() / causal_block_count(LENGTH, BLOCK))


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


def test_selection_outline_traces_the_selected_region() -> None:
    single = torch.zeros(3, 3, dtype=torch.bool)
    single[1, 1] = True
    assert len(selection_outline(single.numpy())) == 4
    bar = torch.zeros(3, 3, dtype=torch.bool)
    bar[1, :2] = True
    segments = selection_outline(bar.numpy())
    assert len(segments) == 6
    assert {tuple(map(tuple, s)) for s in segments} >= {((-0.5, 0.5), (0.5, 0.5)), ((1.5, 0.5), (1.5, 1.5))}


def test_attention_map_png_is_written(tmp_path, attention) -> None:
    masses = brute_masses(attention, None, BLOCK)[0, 0]
    mask = oracle_mask_at_coverage(masses[None, None], 0.9, length=LENGTH, block_size=BLOCK, segment_size=None)[
        0, 0
    ]
    path = save_attention_maps(
        tmp_path / "map.png", [MapPanel(masses, mask, "before"), MapPanel(masses, mask, "after")], "head 0"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_meanpool_selector_on_the_identity_order_reproduces_unpermuted_numbers(qk) -> None:
    import src.attention.select.meanpool  # noqa: F401  (registers the selector)
    from src.attention.components import SELECTORS

    q, k = qk
    rows = query_block_attention(q, k, scale=SCALE, block_size=BLOCK)
    selector = SELECTORS.build("meanpool", {"block_size": BLOCK, "threshold": 0.9})
    plain = selector_coverage(
        selector, q, k, block_masses(rows, None, BLOCK), key_perm=None, segment_size=None, scale=SCALE
    )
    order = order_keys("none", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    masses = block_masses(rows, order.key_perm, BLOCK)
    same = selector_coverage(
        selector, q, k, masses, key_perm=order.key_perm, segment_size=order.segment_size, scale=SCALE
    )
    assert torch.equal(plain[2], same[2])
    torch.testing.assert_close(plain[0], same[0])
    assert bool((plain[0] > 0.5).all()) and bool((plain[1] < 1.0).all())
    everything = SELECTORS.build("meanpool", {"block_size": BLOCK, "threshold": 1.0})
    pbs = order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
    coverage, _, _ = selector_coverage(
        everything,
        q,
        k,
        block_masses(rows, pbs.key_perm, BLOCK),
        key_perm=pbs.key_perm,
        segment_size=SEGMENT,
        scale=SCALE,
    )
    torch.testing.assert_close(coverage, torch.ones(2, 4, dtype=torch.float64))


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
    assert torch.equal(target.key_perm, strategy.key_perm)
    expected = oracle_densities(block_masses(rows, strategy.key_perm, BLOCK), strategy.segment_size)
    got = oracle_densities(block_masses(rows, target.key_perm, BLOCK), target.segment_size)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


def test_identity_query_permutation_changes_nothing(qk) -> None:
    q, k = qk
    identity = torch.arange(LENGTH).expand(2, 4, -1)
    chunk = 3 * BLOCK * LENGTH
    plain = query_block_attention(q, k, scale=SCALE, block_size=BLOCK, chunk_elements=chunk)
    same = query_block_attention(q, k, scale=SCALE, block_size=BLOCK, query_perm=identity, chunk_elements=chunk)
    assert torch.equal(plain, same)
    key_perm = order_keys("last_block", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT).key_perm
    expected = oracle_densities(block_masses(plain, key_perm, BLOCK), SEGMENT)
    got = oracle_densities(block_masses(same, key_perm, BLOCK), SEGMENT)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.parametrize("target", ["Q", "K+Q", "Q+K"])
def test_query_permuted_coverage_matches_brute_force(target: str) -> None:
    length, block, segment = 64, 8, 16
    q, k = make_qk(seed=5, hq=2, hkv=1, length=length)
    order = order_target(target, q, k, scale=SCALE, block_size=block, segment_size=segment)
    assert order.query_perm is not None and not torch.equal(order.query_perm, torch.arange(length).expand(1, 2, -1))
    rows = query_block_attention(q, k, scale=SCALE, block_size=block, query_perm=order.query_perm)
    masses = block_masses(rows, order.key_perm, block)
    expected = brute_masses(full_attention(q, k, SCALE), order.key_perm, block, order.query_perm)
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
    assert (order.key_perm is not None) == ("K" in target) and (order.query_perm is not None) == ("Q" in target)
    full = (LENGTH // SEGMENT) * SEGMENT

    def sorted_in_segments(scores: torch.Tensor, perm: torch.Tensor) -> bool:
        permuted = scores.gather(-1, perm)[..., :full].view(2, 4, -1, SEGMENT)
        return bool((permuted[..., :-1] >= permuted[..., 1:] - 1e-6).all())

    queries_first = target.startswith("Q")
    natural = torch.arange(LENGTH).expand(2, 4, -1)
    if order.query_perm is not None:
        assert_within_segments(order.query_perm, LENGTH, SEGMENT)
        keys = natural if queries_first else order.key_perm
        first_block_mass = attention.gather(-1, keys[:, :, None, :BLOCK].expand(-1, -1, LENGTH, -1)).sum(-1)
        assert sorted_in_segments(first_block_mass, order.query_perm)
    if order.key_perm is not None:
        assert_within_segments(order.key_perm, LENGTH, SEGMENT)
        last = (order.query_perm if queries_first else natural)[..., -BLOCK:]
        key_scores = attention.gather(2, last[..., None].expand(-1, -1, -1, LENGTH)).mean(2)
        assert sorted_in_segments(key_scores, order.key_perm)


def test_unknown_target_lists_the_allowed_ones(qk) -> None:
    q, k = qk
    with pytest.raises(ValueError, match=r"unknown permutation target 'KQ'; allowed: K, Q, K\+Q, Q\+K"):
        order_target("KQ", q, k, scale=SCALE, block_size=BLOCK, segment_size=SEGMENT)
