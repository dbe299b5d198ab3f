"""What every RULER task family shares: the draft of one prompt, the context of one `load` call,
and the `Task` base class the families implement."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from src.data.base import TokenCounter
from src.data.ruler.haystack import Essay, load_essay
from src.data.ruler.templates import TaskText

MATCH_ALL = "ruler_string_match_all"
MATCH_PART = "ruler_string_match_part"


@dataclass(frozen=True)
class Draft:
    """One generated prompt before model templating: user text, answer cue, answers, answer-needle depths (%).

    examples: solved examples that come before the body, each a (question, answer) pair that RULER
    renders as a turn of its own: the question inside the model template, then the answer after
    it, then a newline (common_words_extraction.py). Examples that RULER puts inside the question's
    turn (variable tracking's) are part of the body instead.
    """

    body: str
    answer_prefix: str
    references: list[str]
    depth: list[float] | None = None
    examples: tuple[tuple[str, str], ...] = ()


@dataclass
class Context:
    """What every task of one `load` call shares: seed, length, tokenizer and the local data files."""

    seed: int
    length: int
    counter: TokenCounter
    depth_percent: tuple[float, ...] | None = None
    essay_path: str | None = None
    data_paths: dict[str, str | None] = field(default_factory=dict)

    @cached_property
    def essay(self) -> Essay:
        """The essay haystack, read (or substituted, with a warning) once per load."""
        return load_essay(self.essay_path)


class Task(ABC):
    """A RULER task: drafts the prompt of sample `index` with a haystack of `size` units."""

    text: TaskText
    metric = MATCH_ALL
    haystack = "none"

    def __init__(self, name: str, ctx: Context) -> None:
        self.name = name
        self.ctx = ctx

    def rng(self, index: int) -> random.Random:
        """The random source of one sample: the same for every haystack size, so sizes differ only in filler."""
        return random.Random(f"{self.ctx.seed}:{self.name}:{index}")

    def fixed_shuffle(self, items: list[Any]) -> None:
        """Shuffle in place with a generator seeded by the run seed alone, as RULER's Random(seed).shuffle."""
        random.Random(self.ctx.seed).shuffle(items)

    def min_size(self, index: int) -> int:
        """The smallest haystack size the task can be drafted with."""
        return 1

    def sample_count(self, requested: int) -> int:
        """How many samples the task can give (all requested, unless its data file holds fewer)."""
        return requested

    @abstractmethod
    def draft(self, size: int, index: int) -> Draft:
        """The prompt of sample `index` at haystack `size`."""


def distinct(make: Callable[[], str], count: int) -> list[str]:
    """`count` distinct values drawn from `make`, in the order first drawn."""
    values: dict[str, None] = {}
    while len(values) < count:
        values[make()] = None
    return list(values)
