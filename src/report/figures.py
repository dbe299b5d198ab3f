"""`make figures`: PNGs of our benchmarks and runs, in the style of the paper's figures.

    python -m src.report.figures [--results results] [--out results/figures] [--paper results/paper] [--runs DIR ...]

The answer in one picture first (src/report/tradeoff_figures.py): per model, device, comparable
set and length, accuracy with 95% intervals against measured prefill speedup and against density,
one point per method configuration, the Pareto front marked. Then kernel speedup over SDPA vs
length (Figure 4; one panel per family of series), kernel time vs density per length,
end-to-end TTFT speedup, and RULER score vs length per comparable set. Runs come from the
committed roots only (as `make tables`) unless --runs adds others; a line only ever joins points
of one comparable set. A figure whose inputs are absent is skipped with a printed note; nothing
is drawn that no result file holds. index.md lists every figure with its set and its sources, and
figures a previous index listed but this one did not draw are removed.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt

from src.report.cli import run_report
from src.report.collect import Bench, Run, collect_bench, collect_runs, newest
from src.report.keys import ComparableSet
from src.report.paper import PAPER_DIR, label_tokens, length_label, load_table, method_rank, paper_method, paper_model
from src.report.scores import headline
from src.report.stats import interval
from src.report.style import Figure, error_bars, set_digest, length_axis, method_base, method_style, save, series_style, slug
from src.report.tradeoff import tradeoff_groups
from src.report.tradeoff_figures import tradeoff_figures

KERNEL_NAMES = ("triton_dense", "flex_dense", "triton_sparse_perm", "flex_sparse_perm", "triton_sparse_noperm", "flex_sparse_noperm")
SPARSE_KERNELS = ("triton_sparse_perm", "flex_sparse_perm", "triton_sparse_noperm", "flex_sparse_noperm")
DENSE_KERNELS = ("triton_dense", "flex_dense")
METHODS_FAMILY = "methods (estimation + attention, one layer)"
DODGE = 0.025  # log2 units between the methods' points at one length
VARIANT_LINES = ("-", "--", ":", "-.")  # variants of one method (PBS-Attn head / group) share its colour


def series_family(name: str) -> tuple[str, str]:
    """(panel, series) of a kernel-benchmark row name: methods in one panel, dense kernels in one,
    each sparse kernel in its own (a series per target density), each launch-shape sweep
    (`name[M,N,...]`) in its own (a series per shape)."""
    if name.startswith("method:"):
        method, _, variant = name.removeprefix("method:").partition(":")
        return METHODS_FAMILY, paper_method(method) + (f" ({variant})" if variant else "")
    if name in DENSE_KERNELS:
        return "dense kernels", name
    if "[" in name:
        family, _, shape = name.partition("[")
        return family, shape.rstrip("]")
    return name, name


def _kernel_series(bench: Bench) -> dict[str, dict[str, list[tuple[int, float, float]]]]:
    """Panel -> series -> (length, density, speedup over SDPA); sparse kernels get a series per
    target density of the run's --densities."""
    targets = [float(d) for d in bench.args.get("densities") or []]
    panels: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    for row in bench.rows:
        name, speedup = row.get("name", ""), row.get("speedup_vs_sdpa")
        if speedup is None or name == "sdpa_dense":
            continue
        panel, series = series_family(name)
        density = row.get("density")
        if name in SPARSE_KERNELS:
            if density is None or not targets:
                continue
            series = f"density {min(targets, key=lambda t: abs(t - density)):.0%}"
        panels.setdefault(panel, {}).setdefault(series, []).append((row["length"], density if density is not None else math.nan, speedup))
    return panels


def _panel_order(name: str) -> tuple[int, str]:
    fixed = [METHODS_FAMILY, "dense kernels", *SPARSE_KERNELS]
    return (fixed.index(name) if name in fixed else len(fixed), name)


def speedup_figures(benches: list[Bench], out: Path) -> list[Figure]:
    """Figure 4 style: speedup over SDPA (= 1) vs length, one panel per family of series, one PNG per bench file."""
    figures = []
    for bench in (b for b in benches if not b.is_ttft):
        panels = _kernel_series(bench)
        if not panels:
            print(f"figures: skipped speedup vs length for {bench.label}: no rows with speedup_vs_sdpa")
            continue
        names = sorted(panels, key=_panel_order)
        columns = min(3, len(names))
        rows = -(-len(names) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.9 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            order = method_rank if name == METHODS_FAMILY else str
            variants: dict[str, int] = {}
            for number, (series, points) in enumerate(sorted(panels[name].items(), key=lambda item: order(item[0]))):
                points.sort()
                if name == METHODS_FAMILY:
                    density = statistics.fmean(p[1] for p in points)
                    base = method_base(series)
                    variants[base] = variants.get(base, -1) + 1
                    style = {**method_style(series), "linestyle": VARIANT_LINES[variants[base] % len(VARIANT_LINES)]}
                    label = f"{series} (density {density:.2f})"
                else:
                    style, label = series_style(number), series
                ax.plot([p[0] for p in points], [p[2] for p in points], label=label, linewidth=1.4, markersize=5, **style)
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="SDPA = 1")
            length_axis(ax, [p[0] for points in panels[name].values() for p in points])
            ax.set_ylabel("speedup over SDPA")
            ax.set_title(name, fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"Attention speedup over SDPA vs length, {bench.device} ({bench.label})", fontsize=11)
        path = out / f"speedup_vs_length_{slug(bench.path.stem)}.png"
        save(fig, path)
        figures.append(Figure(path, f"Speedup over SDPA vs length ({bench.device})", (bench.label,),
                              note=f"one panel per family of series: {', '.join(names)}"))
    return figures


