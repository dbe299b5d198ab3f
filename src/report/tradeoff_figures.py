"""The answer in one picture: accuracy against measured prefill speedup and against density.

One PNG per (model, device, comparable set, context length) with two or more points: the left
panel accuracy (95% interval bars) vs prefill speedup over dense, the right one accuracy vs mean
density; one point per method configuration in the method's fixed colour and marker; a thin line
joins the points of one method along one swept parameter (a threshold curve), the dashed grey
line is the Pareto front (rings mark its points). Where the paper ran the model, its accuracy at
that length is a dotted horizontal line per method (it publishes no speed per method there).
A group with no measured speedup draws only the density panel; its index entry says why, and a
speed panel names the points it lacks. Points at (nearly) the same x are spread sideways by about
1% of the axis so that each interval bar stays visible.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from src.report.paper import length_label, load_table, method_rank, paper_model
from src.report.style import Figure, error_bars, method_base, method_style, save, set_digest, slug
from src.report.tradeoff import Group, Point, density_of, pareto_front, speedup_of

Axis = Callable[[Point], float | None]
FRONT = {"color": "#555555", "linestyle": "--", "linewidth": 1.0}


def sweep_curves(points: list[Point]) -> list[tuple[str, list[Point]]]:
    """Parameter sweeps among one method's points: for each parameter some point changed from its
    default, the points that agree on every other such parameter, when they hold 2+ values of it."""
    keys = sorted({key for point in points for key in point.run.method_config.changed})
    curves = []
    for key in keys:
        others = [k for k in keys if k != key]
        buckets: dict[tuple[str, ...], list[Point]] = {}
        for point in points:
            params = point.run.method_config.params
            buckets.setdefault(tuple(repr(params.get(k)) for k in others), []).append(point)
        for bucket in buckets.values():
            if len({repr(p.run.method_config.params.get(key)) for p in bucket}) > 1:
                curves.append((key, sorted(bucket, key=lambda p: _order(p.run.method_config.params.get(key)))))
    return curves


def _order(value: object) -> tuple[int, object]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def _paper_accuracy(group: Group, paper_dir: Path) -> dict[str, float]:
    """The paper's RULER score per method at this group's model and length ({} when it has none)."""
    model = paper_model(group.model)
    if group.comparable_set.benchmark != "ruler" or model is None or group.length is None:
        return {}
    table = load_table("table3_ruler", paper_dir)
    here = table[(table["model"] == model) & (table["length"] == length_label(group.length))]
    return dict(zip(here["method"], here["score"]))


def dodged(points: list[Point], x: Axis, spread: float = 0.012) -> Callable[[Point], float]:
    """x positions to draw at: points within `spread` of the x range of each other are fanned out
    by `spread` of the range each, centred on their values."""
    values = {id(p): float(x(p)) for p in points}  # type: ignore[arg-type]
    span = (max(values.values()) - min(values.values())) or 1.0
    drawn: dict[int, float] = {}
    cluster: list[Point] = []
    for point in sorted(points, key=lambda p: values[id(p)]) + [None]:  # type: ignore[list-item]
        if point is not None and cluster and values[id(point)] - values[id(cluster[-1])] <= spread * span:
            cluster.append(point)
            continue
        for number, member in enumerate(cluster):
            drawn[id(member)] = values[id(member)] + (number - (len(cluster) - 1) / 2) * spread * span
        cluster = [point] if point is not None else []
    return lambda p: drawn[id(p)]


def _panel(ax: Axes, group: Group, axis: Axis, larger_x_better: bool, paper: dict[str, float]) -> None:
    points = [p for p in group.points if axis(p) is not None]
    x = dodged(points, axis)
    for point in points:
        ax.errorbar([x(point)], [point.accuracy.value], yerr=error_bars([point.accuracy]), linestyle="none",
                    capsize=3, markersize=8, markeredgecolor="white", markeredgewidth=0.6, zorder=3,
                    label=method_base(point.label), **method_style(point.label))
    for base in dict.fromkeys(method_base(p.label) for p in points):
        mine = [p for p in points if method_base(p.label) == base]
        curves = sweep_curves(mine)
        for _, curve in curves:
            ax.plot([x(p) for p in curve], [p.accuracy.value for p in curve], linewidth=1.0, zorder=2,
                    color=method_style(base)["color"])
        swept = sorted({param for param, _ in curves})
        for number, p in enumerate(sorted(mine, key=x) if swept else []):
            text = ", ".join(f"{param}={p.run.method_config.params.get(param)}" for param in swept)
            ax.annotate(text, (x(p), p.accuracy.value), fontsize=6, textcoords="offset points",
                        xytext=(5, 6 if number % 2 == 0 else -10), color=method_style(base)["color"])
    front = pareto_front(points, axis, larger_x_better)
    if len(front) > 1:
        ax.plot([x(p) for p in front], [p.accuracy.value for p in front], zorder=1, label="Pareto front", **FRONT)
    ax.scatter([x(p) for p in front], [p.accuracy.value for p in front], s=220, facecolors="none",
               edgecolors=FRONT["color"], linewidths=1.0, zorder=4)
    for method, score in paper.items():
        ax.axhline(score, linestyle=":", linewidth=1.0, color=method_style(method)["color"], label=f"paper: {method} (accuracy only)")
    lacking = [p.label for p in group.points if axis(p) is None]
    if lacking:
        ax.text(0.01, 0.01, "not shown (not measured): " + ", ".join(lacking), transform=ax.transAxes, fontsize=6,
                va="bottom", ha="left", color="#555555", wrap=True)
    ax.grid(alpha=0.3)


def _figure_name(group: Group) -> str:
    digest = set_digest(group.comparable_set)
    where = f"-{group.length}" if group.length else ""
    fixture = "-fixture" if group.comparable_set.is_fixture else ""
    return f"tradeoff_{slug(group.model)}_{slug(group.device)}_{group.comparable_set.benchmark}{fixture}{where}_{digest}.png"


def tradeoff_figures(groups: list[Group], out: Path, paper_dir: Path) -> list[Figure]:
    """One accuracy-vs-speedup / accuracy-vs-density PNG per group of two or more points."""
    figures = []
    for group in groups:
        if len(group.points) < 2:
            print(f"figures: skipped tradeoff for {group.title}: one method configuration only")
            continue
        panels = [("prefill speedup over dense (x)", speedup_of, True)] if group.has_speed else []
        panels.append(("mean density (computed / causal blocks)", density_of, False))
        paper = _paper_accuracy(group, paper_dir)
        fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels) + 1.8, 4.6), squeeze=False, sharey=True)
        for ax, (xlabel, x, larger) in zip(axes[0], panels):
            _panel(ax, group, x, larger, paper)
            ax.set_xlabel(xlabel)
            ax.axvline(1.0, color="black", linewidth=0.6)
        axes[0][0].set_ylabel("accuracy (x100), 95% interval")
        handles: dict[str, object] = {}
        for ax in axes[0]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        labels = sorted(handles, key=lambda label: (label.startswith(("Pareto", "paper")), method_rank(label)))
        fig.legend([handles[label] for label in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
        speed = "" if group.has_speed else "\n(density only: no measured speedup, see index)"
        fig.suptitle(f"Accuracy vs prefill cost: {group.title}\n{group.comparable_set.short()}{speed}", fontsize=10)
        path = out / _figure_name(group)
        save(fig, path)
        figures.append(Figure(path, f"Accuracy vs prefill cost: {group.title}", tuple(p.run.label for p in group.points),
                              group.comparable_set.describe(), group.speed_note))
    return figures
