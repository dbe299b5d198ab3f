"""Offline raw material for RULER: word lists, the noise sentence, the essay haystack, and the search
for the largest haystack that fits a token budget.

RULER draws needle keys and common words from wonderwords' English lists and its essay haystack
from Paul Graham's essays; neither ships here. The word lists are our own (src/data/fixtures/) and
the essay haystack is read from a local file when one is given, else from an original prose text.
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from src.registry import ConfigError

log = logging.getLogger(__name__)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
SUBSTITUTE_ESSAY = FIXTURES / "ruler_essay.txt"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])")


@lru_cache(maxsize=None)
def word_list(kind: str) -> tuple[str, ...]:
    """Our English `kind` list ("nouns", "adjectives" or "verbs"): lower-case, unique, sorted."""
    return tuple(sorted(set((FIXTURES / f"ruler_{kind}.txt").read_text().split())))


@lru_cache(maxsize=None)
def key_words() -> tuple[str, ...]:
    """Needle keys as RULER builds them from wonderwords: every "adjective-noun" pair, sorted."""
    return tuple(sorted({f"{adj}-{noun}" for adj in word_list("adjectives") for noun in word_list("nouns")}))


@lru_cache(maxsize=None)
def plain_words() -> tuple[str, ...]:
    """Single words for common-words extraction: nouns, adjectives and verbs together, sorted."""
    return tuple(sorted(set(word_list("nouns") + word_list("adjectives") + word_list("verbs"))))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: a break after . ! or ? before a capital or digit (stands in for nltk's punkt)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


@dataclass(frozen=True)
class Essay:
    """The essay haystack as words, and where they came from (recorded with every sample)."""

    words: tuple[str, ...]
    source: str

    def sentences(self, num_words: int) -> list[str]:
        """Sentences of the first `num_words` words, the essay repeated as often as needed (as RULER)."""
        repeats = -(-num_words // len(self.words))
        return split_sentences(" ".join((self.words * repeats)[:num_words]))


def load_essay(path: str | None) -> Essay:
    """The essay haystack from `path` (RULER's PaulGrahamEssays.json {"text": ...} or plain text).

    Without a path, the original prose in fixtures/ruler_essay.txt stands in, and a warning says so:
    scores on the essay tasks are then not comparable with published RULER numbers.
    """
    if path is None:
        log.warning(
            "RULER: no essay_path given, so the essay-haystack tasks use our own prose (%s) instead of "
            "Paul Graham's essays; set dataset.essay_path=/path/to/PaulGrahamEssays.json for published numbers",
            SUBSTITUTE_ESSAY.name,
        )
        return Essay(tuple(_words(SUBSTITUTE_ESSAY.read_text())), "substitute")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"essay_path {path!r} is not a file; give RULER's PaulGrahamEssays.json or a text file")
    text = file.read_text()
    if file.suffix == ".json":
        text = json.loads(text)["text"]
    words = _words(text)
    if not words:
        raise ConfigError(f"essay_path {path!r} holds no text")
    return Essay(tuple(words), file.name)


def _words(text: str) -> list[str]:
    return re.sub(r"\s+", " ", text).strip().split(" ")


def largest_fitting_size(measure: Callable[[int], int], budget: int, low: int, guess: int) -> tuple[int, int] | None:
    """The largest size >= `low` whose `measure` (tokens) is <= `budget`, with its tokens; None if `low` is over.

    RULER binary-searches its haystack size; this search brackets the answer by extrapolating from
    `guess` (tokens grow about linearly with size) and then alternates interpolation with bisection,
    so it finds the same size in a handful of tokenizations.
    """
    tokens: dict[int, int] = {}

    def fits(size: int) -> bool:
        tokens[size] = measure(size)
        return tokens[size] <= budget

    if not fits(low):
        return None
    lo, size = low, max(guess, low + 1)
    while fits(size):
        slope = max((tokens[size] - tokens[low]) / (size - low), 1e-3)
        lo, size = size, size + math.ceil((budget - tokens[size]) / slope) + 1
    hi, interpolate = size, True
    while hi - lo > 1:
        if interpolate:
            step = (budget - tokens[lo]) * (hi - lo) // max(tokens[hi] - tokens[lo], 1)
            size = min(max(lo + step, lo + 1), hi - 1)
        else:
            size = (lo + hi) // 2
        interpolate = not interpolate
        if fits(size):
            lo = size
        else:
            hi = size
    return lo, tokens[lo]
