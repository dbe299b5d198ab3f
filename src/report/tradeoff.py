"""Which method keeps accuracy, and how much prefill time does it save: the points of that answer.

For each (model, device, comparable set, context length) there is one point per method
configuration (method x threshold ...): its accuracy with a 95% bootstrap interval, its paired
difference to dense on the same samples, its mean density, and its measured prefill speedup over
dense. The Pareto front is taken on the point estimates (higher accuracy and higher speedup, or
higher accuracy and lower density). Where the speedup comes from, in order:

- `prefill`: the runs' own per-sample prefill times, dense median / method median over the
  samples both ran, when the dense run is of the same set, length and device, was measured by the
  same code (the same commit) and neither run shared its device with other jobs
  (`eval.concurrent_jobs` = 1, the default);
- `ttft`: otherwise a TTFT benchmark (`results/bench/ttft_*.json`, experiments/bench_ttft.py) of
  the same model, device, length and method configuration: its `speedup_vs_sdpa`;
- none: the point has no speedup; a group with none draws only its density panel, and says why.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from src.report.collect import Bench, Run, newest
from src.report.comparison import DENSE, paired_text, with_interval
from src.report.keys import ComparableSet, MethodConfig
from src.report.paper import length_label, method_rank
from src.report.scores import headline
from src.report.stats import Interval, interval, paired_difference

TABLE_NAME = "tradeoff"
DENSE_SPEED = "dense"  # the speed source of the dense point itself (1.0 by definition)


@dataclass(frozen=True)
class Speed:
    """A point's prefill speedup over dense and where it was measured."""

    speedup: float
    source: str


@dataclass(frozen=True)
class Point:
    """One method configuration's result in a group."""

    run: Run
    passed: int
    accuracy: Interval
    density: float | None
    speed: Speed | None
    versus_dense: Interval | None

    @property
    def label(self) -> str:
        """The row label: paper method name and changed parameters."""
        return self.run.method_label


@dataclass
class Group:
    """The points of one (model, device, comparable set, length), and why some lack a speedup."""

    model: str
    device: str
    comparable_set: ComparableSet
    length: int | None
    points: list[Point]
    speed_note: str

    @property
    def title(self) -> str:
        """'smollm2-135m-instruct, NVIDIA H200, RULER 4K'."""
        where = f" {length_label(self.length)}" if self.length else ""
        return f"{self.model}, {self.device}, {self.comparable_set.benchmark}{where}"

    @property
    def has_speed(self) -> bool:
        """Whether any point other than dense has a measured speedup."""
        return any(point.speed and point.speed.source != DENSE_SPEED for point in self.points)


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    return {head: _nested(rest, value) if rest else value}


def bench_method(bench: Bench, method: str) -> MethodConfig:
    """The method configuration a TTFT benchmark ran `method` with: its config plus the
    `--override METHOD:key=value` items that name it. A benchmark records only those overrides,
    so the rest counts at today's defaults: a TTFT file written before a rule change (EARLIER_RULES
    in keys.py) would be read as the new rule; the SmolLM2 ones committed for the tradeoff figures
    (results/bench/ttft_smollm2*_h200.json) were written after it."""
    recorded: dict[str, Any] = {"name": method}
    for item in bench.args.get("override") or []:
        target, _, assignment = str(item).partition(":")
        key, _, value = assignment.partition("=")
        if target == method and key:
            recorded = {**recorded, **_nested(key.lstrip("+"), yaml.safe_load(value))}
    return MethodConfig.of(recorded, complete=False)


def ttft_speed(run: Run, benches: Iterable[Bench]) -> Speed | None:
    """The newest TTFT benchmark row of the run's model, device, length and method configuration."""
    found = [
        (bench, row) for bench in benches if bench.is_ttft and bench.device == run.device
        for row in bench.rows
        if row.get("model") == run.model and row.get("method") == run.method and row.get("speedup_vs_sdpa")
        and row.get("target_length", row["length"]) == run.length
        and bench_method(bench, run.method).key == run.method_config.key
    ]
    if not found:
        return None
    bench, row = max(found, key=lambda item: item[0].recency)
    return Speed(float(row["speedup_vs_sdpa"]), f"TTFT benchmark {bench.label or bench.path.name}")


def prefill_speed(run: Run, dense: Run) -> Speed | None:
    """Dense median prefill / the run's median prefill over the samples both ran."""
    times = {row["id"]: row.get("prefill_s") for row in dense.rows}
    pairs = [(times[row["id"]], row.get("prefill_s")) for row in run.rows if times.get(row["id"]) and row.get("prefill_s")]
    if not pairs:
        return None
    timed = " (per-stage timing on)" if run.info["config"].get("timing") or dense.info["config"].get("timing") else ""
    ratio = statistics.median(d for d, _ in pairs) / statistics.median(m for _, m in pairs)
    return Speed(ratio, f"prefill medians over {len(pairs)} samples{timed}")


def _commit(run: Run) -> str:
    return str(run.info["commit"]).removesuffix("-dirty")


def clean_timing(run: Run, dense: Run | None) -> bool:
    """Whether `run`'s prefill times can be divided into `dense`'s: same code, each alone on the device."""
    return dense is not None and _commit(run) == _commit(dense) and run.concurrent_jobs == 1 and dense.concurrent_jobs == 1


def _speed(run: Run, dense: Run | None, benches: list[Bench]) -> Speed | None:
    if run is dense:
        return Speed(1.0, DENSE_SPEED)
    return (prefill_speed(run, dense) if clean_timing(run, dense) else None) or ttft_speed(run, benches)  # type: ignore[arg-type]


