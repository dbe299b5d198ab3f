"""Device timing shared by the benchmarks: warm up, then the median of CUDA-event timed runs; and
the JSON record every benchmark writes (device, commit, versions, arguments, rows)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from src.provenance import measured_on

T = TypeVar("T")


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


def capture_cuda_graph(fn: Callable[[], T]) -> tuple[torch.cuda.CUDAGraph, T]:
    """`fn` captured as a CUDA graph after one warm-up call on a side stream (compiles kernels,
    allocates once), and the output tensors the captured call wrote; replay refills them."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = fn()
    return graph, output


def graph_replay_ms(fn: Callable[[], object], *, budget_ms: float = 1500.0) -> float | None:
    """Median milliseconds of `fn` replayed as a CUDA graph: its GPU time without the Python and
    launch overhead an eager call pays (what a prefill hides behind the GPU work queued before).
    None off CUDA, or when `fn` cannot be captured (it synchronises with the host)."""
    if not torch.cuda.is_available():
        return None
    try:
        graph, _ = capture_cuda_graph(fn)
    except RuntimeError:
        torch.cuda.synchronize()
        return None
    return median_ms(graph.replay, budget_ms=budget_ms)


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


def write_record(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Write the benchmark's JSON to args.out (if set); called after every stage so a run cut
    short keeps what it measured. Under torchrun (tensor parallel) only rank 0 writes."""
    if not args.out or int(os.environ.get("RANK", 0)) != 0:
        return
    record = {**measured_on(), "args": vars(args), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