def kernel_time_figures(benches: list[Bench], out: Path) -> list[Figure]:
    """Kernel time vs density, one panel per length, SDPA as a horizontal line; one PNG per bench file."""
    figures = []
    for bench in (b for b in benches if not b.is_ttft):
        rows = [r for r in bench.rows if r.get("name") in KERNEL_NAMES + ("sdpa_dense",) and r.get("ms") is not None]
        lengths = sorted({r["length"] for r in rows if r["name"] in SPARSE_KERNELS})
        if not lengths:
            print(f"figures: skipped kernel time vs density for {bench.label}: no sparse kernel rows")
            continue
        fig, axes = plt.subplots(1, len(lengths), figsize=(3.8 * len(lengths), 3.6), squeeze=False)
        for ax, length in zip(axes[0], lengths):
            here = [r for r in rows if r["length"] == length]
            for number, name in enumerate(SPARSE_KERNELS):
                points = sorted((r["density"], r["ms"]) for r in here if r["name"] == name)
                dense = [(1.0, r["ms"]) for r in here if r["name"] == f"{name.split('_')[0]}_dense"]
                if points:
                    ax.plot(*zip(*points, *dense), label=name, linewidth=1.4, markersize=5, **series_style(number))
            for r in here:
                if r["name"] == "sdpa_dense":
                    ax.axhline(r["ms"], color="black", linewidth=0.8, linestyle="--", label="sdpa_dense")
            ax.set_title(f"{length_label(length)} tokens", fontsize=10)
            ax.set_xlabel("density (computed / causal blocks)")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("ms")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"Kernel time vs density, {bench.device} ({bench.label})", fontsize=11)
        path = out / f"kernel_time_vs_density_{slug(bench.path.stem)}.png"
        save(fig, path)
        figures.append(Figure(path, f"Kernel time vs density per length ({bench.device})", (bench.label,)))
    return figures


