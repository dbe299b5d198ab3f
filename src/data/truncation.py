"""Prompt truncation to a token budget, as the benchmarks' official harnesses do it."""
from __future__ import annotations

from typing import Any

from src.data.decoding import TRANSFORMERS4, decode_text


def middle_truncate(text: str, tokenizer: Any, max_tokens: int) -> str:
    """`text` cut to `max_tokens` tokens by dropping its middle, exactly as LongBench's pred.py does.

    Tokens are counted with the tokenizer's default special tokens (a BOS counts, as in pred.py),
    the first and last `max_tokens // 2` are kept and decoded separately without special tokens,
    as transformers 4.x decoded them (its clean-up when the tokenizer's config asks for it, see
    `src.data.decoding`; LongBench and LongBench v2 both truncate with a 4.x tokenizer).
    Texts within budget are returned unchanged. LongBench v2's pred.py decodes the two halves
    together and keeps one more tail token for odd budgets; for even budgets the only difference
    is a multi-byte character split at the seam.
    """
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2 to keep a head and a tail, got {max_tokens}")
    ids = tokenizer(text)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    half = max_tokens // 2
    return decode_text(tokenizer, ids[:half], TRANSFORMERS4) + decode_text(tokenizer, ids[-half:], TRANSFORMERS4)
