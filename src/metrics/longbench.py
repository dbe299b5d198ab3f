"""LongBench (v1 and LongBench-E) per-sample metrics, reproducing the official scorers' numbers.

LongBench (THUDM/LongBench `metrics.py`, `eval.py`): every metric scores one prediction against
one reference; a sample scores the maximum over its references (starting from 0). First-line
post-processing of trec/triviaqa/samsum/lsht is done before scoring (`Sample.first_line_only`).
Quirks of the official code that change numbers are reproduced on purpose:

- classification: matched class names that are substrings of the reference are removed from the
  list *while iterating over it*, so the item after each removed one escapes removal; the
  difflib fallback is guarded by `list != 0`, which is always true, so it never runs and a
  prediction naming no class scores 0.
- ROUGE-L is the `rouge` 1.0.1 package's (not Google's rouge-score): sentences split on ".",
  words on single spaces, and, with its default `exclusive=True`, word *sets*: recall and
  precision are |union of LCS word sets| over the numbers of distinct reference / prediction
  words, F = 2PR / (P + R + 1e-8). The package rebuilds each LCS recursively, one Python frame per
  step; from LongBench's eval.py that overflows CPython's default recursion limit (1000) once a
  sentence pair needs more than 991 calls (990 for the Chinese scorer, one frame deeper), and the
  bare `except` in `rouge_score` turns that into 0. Empty predictions also score 0.
- code similarity is `fuzzywuzzy.fuzz.ratio` / 100: rounded to a whole percent, 100 for equal
  strings, 0 if one is empty. The official environment has no python-Levenshtein, so fuzzywuzzy
  falls back to difflib's SequenceMatcher; OpenCompass installs python-Levenshtein, which makes
  the same call an InDel-distance ratio (what rapidfuzz computes): `longbench_code_sim_opencompass`.
"""
from __future__ import annotations

import difflib
import functools
import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from rapidfuzz.distance import Indel

from src.metrics.registry import Metric, register_metric

if TYPE_CHECKING:
    from src.data.base import Sample

_CHINESE_PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
)
_ENGLISH_PUNCTUATION = frozenset(string.punctuation)
_ALL_PUNCTUATION = frozenset(string.punctuation + _CHINESE_PUNCTUATION)

# Nested LCS-reconstruction calls the official scorer survives (see the module docstring).
ROUGE_RECON_CALL_LIMIT = 991
ROUGE_ZH_RECON_CALL_LIMIT = 990


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _ENGLISH_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalize_zh_answer(text: str) -> str:
    """Lower-case, drop ASCII and Chinese punctuation, remove all whitespace."""
    return "".join("".join(ch for ch in text.lower() if ch not in _ALL_PUNCTUATION).split())


