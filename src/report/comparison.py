"""The paper's table beside ours: a `Comparison` (published cells, our cells with their sources)
laid out as row groups per model, with the difference taken only between the same model and
method, and written as markdown (footnoted sources) or a flat frame (CSV, LaTeX).

A model the paper ran gets, per row label, the paper's row, ours, 'ours - Full (paired)' and
'ours - paper'; any other model (e.g. SmolLM2) gets its own group, to be read beside the paper's
groups, with no paper difference taken. A cell no result fills reads "not run"; a column the
paper does not publish "—". One comparison holds one comparable set of ours (`set_text`, stated
under its title); an accuracy cell reads "score [95% CI] n=samples", a paired difference to
dense "+d [CI]", with "*" when its interval excludes 0.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from src.report.collect import Source
from src.report.paper import METHOD_NAMES, method_rank, paper_model
from src.report.stats import Interval

NOT_RUN = "not run"
UNPUBLISHED = "—"
DENSE = METHOD_NAMES["dense"]
PAIRED_SOURCE = f"ours - {DENSE} (paired)"


@dataclass(frozen=True)
class Cell:
    """One of our numbers and the results it came from; `partial` marks an average over fewer
    items than the paper's, so no difference is taken."""

    value: float | None
    sources: tuple[Source, ...] = ()
    partial: bool = False
    interval: Interval | None = None


@dataclass
class Comparison:
    """A paper table and ours, keyed by (model or group, row label) -> column -> value."""

    name: str
    title: str
    label: str
    columns: list[str]
    paper: dict[tuple[str, str], dict[str, float]]
    ours: dict[tuple[str, str], dict[str, Cell]]
    notes: list[str] = field(default_factory=list)
    match: Callable[[str], str | None] = paper_model
    order: Callable[[str], Any] = method_rank
    formats: dict[str, str] = field(default_factory=dict)
    set_text: str = ""
    paired: dict[tuple[str, str], dict[str, Interval]] = field(default_factory=dict)
    paper_groups: bool = True


@dataclass
class Group:
    """Rows of one model: display rows plus the sources each row cites."""

    title: str
    rows: list[dict[str, str]]
    sources: list[tuple[Source, ...]]


def paper_cells(frame: pd.DataFrame, label: str, column: str, value: str) -> dict[tuple[str, str], dict[str, float]]:
    """A long paper table as {(model, row label): {column: value}}."""
    cells: dict[tuple[str, str], dict[str, float]] = {}
    for row in frame.itertuples(index=False):
        record = row._asdict()
        cells.setdefault((record["model"], str(record[label])), {})[str(record[column])] = float(record[value])
    return cells


def _shown(comp: Comparison, column: str, value: float, sign: str = "") -> str:
    return format(value, sign + comp.formats.get(column, ".2f"))


def _paper_row(comp: Comparison, published: dict[str, float]) -> dict[str, str]:
    return {c: _shown(comp, c, published[c]) if c in published else UNPUBLISHED for c in comp.columns}


def with_interval(value: str, interval: Interval, sign: str = "") -> str:
    """'35.00 [19.1, 52.3] n=11' (or '35.00 n=1': no interval from one sample)."""
    if interval.low is None or interval.high is None:
        return f"{value} n={interval.n}"
    return f"{value} [{interval.low:{sign}.1f}, {interval.high:{sign}.1f}] n={interval.n}"


def _our_cell(comp: Comparison, column: str, cell: Cell | None) -> str:
    if cell is None or cell.value is None:
        return NOT_RUN
    shown = _shown(comp, column, cell.value) + ("*" if cell.partial else "")
    return with_interval(shown, cell.interval) if cell.interval else shown


def _our_row(comp: Comparison, cells: dict[str, Cell]) -> dict[str, str]:
    return {c: _our_cell(comp, c, cells.get(c)) for c in comp.columns}


def paired_text(difference: Interval) -> str:
    """'+3.03 [-9.1, +15.2] n=11', with '*' appended when the interval excludes 0."""
    return with_interval(f"{difference.value:+.2f}", difference, "+") + ("*" if difference.excludes_zero else "")


def _paired_row(comp: Comparison, differences: dict[str, Interval]) -> dict[str, str]:
    return {c: paired_text(differences[c]) if c in differences else "" for c in comp.columns}


def _diff_row(comp: Comparison, cells: dict[str, Cell], published: dict[str, float]) -> dict[str, str]:
    diff = {}
    for column in comp.columns:
        cell = cells.get(column)
        usable = cell is not None and cell.value is not None and not cell.partial and column in published
        diff[column] = _shown(comp, column, cell.value - published[column], "+") if usable else ""
    return diff


