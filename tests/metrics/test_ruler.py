"""RULER's string-match scores, registered under their RULER names."""
from __future__ import annotations

import pytest

from src.metrics import get_metric
from src.metrics.ruler import string_match_all, string_match_part


@pytest.mark.parametrize(
    ("prediction", "all_score", "part_score"),
    [
        ("1234567, 7654321 and ABC-DEF.", 1.0, 1.0),  # all three, case-insensitive
        ("The numbers are 1234567 and\nabc-def", 2 / 3, 1.0),  # two of three
        ("\x00 7654321 \x1f", 1 / 3, 1.0),  # control characters do not hide a match
        ("1234568 and 765432", 0.0, 0.0),  # near misses do not count
        ("", 0.0, 0.0),
    ],
)
def test_string_match_scores(prediction: str, all_score: float, part_score: float) -> None:
    references = ["1234567", "7654321", "abc-def"]
    assert get_metric("ruler_string_match_all") is string_match_all
    assert get_metric("ruler_string_match_part") is string_match_part
    assert string_match_all(prediction, references, None) == pytest.approx(all_score)
    assert string_match_part(prediction, references, None) == part_score
