"""Decoding as the official runs did: transformers 4.x's clean-up, special tokens per harness.

Expected strings were produced by transformers 4.45.0 (LongBench v2's pinned version) itself:
`PreTrainedTokenizerFast(tokenizer_file=<the bundled SmolLM2 tokenizer.json>,
clean_up_tokenization_spaces=True).decode(ids, skip_special_tokens=True)`.
"""
from __future__ import annotations

from typing import Any

import pytest

from src.data.base import Sample
from src.data.decoding import (
    PLAIN,
    TRANSFORMERS4,
    TRANSFORMERS4_WITH_SPECIAL,
    clean_up_tokenization,
    decode_text,
)
from src.metrics import get_metric

# text -> what transformers 4.45 decoded its ids to (clean_up_tokenization_spaces=True)
TRANSFORMERS_4_45 = {
    "if x != y:": "if x!= y:",
    "x = foo(a , b) .bar ?": "x = foo(a, b).bar?",
    "He said ' hi ' and didn 't go . I 'm here , they 're ok , we 've won !":
        "He said'hi'and didn 't go. I'm here, they're ok, we've won!",
    "the word 'social'": "the word'social'",
    "The correct answer is (A).": "The correct answer is (A).",
}


@pytest.mark.parametrize("text", TRANSFORMERS_4_45)
def test_clean_up_matches_transformers_4_45(text: str) -> None:
    assert clean_up_tokenization(text) == TRANSFORMERS_4_45[text]


@pytest.mark.parametrize("text", TRANSFORMERS_4_45)
def test_decode_text_as_transformers_4_45_and_as_vllm(tokenizer: Any, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # the bundled tokenizer's config asks for the clean-up (transformers' GGUF converter sets it)
    assert tokenizer.clean_up_tokenization_spaces is True
    assert decode_text(tokenizer, ids, TRANSFORMERS4) == TRANSFORMERS_4_45[text]
    assert decode_text(tokenizer, ids, TRANSFORMERS4_WITH_SPECIAL) == TRANSFORMERS_4_45[text]
    assert decode_text(tokenizer, ids, PLAIN) == text


class _NoCleanUpTokenizer:
    """A tokenizer whose config says clean_up_tokenization_spaces: false (Qwen2.5, Qwen3)."""

    clean_up_tokenization_spaces = False

    def decode(self, ids: list[int], skip_special_tokens: bool, clean_up_tokenization_spaces: bool) -> str:
        return "if x != y :"


def test_no_clean_up_when_the_tokenizer_config_says_false() -> None:
    assert decode_text(_NoCleanUpTokenizer(), [1], TRANSFORMERS4) == "if x != y :"


def test_special_tokens_are_kept_only_for_opencompass(tokenizer: Any) -> None:
    ids = tokenizer("Paris<|im_end|>", add_special_tokens=False)["input_ids"]
    assert decode_text(tokenizer, ids, TRANSFORMERS4) == "Paris"
    assert decode_text(tokenizer, ids, PLAIN) == "Paris"
    assert decode_text(tokenizer, ids, TRANSFORMERS4_WITH_SPECIAL) == "Paris<|im_end|>"


def test_a_code_line_scores_as_in_the_official_run(tokenizer: Any) -> None:
    # eval.py's code_sim_score: fuzz.ratio = round(100 * SequenceMatcher ratio); 2 * 9 / 19 -> 95
    reference = "if x != y:"
    ids = tokenizer(reference, add_special_tokens=False)["input_ids"]
    sample = Sample(id="lcc/0", task="lcc", prompt="", references=[reference], metric="longbench_code_sim",
                    max_new_tokens=64, decoding=TRANSFORMERS4)
    score = get_metric(sample.metric)
    assert score(decode_text(tokenizer, ids, sample.decoding), sample.references, sample) == 0.95
    assert score(decode_text(tokenizer, ids, PLAIN), sample.references, sample) == 1.0
