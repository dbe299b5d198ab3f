"""Benchmarks as samples, registered by name in `DATASETS` when this package is imported.

    base.py              Sample, the Dataset registry and the default summary
    prompting.py         template filling and the exact text the model reads
    truncation.py        the official harnesses' middle truncation
    hub.py               hub / local / fixture sources
    ruler/               RULER, generated offline          (dataset "ruler")
    longbench.py         LongBench v1 and LongBench-E       (dataset "longbench")
    longbench_prompts.py their prompts, budgets, metrics and categories, as data
    longbench_v2.py      LongBench v2                       (dataset "longbench_v2")
"""
from src.data import longbench, longbench_v2, ruler
from src.data.base import DATASETS, Dataset, Sample

__all__ = ["DATASETS", "Dataset", "Sample", "longbench", "longbench_v2", "ruler"]
