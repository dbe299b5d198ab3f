"""Permutation vs block sparsity on real attention: the paper's analyses (arXiv 2510.21270).

    Fig. 1 / Table 4   oracle coverage vs density per permutation strategy; sparsity gain at coverage
    Fig. 5 / Table 5   selected causal blocks of the baseline vs the permuted method (threshold 0.9)
    Fig. 7-8 / Table 6 per-layer and per-head sparsity gain; helped / unchanged / harmed heads (+-1 pt)
    Fig. 3             block-mass map of one head before / after permutation, selected blocks outlined
    Fig. 6 (target)    with --targets: oracle coverage vs density when keys (K), queries (Q) or both
                       (K+Q, Q+K) are permuted; definitions in src/analysis/permutations.py

    python -m experiments.analysis_coverage --model smollm2 --lengths 8192 --layers 0 7 14 21 29 \
        --out results/analysis/smollm2_8k                                          # CPU, minutes
    python -m experiments.analysis_coverage --model llama3.1-8b --lengths 8192 16384 32768 \
        --out $OUT/analysis                                                        # GPU
    python -m experiments.analysis_coverage --qkv qkv_8k.pt --lengths 8192 --out /tmp/analysis  # capture files
    python -m experiments.analysis_coverage --qkv qkv_8k.pt --lengths 8192 --targets K Q K+Q Q+K \
        --out /tmp/analysis                                                        # + Fig. 6 targets

Inputs: post-RoPE q, k of the chosen layers (all by default) from one RULER prompt per length,
captured with experiments/capture_qkv.py's `capture`, or `--qkv` files ({q, k, v} [1, H, L, D], one
layer each). Per layer, the true attention is summed per query block once; every strategy's block
masses follow from it (src/analysis/coverage.py). Oracle budgets are global per head (the density a
head needs to reach a coverage). The baseline and permuted methods (conf/method/*.yaml, default
meanpooling vs pbs) run their own permuter and selector for Table 5 and the map; the selectors of
`--selector-methods` run on every strategy's key order for Fig. 1's markers. Each `--targets` entry
(none by default) costs one more pass over the true attention per layer when it permutes queries.
Writes <out>/analysis.json, then draws the PNGs and prints the tables (src/report/coverage_figures.py;
`--replot` redraws them from a written analysis.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.analysis.attention_maps import MapPanel, save_attention_maps
from src.analysis.coverage import (
    block_masses,
    mask_coverage,
    mask_density,
    oracle_mask_at_coverage,
    oracle_mask_at_density,
    plan_coverage,
    query_block_attention,
    selector_coverage,
)
from src.analysis.permutations import PERMUTATION_TARGETS, STRATEGIES, order_keys, order_target
from src.analysis.sparsity import classify_gains, selected_block_counts, sparsity_gain
from src.configs import compose_config
from src.provenance import git_commit
from src.report.coverage_figures import BASELINE, print_tables, replot, write_figures
from src.report.paper import length_label


def build_parts(name: str, overrides: dict[str, Any]) -> Any:
    """A method's permuter and selector from conf/method/<name>.yaml, its keys in `overrides`
    (those the method has) replaced."""
    from src.attention.methods import build_method

    cfg = compose_config({"method": name}).method
    for key, value in overrides.items():
        if key in cfg:
            cfg[key] = value
    return build_method(cfg)


def load_layers(args: argparse.Namespace, length: int) -> dict[int, dict[str, torch.Tensor]]:
    """{layer: {q, k}} at `length` tokens: `--qkv` files (one layer each) or a fresh capture."""
    if args.qkv:
        files = [torch.load(path) for path in args.qkv]
        return {i: {n: f[n][..., :length, :] for n in ("q", "k")} for i, f in enumerate(files)}
    from experiments.capture_qkv import capture

    layers = args.layers if args.layers else range(1 << 12)  # capture keeps the layers the model has
    return capture(args.model, length, list(layers), args.task)


def mean_over_heads(x: torch.Tensor) -> float:
    """Mean over every entry (heads, and layers when stacked), as a plain float for JSON."""
    return float(x.double().mean())


def oracle_numbers(
    masses: torch.Tensor, segment: int | None, length: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Density each head needs per coverage target, and the head-mean coverage-density curve."""
    common = {"length": length, "block_size": args.block, "segment_size": segment, "budget": args.budget}
    needed = {
        str(c): mask_density(oracle_mask_at_coverage(masses, c, **common), length, args.block)[0].tolist()
        for c in args.coverages
    }
    curve_density, curve_coverage = [], []
    for d in args.density_grid:
        mask = oracle_mask_at_density(masses, float(d), **common)
        curve_density.append(mean_over_heads(mask_density(mask, length, args.block)))
        curve_coverage.append(mean_over_heads(mask_coverage(masses, mask)))
    return {"density_at_coverage": needed, "curve": {"density": curve_density, "coverage": curve_coverage}}