def _group_rows(comp: Comparison, paper_model_name: str | None, models: list[str], labels: list[str]) -> Group:
    group = Group(paper_model_name or models[0], [], [])

    def add(model: str, source: str, label: str, values: dict[str, str], cited: tuple[Source, ...] = ()) -> None:
        group.rows.append({"model": model, "source": source, comp.label: label, **values})
        group.sources.append(cited)

    for label in labels:
        published = comp.paper.get((paper_model_name, label)) if paper_model_name else None
        if published is not None:
            add(paper_model_name, "paper", label, _paper_row(comp, published))
        for model in models:
            cells = comp.ours.get((model, label), {})
            add(model, "ours", label, _our_row(comp, cells), tuple(dict.fromkeys(s for cell in cells.values() for s in cell.sources)))
            if comp.paired.get((model, label)):
                add(model, PAIRED_SOURCE, label, _paired_row(comp, comp.paired[(model, label)]))
            diff = _diff_row(comp, cells, published) if published is not None else {}
            if any(diff.values()):
                add(model, "ours - paper", label, diff)
    if not paper_model_name:
        group.title += " (ours only: not a model the paper reports here; compare with the paper's groups)"
    elif not models:
        group.title += " (paper only: we have no run of this model)"
    return group


def layout(comp: Comparison) -> list[Group]:
    """The comparison as row groups: each paper model with our matching models, then our other models."""
    paper_models = list(dict.fromkeys(model for model, _ in comp.paper))
    our_models = sorted({model for model, _ in comp.ours})
    all_paper_labels = {label for _, label in comp.paper}
    groups = []
    for pm in paper_models:
        mine = [m for m in our_models if comp.match(m) == pm]
        if not mine and not comp.paper_groups:
            continue
        labels = {label for model, label in comp.paper if model == pm} | {label for model, label in comp.ours if model in mine}
        groups.append(_group_rows(comp, pm, mine, sorted(labels, key=comp.order)))
    for model in our_models:
        if comp.match(model) not in paper_models:
            labels = (all_paper_labels if comp.paper_groups else set()) | {label for m, label in comp.ours if m == model}
            groups.append(_group_rows(comp, None, [model], sorted(labels, key=comp.order)))
    return groups


def _footnotes(groups: list[Group]) -> dict[Source, int]:
    numbers: dict[Source, int] = {}
    for group in groups:
        for cited in group.sources:
            for source in cited:
                numbers.setdefault(source, len(numbers) + 1)
    return numbers


def frames(comp: Comparison) -> tuple[list[tuple[str, pd.DataFrame]], pd.DataFrame, dict[Source, int]]:
    """Per-group display frames (provenance as footnote numbers), one flat frame (provenance spelled
    out, for CSV and LaTeX) and the footnote numbering."""
    groups = layout(comp)
    numbers = _footnotes(groups)
    shown, flat = [], []
    for group in groups:
        refs = ["".join(f"[{numbers[s]}]" for s in cited) for cited in group.sources]
        texts = [" | ".join(s.describe() for s in cited) for cited in group.sources]
        shown.append((group.title, pd.DataFrame([{**row, "provenance": ref} for row, ref in zip(group.rows, refs)])))
        flat += [{**({"set": comp.set_text} if comp.set_text else {}), **row, "provenance": text} for row, text in zip(group.rows, texts)]
    return shown, pd.DataFrame(flat), numbers


def to_markdown(comp: Comparison) -> str:
    """The comparison as a markdown section: notes, one table per model group, then the sources."""
    shown, _, numbers = frames(comp)
    parts = [f"## {comp.title}", ""]
    if comp.set_text:
        parts += [f"**Set:** {comp.set_text}", ""]
    parts += [f"- {note}" for note in comp.notes] + [""]
    for title, frame in shown:
        parts += [f"### {title}", "", frame.to_markdown(index=False, disable_numparse=True), ""]
    if numbers:
        parts += ["Sources of our cells:", ""] + [f"[{n}] {s.describe()}  " for s, n in numbers.items()] + [""]
    return "\n".join(parts)


def to_latex(frame: pd.DataFrame, caption: str) -> str:
    """A flat comparison frame as a LaTeX tabular (booktabs rules, text escaped)."""
    styler = frame.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True, caption=caption.replace("%", r"\%").replace("&", r"\&"))
