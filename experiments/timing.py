"""Device timing shared by the benchmarks: warm up, then the median of CUDA-event timed runs."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_ms(fn: Callable[[], object], *, warmup: int = 2, budget_ms: float = 1500.0, min_runs: int = 3, max_runs: int = 20) -> float:
    """Median milliseconds of `fn` over enough runs to fill `budget_ms` (CPU: wall clock)."""
    for _ in range(warmup):
        fn()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    first = _time_once(fn, cuda)
    runs = max(min_runs, min(max_runs, int(budget_ms / max(first, 1e-3))))
    times = [first] + [_time_once(fn, cuda) for _ in range(runs - 1)]
    return statistics.median(times)


def _time_once(fn: Callable[[], object], cuda: bool) -> float:
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    start_s = time.perf_counter()
    fn()
    return (time.perf_counter() - start_s) * 1000
