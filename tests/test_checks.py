"""The shared validators: what they accept, and the one-line ConfigError they raise otherwise."""
from __future__ import annotations

import pytest

from src.checks import check_choice, check_flag, check_int, check_number
from src.registry import ConfigError


def test_accepted_values_come_back() -> None:
    assert check_int("n", 3) == 3 and check_int("n", 0, minimum=0) == 0 and check_int("n", None, optional=True) is None
    assert check_number("t", 1, 0.0, 1.0) == 1.0 and isinstance(check_number("t", 1, 0.0, 1.0), float)
    assert check_number("t", 0.0, 0.0, 1.0, low_open=False) == 0.0
    assert check_flag("f", False) is False
    assert check_choice("mode", "b", ("a", "b")) == "b"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int("block_size", 0), "block_size must be a positive int, got 0"),
        (lambda: check_int("block_size", True), "block_size must be a positive int, got True"),
        (lambda: check_int("block_size", 12.0), "block_size must be a positive int, got 12.0"),
        (lambda: check_int("sink_tokens", -1, minimum=0), "sink_tokens must be an int >= 0, got -1"),
        (lambda: check_int("max_budget", 0, optional=True, unit="tokens"), r"max_budget must be None or a positive int \(tokens\), got 0"),
        (lambda: check_number("threshold", 0.0, 0.0, 1.0), r"threshold must be a number in \(0, 1\], got 0.0"),
        (lambda: check_number("threshold", True, 0.0, 1.0), r"threshold must be a number in \(0, 1\], got True"),
        (lambda: check_number("tau", 1.5, 0.0, 1.0, low_open=False), r"tau must be a number in \[0, 1\], got 1.5"),
        (lambda: check_number("p", 1.0, 0.0, 1.0, high_open=True), r"p must be a number in \(0, 1\), got 1.0"),
        (lambda: check_flag("force_sink", "yes"), "force_sink must be true or false, got 'yes'"),
        (lambda: check_choice("gqa_permutation", "kv", ("head", "group")), "unknown gqa_permutation 'kv'; allowed: head, group"),
    ],
)
def test_bad_values_raise_one_clear_line(call, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        call()