def ttft_figures(benches: list[Bench], out: Path, paper_dir: Path) -> list[Figure]:
    """End-to-end TTFT speedup over dense vs length per method, with the paper's Qwen3-8B PBS-Attn dotted."""
    figures = []
    paper = load_table("ttft_qwen3", paper_dir)
    for bench in (b for b in benches if b.is_ttft):
        rows = [r for r in bench.rows if r.get("speedup_vs_sdpa") is not None and "model" in r and "method" in r]
        if not rows:
            print(f"figures: skipped TTFT speedup for {bench.label}: no rows with speedup_vs_sdpa")
            continue
        fig, ax = plt.subplots(figsize=(7, 4.6))
        models = sorted({r["model"] for r in rows})
        lengths = [_target(r) for r in rows]
        for model, method in sorted({(r["model"], r["method"]) for r in rows}, key=lambda mm: (mm[0], method_rank(paper_method(mm[1])))):
            points = sorted((_target(r), r["speedup_vs_sdpa"]) for r in rows if (r["model"], r["method"]) == (model, method))
            label = paper_method(method)
            shown = label if len(models) == 1 else f"{model} {label}"
            ax.plot(*zip(*points), label=shown, linewidth=1.4, markersize=5, **method_style(label))
        for (model, method), frame in paper.groupby(["model", "method"]):
            points = [(label_tokens(l), s) for l, s in zip(frame["length"], frame["speedup_vs_flashattention"])]
            style = method_style(method)
            ax.plot(*zip(*points), linestyle=":", marker="x", color=style["color"], label=f"paper: {model} {method}")
            lengths += [p[0] for p in points]
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="dense = 1")
        length_axis(ax, lengths)
        ax.set_ylabel("TTFT speedup over dense")
        ax.set_title(f"Time to first token, {', '.join(models)}, {bench.device}\n({bench.label}; x: target length)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        path = out / f"ttft_speedup_{slug(bench.path.stem)}.png"
        save(fig, path)
        figures.append(Figure(path, f"TTFT speedup vs length ({bench.device})", (bench.label, repo_path(paper_dir / "ttft_qwen3.csv"))))
    return figures


def _target(row: dict[str, object]) -> int:
    """A TTFT row's target length (the prompt's own token count can fall a little short of it)."""
    return int(row.get("target_length") or row["length"])  # type: ignore[call-overload]


def repo_path(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (index.md stays machine-independent)."""
    root = PAPER_DIR.parents[1]
    return str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)


def ruler_length_figures(runs: list[Run], out: Path, paper_dir: Path) -> list[Figure]:
    """RULER score (95% interval bars) vs length per method configuration, one PNG per model and
    comparable set, with the paper's curves dotted when the model is one the paper ran; the
    methods' points at one length are drawn side by side (a few % of an octave apart)."""
    ruler = [r for r in runs if r.benchmark == "ruler" and r.length]
    if not ruler:
        print("figures: skipped RULER score vs length: no RULER runs")
        return []
    paper = load_table("table3_ruler", paper_dir)
    paper = paper[paper["length"] != "Avg"]
    by_set: dict[tuple[str, ComparableSet], list[Run]] = {}
    for run in ruler:
        by_set.setdefault((run.model, run.comparable_set), []).append(run)
    figures = []
    for (model, aset), members in sorted(by_set.items(), key=lambda item: (item[0][0], -item[0][1].samples, item[0][1].describe())):
        chosen = [run for run, _ in newest(members, lambda r: r.cell_key, lambda r: r.recency).values()]
        if len({r.length for r in chosen}) < 2:
            print(f"figures: skipped RULER score vs length for {model}, {aset.short()}: one length only")
            continue
        fig, ax = plt.subplots(figsize=(7, 4.8))
        lengths = [r.length for r in chosen]
        labels = sorted({r.method_label for r in chosen}, key=method_rank)
        for number, label in enumerate(labels):
            found = sorted(((r.length, interval(headline(r))) for r in chosen if r.method_label == label), key=lambda p: p[0])
            shift = 2 ** (DODGE * (number - (len(labels) - 1) / 2))  # side by side, so every bar stays visible
            xs, values = [p[0] * shift for p in found], [p[1] for p in found]
            ax.errorbar(xs, [v.value for v in values], yerr=error_bars(values), label=label, capsize=3, linewidth=1.4,
                        markersize=6, **method_style(label))
        reference = paper[paper["model"] == paper_model(model)]
        for method, frame in reference.groupby("method"):
            points = sorted((label_tokens(l), s) for l, s in zip(frame["length"], frame["score"]))
            ax.plot(*zip(*points), linestyle=":", color=method_style(method)["color"], label=f"paper: {method}")
            lengths += [p[0] for p in points]
        length_axis(ax, lengths)  # type: ignore[arg-type]
        ax.set_ylabel("RULER score (x100), 95% interval")
        ax.set_title(f"RULER vs length: {model}\n{aset.short()}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        path = out / f"ruler_vs_length_{slug(model)}_{set_digest(aset)}.png"
        save(fig, path)
        figures.append(Figure(path, f"RULER score vs length, {model}", tuple(run.label for run in chosen), aset.describe()))
    return figures


def write_index(figures: list[Figure], out: Path) -> Path:
    """index.md: every figure with its title, its comparable set, how it was measured and the
    result files behind it; PNGs the previous index listed and this one does not are removed."""
    path = out / "index.md"
    drawn = {figure.path.name for figure in figures}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("![") and "](" in line:
                stale = out / line.rsplit("](", 1)[1].rstrip(")")
                if stale.name not in drawn and stale.suffix == ".png" and stale.is_file():
                    stale.unlink()
    lines = ["# Figures", ""]
    for figure in figures:
        lines += [f"## {figure.title}", "", f"![{figure.title}]({figure.path.name})", ""]
        if figure.set_text:
            lines += [f"Set: {figure.set_text}", ""]
        if figure.note:
            lines += [f"Measured: {figure.note}", ""]
        lines += ["Sources: " + ", ".join(f"`{s}`" for s in figure.sources), ""]
    if not figures:
        lines.append("No figures: no benchmark JSON under bench/ and no runs under runs/.")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_figures(results: Path, out: Path, paper_dir: Path = PAPER_DIR, extra_runs: Iterable[Path] = ()) -> list[Figure]:
    """Draw every figure whose inputs exist under `results` (runs: committed roots plus
    `extra_runs`) into `out`, plus index.md."""
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(results, extra_runs)
    benches = collect_bench(results)
    if not any(not b.is_ttft for b in benches):
        print(f"figures: skipped kernel speedup and kernel time: no kernel benchmark JSON in {results / 'bench'}")
    if not any(b.is_ttft for b in benches):
        print(f"figures: skipped TTFT speedup: no ttft_*.json in {results / 'bench'}")
    figures = [
        *tradeoff_figures(tradeoff_groups(runs, benches), out, paper_dir),
        *ruler_length_figures(runs, out, paper_dir),
        *speedup_figures(benches, out),
        *kernel_time_figures(benches, out),
        *ttft_figures(benches, out, paper_dir),
    ]
    write_index(figures, out)
    return figures


def main(argv: list[str] | None = None) -> None:
    """CLI: draw all figures; a broken results file exits with code 2 and one line naming it."""
    run_report(
        argv,
        description=__doc__,
        default_out="results/figures",
        write=write_figures,
        summary=lambda figures, out: f"wrote {len(figures)} figures and index.md to {out}",
    )


if __name__ == "__main__":
    main()
