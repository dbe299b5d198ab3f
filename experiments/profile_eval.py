"""Where the evaluation loop's time goes, for one job: per-sample prefill and decode time,
generated tokens and decode ms per token, at one or more decode group sizes; optionally a
torch.profiler table of one prefill with its counts of host synchronisations and kernel launches.

    python -m experiments.profile_eval method=pbs dataset.length=4096 dataset.num_samples=2 \
        --decode-batch-sizes 1 64 --profile-prefill 25 --out $OUT/profile_pbs_4k.json

Positional arguments are the overrides of `python -m src.run` (model=..., method=..., dataset.*,
eval.*), composed with the repository's conf/; the samples are that job's, in its order, and go
through the loop a run uses (src.eval.generate.generate_all). Each decode group size runs every
sample again, prefill included. A pass's first prefill pays one-time costs (Triton compiles,
allocator growth), so it is reported apart from the mean of the others. Nothing is written to
results/; the JSON (--out) holds the summaries, the per-sample rows and the profile.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import torch

from experiments.timing import write_record
from src.configs import compose_config
from src.data.base import Sample
from src.eval.generate import DecodeLimits, generate_all, prefill, prompt_ids
from src.eval.pipeline import set_up_job
from src.attention.stats import StatsRecorder
from src.models.loader import LoadedModel

# profiler events that stall the host on the device, and those that launch work on it
SYNC_EVENTS = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpyAsync")
LAUNCH_EVENTS = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC")
SUMMARY_COLUMNS = (
    "decode_batch_size", "samples", "first_prefill_s", "mean_prefill_s", "decode_s_per_sample",
    "output_tokens_per_sample", "decode_ms_per_token", "other_s_per_sample", "wall_s", "samples_per_s", "peak_mem_gb",
)


def loop_pass(loaded: LoadedModel, samples: list[Sample], limits: DecodeLimits, stats: StatsRecorder) -> tuple[list[dict[str, Any]], float]:
    """Every sample through the evaluation loop once: its row, and the pass's wall time."""
    density: dict[str, float | None] = {}

    def take_density(sample: Sample) -> None:
        density[sample.id] = stats.summary()["density"]
        stats.reset()

    stats.reset()
    start = time.perf_counter()
    rows = [
        {
            "decode_batch_size": limits.batch_size, "id": g.sample.id, "task": g.sample.task,
            "input_tokens": g.input_tokens, "prefill_s": round(g.prefill_s, 5), "output_tokens": g.output_tokens,
            "max_new_tokens": g.sample.max_new_tokens, "decode_s": round(g.decode_s, 5), "decode_batch": g.decode_batch,
            "density": density[g.sample.id],
        }
        for g in generate_all(loaded.model, loaded.tokenizer, samples, limits,
                              max_input_tokens=loaded.max_length, on_prefill=take_density)
    ]
    return rows, time.perf_counter() - start


def summarize(rows: list[dict[str, Any]], wall_s: float, batch_size: int, peak_mem_gb: float | None) -> dict[str, Any]:
    """One pass in numbers: prefill (first apart), decode per sample and per generated token, the
    loop's other time per sample (tokenization, cache batching), throughput."""
    prefill_s = [r["prefill_s"] for r in rows]
    decode_s = sum(r["decode_s"] for r in rows)
    tokens = sum(r["output_tokens"] for r in rows)
    n = len(rows)
    return {
        "decode_batch_size": batch_size,
        "samples": n,
        "first_prefill_s": round(prefill_s[0], 4),
        "mean_prefill_s": round(statistics.mean(prefill_s[1:] or prefill_s), 4),
        "decode_s_per_sample": round(decode_s / n, 4),
        "output_tokens_per_sample": round(tokens / n, 1),
        "decode_ms_per_token": round(decode_s / tokens * 1000, 3) if tokens else None,
        "other_s_per_sample": round((wall_s - sum(prefill_s) - decode_s) / n, 4),
        "wall_s": round(wall_s, 2),
        "samples_per_s": round(n / wall_s, 3),
        "peak_mem_gb": peak_mem_gb,
    }


def prefill_profile(loaded: LoadedModel, sample: Sample, row_limit: int) -> dict[str, Any]:
    """torch.profiler over one prefill of `sample` (after the passes, so kernels are compiled):
    the top operators by self device time (CPU time off CUDA) and the sync / launch counts."""
    cuda = loaded.model.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    ids = prompt_ids(loaded.tokenizer, sample)
    with torch.profiler.profile(activities=activities) as profiler:
        prefill(loaded.model, sample, ids)
    events = profiler.key_averages()
    counts = {name: sum(e.count for e in events if e.key == name) for name in (*SYNC_EVENTS, *LAUNCH_EVENTS)}
    table = events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=row_limit)
    return {"kind": "prefill_profile", "id": sample.id, "input_tokens": int(ids.shape[1]), "counts": counts, "table": table}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="overrides as for python -m src.run, e.g. method=pbs dataset.length=8192")
    parser.add_argument("--decode-batch-sizes", type=positive_int, nargs="+", default=None,
                        help="decode group sizes to time, one pass each (default: the job's eval.decode_batch_size)")
    parser.add_argument("--profile-prefill", type=int, default=0, metavar="ROWS",
                        help="also profile one prefill and print this many operator rows")
    parser.add_argument("--per-sample", action="store_true", help="print every sample's row")
    parser.add_argument("--out", default=None, help="JSON record (summaries, sample rows, profile)")
    args = parser.parse_args()
    try:
        profile_job(args)
    except ValueError as err:  # ConfigError and every other bad-input error: one line, as src.run
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def profile_job(args: argparse.Namespace) -> None:
    """The passes (and the profile) that `args` asks for, printed and written to args.out."""
    cfg = compose_config(overrides=args.overrides)
    loop, stats, method, _, loaded, samples = set_up_job(cfg)
    device = loaded.model.device

    record: list[dict[str, Any]] = []
    summaries = []
    for batch_size in args.decode_batch_sizes or [loop.decode_batch_size]:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rows, wall_s = loop_pass(loaded, samples, replace(loop.decode_limits, batch_size=batch_size), stats)
        peak = round(torch.cuda.max_memory_allocated(device) / 1e9, 2) if device.type == "cuda" else None
        summaries.append({"kind": "summary", **summarize(rows, wall_s, batch_size, peak)})
        record += [summaries[-1], *({"kind": "sample", **row} for row in rows)]
        write_record(args, record)
        if args.per_sample:
            for row in rows:
                print(row, flush=True)
    if args.profile_prefill:
        profile = prefill_profile(loaded, samples[0], args.profile_prefill)
        record.append(profile)
        write_record(args, record)
        print(f"one prefill of {profile['id']} ({profile['input_tokens']} tokens):\n{profile['table']}")
        print("host syncs and launches:", {k: v for k, v in profile["counts"].items() if v})

    print(f"{loaded.name} | {method.name} | {cfg.dataset.label} | {device}")
    print(" | ".join(SUMMARY_COLUMNS))
    for summary in summaries:
        print(" | ".join(str(summary[c]) for c in SUMMARY_COLUMNS))


if __name__ == "__main__":
    main()
