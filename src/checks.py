"""The small validators every configurable part uses, so a bad value reads the same everywhere.

Each raises ConfigError with one line naming the parameter, what is allowed and the value given,
e.g. "block_size must be a positive int, got 0", and returns the value when it is fine. A bool is
never accepted as a number (YAML's `true` is not 1).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from src.registry import ConfigError

T = TypeVar("T")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, minimum: int = 1, optional: bool = False, unit: str | None = None) -> Any:
    """An int >= minimum (or None when optional); `unit` is named in the message, e.g. "tokens"."""
    if (optional and value is None) or (_is_int(value) and value >= minimum):
        return value
    allowed = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if optional:
        allowed = f"None or {allowed}"
    if unit:
        allowed = f"{allowed} ({unit})"
    raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def check_number(
    name: str, value: Any, low: float, high: float, *, low_open: bool = True, high_open: bool = False
) -> float:
    """A number in the interval from low to high (open or closed at each end), returned as float."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and (low < value if low_open else low <= value) and (value < high if high_open else value <= high):
        return float(value)
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    raise ConfigError(f"{name} must be a number in {interval}, got {value!r}")


def check_flag(name: str, value: Any) -> bool:
    """A real bool (true or false in YAML)."""
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def check_choice(kind: str, value: T, allowed: Sequence[T]) -> T:
    """One of `allowed`; the message reads "unknown <kind> <value>; allowed: a, b, c"."""
    if value in allowed:
        return value
    raise ConfigError(f"unknown {kind} {value!r}; allowed: {', '.join(map(str, allowed))}")
