"""Density and attention coverage of every baseline, official rule vs the earlier one (issue 12).

    python -m experiments.method_coverage --model smollm2 --length 8192 \
        --out results/analysis/method_coverage_smollm2_8k          # CPU, torch estimates, minutes

Captures post-RoPE q, k of every layer on one RULER prompt (experiments/capture_qkv.py), then
runs each method of SETTINGS as conf/method/<name>.yaml composes it (the official rule, the
default) and with the switch that restores the earlier behaviour, and reports per setting the
computed fraction of causal blocks or pairs (the plan's density) and the fraction of the true
attention mass they hold (coverage), each the mean over heads and layers. Block plans are scored
on block masses (src/analysis/coverage.py); MInference's plan is token-level, so it is scored on
its computed token mask. Writes <out>/method_coverage.json and <out>/method_coverage.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from experiments.analysis_coverage import build_parts
from src.analysis.coverage import block_masses, identity_perm, plan_coverage, query_block_attention
from src.attention.kernels.block_column.naive import computed_mask
from src.attention.kernels.vertical_slash.naive import vertical_slash_token_mask
from src.attention.ops import causal_attention_rows
from src.attention.plan import BlockSparsePlan, VerticalSlashPlan
from src.provenance import git_commit

BLOCK = 128  # every method's block size in conf/method (the query blocks of the true attention)

# (method, setting label, config overrides): the default first, then the earlier behaviour.
SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("meanpooling", "official (diagonal scored + forced, zero-padded last block)", {}),
    ("meanpooling", "earlier (diagonal left out of the estimate, mean last block)",
     {"score_diagonal": False, "last_block_pooling": "mean"}),
    ("xattention", "official (first-chunk rule)", {}),
    ("xattention", "earlier (uniform rule)", {"first_chunk": "uniform"}),
    ("flexprefill", "official (min_budget None = 1 token)", {}),
    ("flexprefill", "earlier (min_budget 1024)", {"min_budget": 1024}),
    ("pbs", "default (causal permutation scoring, zero-padded last block)", {}),
    ("pbs", "authors' permutation scoring (full segments)", {"permutation_scoring": "full_segments"}),
    ("pbs", "earlier (mean last block)", {"last_block_pooling": "mean"}),
    ("minference", "official (MInference kernel semantics)", {}),
    ("minference", "token_union (pattern only)", {"kernel_semantics": "token_union"}),
]


def token_mask(plan: VerticalSlashPlan, b: int, h: int, length: int) -> torch.Tensor:
    """bool [L, L]: the query-key pairs a MInference plan computes for one (batch, head)."""
    if plan.index is not None:
        return computed_mask(plan.index, b, h)
    return vertical_slash_token_mask(plan.vertical_indices[b, h], plan.slash_offsets[b, h], length)


def token_plan_coverages(plans: list[VerticalSlashPlan], q: torch.Tensor, k: torch.Tensor, scale: float) -> list[torch.Tensor]:
    """Coverage float [B, Hq] of each token-level plan: the true causal attention inside its mask
    (one pass over the attention, one head at a time, shared by every plan)."""
    batch, heads, length, _ = q.shape
    coverages = [torch.zeros(batch, heads, dtype=torch.float64) for _ in plans]
    positions = identity_perm(batch, heads, length, q.device)
    for rows in causal_attention_rows(q, k, positions, scale=scale, rows_per_chunk=length):
        total = rows.probs.sum(dtype=torch.float64)
        for plan, coverage in zip(plans, coverages):
            mask = token_mask(plan, rows.batch, rows.head, length)
            coverage[rows.batch, rows.head] = torch.where(mask, rows.probs, 0.0).sum(dtype=torch.float64) / total
    return coverages


def layer_numbers(methods: list[Any], q: torch.Tensor, k: torch.Tensor, scale: float) -> list[tuple[float, float]]:
    """(density, coverage) of every method on one layer, means over heads."""
    plans = [method.plan(q, k, scale=scale) for method in methods]
    token_plans = [plan for plan in plans if isinstance(plan, VerticalSlashPlan)]
    token_coverage = dict(zip(map(id, token_plans), token_plans and token_plan_coverages(token_plans, q, k, scale)))
    rows = query_block_attention(q, k, scale=scale, block_size=BLOCK)
    numbers = []
    for plan in plans:
        if isinstance(plan, BlockSparsePlan):
            coverage, density, _ = plan_coverage(plan, block_masses(rows, plan.key_order, plan.block_size), q.shape[2])
        elif isinstance(plan, VerticalSlashPlan):
            coverage, density = token_coverage[id(plan)], plan.density(q.shape[2])
        else:  # a dense plan (a length below the method's sparse range)
            coverage = density = torch.ones(1)
        numbers.append((float(density.double().mean()), float(coverage.double().mean())))
    return numbers


def markdown(results: dict[str, Any]) -> str:
    """The side-by-side table: per method and setting, mean density and coverage over layers."""
    cfg = results["config"]
    lines = [
        f"Method selection on {cfg['model']} at {cfg['length']} tokens (RULER {cfg['task']}), "
        f"{len(cfg['layers'])} layers, torch estimates; means over heads and layers "
        f"(`python -m experiments.method_coverage`, commit {cfg['commit'][:7]}).",
        "",
        "| method | setting | density | coverage |",
        "|---|---|---:|---:|",
    ]
    for row in results["settings"]:
        lines.append(f"| {row['method']} | {row['setting']} | {row['density']:.3f} | {row['coverage']:.3f} |")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--task", default="niah_single_1", help="RULER task of the prompt")
    parser.add_argument("--layers", type=int, nargs="*", default=None, help="layers (default: all)")
    parser.add_argument("--out", required=True)
    return parser.parse_args()


def main() -> None:
    from experiments.capture_qkv import capture

    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = [(name, label, build_parts(name, {**overrides, "estimate_backend": "torch"})) for name, label, overrides in SETTINGS]
    layers = capture(args.model, args.length, list(args.layers or range(1 << 12)), args.task)
    sums = [[0.0, 0.0] for _ in methods]
    per_layer: dict[str, list[list[float]]] = {f"{name}: {label}": [] for name, label, _ in methods}
    for layer, tensors in sorted(layers.items()):
        q, k = tensors["q"].float(), tensors["k"].float()
        numbers = layer_numbers([method for _, _, method in methods], q, k, q.shape[-1] ** -0.5)
        for i, ((name, label, _), (density, coverage)) in enumerate(zip(methods, numbers)):
            sums[i][0] += density
            sums[i][1] += coverage
            per_layer[f"{name}: {label}"].append([density, coverage])
        print(f"layer {layer} done", flush=True)
    count = len(layers)
    config = {**vars(args), "layers": sorted(layers), "commit": git_commit()}
    settings = [
        {"method": name, "setting": label, "overrides": overrides, "density": d / count, "coverage": c / count}
        for (name, label, overrides), (d, c) in zip(SETTINGS, sums)
    ]
    results = {"config": config, "settings": settings, "per_layer_density_coverage": per_layer}
    (out / "method_coverage.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (out / "method_coverage.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
