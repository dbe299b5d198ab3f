"""95% bootstrap confidence intervals of accuracy cells, and paired method-vs-dense differences.

A benchmark's number is a mean of group means: RULER averages its tasks' mean scores, LongBench
averages category means of task means, LongBench v2 takes the plain mean. `Scores` holds each
sample's score and its group path (`("task",)`, `("category", "task")` or `()`), and `Aggregate`
recomputes the benchmark's own aggregation on every bootstrap resample, so an interval is the
spread of exactly the number the table prints.

Resampling draws samples with replacement from all of a cell's samples (not within each task):
with one sample per task a within-task resample could not vary at all, while the question the
interval answers is "how much would this number move on another draw of prompts". The intervals
come from `scipy.stats.bootstrap` (percentile method, 9999 resamples, a fixed seed, so a rebuilt
table prints the same intervals). A method's difference to dense is bootstrapped on the samples
both runs scored (paired: one resample index picks the same prompt in both), and counts as
significant only when its interval excludes 0.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 2510_21270  # fixed (the paper's arXiv id): the same rows always give the same interval
BATCH_ELEMENTS = 4_000_000  # resampled indices held at once (bounds memory for large cells)


class Aggregate:
    """The benchmark's aggregation over group paths, vectorised over resamples.

    `groups[i]` is sample i's path from the top group down (all paths equally deep). Calling it
    with sample indices of shape (..., n) gives, per row of indices, the mean over top groups of
    the mean over their subgroups ... of the mean of the leaf group's scores, counting only the
    groups the row drew at least once (as the benchmark averages only the tasks a run holds).
    """

    def __init__(self, groups: Sequence[tuple[str, ...]]) -> None:
        paths = [("",) + tuple(path) for path in groups]
        depths = {len(path) for path in paths}
        if len(depths) != 1:
            raise ValueError(f"group paths must be equally deep, got depths {sorted(depths)}")
        depth = depths.pop()
        indexes: list[dict[tuple[str, ...], int]] = []
        for level in range(depth):
            index: dict[tuple[str, ...], int] = {}
            for path in paths:
                index.setdefault(path[: level + 1], len(index))
            indexes.append(index)
        self.leaf = np.array([indexes[-1][path] for path in paths], dtype=np.int64)
        self.leaves = len(indexes[-1])
        self.parents: list[tuple[np.ndarray, int]] = []
        for level in range(depth - 1, 0, -1):
            parent = np.empty(len(indexes[level]), dtype=np.int64)
            for prefix, node in indexes[level].items():
                parent[node] = indexes[level - 1][prefix[:-1]]
            self.parents.append((parent, len(indexes[level - 1])))

    def __call__(self, values: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """The aggregate of `values` over each row of `indices` (a 1-d index array gives a 0-d result)."""
        rows = np.atleast_2d(indices).reshape(-1, np.shape(indices)[-1])
        count = rows.shape[0]
        means, present = self._level(count, self.leaf[rows], values[rows], self.leaves)
        for parent, size in self.parents:
            nodes = np.broadcast_to(parent, means.shape)
            means, present = self._level(count, nodes, np.where(present, means, 0.0), size, present)
        result = means[:, 0]
        return result.reshape(np.shape(indices)[:-1])

    @staticmethod
    def _level(
        count: int, nodes: np.ndarray, values: np.ndarray, size: int, weights: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the mean of `values` by node (of `size`) and which nodes had any member."""
        flat = (np.arange(count)[:, None] * size + nodes).ravel()
        sums = np.bincount(flat, weights=values.ravel(), minlength=count * size).reshape(count, size)
        members = np.ones_like(values, dtype=float) if weights is None else weights.astype(float)
        counts = np.bincount(flat, weights=members.ravel(), minlength=count * size).reshape(count, size)
        return sums / np.maximum(counts, 1.0), counts > 0


@dataclass(frozen=True)
class Scores:
    """Per-sample scores (in [0, 1]) behind one cell, with their ids and group paths."""

    ids: tuple[str, ...]
    values: np.ndarray
    groups: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, items: Iterable[tuple[str, float, tuple[str, ...]]]) -> Scores:
        """From (id, score, group path) triples; ids must be unique."""
        triples = list(items)
        ids = tuple(item[0] for item in triples)
        if len(set(ids)) != len(ids):
            raise ValueError("sample ids of one cell must be unique")
        return cls(ids, np.array([float(item[1]) for item in triples]), tuple(tuple(item[2]) for item in triples))

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.ids)

    def value(self) -> float:
        """The benchmark's number for these samples, x100."""
        return 100 * float(Aggregate(self.groups)(self.values, np.arange(self.n)))

    def restricted(self, ids: Sequence[str]) -> Scores:
        """The same cell over `ids` only, in that order."""
        position = {sample: i for i, sample in enumerate(self.ids)}
        keep = [position[sample] for sample in ids]
        return Scores(tuple(ids), self.values[keep], tuple(self.groups[i] for i in keep))


@dataclass(frozen=True)
class Interval:
    """A number (x100) with its 95% bootstrap interval over `n` samples; no interval below 2 samples."""

    value: float
    low: float | None
    high: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of 0 (a significant difference)."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def _percentile_interval(statistic, n: int) -> tuple[float | None, float | None]:  # type: ignore[no-untyped-def]
    """The percentile bootstrap interval of `statistic(indices)` over resamples of n samples."""
    if n < 2:
        return None, None
    result = bootstrap(
        (np.arange(n),), lambda indices, axis=-1: statistic(indices), n_resamples=RESAMPLES,
        batch=max(1, BATCH_ELEMENTS // n), vectorized=True, confidence_level=CONFIDENCE,
        method="percentile", random_state=np.random.default_rng(SEED),
    )
    interval = result.confidence_interval
    return 100 * float(interval.low), 100 * float(interval.high)


def interval(scores: Scores) -> Interval:
    """The cell's number with its 95% bootstrap interval."""
    aggregate = Aggregate(scores.groups)
    low, high = _percentile_interval(lambda indices: aggregate(scores.values, indices), scores.n)
    return Interval(scores.value(), low, high, scores.n)


def paired_difference(method: Scores, reference: Scores) -> Interval | None:
    """method - reference (x100) on the samples both scored, with its paired 95% bootstrap interval;
    None when they share no sample."""
    theirs_ids = set(reference.ids)
    common = [sample for sample in method.ids if sample in theirs_ids]
    if not common:
        return None
    ours, theirs = method.restricted(common), reference.restricted(common)
    aggregate = Aggregate(ours.groups)

    def difference(indices: np.ndarray) -> np.ndarray:
        return aggregate(ours.values, indices) - aggregate(theirs.values, indices)

    low, high = _percentile_interval(difference, len(common))
    return Interval(ours.value() - theirs.value(), low, high, len(common))