def _speed_note(points: list[Point], dense: Run | None) -> str:
    sources = sorted({p.speed.source for p in points if p.speed and p.speed.source != DENSE_SPEED})
    missing = [p for p in points if p.speed is None]
    shared = sorted({p.run.concurrent_jobs for p in points if p.run.concurrent_jobs > 1})
    reasons = []
    if dense is None:
        reasons.append("no dense run of this set on this device to time against")
    if dense is not None and any(_commit(p.run) != _commit(dense) for p in missing):
        reasons.append(f"dense was timed at another commit ({_commit(dense)[:12]})")
    if shared:
        reasons.append(f"runs shared the device (eval.concurrent_jobs={','.join(map(str, shared))}), so their prefill times are not clean")
    if missing:
        reasons.append("no TTFT benchmark of this model, device, length and method configuration")
    text = f"speedup from {'; '.join(sources)}" if sources else "no speedup measured"
    if missing:
        text += f"; none for {', '.join(p.label for p in missing)} ({'; '.join(reasons)})"
    return text


def tradeoff_groups(runs: Iterable[Run], benches: list[Bench]) -> list[Group]:
    """Every (model, device, set, length) with its newest run per method configuration as points."""
    grouped: dict[tuple[str, str, ComparableSet, int | None], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.model, run.device, run.comparable_set, run.length), []).append(run)
    groups = []
    for (model, device, aset, length), members in grouped.items():
        chosen = newest(members, lambda r: r.cell_key, lambda r: r.recency)
        dense_pick = next((pick for pick in chosen.values() if pick[0].method == "dense" and not pick[0].variant), None)
        dense = dense_pick[0] if dense_pick else None
        dense_scores = headline(dense) if dense else None
        points = []
        for run, passed in chosen.values():
            scores = headline(run)
            versus = paired_difference(scores, dense_scores) if dense_scores is not None and run is not dense else None
            points.append(Point(run, passed, interval(scores), run.mean_density, _speed(run, dense, benches), versus))
        points.sort(key=lambda p: method_rank(p.label))
        groups.append(Group(model, device, aset, length, points, _speed_note(points, dense)))
    return sorted(groups, key=lambda g: (g.model, g.comparable_set.is_fixture, g.comparable_set.describe(), g.length or 0, g.device))


def pareto_front(points: list[Point], x: Callable[[Point], float | None], larger_x_better: bool) -> list[Point]:
    """The points no other point beats on both accuracy and x (on the point estimates), by x."""
    usable = [p for p in points if x(p) is not None]
    sign = 1.0 if larger_x_better else -1.0

    def beats(a: Point, b: Point) -> bool:
        ax, bx = sign * x(a), sign * x(b)  # type: ignore[operator]
        return ax >= bx and a.accuracy.value >= b.accuracy.value and (ax > bx or a.accuracy.value > b.accuracy.value)

    front = [p for p in usable if not any(beats(q, p) for q in usable if q is not p)]
    return sorted(front, key=lambda p: x(p))  # type: ignore[arg-type, return-value]


def speedup_of(point: Point) -> float | None:
    """The point's measured speedup over dense, if any."""
    return point.speed.speedup if point.speed else None


def density_of(point: Point) -> float | None:
    """The point's mean density."""
    return point.density


def group_frame(group: Group) -> pd.DataFrame:
    """The group as display rows: method, score [CI] n, paired difference to Full, density,
    speedup and its source, and membership of the two Pareto fronts."""
    on_speed = {id(p) for p in pareto_front(group.points, speedup_of, True)} if group.has_speed else set()
    on_density = {id(p) for p in pareto_front(group.points, density_of, False)}
    rows = []
    for point in group.points:
        rows.append({
            "method": point.label,
            "score [95% CI] n": with_interval(f"{point.accuracy.value:.2f}", point.accuracy),
            f"- {DENSE} (paired)": paired_text(point.versus_dense) if point.versus_dense else "",
            "density": f"{point.density:.3f}" if point.density is not None else "",
            "prefill speedup": f"{point.speed.speedup:.2f}x" if point.speed else "not measured",
            "speed from": point.speed.source if point.speed else "",
            "Pareto": "/".join(name for name, front in (("speed", on_speed), ("density", on_density)) if id(point) in front),
            "run": point.run.label + (f" (newest of {point.passed + 1})" if point.passed else ""),
        })
    return pd.DataFrame(rows)


def tradeoff_markdown(groups: list[Group], heading: str = "Accuracy vs prefill cost, per method configuration (ours)") -> tuple[str, pd.DataFrame]:
    """All groups as one markdown section (a table per group, headed by its set) and one flat frame."""
    parts = [f"## {heading}", "",
             "- score x100 [95% bootstrap interval] n=samples; '- Full (paired)': paired bootstrap on the same "
             "samples, * = interval excludes 0; speedup = dense prefill time / method prefill time on the same device",
             "- Pareto: on the front of accuracy vs speedup ('speed') and of accuracy vs density ('density'), point estimates", ""]
    flat = []
    for group in groups:
        frame = group_frame(group)
        parts += [f"### {group.title}", "", f"**Set:** {group.comparable_set.describe()}", "", f"*{group.speed_note}*", "",
                  frame.to_markdown(index=False, disable_numparse=True), ""]
        flat.append(frame.assign(model=group.model, device=group.device, set=group.comparable_set.describe(),
                                 length=group.length))
    if not groups:
        parts.append("No runs.")
    return "\n".join(parts), pd.concat(flat, ignore_index=True) if flat else pd.DataFrame()
