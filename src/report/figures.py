"""`make figures`: PNGs of our benchmarks and runs, in the style of the paper's figures.

    python -m src.report.figures [--results results] [--out results/figures] [--paper results/paper]

Kernel speedup over SDPA vs length (Figure 4), kernel time vs density per length, score vs
density per run with parameter sweeps as curves (Figure 6), RULER score vs length per method,
and end-to-end TTFT speedup. A figure whose inputs are absent is skipped with a printed note;
nothing is drawn that no result file holds. index.md lists every figure and its sources.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from src.report.cli import run_report  # noqa: E402
from src.report.collect import Bench, Run, collect_bench, collect_runs, newest  # noqa: E402
from src.report.paper import (  # noqa: E402
    METHOD_ORDER,
    PAPER_DIR,
    label_tokens,
    length_label,
    load_table,
    paper_method,
    paper_model,
)

KERNEL_NAMES = ("triton_dense", "flex_dense", "triton_sparse_perm", "flex_sparse_perm", "triton_sparse_noperm")
SPARSE_KERNELS = ("triton_sparse_perm", "flex_sparse_perm", "triton_sparse_noperm")
DENSE_KERNELS = ("triton_dense", "flex_dense")


@dataclass(frozen=True)
class Figure:
    """A written figure: its file, what it shows and the result files it was drawn from."""

    path: Path
    title: str
    sources: tuple[str, ...]


def method_color(label: str) -> Any:
    """A fixed colour per method (its paper name), so every figure colours a method alike."""
    base = label.split(" [")[0].split(" (")[0]
    palette = plt.get_cmap("tab10")
    index = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER) + sum(map(ord, base)) % 3
    return palette(index % 10)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


def _length_axis(ax: Axes, lengths: Iterable[int]) -> None:
    ticks = sorted(set(lengths))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [length_label(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("context length (tokens)")


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _kernel_series(bench: Bench) -> dict[str, list[tuple[int, float, float]]]:
    """(length, density, speedup over SDPA) per line: dense kernels, sparse kernels per target
    density of the run's --densities, and each method row."""
    targets = [float(d) for d in bench.args.get("densities") or []]
    series: dict[str, list[tuple[int, float, float]]] = {}
    for row in bench.rows:
        name, speedup = row.get("name", ""), row.get("speedup_vs_sdpa")
        if speedup is None or name == "sdpa_dense" or row.get("density") is None:
            continue
        if name in SPARSE_KERNELS and targets:
            target = min(targets, key=lambda t: abs(t - row["density"]))
            key = f"{name} @ {target:.0%}"
        elif name.startswith("method:"):
            method, _, variant = name.removeprefix("method:").partition(":")
            key = paper_method(method) + (f" ({variant})" if variant else "")
        else:
            key = name
        series.setdefault(key, []).append((row["length"], row["density"], speedup))
    return series


def speedup_figures(benches: list[Bench], out: Path) -> list[Figure]:
    """Figure 4 style: speedup over SDPA (= 1) vs length for kernels and methods, one PNG per bench file."""
    figures = []
    for bench in (b for b in benches if not b.is_ttft):
        series = _kernel_series(bench)
        if not series:
            print(f"figures: skipped speedup vs length for {bench.label}: no rows with speedup_vs_sdpa")
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        kernel_colors = plt.get_cmap("Dark2")
        for number, (key, points) in enumerate(sorted(series.items())):
            points.sort()
            is_method = key.split(" (")[0] in METHOD_ORDER
            density = statistics.fmean(p[1] for p in points)
            ax.plot([p[0] for p in points], [p[2] for p in points], marker="o" if is_method else ".",
                    linestyle="-" if is_method else "--", color=method_color(key) if is_method else kernel_colors(number % 8),
                    label=f"{key} (density {density:.2f})" if is_method else key)
        ax.axhline(1.0, color="black", linewidth=0.8, label="SDPA = 1")
        _length_axis(ax, [p[0] for points in series.values() for p in points])
        ax.set_ylabel("speedup over SDPA")
        ax.set_title(f"Attention speedup vs length, {bench.device}", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        path = out / f"speedup_vs_length_{_slug(bench.path.stem)}.png"
        _save(fig, path)
        figures.append(Figure(path, f"Speedup over SDPA vs length ({bench.device})", (bench.label,)))
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
        fig, axes = plt.subplots(1, len(lengths), figsize=(3.6 * len(lengths), 3.4), squeeze=False)
        for ax, length in zip(axes[0], lengths):
            here = [r for r in rows if r["length"] == length]
            for name in SPARSE_KERNELS:
                points = sorted((r["density"], r["ms"]) for r in here if r["name"] == name)
                dense = [(1.0, r["ms"]) for r in here if r["name"] == f"{name.split('_')[0]}_dense"]
                if points:
                    ax.plot(*zip(*points, *dense), marker="o", label=name)
            for r in here:
                if r["name"] == "sdpa_dense":
                    ax.axhline(r["ms"], color="black", linewidth=0.8, label="sdpa_dense")
            ax.set_title(length_label(length), fontsize=10)
            ax.set_xlabel("density (computed / causal blocks)")
        axes[0][0].set_ylabel("ms")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"Kernel time vs density, {bench.device}", fontsize=10)
        path = out / f"kernel_time_vs_density_{_slug(bench.path.stem)}.png"
        _save(fig, path)
        figures.append(Figure(path, f"Kernel time vs density per length ({bench.device})", (bench.label,)))
    return figures


