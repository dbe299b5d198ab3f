"""LongBench (v1, 21 tasks) and LongBench-E as samples, evaluated as the official scripts do.

harness="longbench" follows THUDM/LongBench `pred.py` and `eval.py`:
- prompt: the task's template from `dataset2prompt.json`, filled with `str.format(**record)`;
- truncation: the raw prompt (before any chat template) is cut in the middle to `max_length`
  tokens by `src.data.truncation.middle_truncate`, which the generation loop calls with `Sample.truncate_to`;
- chat template on every task except trec, triviaqa, samsum, lsht, lcc and repobench-p;
- greedy decoding of `dataset2maxlen.json` new tokens, decoded as transformers 4.x did
  (`decode(ids, skip_special_tokens=True)` with the tokenizer's clean-up, `src.data.decoding`);
  trec/triviaqa/samsum/lsht are scored on the first line of the prediction only; one metric per
  task (`src.metrics.longbench`).
  Not expressible as a Sample: the HF-era pred.py also stops samsum at a newline with at least
  one new token, which first-line scoring makes nearly equivalent.

harness="opencompass" follows OpenCompass's LongBench configs (`configs/datasets/longbench/*`,
the `HuggingFacewithChatTemplate` model wrapper), which the PBS-Attn paper ran. Differences:
- narrativeqa's prompt reads "as concisely" where the official one reads "asconcisely";
- qasper uses the multi-document QA prompt ("Answer the question based on the given passages...")
  with 32 new tokens instead of 128; multi_news's prompt ends with an extra "\\n";
- templates are filled by replacing "{input}", then "{context}", then the output column
  ("{answers}", or "{all_labels}" for trec/lsht) by "" (text inside the question that looks like
  "{context}" becomes the context; "{input}" inside the context stays as it is);
- the chat template is applied to every task (each prompt is one HUMAN turn);
- no middle truncation: the wrapper tokenizes the chat-templated prompt with
  `truncation_side='left'`, keeping its last `max_seq_len` tokens (`mode='none'`, the paper's
  setting, with max_seq_len = 128 * 1024 for Llama-3.1). Samples carry that budget as
  `Sample.keep_last_tokens` and `truncate_to=None`; the loop applies it to the templated
  token ids (`ids[-n:]`), reproducing OpenCompass on over-long inputs;
- the prediction is decoded with special tokens kept and cut at the first stop word, with
  transformers 4.x's clean-up (`src.data.decoding.TRANSFORMERS4_WITH_SPECIAL`);
- code similarity uses python-Levenshtein (installed with OpenCompass) under fuzzywuzzy.
Its evaluators sum over references where eval.py takes the maximum (count, retrieval,
classification); LongBench has one reference per sample for those tasks, so scores agree. Not
reproduced: its Chinese ROUGE re-segments the already segmented prediction for every further
reference (jieba is practically idempotent on its own output), and its deeper call stack lowers
the `rouge` recursion-overflow threshold by a few words (see `src.metrics.longbench`).

Sample ids are "<task>/<_id>"; LongBench-E tasks are named "<task>_e". meta holds the record's
`length` (words, or characters for Chinese; LongBench-E's 0-4k/4-8k/8k+ buckets), `all_classes`
(trec, lsht), `language` and `_id`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from src.data import hub
from src.data.base import Sample, register_dataset
from src.data.decoding import TRANSFORMERS4, TRANSFORMERS4_WITH_SPECIAL
from src.data.longbench_prompts import (
    CATEGORIES,
    E_TASKS,
    FIRST_LINE_ONLY,
    MAX_NEW_TOKENS,
    METRICS,
    NO_CHAT_TEMPLATE,
    OPENCOMPASS_FIELDS,
    OPENCOMPASS_MAX_NEW_TOKENS,
    OPENCOMPASS_METRICS,
    OPENCOMPASS_OUTPUT_COLUMN,
    OPENCOMPASS_PROMPTS,
    PROMPTS,
    TASKS,
)
from src.data.prompting import fill_opencompass_row
from src.registry import ConfigError

HARNESSES = ("longbench", "opencompass")
LENGTH_BUCKETS = ("0-4k", "4-8k", "8k+")
SUMMARY_COLUMNS = ["level", "name", "length_bucket", "score", "n"]


def task_prompt(task: str, record: dict[str, Any], harness: str = "longbench") -> str:
    """The prompt of one LongBench record under the given harness (before truncation/template)."""
    if harness == "longbench":
        return PROMPTS[task].format(**record)
    output_column = OPENCOMPASS_OUTPUT_COLUMN[task]
    return fill_opencompass_row(OPENCOMPASS_PROMPTS[task], record, (*OPENCOMPASS_FIELDS, output_column), output_column)


def to_sample(task: str, record: dict[str, Any], *, e: bool, harness: str, max_length: int) -> Sample:
    """One LongBench record as a Sample with the harness's prompt, budget, template and metric."""
    official = harness == "longbench"
    name = f"{task}_e" if e else task
    meta: dict[str, Any] = {
        "length": record["length"],
        "all_classes": record.get("all_classes"),
        "language": record.get("language"),
        "_id": record["_id"],
    }
    return Sample(
        id=f"{name}/{record['_id']}",
        task=name,
        prompt=task_prompt(task, record, harness),
        references=[str(answer) for answer in record["answers"]],
        metric=(METRICS if official else OPENCOMPASS_METRICS)[task],
        max_new_tokens=(MAX_NEW_TOKENS if official else OPENCOMPASS_MAX_NEW_TOKENS)[task],
        use_chat_template=task not in NO_CHAT_TEMPLATE if official else True,
        truncate_to=max_length if official else None,
        keep_last_tokens=None if official else max_length,
        first_line_only=task in FIRST_LINE_ONLY,
        decoding=TRANSFORMERS4 if official else TRANSFORMERS4_WITH_SPECIAL,
        meta=meta,
    )


