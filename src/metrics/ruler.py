"""RULER's scores (scripts/eval/synthetic/constants.py), one prediction at a time.

string_match_all: the fraction of references found in the prediction (niah, vt, cwe, fwe);
string_match_part: 1 if any reference is found (qa). Matching is case-insensitive substring search
on the prediction after RULER's post-processing (strip, control characters to newlines).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from src.metrics.registry import register_metric

if TYPE_CHECKING:
    from src.data.base import Sample

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess_prediction(prediction: str) -> str:
    """RULER's postprocess_pred: strip, turn control characters into newlines, strip again."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def _found(prediction: str, references: list[str]) -> list[bool]:
    text = postprocess_prediction(prediction).lower()
    return [reference.lower() in text for reference in references]


@register_metric("ruler_string_match_all")
def string_match_all(prediction: str, references: list[str], sample: Sample | None = None) -> float:
    """Fraction of `references` that occur in `prediction` (case-insensitive)."""
    if not references:
        raise ValueError("string_match_all needs at least one reference, got none")
    found = _found(prediction, references)
    return sum(found) / len(found)


@register_metric("ruler_string_match_part")
def string_match_part(prediction: str, references: list[str], sample: Sample | None = None) -> float:
    """1.0 if any of `references` occurs in `prediction` (case-insensitive), else 0.0."""
    if not references:
        raise ValueError("string_match_part needs at least one reference, got none")
    return float(any(_found(prediction, references)))
