"""Per-sample metrics by name: score(prediction, references, sample) -> float in [0, 1]."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from src.registry import Registry

if TYPE_CHECKING:
    from src.data.base import Sample

Metric = Callable[[str, list[str], "Sample"], float]

METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str) -> Callable[[Metric], Metric]:
    """Register a scoring function under `name`."""

    def decorator(fn: Metric) -> Metric:
        METRICS.register(name)(lambda: fn)
        return fn

    return decorator


def get_metric(name: str) -> Metric:
    return METRICS.build(name)
