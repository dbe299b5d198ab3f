"""The per-sample scores behind each number a table prints, grouped as its benchmark averages them.

Every accuracy cell is a mean of group means of a run's sample scores: RULER averages over tasks,
LongBench over its six categories of task means, LongBench v2 over questions. `headline` gives
the run's own number (the one its summary table calls average / overall) as `Scores`, so that
`src.report.stats` can put a confidence interval on it and pair it with dense; its value is
checked against the benchmark's registered summary so the two can never drift apart.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from src.data.longbench_prompts import CATEGORIES
from src.report.collect import ResultsError, Run
from src.report.stats import Scores

Row = dict[str, Any]
Grouping = Callable[[Row], tuple[str, ...]]
TOLERANCE = 1e-6

CATEGORY_OF = {task: category.name for category in CATEGORIES for task in category.tasks}


def by_task(row: Row) -> tuple[str, ...]:
    """A mean over tasks of the task means (RULER, and any benchmark's default summary)."""
    return (str(row["task"]),)


def longbench_category(task: str) -> str | None:
    """The paper's category of a LongBench task (LongBench-E's `<task>_e` as its base task)."""
    return CATEGORY_OF.get(task) or CATEGORY_OF.get(task.removesuffix("_e"))


def by_category_and_task(row: Row) -> tuple[str, ...]:
    """LongBench's average: over categories of the mean over their tasks."""
    task = str(row["task"])
    return (longbench_category(task) or task, task)


def pooled(row: Row) -> tuple[str, ...]:
    """A plain mean over samples (LongBench v2 overall)."""
    return ()


HEADLINES: dict[str, Grouping] = {"ruler": by_task, "longbench": by_category_and_task, "longbench_v2": pooled}


def run_scores(run: Run, grouping: Grouping, keep: Callable[[Row], bool] = lambda row: True, prefix: str = "") -> Scores:
    """The scores of `run`'s rows that `keep` accepts, grouped by `grouping`; `prefix` goes before
    each id and group path (to pool several lengths into one cell)."""
    head = (prefix,) if prefix else ()
    return Scores.of(
        (prefix + str(row["id"]), float(row["score"]), head + grouping(row)) for row in run.rows if keep(row)
    )


def headline(run: Run) -> Scores:
    """The run's headline number (its summary's average / overall) as per-sample scores."""
    scores = run_scores(run, HEADLINES.get(run.benchmark, by_task))
    if abs(scores.value() - run.overall) > TOLERANCE:
        raise ResultsError(
            f"{run.path}: the {run.benchmark} summary says {run.overall:.4f}, its samples average to "
            f"{scores.value():.4f}; src/report/scores.py groups this benchmark otherwise than its summarize"
        )
    return scores


def pooled_lengths(runs: Iterable[tuple[str, Run]], grouping: Grouping) -> Scores:
    """Several runs (one per context length, named by the first item) as one cell averaged over
    lengths, each length weighted equally (Table 3's Avg column)."""
    parts = [run_scores(run, grouping, prefix=f"{name}/") for name, run in runs]
    return Scores.of(
        (sample, value, groups) for part in parts for sample, value, groups in zip(part.ids, part.values, part.groups)
    )