def ttft_figures(benches: list[Bench], out: Path, paper_dir: Path) -> list[Figure]:
    """End-to-end TTFT speedup over dense vs length per method, with the paper's Qwen3-8B PBS-Attn dashed."""
    figures = []
    paper = load_table("ttft_qwen3", paper_dir)
    for bench in (b for b in benches if b.is_ttft):
        rows = [r for r in bench.rows if r.get("speedup_vs_sdpa") is not None and "model" in r and "method" in r]
        if not rows:
            print(f"figures: skipped TTFT speedup for {bench.label}: no rows with speedup_vs_sdpa")
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        lengths = [r["length"] for r in rows]
        for (model, method) in sorted({(r["model"], r["method"]) for r in rows}):
            points = sorted((r["length"], r["speedup_vs_sdpa"]) for r in rows if (r["model"], r["method"]) == (model, method))
            label = paper_method(method)
            ax.plot(*zip(*points), marker="o", color=method_color(label), label=f"{model} {label}")
        for (model, method), frame in paper.groupby(["model", "method"]):
            points = [(label_tokens(l), s) for l, s in zip(frame["length"], frame["speedup_vs_flashattention"])]
            ax.plot(*zip(*points), linestyle=":", marker="x", color=method_color(method), label=f"paper: {model} {method}")
            lengths += [p[0] for p in points]
        ax.axhline(1.0, color="black", linewidth=0.8, label="dense = 1")
        _length_axis(ax, lengths)
        ax.set_ylabel("TTFT speedup over dense")
        ax.set_title(f"Time to first token, {bench.device}", fontsize=10)
        ax.legend(fontsize=7)
        path = out / f"ttft_speedup_{_slug(bench.path.stem)}.png"
        _save(fig, path)
        figures.append(Figure(path, f"TTFT speedup vs length ({bench.device})", (bench.label, str(paper_dir / "ttft_qwen3.csv"))))
    return figures