def token_f1(prediction_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    """Bag-of-tokens F1 (SQuAD style): 0 when no token is shared."""
    shared = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(prediction_tokens)
    recall = shared / len(reference_tokens)
    return (2 * precision * recall) / (precision + recall)


def qa_f1(prediction: str, reference: str) -> float:
    """English QA F1 over whitespace tokens of the normalised strings."""
    return token_f1(normalize_answer(prediction).split(), normalize_answer(reference).split())


def _jieba_tokens(text: str) -> list[str]:
    """jieba's default (accurate-mode) segmentation; imported on first use, only zh tasks need it.
    Its dictionary-loading lines (DEBUG, printed twice under Hydra) are silenced."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return list(jieba.cut(text, cut_all=False))


def qa_f1_zh(prediction: str, reference: str) -> float:
    """Chinese QA F1 over jieba words, each normalised, empty ones dropped."""

    def tokens(text: str) -> list[str]:
        return [word for word in map(normalize_zh_answer, _jieba_tokens(text)) if word]

    return token_f1(tokens(prediction), tokens(reference))


class _RecursionOverflow(Exception):
    """The official recursive LCS reconstruction would have exceeded Python's recursion limit."""


def _rouge_sentences(text: str) -> list[list[str]]:
    """The `rouge` package's tokenisation: pieces between '.', whitespace collapsed, split on ' '."""
    return [" ".join(piece.split()).split(" ") for piece in text.split(".") if piece]


def _lcs_words(reference: list[str], hypothesis: list[str], call_limit: int) -> set[str]:
    """Words of the LCS the `rouge` package reconstructs (its tie-breaking), as a set."""
    rows, cols = len(reference), len(hypothesis)
    table = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        above, row = table[i - 1], table[i]
        word = reference[i - 1]
        for j in range(1, cols + 1):
            row[j] = above[j - 1] + 1 if word == hypothesis[j - 1] else max(above[j], row[j - 1])
    words: set[str] = set()
    i, j, calls = rows, cols, 1
    while i > 0 and j > 0:
        if reference[i - 1] == hypothesis[j - 1]:
            words.add(reference[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
        calls += 1
    if calls > call_limit:
        raise _RecursionOverflow
    return words


def rouge_l(prediction: str, reference: str, call_limit: int = ROUGE_RECON_CALL_LIMIT) -> float:
    """ROUGE-L F of the `rouge` 1.0.1 package as LongBench calls it (0 where it raises)."""
    hypothesis, target = _rouge_sentences(prediction), _rouge_sentences(reference)
    if not hypothesis or not target:
        return 0.0
    union: set[str] = set()
    try:
        for reference_sentence in target:
            for hypothesis_sentence in hypothesis:
                union |= _lcs_words(reference_sentence, hypothesis_sentence, call_limit)
    except _RecursionOverflow:
        return 0.0
    recall = len(union) / len({w for s in target for w in s})
    precision = len(union) / len({w for s in hypothesis for w in s})
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def rouge_l_zh(prediction: str, reference: str) -> float:
    """ROUGE-L on jieba words joined by spaces (LongBench's rouge_zh_score)."""
    return rouge_l(
        " ".join(_jieba_tokens(prediction)), " ".join(_jieba_tokens(reference)), ROUGE_ZH_RECON_CALL_LIMIT
    )


def classification(prediction: str, reference: str, all_classes: Sequence[str]) -> float:
    """1/k if the reference is among the k class names left in the prediction, else 0 (official quirks)."""
    matched = [name for name in all_classes if name in prediction]
    position = 0
    while position < len(matched):
        name = matched[position]
        if name in reference and name != reference:
            matched.remove(name)  # the official loop removes from the list it iterates...
        position += 1  # ...and its iterator still advances, skipping the next item
    return 1.0 / len(matched) if reference in matched else 0.0


def _share_of_numbers(prediction: str, target: str) -> float:
    numbers = re.findall(r"\d+", prediction)
    if not numbers:
        return 0.0
    return sum(number == target for number in numbers) / len(numbers)


def count_score(prediction: str, reference: str) -> float:
    """Share of the numbers in the prediction that equal the reference count."""
    return _share_of_numbers(prediction, str(reference))


def retrieval_score(prediction: str, reference: str, pattern: str = r"Paragraph (\d+)") -> float:
    """Share of the numbers in the prediction that equal the paragraph id in the reference."""
    found = re.findall(pattern, reference)
    if not found:
        raise ValueError(f"reference {reference!r} has no paragraph id matching {pattern!r}")
    return _share_of_numbers(prediction, found[0])


def first_code_line(prediction: str) -> str:
    """The first line (after leading newlines) with no backtick, '#' or '//'; '' if none."""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            return line
    return ""


def fuzz_ratio(first: str, second: str, similarity: Callable[[str, str], float]) -> int:
    """fuzzywuzzy.fuzz.ratio: 100 if equal, 0 if either is empty, else round(100 * similarity)."""
    if first == second:
        return 100
    if not first or not second:
        return 0
    return int(round(100 * similarity(first, second)))


def difflib_similarity(first: str, second: str) -> float:
    """difflib's Ratcliff/Obershelp ratio (fuzzywuzzy without python-Levenshtein)."""
    return difflib.SequenceMatcher(None, first, second).ratio()


def indel_similarity(first: str, second: str) -> float:
    """Normalised InDel similarity, i.e. python-Levenshtein's ratio (fuzzywuzzy with it installed)."""
    return Indel.normalized_similarity(first, second)


def code_sim(
    prediction: str, reference: str, similarity: Callable[[str, str], float] = difflib_similarity
) -> float:
    """LongBench code similarity of the first code line of the prediction, in [0, 1]."""
    return fuzz_ratio(first_code_line(prediction), reference, similarity) / 100


def _best(score: Callable[[str, str], float], prediction: str, references: Iterable[str]) -> float:
    """Per-sample score: the best over the references, never below 0 (eval.py's max from 0)."""
    return max((float(score(prediction, reference)) for reference in references), default=0.0)


def _best_over_references(score: Callable[[str, str], float]) -> Metric:
    """The registered form of a one-reference `score`: the sample's best over its references."""

    def metric(prediction: str, references: list[str], sample: Sample) -> float:
        return _best(score, prediction, references)

    return metric


# The metrics whose scorer needs only (prediction, reference): each is registered as its best over references.
_REFERENCE_SCORES: dict[str, Callable[[str, str], float]] = {
    "longbench_qa_f1": qa_f1,
    "longbench_qa_f1_zh": qa_f1_zh,
    "longbench_rouge": rouge_l,
    "longbench_rouge_zh": rouge_l_zh,
    "longbench_count": count_score,
    "longbench_retrieval": retrieval_score,
    "longbench_retrieval_zh": functools.partial(retrieval_score, pattern=r"段落(\d+)"),
    "longbench_code_sim": code_sim,
    "longbench_code_sim_opencompass": functools.partial(code_sim, similarity=indel_similarity),
}
for _name, _score in _REFERENCE_SCORES.items():
    register_metric(_name)(_best_over_references(_score))


@register_metric("longbench_classification")
def _classification(prediction: str, references: list[str], sample: Sample) -> float:
    all_classes = sample.meta.get("all_classes")
    if not all_classes:
        raise ValueError(f"sample {sample.id} has no meta['all_classes']; classification needs the class list")
    return _best(lambda p, r: classification(p, r, all_classes), prediction, references)
