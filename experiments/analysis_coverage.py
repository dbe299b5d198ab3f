"""Permutation vs block sparsity on real attention: the paper's analyses (arXiv 2510.21270).

    Fig. 1 / Table 4   oracle coverage vs density per permutation strategy; sparsity gain at coverage
    Fig. 5 / Table 5   selected causal blocks of the baseline vs the permuted method (threshold 0.9)
    Fig. 7-8 / Table 6 per-layer and per-head sparsity gain; helped / unchanged / harmed heads (+-1 pt)
    Fig. 3             block-mass map of one head before / after permutation, selected blocks outlined
    Fig. 6 (target)    with --targets: oracle coverage vs density when keys (K), queries (Q) or both
                       (K+Q, Q+K) are permuted; definitions in src/analysis/permutations.py

    python experiments/analysis_coverage.py --model smollm2 --lengths 8192 --layers 0 7 14 21 29 \
        --out results/analysis/smollm2_8k                                          # CPU, minutes
    python experiments/analysis_coverage.py --model llama3.1-8b --lengths 8192 16384 32768 \
        --out $OUT/analysis                                                        # GPU
    python experiments/analysis_coverage.py --qkv qkv_8k.pt --lengths 8192 --out /tmp/analysis  # capture files
    python experiments/analysis_coverage.py --qkv qkv_8k.pt --lengths 8192 --targets K Q K+Q Q+K \
        --out /tmp/analysis                                                        # + Fig. 6 targets

Inputs: post-RoPE q, k of the chosen layers (all by default) from one RULER prompt per length,
captured with experiments/capture_qkv.py's `capture`, or `--qkv` files ({q, k, v} [1, H, L, D], one
layer each). Per layer, the true attention is summed per query block once; every strategy's block
masses follow from it (src/analysis/coverage.py). Oracle budgets are global per head (the density a
head needs to reach a coverage). The baseline and permuted methods (conf/method/*.yaml, default
meanpooling vs pbs) run their own permuter and selector for Table 5 and the map; the selectors of
`--selector-methods` run on every strategy's key order for Fig. 1's markers. Each `--targets` entry
(none by default) costs one more pass over the true attention per layer when it permutes queries.
Writes <out>/analysis.json and PNGs, prints the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.analysis.attention_maps import MapPanel, save_attention_maps  # noqa: E402
from src.analysis.coverage import (  # noqa: E402
    block_masses,
    mask_coverage,
    mask_density,
    oracle_mask_at_coverage,
    oracle_mask_at_density,
    plan_coverage,
    query_block_attention,
    selector_coverage,
)
from src.analysis.permutations import PERMUTATION_TARGETS, STRATEGIES, order_keys, order_target  # noqa: E402
from src.analysis.sparsity import classify_gains, selected_block_counts, sparsity_gain  # noqa: E402
from src.configs import group_config  # noqa: E402
from src.eval.results import git_commit  # noqa: E402
from src.report.paper import length_label, load_table  # noqa: E402

BASELINE = "none"
PBS_STRATEGY = "last_block"


def build_parts(name: str, args: argparse.Namespace) -> Any:
    """A method's permuter and selector from conf/method/<name>.yaml, with this run's B, S, threshold."""
    from src.attention.methods import build_method

    cfg = group_config("method", name)
    for key, value in (("block_size", args.block), ("segment_size", args.segment), ("threshold", args.threshold)):
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


class Panel(NamedTuple):
    """One chart: its title, series name -> (x, y), and optional y limits."""

    title: str
    series: dict[str, tuple[list, list]]
    ylim: tuple[float, float] | None = None


def plot_lines(
    path: Path,
    panels: list[Panel],
    xlabel: str,
    ylabel: str,
    marks: dict[str, tuple[float, float]] | None = None,
    zero_line: bool = False,
) -> None:
    """Line charts, one per panel, four to a row; `marks` (name -> (x, y)) starred on every panel."""
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(4.5 * columns, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax, panel in zip(axes, panels):
        for name, (x, y) in panel.series.items():
            ax.plot(x, y, marker="o", markersize=2.5, label=name)
        for name, (x, y) in (marks or {}).items():
            ax.scatter([x], [y], marker="*", s=80, zorder=3, label=name)
        if zero_line:
            ax.axhline(0.0, color="grey", linewidth=0.5)
        if panel.ylim:
            ax.set_ylim(*panel.ylim)
        ax.set(title=panel.title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=150)


def coverage_panels(curves: dict[str, dict[str, list[float]]], tag: str) -> list[Panel]:
    """Fig. 1's two charts of coverage vs density (%) curves: the whole range and a zoom on 0.8-1."""
    series = {name: ([100 * d for d in c["density"]], c["coverage"]) for name, c in curves.items()}
    return [Panel(f"oracle blocks, {tag}", series), Panel(f"zoom, {tag}", series, (0.8, 1.0))]


