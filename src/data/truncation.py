"""Middle truncation by tokens, as LongBench's pred.py does: keep the head and the tail."""
from __future__ import annotations

from typing import Any


def middle_truncate(text: str, tokenizer: Any, max_tokens: int) -> str:
    """`text` cut to at most `max_tokens` tokens by dropping the middle (first and last halves kept)."""
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2 to keep a head and a tail, got {max_tokens}")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    half = max_tokens // 2
    head = tokenizer.decode(ids[:half], skip_special_tokens=True)
    tail = tokenizer.decode(ids[len(ids) - (max_tokens - half) :], skip_special_tokens=True)
    return head + tail
