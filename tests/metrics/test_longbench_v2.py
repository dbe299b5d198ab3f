"""LongBench v2 metrics: the official answer-letter extraction and OpenCompass's first_option."""
from __future__ import annotations

import pytest

from src.data.base import Sample
from src.metrics import get_metric
from src.metrics import longbench_v2 as m

SAMPLE = Sample(id="x1", task="longbench_v2", prompt="", references=["B"], metric="longbench_v2_choice", max_new_tokens=128)


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("Reasoning... The correct answer is (B).", "B"),
        ("**The correct answer is (C)**", "C"),
        ("The correct answer is D, not (A)", "D"),
        ("The correct answer is (E)", None),
        ("the correct answer is (A)", None),
        ("I think it is A.", None),
    ],
)
def test_official_answer_extraction(response: str, letter: str | None) -> None:
    assert m.extract_choice(response) == letter
    assert get_metric("longbench_v2_choice")(response, ["B"], SAMPLE) == float(letter == "B")


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("Let us see. The correct answer is (B)", "B"),
        ("answer: c or Answer: D", "D"),  # a letter after a space at the very end wins before "Answer:"
        ("答案是A", "A"),
        # no answer at all: '1.\s?(.*?)$' captures "90 a Bank opened", whose first option letter is B
        ("In 1990 a Bank opened", "B"),
        ("", ""),
    ],
)
def test_opencompass_first_option(response: str, letter: str) -> None:
    assert m.first_option(response) == letter


def test_opencompass_first_option_falls_through_a_lowercase_capture() -> None:
    # "answer: c" matches the case-insensitive pattern but holds no option letter, so the cascade
    # continues; the cushion pattern '([ABCD]):' then finds nothing and the bare '([ABCD])' finds none
    assert m.first_option("answer: c") == ""
    assert m.first_option("The answer is (C)") == "C"
