"""The bootstrap intervals on cases with a known answer: a large Bernoulli sample matches the
normal approximation, an all-equal sample has a zero-width interval, one sample has none, and the
aggregation is the benchmark's own (a mean of group means, also on resamples)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from src.report.stats import Aggregate, Scores, interval, paired_difference


def bernoulli(n: int, p: float, seed: int, groups: tuple[str, ...] = ()) -> Scores:
    values = (np.random.default_rng(seed).random(n) < p).astype(float)
    return Scores.of((f"s{i}", value, groups) for i, value in enumerate(values))


def test_large_bernoulli_sample_matches_the_normal_approximation() -> None:
    scores = bernoulli(4000, 0.3, seed=0)
    found = interval(scores)
    p = scores.values.mean()
    half = 100 * 1.959964 * math.sqrt(p * (1 - p) / scores.n)
    assert found.value == pytest.approx(100 * p)
    assert found.low == pytest.approx(100 * p - half, abs=0.25) and found.high == pytest.approx(100 * p + half, abs=0.25)
    assert found.n == 4000 and found.excludes_zero


def test_all_equal_scores_give_a_zero_width_interval_and_one_sample_none() -> None:
    same = Scores.of((f"s{i}", 1.0, (f"t{i % 3}",)) for i in range(9))
    assert interval(same) == interval(same)  # fixed seed: the same rows, the same interval
    found = interval(same)
    assert (found.value, found.low, found.high) == (100.0, 100.0, 100.0)
    single = interval(Scores.of([("s0", 0.5, ())]))
    assert single.value == 50.0 and single.low is None and single.high is None and not single.excludes_zero


def test_value_is_a_mean_of_group_means_on_the_sample_and_on_resamples() -> None:
    scores = Scores.of([("a", 1.0, ("x", "t1")), ("b", 0.0, ("x", "t1")), ("c", 1.0, ("x", "t2")), ("d", 0.5, ("y", "t3"))])
    assert scores.value() == pytest.approx(100 * ((0.5 + 1.0) / 2 + 0.5) / 2)
    aggregate = Aggregate(scores.groups)
    # a resample drawing a, a, c, c: group y absent, t1 = 1, t2 = 1 -> x = 1 -> mean over present groups = 1
    assert aggregate(scores.values, np.array([[0, 0, 2, 2], [1, 1, 3, 3]])).tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="equally deep"):
        Aggregate([("x",), ("x", "t")])


def test_paired_difference_uses_only_the_shared_samples() -> None:
    method = Scores.of([("a", 1.0, ()), ("b", 1.0, ()), ("c", 0.0, ()), ("only-method", 1.0, ())])
    dense = Scores.of([("a", 0.0, ()), ("b", 0.0, ()), ("c", 0.0, ()), ("only-dense", 1.0, ())])
    found = paired_difference(method, dense)
    assert found is not None and found.n == 3 and found.value == pytest.approx(200 / 3)
    assert 0 <= found.low <= found.value <= found.high <= 100
    same = paired_difference(dense, dense)
    assert same is not None and (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero
    assert paired_difference(method, Scores.of([("z", 1.0, ())])) is None
    clearly = paired_difference(bernoulli(500, 0.8, seed=1), bernoulli(500, 0.2, seed=2))
    assert clearly is not None and clearly.excludes_zero and clearly.low > 0
