"""RULER's aggregation tasks (scripts/data/synthetic/common_words_extraction.py and
freq_words_extraction.py): the words repeated most often in a numbered list (cwe) or a
Zipf-distributed coded text (fwe)."""
from __future__ import annotations

import math
import random
import string

from src.data.ruler.haystack import key_words, plain_words
from src.data.ruler.task import Context, Draft, Task, distinct
from src.data.ruler.templates import CWE_TEXT, FWE_TEXT


class CommonWords(Task):
    """cwe: list the 10 words repeated most often in a numbered word list; size is its number of distinct words.

    As RULER, one solved example comes first (a turn of its own under a model template other than
    "base"), and below 4096 tokens the repeats drop from 30/3 to 6/1.
    Beyond our ~1,600 single words the words become adjective-noun pairs (RULER switches to a larger list).
    """

    text = CWE_TEXT
    freq_cw = 30
    freq_ucw = 3
    num_cw = 10

    def min_size(self, index: int) -> int:
        return self.num_cw

    def draft(self, size: int, index: int) -> Draft:
        rng = self.rng(index)
        short = self.ctx.length < 4096
        shot_context, shot_answer = self._example(rng, *((20, 3, 1) if short else (40, 10, 3)))
        context, answer = self._example(rng, size, *((6, 1) if short else (self.freq_cw, self.freq_ucw)))
        shot = (CWE_TEXT.template.format(context=shot_context), f"{CWE_TEXT.answer_prefix} {_numbered(shot_answer)}")
        return Draft(CWE_TEXT.template.format(context=context), CWE_TEXT.answer_prefix, answer, examples=(shot,))

    def _example(self, rng: random.Random, num_words: int, common: int, uncommon: int) -> tuple[str, list[str]]:
        pool = plain_words() if num_words <= len(plain_words()) else key_words()
        chosen = rng.sample(pool, num_words)
        words = chosen[: self.num_cw] * common + chosen[self.num_cw :] * uncommon
        self.fixed_shuffle(words)
        return _numbered(words), chosen[: self.num_cw]


def _numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {word}" for i, word in enumerate(words))


def riemann_zeta(alpha: float) -> float:
    """zeta(alpha) for alpha > 1, the normaliser of RULER's word-frequency law (Euler-Maclaurin, error < 1e-9)."""
    n = 50
    head = sum(k**-alpha for k in range(1, n))
    return head + n ** (1 - alpha) / (alpha - 1) + n**-alpha / 2 + alpha * n ** (-alpha - 1) / 12


class FrequentWords(Task):
    """fwe: name the three most frequent coded words of a Zipf-distributed text; size is its word count.

    Word k of a random 6-letter vocabulary appears floor(size * k^-alpha / zeta(alpha)) times; the
    most frequent is '...' (noise), so the answers are words 2 to 4. Vocabulary: budget // 50 words.
    """

    text = FWE_TEXT
    alpha = 2.0
    word_length = 6

    def __init__(self, name: str, ctx: Context) -> None:
        super().__init__(name, ctx)
        self.vocab_size = (ctx.length - FWE_TEXT.tokens_to_generate) // 50
        if self.vocab_size < 4:
            raise ValueError(f"length {ctx.length} is too small for RULER task fwe: it needs at least 250 tokens")

    def min_size(self, index: int) -> int:
        return math.ceil(riemann_zeta(self.alpha) * 4**self.alpha)

    def draft(self, size: int, index: int) -> Draft:
        rng = self.rng(index)
        ranked = sorted(distinct(lambda: "".join(rng.choices(string.ascii_lowercase, k=self.word_length)),
                                 self.vocab_size))
        self.fixed_shuffle(ranked)
        ranked[0] = "..."
        norm = riemann_zeta(self.alpha)
        words = [w for k, w in enumerate(ranked, 1) for _ in range(int(size * k**-self.alpha / norm))]
        self.fixed_shuffle(words)
        return Draft(FWE_TEXT.template.format(context=" ".join(words)), FWE_TEXT.answer_prefix, ranked[1:4])