def target_numbers(
    q: torch.Tensor, k: torch.Tensor, rows: torch.Tensor, scale: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Fig. 6: oracle numbers per permutation target. `rows` (queries in order) is reused when a
    target leaves queries in order; a query order needs its own pass over the true attention."""
    numbers = {}
    for target in args.targets:
        order = order_target(target, q, k, scale=scale, block_size=args.block, segment_size=args.segment)
        target_rows = rows
        if order.query_perm is not None:
            target_rows = query_block_attention(
                q, k, scale=scale, block_size=args.block, query_perm=order.query_perm
            )
        masses = block_masses(target_rows, order.key_order, args.block)
        numbers[target] = oracle_numbers(masses, order.segment_size, q.shape[2], args)
    return numbers


def method_plan(
    method: Any, q: torch.Tensor, k: torch.Tensor, rows: torch.Tensor, scale: float, block: int
) -> dict[str, Any]:
    """A whole method's plan: masses in its key order, mask, coverage, density."""
    plan = method.plan(q, k, scale=scale)
    masses = block_masses(rows, plan.key_order, block)
    coverage, density, mask = plan_coverage(plan, masses, q.shape[2])
    return {"masses": masses, "mask": mask, "coverage": coverage, "density": density}


def analyse_layer(
    q: torch.Tensor, k: torch.Tensor, args: argparse.Namespace, methods: dict[str, Any], map_head: int | None
) -> tuple[dict[str, Any], list[MapPanel] | None]:
    """All numbers of one layer (per head, batch 0) and, when asked, the map panels of one head."""
    length = q.shape[2]
    scale = args.scale or q.shape[-1] ** -0.5
    rows = query_block_attention(q, k, scale=scale, block_size=args.block)
    record: dict[str, Any] = {"oracle": {}, "selectors": {m: {} for m in args.selector_methods}, "methods": {}}
    for strategy in args.strategies:
        order = order_keys(
            strategy, q, k, scale=scale, block_size=args.block, segment_size=args.segment, seed=args.seed
        )
        masses = block_masses(rows, order, args.block)
        record["oracle"][strategy] = oracle_numbers(masses, order.segment_size, length, args)
        for name in args.selector_methods:
            coverage, density, _ = selector_coverage(methods[name].selector, q, k, masses, key_order=order, scale=scale)
            record["selectors"][name][strategy] = {
                "coverage": coverage[0].tolist(),
                "density": density[0].tolist(),
            }
    plans = {
        role: method_plan(methods[args_name], q, k, rows, scale, args.block)
        for role, args_name in (("baseline", args.baseline_method), ("permuted", args.permuted_method))
    }
    for role, plan in plans.items():
        record["methods"][role] = {
            "coverage": plan["coverage"][0].tolist(),
            "density": plan["density"][0].tolist(),
        }
    if args.targets:
        record["targets"] = target_numbers(q, k, rows, scale, args)
    if map_head is None:
        return record, None
    panels = [
        MapPanel(
            plan["masses"][0, map_head],
            plan["mask"][0, map_head],
            f"{name}: density {100 * float(plan['density'][0, map_head]):.1f}%, "
            f"coverage {100 * float(plan['coverage'][0, map_head]):.1f}%",
        )
        for name, plan in zip((args.baseline_method, args.permuted_method), plans.values())
    ]
    return record, panels


def needed_density(layers: dict[int, dict[str, Any]], section: str, name: str, coverage: float) -> torch.Tensor:
    """Density each head needs to reach `coverage`, [layers, heads] in layer order, from the layer
    records' `section` ("oracle": strategies, "targets": permutation targets)."""
    return torch.tensor(
        [layers[i][section][name]["density_at_coverage"][str(coverage)] for i in sorted(layers)]
    )


def mean_curve(curves: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """The layer mean of oracle coverage-density curves (all on the same density grid)."""
    return {key: np.mean([c[key] for c in curves], 0).tolist() for key in ("density", "coverage")}


def summarise_targets(layers: dict[int, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Fig. 6 numbers per permutation target: the layer-mean curve, the mean density needed per
    coverage and the mean sparsity gain (pt) over no permutation (Table 4's measure)."""
    baseline = {str(c): needed_density(layers, "oracle", BASELINE, c) for c in args.coverages}
    needed = {t: {str(c): needed_density(layers, "targets", t, c) for c in args.coverages} for t in args.targets}
    return {
        "curves": {t: mean_curve([layers[i]["targets"][t]["curve"] for i in sorted(layers)]) for t in args.targets},
        "density_at_coverage": {t: {c: mean_over_heads(d) for c, d in by_c.items()} for t, by_c in needed.items()},
        "gain": {
            t: {c: mean_over_heads(sparsity_gain(baseline[c], d)) for c, d in by_c.items()}
            for t, by_c in needed.items()
        },
    }


def summarise(layers: dict[int, dict[str, Any]], length: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fig. 1, Table 4, Fig. 7-8, Table 6, Table 5 (and Fig. 6 targets) numbers of one length."""
    order = sorted(layers)

    def needed(strategy: str, coverage: float) -> torch.Tensor:
        return needed_density(layers, "oracle", strategy, coverage)

    def heads(role: str, field: str) -> torch.Tensor:
        return torch.tensor([layers[i]["methods"][role][field] for i in order])

    permuted = [s for s in args.strategies if s != BASELINE]
    gains = {s: {c: sparsity_gain(needed(BASELINE, c), needed(s, c)) for c in args.coverages} for s in permuted}
    head_c = args.head_coverage
    density_without, density_with = (
        mean_over_heads(heads("baseline", "density")),
        mean_over_heads(heads("permuted", "density")),
    )
    counts = selected_block_counts(length, args.block, density_without, density_with)
    summary = {
        "layers": order,
        "figure1": {s: mean_curve([layers[i]["oracle"][s]["curve"] for i in order]) for s in args.strategies},
        "figure1_selectors": {
            m: {
                s: {
                    f: float(np.mean([layers[i]["selectors"][m][s][f] for i in order]))
                    for f in ("density", "coverage")
                }
                for s in args.strategies
            }
            for m in args.selector_methods
        },
        "table4": {s: {str(c): mean_over_heads(g) for c, g in by_c.items()} for s, by_c in gains.items()},
        "figure7": {
            s: {str(c): g.double().mean(-1).tolist() for c, g in by_c.items()} for s, by_c in gains.items()
        },
        "figure8": {s: by_c[head_c].tolist() for s, by_c in gains.items()},
        "table6": {s: classify_gains(by_c[head_c], args.tolerance).as_dict() for s, by_c in gains.items()},
        "table5": {
            **counts.as_dict(),
            "density_without": density_without,
            "density_with": density_with,
            "coverage_without": mean_over_heads(heads("baseline", "coverage")),
            "coverage_with": mean_over_heads(heads("permuted", "coverage")),
        },
    }
    if args.targets:
        summary["figure6"] = summarise_targets(layers, args)
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--task", default="niah_single_1", help="RULER task of the prompt")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192])
    parser.add_argument("--layers", type=int, nargs="*", default=None, help="layer indices (default: all)")
    parser.add_argument(
        "--qkv", nargs="*", default=None, help="capture_qkv.py files, one layer each (no model run)"
    )
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--segment", type=int, default=256)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument(
        "--targets",
        nargs="*",
        default=[],
        choices=PERMUTATION_TARGETS,
        help="Fig. 6 permutation targets to add (default: none), e.g. K Q K+Q Q+K",
    )
    parser.add_argument("--selector-methods", nargs="*", default=["meanpooling", "xattention"])
    parser.add_argument("--baseline-method", default="meanpooling")
    parser.add_argument("--permuted-method", default="pbs")
    parser.add_argument("--coverages", type=float, nargs="+", default=[0.9, 0.925, 0.95, 0.975])
    parser.add_argument("--head-coverage", type=float, default=0.975, help="coverage of Table 6 / Fig. 8")
    parser.add_argument("--tolerance", type=float, default=1.0, help="helped/harmed margin in points")
    parser.add_argument("--density-step", type=float, default=0.02)
    parser.add_argument("--budget", choices=["global", "row"], default="global")
    parser.add_argument("--map-layer", type=int, default=None, help="default: the middle analysed layer")
    parser.add_argument("--map-head", type=int, default=0)
    parser.add_argument("--scale", type=float, default=None, help="softmax scale (default 1/sqrt(head_dim))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True)
    parser.add_argument("--replot", action="store_true", help="redraw figures and tables from <out>/analysis.json")
    args = parser.parse_args()
    if BASELINE not in args.strategies:
        parser.error(f"--strategies must include {BASELINE!r} (the baseline every gain is measured against)")
    if args.head_coverage not in args.coverages:
        args.coverages.append(args.head_coverage)
    args.density_grid = np.arange(0.0, 1.0 + 1e-9, args.density_step).round(6).tolist()
    return args


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    if args.replot:
        replot(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    names = {*args.selector_methods, args.baseline_method, args.permuted_method}
    methods = {name: build_parts(name, {"block_size": args.block, "segment_size": args.segment, "threshold": args.threshold}) for name in names}
    config = {k: v for k, v in vars(args).items() if k != "density_grid"}
    results: dict[str, Any] = {"config": {**config, "commit": git_commit()}}
    summaries: dict[int, dict[str, Any]] = {}
    for requested in args.lengths:
        captured = load_layers(args, requested)
        map_layer = args.map_layer if args.map_layer is not None else sorted(captured)[len(captured) // 2]
        layers: dict[int, dict[str, Any]] = {}
        for index in sorted(captured):
            q, k = (captured[index][n].to(args.device) for n in ("q", "k"))
            length = q.shape[2]
            layers[index], panels = analyse_layer(
                q, k, args, methods, args.map_head if index == map_layer else None
            )
            if panels:
                tag = f"{length_label(length)}_L{index}_H{args.map_head}"
                title = f"layer {index} head {args.map_head}, {length} tokens, B={args.block}, S={args.segment}"
                save_attention_maps(out / f"fig3_attention_map_{tag}.png", panels, title)
            print(f"{length} tokens, layer {index}: done", flush=True)
        summaries[length] = summarise(layers, length, args)
        results[str(length)] = {"summary": summaries[length], "layers": {str(i): r for i, r in layers.items()}}
    (out / "analysis.json").write_text(json.dumps(results, indent=1))
    write_figures(out, summaries, args)
    print_tables(summaries, args)
    print(f"\nwrote {out / 'analysis.json'} and figures to {out}")


if __name__ == "__main__":
    main()
