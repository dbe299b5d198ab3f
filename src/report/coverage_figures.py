"""Figures and printed tables of the permutation-coverage analysis (experiments.analysis_coverage),
drawn from its per-length summaries, either right after it ran or again from its analysis.json:

    Fig. 1   oracle coverage vs density per strategy, with the selectors' points starred
    Fig. 5   selected-block density vs length, baseline vs permuted method
    Fig. 6   oracle coverage vs density per permutation target (when targets were run)
    Fig. 7-8 sparsity gain per layer and per head
    Tables 4-6 (Table 5 with the paper's reduction beside ours)

`config` is the analysis' arguments, as analysis.json records them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, NamedTuple

from matplotlib.figure import Figure
from tabulate import tabulate

from src.report.paper import length_label, load_table

BASELINE = "none"  # the strategy every sparsity gain is measured against: keys in their own order
PBS_STRATEGY = "last_block"


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


def write_figures(out: Path, summaries: dict[int, dict[str, Any]], config: argparse.Namespace) -> None:
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
            for c in map(str, config.coverages)
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
        for name, side in ((config.baseline_method, "without"), (config.permuted_method, "with"))
    }
    fig5 = [Panel(f"threshold {config.threshold}", density)]
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


def print_tables(summaries: dict[int, dict[str, Any]], config: argparse.Namespace) -> None:
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
        coverages = list(map(str, config.coverages))
        tag = length_label(length)
        title = f"Table 4 ({tag}, {config.task}): mean sparsity gain (pt) vs no permutation, oracle blocks"
        print_gain_table(title, "strategy", s["table4"], coverages)
        if "figure6" in s:
            title = f"Fig. 6 ({tag}): mean sparsity gain (pt) vs no permutation per permutation target"
            print_gain_table(title, "target", s["figure6"]["gain"], coverages)
        print(f"\nTable 6 ({tag}): heads by gain at coverage {config.head_coverage}, +-{config.tolerance} pt")
        print(
            tabulate(
                [
                    [st, c["helped"], c["unchanged"], c["harmed"], f"{100 * c['fractions']['helped']:.1f}%"]
                    for st, c in s["table6"].items()
                ],
                headers=["strategy", "helped", "unchanged", "harmed", "helped %"],
            )
        )
    pair = f"{config.baseline_method} vs {config.permuted_method}"
    print(f"\nTable 5: selected causal blocks, {pair}, threshold {config.threshold}")
    print(
        tabulate(
            rows5, headers=["context", "causal blocks", "w/o perm", "w/ perm", "reduction", "paper reduction %"]
        )
    )


def replot(out: Path) -> None:
    """Fig. 1, 5, 7, 8 (and 6 when targets were run) and Tables 4-6 again from a committed
    analysis.json, with the arguments it was computed with (Fig. 3's attention maps need the
    captured q, k and are not redrawn)."""
    path = out / "analysis.json"
    if not path.is_file():
        raise SystemExit(f"--replot: no {path}; run the analysis first")
    results = json.loads(path.read_text())
    config = argparse.Namespace(**results["config"])
    summaries = {int(length): entry["summary"] for length, entry in results.items() if length != "config"}
    write_figures(out, summaries, config)
    print_tables(summaries, config)