def _check_tasks(tasks: list[str] | None, e: bool) -> list[str]:
    valid = E_TASKS if e else TASKS
    if tasks is None:
        return list(valid)
    unknown = [task for task in tasks if task not in valid]
    if unknown:
        kind = "LongBench-E" if e else "LongBench"
        raise ConfigError(f"unknown {kind} task(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(valid)}")
    return list(tasks)


def _hub_data_dir(hub_id: str) -> Path:
    root = hub.extracted_zip(hub.hub_file(hub_id, "data.zip"))
    return root / "data" if (root / "data").is_dir() else root


def _local_data_dir(local_dir: Path) -> Path:
    if not local_dir.is_dir():
        raise FileNotFoundError(f"LongBench local_dir {local_dir} is not a directory of <task>.jsonl files")
    return local_dir


def length_bucket(length: float) -> str:
    """LongBench-E's length range of a record: 0-4k, 4-8k or 8k+ (eval.py's scorer_e)."""
    if length < 4000:
        return "0-4k"
    return "4-8k" if length < 8000 else "8k+"


def _base_task(task: str) -> str:
    return task[:-2] if task.endswith("_e") and task[:-2] in E_TASKS else task


def _task_order(task: str) -> tuple[int, str]:
    base = _base_task(task)
    return (TASKS.index(base) if base in TASKS else len(TASKS), task)


def _summary_table(rows: pd.DataFrame, bucket: str) -> list[dict[str, Any]]:
    """Task, category and average rows (x100) for one slice of scored rows."""
    per_task = rows.groupby("task", sort=False)["score"].agg(["mean", "size"])
    table = [
        _row("task", task, bucket, 100 * float(per_task.at[task, "mean"]), int(per_task.at[task, "size"]))
        for task in sorted(per_task.index, key=_task_order)
    ]
    category_scores = []
    for category in CATEGORIES:
        present = [row["score"] for row in table if _base_task(row["name"]) in category.tasks]
        if present:  # a category none of whose tasks ran has no row (not a row of NaN)
            category_scores.append(sum(present) / len(present))
            table.append(_row("category", category.name, bucket, category_scores[-1], len(present)))
    average = sum(category_scores) / len(category_scores) if category_scores else math.nan
    table.append(_row("average", "average", bucket, average, len(category_scores)))
    return table


def _row(level: str, name: str, bucket: str, score: float, n: int) -> dict[str, Any]:
    return {"level": level, "name": name, "length_bucket": bucket, "score": score, "n": n}


def summarize_longbench(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-task scores x100, the paper's six category means and their average, as tidy rows.

    Needs columns `task`, `score` and, for LongBench-E tasks, `meta_length`. Columns out:
    level (task|category|average), name, length_bucket ("all", or 0-4k/4-8k/8k+ for LongBench-E
    rows, which are also summarised per length range), score, n (samples for a task, tasks for a
    category, categories for the average). A category with no task in the run has no row;
    the average is taken over the categories present, n says how many.
    Scores are not rounded (OpenCompass does not round per task; eval.py rounds to 2 decimals).
    """
    table = _summary_table(rows, "all")
    e_rows = rows[rows["task"].map(lambda t: t != _base_task(t))]
    if len(e_rows):
        buckets = e_rows["meta_length"].map(length_bucket)
        for bucket in LENGTH_BUCKETS:
            if (buckets == bucket).any():
                table.extend(_summary_table(e_rows[buckets == bucket], bucket))
    return pd.DataFrame(table, columns=SUMMARY_COLUMNS)


@register_dataset("longbench", summarize=summarize_longbench)
def load(
    *,
    tokenizer: Any,
    tasks: list[str] | None = None,
    max_samples: int | None = None,
    max_length: int,
    source: str = "auto",
    local_dir: str | None = None,
    e: bool = False,
    harness: str = "longbench",
    hub_id: str = "THUDM/LongBench",
) -> list[Sample]:
    """LongBench (or LongBench-E with `e`) samples, the first `max_samples` of each task.

    `tokenizer` is not needed here: truncation to `max_length` happens in the generation loop.
    Sources: hub (`hub_id`'s data.zip), local (`local_dir/<task>.jsonl`), fixture, or auto.
    """
    if harness not in HARNESSES:
        raise ConfigError(f"unknown LongBench harness {harness!r}; allowed: {', '.join(HARNESSES)}")
    if max_length < 2:
        raise ConfigError(f"LongBench max_length must be >= 2 tokens, got {max_length}")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"LongBench max_samples must be a positive integer or null, got {max_samples}")
    chosen = _check_tasks(tasks, e)
    data_dir = hub.load_from_source(
        benchmark="LongBench",
        source=source,
        local_dir=local_dir,
        from_local=_local_data_dir,
        from_hub=lambda: _hub_data_dir(hub_id),
        from_fixture=lambda: hub.FIXTURES / "longbench",
    )
    samples = []
    for task in chosen:
        records = hub.read_records(data_dir / f"{task}_e.jsonl" if e else data_dir / f"{task}.jsonl")
        for record in records[:max_samples]:
            samples.append(to_sample(task, record, e=e, harness=harness, max_length=max_length))
    return samples