def write_figures(out: Path, summaries: dict[int, dict[str, Any]], args: argparse.Namespace) -> None:
    """Fig. 1, 7, 8 (and Fig. 6 targets when computed) per length and Fig. 5 over lengths."""
    for length, s in summaries.items():
        tag = length_label(length)
        marks = {
            f"{m} / {st}": (100 * p["density"], p["coverage"])
            for m, by_s in s["figure1_selectors"].items()
            for st, p in by_s.items()
            if st in (BASELINE, PBS_STRATEGY)
        }
        fig1 = coverage_panels(s["figure1"], tag)
        plot_lines(out / f"fig1_coverage_vs_density_{tag}.png", fig1, "density (%)", "coverage", marks)
        if "figure6" in s:
            fig6 = coverage_panels({BASELINE: s["figure1"][BASELINE], **s["figure6"]["curves"]}, tag)
            plot_lines(out / f"fig6_target_coverage_vs_density_{tag}.png", fig6, "density (%)", "coverage")
        panels = [
            Panel(f"coverage {c}", {st: (s["layers"], by_c[c]) for st, by_c in s["figure7"].items()})
            for c in map(str, args.coverages)
        ]
        plot_lines(out / f"fig7_layer_gain_{tag}.png", panels, "layer", "sparsity gain (pt)", zero_line=True)
        heads = [
            Panel(f"layer {layer}", {st: (list(range(len(g[i]))), g[i]) for st, g in s["figure8"].items()})
            for i, layer in enumerate(s["layers"])
        ]
        plot_lines(out / f"fig8_head_gain_{tag}.png", heads, "head", "sparsity gain (pt)", zero_line=True)
    lengths = sorted(summaries)
    density = {
        name: (lengths, [summaries[n]["table5"][f"density_{side}"] for n in lengths])
        for name, side in ((args.baseline_method, "without"), (args.permuted_method, "with"))
    }
    fig5 = [Panel(f"threshold {args.threshold}", density)]
    plot_lines(out / "fig5_density_vs_length.png", fig5, "context length (tokens)", "block density")


def print_gain_table(title: str, label: str, gains: dict[str, dict[str, float]], coverages: list[str]) -> None:
    """One row per strategy or target: its mean sparsity gain (pt) at each coverage."""
    print(f"\n{title}")
    print(
        tabulate(
            [[name, *(round(g[c], 2) for c in coverages)] for name, g in gains.items()],
            headers=[label, *(f"C={c}" for c in coverages)],
        )
    )


def print_tables(summaries: dict[int, dict[str, Any]], args: argparse.Namespace) -> None:
    """Tables 4, 5, 6 (ours; Table 5 with the paper's reduction beside it) and Fig. 6's targets."""
    paper = {row.context: row.reduction_pct for row in load_table("table5_selected_blocks").itertuples()}
    rows5 = []
    for length, s in sorted(summaries.items()):
        t = s["table5"]
        rows5.append(
            [
                length_label(length),
                t["total_causal_blocks"],
                round(t["selected_without"]),
                round(t["selected_with"]),
                f"{100 * t['relative_reduction']:.1f}%",
                paper.get(length_label(length), ""),
            ]
        )
        coverages = list(map(str, args.coverages))
        tag = length_label(length)
        title = f"Table 4 ({tag}, {args.task}): mean sparsity gain (pt) vs no permutation, oracle blocks"
        print_gain_table(title, "strategy", s["table4"], coverages)
        if "figure6" in s:
            title = f"Fig. 6 ({tag}): mean sparsity gain (pt) vs no permutation per permutation target"
            print_gain_table(title, "target", s["figure6"]["gain"], coverages)
        print(f"\nTable 6 ({tag}): heads by gain at coverage {args.head_coverage}, +-{args.tolerance} pt")
        print(
            tabulate(
                [
                    [st, c["helped"], c["unchanged"], c["harmed"], f"{100 * c['fractions']['helped']:.1f}%"]
                    for st, c in s["table6"].items()
                ],
                headers=["strategy", "helped", "unchanged", "harmed", "helped %"],
            )
        )
    pair = f"{args.baseline_method} vs {args.permuted_method}"
    print(f"\nTable 5: selected causal blocks, {pair}, threshold {args.threshold}")
    print(
        tabulate(
            rows5, headers=["context", "causal blocks", "w/o perm", "w/ perm", "reduction", "paper reduction %"]
        )
    )


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


@torch.inference_mode()
def replot(out: Path) -> None:
    """Fig. 1, 5, 7, 8 (and 6 when targets were run) and Tables 4-6 again from a committed
    analysis.json, with the arguments it was computed with (Fig. 3's attention maps need the
    captured q, k and are not redrawn)."""
    path = out / "analysis.json"
    if not path.is_file():
        raise SystemExit(f"--replot: no {path}; run the analysis first")
    results = json.loads(path.read_text())
    args = argparse.Namespace(**results["config"])
    summaries = {int(length): entry["summary"] for length, entry in results.items() if length != "config"}
    write_figures(out, summaries, args)
    print_tables(summaries, args)


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    if args.replot:
        replot(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    names = {*args.selector_methods, args.baseline_method, args.permuted_method}
    methods = {name: build_parts(name, args) for name in names}
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
