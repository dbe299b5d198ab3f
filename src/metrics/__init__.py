"""Per-sample metrics, registered by name in `METRICS` when this package is imported.

    registry.py      METRICS, register_metric, get_metric
    ruler.py         RULER's string matches
    longbench.py     LongBench v1 / LongBench-E scorers
    longbench_v2.py  LongBench v2's answer-letter scorers
"""
from src.metrics import longbench, longbench_v2, ruler
from src.metrics.registry import METRICS, Metric, get_metric, register_metric

__all__ = ["METRICS", "Metric", "get_metric", "register_metric", "longbench", "longbench_v2", "ruler"]
