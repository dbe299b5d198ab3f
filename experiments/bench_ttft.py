"""End-to-end time to first token (prefill + first token) through a real transformers model, per
method and length, with dense SDPA in the same run (the paper's Figure 4 / Table 9).

    python -m experiments.bench_ttft --model smollm2_rope16x --methods dense pbs meanpooling \
        --lengths 8192 16384 32768 65536 131072 --out $OUT/ttft_smollm2.json
    python -m experiments.bench_ttft --model llama3.1-8b_random --methods dense pbs \
        --override pbs:threshold=0.25 --lengths 8192 32768 131072 --out $OUT/ttft_llama8b.json
    torchrun --nproc-per-node 2 -m experiments.bench_ttft --model qwen2.5-7b-1m \
        --model-set tp_size=2 --methods dense pbs --lengths 262144 --out $OUT/ttft_qwen7b_tp2.json

Prompts: a RULER prompt of the target length for real models (real attention structure); random
token ids for random-weight twins, whose attention is near uniform, so their sparse methods are
given a threshold that yields the realistic density of the paper's Table 5 (~0.22 at 128K); the
measured density is recorded next to every time. Median of --runs timed prefills after a warm-up,
CUDA events, peak GPU memory per (method, length).
"""
from __future__ import annotations

import argparse
from typing import Any

import torch
from omegaconf import DictConfig

from experiments.timing import median_ms, write_record
from src.attention.integration import install_method
from src.attention.methods import build_method
from src.configs import compose_config
from src.data import DATASETS
from src.data.prompting import model_input_text
from src.attention.stats import StatsRecorder
from src.models.loader import load_model


def scoped(group: str, assignment: str) -> str:
    """A script's `key=value` (or `+key=value`, adding a key) as the Hydra override of `group.key`."""
    add = "+" if assignment.startswith("+") else ""
    return f"{add}{group}.{assignment.removeprefix('+')}"


def method_config(name: str, overrides: list[str]) -> DictConfig:
    """`conf/method/<name>.yaml` composed with the METHOD:key=value overrides that name it."""
    targeted = (item.partition(":") for item in overrides)
    return compose_config({"method": name}, [scoped("method", a) for target, _, a in targeted if target == name]).method


def prompt_ids(loaded: Any, length: int, random_tokens: bool) -> torch.Tensor:
    if random_tokens:
        gen = torch.Generator().manual_seed(length)
        return torch.randint(100, len(loaded.tokenizer) - 1, (1, length), generator=gen)
    ruler = DATASETS.build("ruler", {"tasks": ["niah_multikey_2"], "length": length, "num_samples": 1})
    text = model_input_text(ruler.load(loaded.tokenizer)[0], loaded.tokenizer)
    return loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--methods", nargs="+", default=["dense", "pbs"])
    parser.add_argument("--model-set", nargs="*", default=[], help="key=value on the model config, e.g. load.tokenizer_path=DIR (+key=value adds a key)")
    parser.add_argument("--override", nargs="*", default=[], help="METHOD:key=value, e.g. pbs:threshold=0.25")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384, 32768])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--warmup", choices=("each", "first"), default="each",
        help="an untimed prefill before the timed ones at every length (each), or only at the first "
        "length of each method (first: Triton compiles once per kernel specialization, not per length, "
        "so long lengths need not pay a second forward)",
    )
    parser.add_argument("--random-tokens", action="store_true", help="random ids instead of a RULER prompt")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    loaded = load_model(compose_config({"model": args.model}, [scoped("model", a) for a in args.model_set]).model)
    device = loaded.model.device
    rows: list[dict[str, Any]] = []
    for position, length in enumerate(args.lengths):
        warmup = 1 if args.warmup == "each" or position == 0 else 0
        ids = prompt_ids(loaded, length, args.random_tokens).to(device)
        for name in args.methods:
            stats = StatsRecorder()
            method = build_method(method_config(name, args.override), stats)
            install_method(loaded.model, method)

            def prefill() -> torch.Tensor:
                with torch.inference_mode():
                    logits = loaded.model(input_ids=ids, use_cache=True, logits_to_keep=1).logits
                    return logits[:, -1].argmax(-1)

            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                ms = median_ms(prefill, warmup=warmup, budget_ms=0, min_runs=args.runs, max_runs=args.runs)
            except torch.OutOfMemoryError:
                rows.append({"model": loaded.name, "method": name, "length": int(ids.shape[1]), "target_length": length, "ttft_ms": None, "note": "OOM"})
                write_record(args, rows)
                continue
            summary = stats.summary()
            rows.append(
                {
                    "model": loaded.name,
                    "method": name,
                    "length": int(ids.shape[1]),
                    "target_length": length,
                    "ttft_ms": round(ms, 2),
                    "runs": args.runs,
                    "warmed_up": bool(warmup),
                    "density": None if summary["density"] is None else round(summary["density"], 4),
                    "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
                }
            )
            add_speedups(rows)
            write_record(args, rows)
            print(rows[-1], flush=True)
    print("model | method | length | ttft_ms | speedup_vs_sdpa | density | peak_mem_gb")
    for r in rows:
        print(" | ".join(str(r.get(c)) for c in ("model", "method", "length", "ttft_ms", "speedup_vs_sdpa", "density", "peak_mem_gb")))


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """speedup_vs_sdpa of every timed row whose length has a dense time in the same run."""
    dense = {r["length"]: r["ttft_ms"] for r in rows if r["method"] == "dense" and r["ttft_ms"]}
    for row in rows:
        if row.get("ttft_ms") and dense.get(row["length"]):
            row["speedup_vs_sdpa"] = round(dense[row["length"]] / row["ttft_ms"], 3)


if __name__ == "__main__":
    main()
