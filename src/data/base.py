"""What every benchmark hands the generation loop: samples, and how to summarise their scores.

A benchmark is data plus a metric name, registered by name; the loop never branches on a task.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from src.data.decoding import PLAIN, Decoding
from src.registry import Registry


@dataclass
class Sample:
    """One prompt to prefill and answer.

    prompt: the user text (context + question) before any chat template.
    answer_prefix: text appended after the (optional) chat template, e.g. RULER's answer cue.
    metric: name in `src.metrics.METRICS`; score is in [0, 1] per sample.
    truncate_to: if set, the prompt is middle-truncated to this many tokens before templating.
    keep_last_tokens: if set, only the last this-many token ids of the templated input are kept
        (left truncation, as OpenCompass's HF wrapper does).
    first_line_only: keep only the first line of the prediction before scoring.
    decoding: how the generated ids become the prediction text (`src.data.decoding`), as the
        benchmark's official harness decoded them.
    """

    id: str
    task: str
    prompt: str
    references: list[str]
    metric: str
    max_new_tokens: int
    use_chat_template: bool = True
    answer_prefix: str = ""
    truncate_to: int | None = None
    keep_last_tokens: int | None = None
    first_line_only: bool = False
    decoding: Decoding = PLAIN
    meta: dict[str, Any] = field(default_factory=dict)


class TokenCounter:
    """Counts tokens with the model's tokenizer; datasets size their prompts with it."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def summarize_by_task(rows: pd.DataFrame) -> pd.DataFrame:
    """Default summary: mean score x100 per task, plus an 'average' row over tasks."""
    per_task = rows.groupby("task", sort=True)["score"].mean().mul(100).rename("score").reset_index()
    average = pd.DataFrame([{"task": "average", "score": per_task["score"].mean()}])
    return pd.concat([per_task, average], ignore_index=True)


@dataclass(frozen=True)
class Dataset:
    """A registered benchmark bound to its config parameters (checked against its loader's
    signature when built): `load` builds the samples, `summarize` tables their scored rows."""

    loader: Callable[..., list[Sample]]
    params: Mapping[str, Any]
    summarize: Callable[[pd.DataFrame], pd.DataFrame] = summarize_by_task

    def load(self, tokenizer: Any) -> list[Sample]:
        """The samples, sized with the model's `tokenizer`."""
        return self.loader(tokenizer=tokenizer, **self.params)


DATASETS: Registry[Dataset] = Registry("dataset")


def register_dataset(
    name: str, summarize: Callable[[pd.DataFrame], pd.DataFrame] = summarize_by_task
) -> Callable[[Callable[..., list[Sample]]], Callable[..., list[Sample]]]:
    """Register `load(*, tokenizer, **dataset_params) -> list[Sample]` under `name`.

    `DATASETS.build(name, params)` then binds `params` to it, rejecting (ConfigError) any key the
    loader does not take, before any model is loaded.
    """

    def decorator(load: Callable[..., list[Sample]]) -> Callable[..., list[Sample]]:
        def bind(**params: Any) -> Dataset:
            return Dataset(load, params, summarize)

        loader_params = inspect.signature(load).parameters.values()
        bind.__signature__ = inspect.Signature([p for p in loader_params if p.name != "tokenizer"])  # type: ignore[attr-defined]
        DATASETS.register(name)(bind)
        return load

    return decorator


DATASET_CONFIG_KEYS = ("name", "label")


def dataset_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset config minus its `name` and `label` keys: the keyword arguments of its loader."""
    return {k: v for k, v in cfg.items() if k not in DATASET_CONFIG_KEYS}
