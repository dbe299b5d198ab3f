"""Middle truncation to a token budget, exactly as LongBench's pred.py cuts a prompt."""
from __future__ import annotations

import random

import pytest

from src.data.truncation import middle_truncate


def test_middle_truncate_keeps_head_and_tail_and_hits_the_budget(tokenizer) -> None:
    rng = random.Random(7)
    vocabulary = "river stone garden window paper music yellow quiet morning bridge village summer".split()
    text = " ".join(rng.choice(vocabulary) for _ in range(400))
    ids = tokenizer(text)["input_ids"]
    assert len(ids) > 100
    for budget in (40, 64):
        out = middle_truncate(text, tokenizer, budget)
        half = budget // 2
        # pred.py: decode(first half) + decode(last half)
        assert out == tokenizer.decode(ids[:half]) + tokenizer.decode(ids[-half:])
        assert len(tokenizer(out, add_special_tokens=False)["input_ids"]) == budget
        words = text.split()
        assert out.startswith(" ".join(words[:5])) and out.endswith(" ".join(words[-5:]))
        assert len(out) < len(text)
    # odd budgets keep 2 * (budget // 2) tokens, as int(max_length / 2) does in pred.py
    assert len(tokenizer(middle_truncate(text, tokenizer, 41), add_special_tokens=False)["input_ids"]) == 40


def test_middle_truncate_leaves_short_text_alone(tokenizer) -> None:
    assert middle_truncate("a short prompt", tokenizer, 64) == "a short prompt"
    with pytest.raises(ValueError, match="max_tokens"):
        middle_truncate("text", tokenizer, 1)


def test_middle_truncate_decodes_as_transformers_4_did(tokenizer) -> None:
    # pred.py's decode(..., skip_special_tokens=True) under transformers 4.x cleans up when the tokenizer's
    # config asks for it (the bundled one does): " ," -> ",", " ." -> ".", " ?" -> "?" in both halves
    text = "x = foo(a , b) .bar ? " * 60
    out = middle_truncate(text, tokenizer, 40)
    assert out.startswith("x = foo(a, b).bar? x = foo(a, b)")
    assert out.endswith("x = foo(a, b).bar? ")
    assert " ," not in out and " ." not in out and " ?" not in out