def _config_value(run: Run, dotted: str) -> Any:
    node: Any = run.info["config"]
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def sweep_curves(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Parameter sweeps among one method's runs: for each overridden method parameter, the runs
    that agree on every other overridden parameter, when they hold 2+ values of it."""
    keys = sorted({k for run in runs for k in run.overrides if k.startswith("method.")})
    curves = []
    for key in keys:
        others = [k for k in keys if k != key]
        buckets: dict[tuple[str, ...], list[Run]] = {}
        for run in runs:
            buckets.setdefault(tuple(repr(_config_value(run, k)) for k in others), []).append(run)
        for bucket in buckets.values():
            if len({repr(_config_value(r, key)) for r in bucket}) > 1:
                curves.append((key.removeprefix("method."), bucket))
    return curves


def _sort_value(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def score_density_figures(runs: list[Run], out: Path) -> list[Figure]:
    """Figure 6 style: score vs mean density, one point per run coloured by method, sweeps as
    curves; one PNG per (model, dataset)."""
    figures = []
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.mean_density is not None:
            groups.setdefault((run.model, run.dataset), []).append(run)
    if not groups:
        print("figures: skipped score vs density: no run with a mean density under runs/")
    for (model, dataset), members in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        by_method: dict[str, list[Run]] = {}
        for run in members:
            by_method.setdefault(paper_method(run.method), []).append(run)
        for method, method_runs in sorted(by_method.items()):
            color = method_color(method)
            ax.scatter([r.mean_density for r in method_runs], [r.overall for r in method_runs], color=color, label=method, zorder=3)
            for param, bucket in sweep_curves(method_runs):
                bucket = sorted(bucket, key=lambda r: _sort_value(_config_value(r, f"method.{param}")))
                ax.plot([r.mean_density for r in bucket], [r.overall for r in bucket], color=color, linewidth=1)
                for r in bucket:
                    ax.annotate(f"{param}={_config_value(r, f'method.{param}')}", (r.mean_density, r.overall), fontsize=6,
                                textcoords="offset points", xytext=(3, 3))
        ax.set_xlabel("mean density (computed / causal blocks)")
        ax.set_ylabel("score (x100)")
        ax.set_title(f"Score vs density: {model}, {dataset}", fontsize=10)
        ax.legend(fontsize=7)
        path = out / f"score_vs_density_{_slug(model)}_{_slug(dataset)}.png"
        _save(fig, path)
        figures.append(Figure(path, f"Score vs density, {model} on {dataset}", tuple(r.label or str(r.path) for r in members)))
    return figures


def ruler_length_figures(runs: list[Run], out: Path, paper_dir: Path) -> list[Figure]:
    """RULER score vs length per method (methods at their default parameters), one PNG per model,
    with the paper's curves dashed when the model is one the paper ran."""
    ruler = [r for r in runs if r.benchmark == "ruler" and r.length and not r.variant]
    if not ruler:
        print("figures: skipped RULER score vs length: no RULER runs at default method parameters under runs/")
        return []
    paper = load_table("table3_ruler", paper_dir)
    paper = paper[paper["length"] != "Avg"]
    chosen = newest(ruler, lambda r: (r.model, r.method_label, r.length), lambda r: r.recency)
    figures = []
    for model in sorted({key[0] for key in chosen}):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        mine = {key: run for key, (run, _) in chosen.items() if key[0] == model}
        lengths = [key[2] for key in mine]
        for label in sorted({key[1] for key in mine}):
            points = sorted((key[2], run.overall) for key, run in mine.items() if key[1] == label)
            ax.plot(*zip(*points), marker="o", color=method_color(label), label=label)
        reference = paper[paper["model"] == paper_model(model)]
        for method, frame in reference.groupby("method"):
            points = sorted((label_tokens(l), s) for l, s in zip(frame["length"], frame["score"]))
            ax.plot(*zip(*points), linestyle=":", color=method_color(method), label=f"paper: {method}")
            lengths += [p[0] for p in points]
        _length_axis(ax, lengths)
        ax.set_ylabel("RULER score (x100)")
        ax.set_title(f"RULER vs length: {model}", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        path = out / f"ruler_vs_length_{_slug(model)}.png"
        _save(fig, path)
        figures.append(Figure(path, f"RULER score vs length, {model}", tuple(run.label or str(run.path) for run in mine.values())))
    return figures


def write_index(figures: list[Figure], out: Path) -> Path:
    """index.md: every figure with its title and the result files behind it."""
    lines = ["# Figures", ""]
    for figure in figures:
        lines += [f"## {figure.title}", "", f"![{figure.title}]({figure.path.name})", "",
                  "Sources: " + ", ".join(f"`{s}`" for s in figure.sources), ""]
    if not figures:
        lines.append("No figures: no benchmark JSON under bench/ and no runs under runs/.")
    path = out / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_figures(results: Path, out: Path, paper_dir: Path = PAPER_DIR) -> list[Figure]:
    """Draw every figure whose inputs exist under `results` into `out`, plus index.md."""
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(results)
    benches = collect_bench(results)
    if not any(not b.is_ttft for b in benches):
        print(f"figures: skipped kernel speedup and kernel time: no kernel benchmark JSON in {results / 'bench'}")
    if not any(b.is_ttft for b in benches):
        print(f"figures: skipped TTFT speedup: no ttft_*.json in {results / 'bench'}")
    figures = [
        *speedup_figures(benches, out),
        *kernel_time_figures(benches, out),
        *ttft_figures(benches, out, paper_dir),
        *score_density_figures(runs, out),
        *ruler_length_figures(runs, out, paper_dir),
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
