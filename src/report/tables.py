"""`make tables`: the paper's Tables 1, 2, 3, 5, 7 and its TTFT speedups, with our runs beside them.

    python -m src.report.tables [--results results] [--out results/tables] [--paper results/paper] [--runs DIR ...]

Runs are read from the committed roots only (results/runs/<device>/..., never the git-ignored
results/runs/local) unless --runs adds a root. They are split into comparable sets
(src/report/keys.py: benchmark, harness, source, tasks, samples per task, seed, ...): each set is
a table of its own, headed by what it is, so a 1-task smoke run can never stand in an 11-task
run's cell; within a set the newest result of a cell wins and its footnote says how many older
ones it passed over. Every accuracy cell shows its score, 95% bootstrap interval and sample count
(src/report/stats.py); a method's row is followed by its paired difference to Full (dense) on
the samples both ran, '*' marking an interval that excludes 0. Runs on our offline LongBench
fixtures only ever appear in tables of their own (fixture_longbench*), never as LongBench scores.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from src.attention.plan import causal_block_count
from src.data.longbench_prompts import CATEGORIES
from src.report.cli import run_report
from src.report.collect import Bench, Run, Source, collect_bench, collect_runs, newest, run_roots
from src.report.comparison import DENSE, Cell, Comparison, frames, paper_cells, to_latex, to_markdown
from src.report.keys import ComparableSet
from src.report.paper import PAPER_DIR, label_tokens, length_label, load_table, paper_method, paper_model
from src.report.scores import by_task, headline, longbench_category, pooled, pooled_lengths, run_scores
from src.report.stats import Interval, Scores, interval, paired_difference
from src.report.tradeoff import TABLE_NAME, tradeoff_groups, tradeoff_markdown

PAPER_BLOCK, PAPER_SEGMENT, LLAMA_SHAPES = 128, 256, (32, 8, 128)
LONGBENCH_V2_COLUMNS = {"Easy": "difficulty", "Hard": "difficulty", "Short": "length", "Medium": "length", "Long": "length"}
BLOCK_COLUMNS = {"total_causal_blocks": "total causal blocks", "without_perm": "w/o perm", "with_perm": "w/ perm", "reduction_pct": "reduction %"}
BREAKDOWN_COLUMNS = {
    "flashattention_ms": "SDPA ms",
    "permutation_ms": "permutation ms",
    "selection_ms": "selection ms",
    "attention_ms": "attention ms",
    "total_ms": "total ms",
    "overhead_pct": "overhead %",
    "speedup": "speedup",
}
ACCURACY_NOTE = ("ours: score x100 [95% bootstrap interval over samples] n=samples; 'ours - Full (paired)': the "
                 "method minus Full on the samples both ran, paired bootstrap interval, * = interval excludes 0")

RowKey = tuple[str, str]


def length_order(label: str) -> tuple[int, str]:
    """Sort key for length labels: by tokens, with any suffix (e.g. a block size) after."""
    return (label_tokens(label.split(" ")[0]) or 0, label)


def comparable_sets(runs: Iterable[Run], benchmark: str) -> list[tuple[ComparableSet, list[Run]]]:
    """`benchmark`'s runs by comparable set: the benchmark's own data before our fixture, then the
    sets with more samples first."""
    grouped: dict[ComparableSet, list[Run]] = {}
    for run in runs:
        if run.benchmark == benchmark:
            grouped.setdefault(run.comparable_set, []).append(run)
    return sorted(grouped.items(), key=lambda item: (item[0].is_fixture, -item[0].samples, item[0].describe()))


def newest_cells(runs: Iterable[Run]) -> list[tuple[Run, int]]:
    """The newest run of each cell (model, set, length, method configuration), with how many it passed over."""
    return list(newest(runs, lambda run: run.cell_key, lambda run: run.recency).values())


def score_cell(scores: Scores, sources: tuple[Source, ...], partial: bool = False) -> Cell:
    """An accuracy cell: the scores' number with its bootstrap interval."""
    found: Interval = interval(scores)
    return Cell(found.value, sources, partial, found)


def _density_cell(run: Run, source: Source) -> Cell:
    return Cell(run.mean_density, (source,))


def paired_vs_dense(scores: dict[RowKey, dict[str, Scores]]) -> dict[RowKey, dict[str, Interval]]:
    """Each non-dense row's paired difference to the same model's Full row, per column both have."""
    paired: dict[RowKey, dict[str, Interval]] = {}
    for (model, label), columns in scores.items():
        dense = scores.get((model, DENSE))
        if label == DENSE or not dense:
            continue
        differences = {c: paired_difference(s, dense[c]) for c, s in columns.items() if c in dense}
        found = {c: d for c, d in differences.items() if d is not None}
        if found:
            paired[(model, label)] = found
    return paired


def per_set(
    name: str, sets: list[tuple[ComparableSet, list[Run]]], build: Callable[[str, ComparableSet, list[Run]], Comparison],
    empty: Callable[[], Comparison], fixture_name: str | None = None,
) -> list[Comparison]:
    """One comparison per set (fixture sets under `fixture_name`), the paper-only one when there is no set
    of the benchmark's own data; the paper's groups of models we did not run appear in the first only."""
    comparisons = [build(fixture_name if aset.is_fixture and fixture_name else name, aset, members) for aset, members in sets]
    if not any(comp.name == name for comp in comparisons):
        comparisons.insert(0, empty())
    seen: set[str] = set()
    for comp in comparisons:
        comp.paper_groups = comp.name not in seen
        seen.add(comp.name)
    return comparisons


def _set_title(title: str, aset: ComparableSet) -> str:
    return f"{title} — FIXTURE, not the benchmark" if aset.is_fixture else title


def run_row_tables(
    name: str, fixture_name: str, benchmark: str, title: str, columns: list[str], paper: dict[RowKey, dict[str, float]],
    notes: list[str], runs: list[Run], scores_of: Callable[[Run], tuple[dict[str, Scores], set[str]]],
) -> list[Comparison]:
    """A table of one row per run (model x method), one per comparable set: `scores_of(run)` gives
    each accuracy column's scores and the columns to mark partial; a density column follows."""

    def build(table_name: str, aset: ComparableSet, members: list[Run]) -> Comparison:
        ours: dict[RowKey, dict[str, Cell]] = {}
        kept: dict[RowKey, dict[str, Scores]] = {}
        for run, passed in newest_cells(members):
            source = run.source(passed)
            scores, partial = scores_of(run)
            key = (run.model, run.method_label)
            ours[key] = {column: score_cell(value, (source,), column in partial) for column, value in scores.items()}
            ours[key]["density"] = _density_cell(run, source)
            kept[key] = scores
        return Comparison(table_name, _set_title(title, aset), "method", columns, {} if aset.is_fixture else paper, ours,
                          notes=notes, set_text=aset.describe(), paired=paired_vs_dense(kept))

    def empty() -> Comparison:
        return Comparison(name, title, "method", columns, paper, {}, notes=notes, set_text=f"no run of ours on {benchmark}'s own data")

    return per_set(name, comparable_sets(runs, benchmark), build, empty, fixture_name)


def longbench_tables(runs: list[Run], paper_dir: Path) -> list[Comparison]:
    """Table 1: LongBench category averages and their mean, per model x method, one table per set."""

    def scores_of(run: Run) -> tuple[dict[str, Scores], set[str]]:
        scores = {category.column: run_scores(run, by_task, lambda row, c=category.name: longbench_category(row["task"]) == c)
                  for category in CATEGORIES}
        scores = {column: value for column, value in scores.items() if value.n}
        partial = set() if len(scores) == len(CATEGORIES) else {"Avg"}
        return {**scores, "Avg": headline(run)}, partial

    return run_row_tables(
        "table1_longbench", "fixture_longbench", "longbench", "Table 1: LongBench (category averages, Avg over the 6 categories)",
        [*(category.column for category in CATEGORIES), "Avg", "density"],
        paper_cells(load_table("table1_longbench", paper_dir), "method", "category", "score"),
        [ACCURACY_NOTE, "density: mean computed fraction of causal blocks over the run's samples (ours only)",
         "* after a score: Avg over fewer than the 6 categories (only those run); no paper difference taken"],
        runs, scores_of,
    )


def _meta_is(field: str, value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda row: str((row.get("meta") or {}).get(field, "")).lower() == value.lower()


def longbench_v2_tables(runs: list[Run], paper_dir: Path) -> list[Comparison]:
    """Table 2: LongBench v2 accuracy overall and by difficulty and length, one table per set."""

    def scores_of(run: Run) -> tuple[dict[str, Scores], set[str]]:
        scores = {"Overall": headline(run)}
        for column, field in LONGBENCH_V2_COLUMNS.items():
            found = run_scores(run, pooled, _meta_is(field, column))
            if found.n:
                scores[column] = found
        return scores, set()

    return run_row_tables(
        "table2_longbench_v2", "fixture_longbench_v2", "longbench_v2", "Table 2: LongBench v2 (accuracy x100)",
        ["Overall", *LONGBENCH_V2_COLUMNS, "density"],
        paper_cells(load_table("table2_longbench_v2", paper_dir).assign(column="Overall"), "method", "column", "score"),
        [ACCURACY_NOTE, "the paper reports Overall only; its other columns read '—'"], runs, scores_of,
    )


def ruler_tables(runs: list[Run], paper_dir: Path) -> list[Comparison]:
    """Table 3: RULER average score per context length and over lengths, plus mean density; one table per set."""
    paper = paper_cells(load_table("table3_ruler", paper_dir), "method", "length", "score")
    paper_lengths = sorted({c for cells in paper.values() for c in cells if c != "Avg"}, key=length_order)
    notes = [ACCURACY_NOTE,
             "Avg: over the lengths run, each length weighted equally, its interval resampling all of their samples",
             "density: mean computed fraction of causal blocks, averaged over the lengths run (ours only)",
             f"* after a score: Avg over the lengths run, not exactly the paper's {', '.join(paper_lengths)}; no difference taken"]

    def build(name: str, aset: ComparableSet, members: list[Run]) -> Comparison:
        by_row: dict[RowKey, dict[str, tuple[Run, int]]] = {}
        for run, passed in newest_cells(r for r in members if r.length):
            by_row.setdefault((run.model, run.method_label), {})[length_label(run.length)] = (run, passed)  # type: ignore[arg-type]
        ours: dict[RowKey, dict[str, Cell]] = {}
        kept: dict[RowKey, dict[str, Scores]] = {}
        for key, chosen in by_row.items():
            sources = {length: run.source(passed) for length, (run, passed) in chosen.items()}
            scores = {length: headline(run) for length, (run, _) in chosen.items()}
            scores["Avg"] = pooled_lengths(((length, run) for length, (run, _) in chosen.items()), by_task)
            cells = {length: score_cell(scores[length], (sources[length],)) for length in chosen}
            cells["Avg"] = score_cell(scores["Avg"], tuple(sources.values()), partial=set(chosen) != set(paper_lengths))
            densities = [run.mean_density for run, _ in chosen.values() if run.mean_density is not None]
            cells["density"] = Cell(statistics.fmean(densities) if densities else None, tuple(sources.values()))
            ours[key], kept[key] = cells, scores
        lengths = sorted(set(paper_lengths) | {c for cells in ours.values() for c in cells if c not in ("Avg", "density")}, key=length_order)
        return Comparison(name, "Table 3: RULER (average over tasks, x100) per context length", "method",
                          [*lengths, "Avg", "density"], paper, ours, notes=notes, set_text=aset.describe(),
                          paired=paired_vs_dense(kept))

    def empty() -> Comparison:
        return Comparison("table3_ruler", "Table 3: RULER (average over tasks, x100) per context length", "method",
                          [*paper_lengths, "Avg", "density"], paper, {}, notes=notes, set_text="no RULER run of ours")

    return per_set("table3_ruler", comparable_sets(runs, "ruler"), build, empty)


def _block_counts(run: Run) -> tuple[float, float] | None:
    """Mean causal blocks and mean selected blocks per sample of a block-sparse run."""
    block = (run.info["config"].get("method") or {}).get("block_size")
    if not block:
        return None
    pairs = [
        (causal_block_count(row["input_tokens"], block), (row.get("method_stats") or {}).get("density"))
        for row in run.rows if row.get("input_tokens")
    ]
    pairs = [(total, density) for total, density in pairs if density is not None]
    if not pairs:
        return None
    return statistics.fmean(t for t, _ in pairs), statistics.fmean(t * d for t, d in pairs)


def _blocks_cells(total: float, without: float, with_perm: float, sources: tuple[Source, ...]) -> dict[str, Cell]:
    values = {"total causal blocks": total, "w/o perm": without, "w/ perm": with_perm,
              "reduction %": 100 * (1 - with_perm / without) if without else None}
    return {k: Cell(v, sources) for k, v in values.items()}


def bench_model(bench: Bench) -> str:
    """What a kernel benchmark's shapes stand for: 'Llama-3.1-8B' for the paper's one-layer setup
    (32 query heads, 8 KV heads, head dim 128, B=128, S=256), else the shapes themselves."""
    a = bench.args
    shapes = (a.get("heads"), a.get("kv_heads"), a.get("head_dim"))
    if shapes == LLAMA_SHAPES and (a.get("block"), a.get("segment")) == (PAPER_BLOCK, PAPER_SEGMENT):
        return "Llama-3.1-8B"
    return f"h{shapes[0]}/kv{shapes[1]}/d{shapes[2]} B={a.get('block')} S={a.get('segment')}"


def _bench_row(bench: Bench, length: int, *names: str) -> dict[str, Any] | None:
    rows = {row.get("name"): row for row in bench.rows if row["length"] == length}
    return next((rows[n] for n in names if n in rows), None)


def selected_blocks_tables(runs: list[Run], benches: list[Bench], paper_dir: Path) -> list[Comparison]:
    """Table 5: selected causal blocks without (MeanPooling) and with (PBS) permutation per context,
    from RULER runs of both methods at their defaults (one table per set) and from kernel-benchmark method rows."""
    paper = load_table("table5_selected_blocks", paper_dir).assign(model="Llama-3.1-8B")
    long = paper.melt(id_vars=["model", "context"], value_vars=list(BLOCK_COLUMNS), var_name="column")
    long["column"] = long["column"].map(BLOCK_COLUMNS)
    published = paper_cells(long, "context", "column", "value")
    notes = ["ours from runs: mean per sample of density x causal blocks of its prompt, MeanPooling (w/o) vs PBS (w/) at the same length and block size",
             "ours from the kernel bench: method-row density x causal blocks of the length, one attention layer",
             "the paper counts a Llama-3.1-8B layer on real prompts; kernel-bench rows use other inputs, so no difference is taken"]
    formats = {"total causal blocks": ".0f", "w/o perm": ".0f", "w/ perm": ".0f", "reduction %": ".1f"}
    title = "Table 5: selected causal blocks without vs with permutation (B=128, threshold 0.9)"

    def comparison(ours: dict[RowKey, dict[str, Cell]], set_text: str, match: Callable[[str], str | None] = paper_model) -> Comparison:
        return Comparison("table5_selected_blocks", title, "context", list(BLOCK_COLUMNS.values()), published, ours,
                          notes=notes, match=match, order=length_order, formats=formats, set_text=set_text)

    comparisons = []
    for aset, members in comparable_sets(runs, "ruler"):
        candidates = [r for r in members if r.method in ("meanpooling", "pbs") and not r.variant and r.length]
        chosen = newest(candidates, lambda r: (r.model, r.method, r.length, r.method_config.params.get("block_size")), lambda r: r.recency)
        ours: dict[RowKey, dict[str, Cell]] = {}
        for (model, method, length, block), (mean_run, passed) in chosen.items():
            if method != "meanpooling" or (model, "pbs", length, block) not in chosen:
                continue
            pbs_run, pbs_passed = chosen[(model, "pbs", length, block)]
            without, with_perm = _block_counts(mean_run), _block_counts(pbs_run)
            if without is None or with_perm is None:
                continue
            label = length_label(length) + ("" if block == PAPER_BLOCK else f" (B={block})")
            ours[(model, label)] = _blocks_cells(without[0], without[1], with_perm[1], (mean_run.source(passed), pbs_run.source(pbs_passed)))
        if ours:
            comparisons.append(comparison(ours, aset.describe()))
    bench_groups = set()
    items = []
    for bench in benches:
        if bench.is_ttft:
            continue
        inputs = f"q/k/v from {bench.args['qkv']}" if bench.args.get("qkv") else "structured random q/k/v"
        group = f"{bench_model(bench)} on {bench.device}, kernel bench ({inputs})"
        for length in sorted({row["length"] for row in bench.rows}):
            mean_row = _bench_row(bench, length, "method:meanpooling")
            pbs_row = _bench_row(bench, length, "method:pbs:head", "method:pbs")
            if mean_row and pbs_row and mean_row.get("density") is not None and pbs_row.get("density") is not None:
                items.append((bench, group, length, mean_row["density"], pbs_row["density"]))
    bench_cells: dict[RowKey, dict[str, Cell]] = {}
    for (group, length), ((bench, _, _, without, with_perm), passed) in newest(items, lambda i: (i[1], i[2]), lambda i: i[0].recency).items():
        bench_groups.add(group)
        total = causal_block_count(length, bench.args.get("block", PAPER_BLOCK))
        bench_cells[(group, length_label(length))] = _blocks_cells(total, without * total, with_perm * total, (bench.source(group, passed),))
    if bench_cells or not comparisons:
        comparisons.append(comparison(bench_cells, "kernel benchmark files (results/bench), one attention layer",
                                      lambda g: None if g in bench_groups else paper_model(g)))
    for number, comp in enumerate(comparisons):
        comp.paper_groups = number == 0
    return comparisons


def breakdown_table(benches: list[Bench], paper_dir: Path) -> Comparison:
    """Table 7: one-layer SDPA time vs PBS's permutation, selection and attention time per length."""
    items = []
    for bench in benches:
        if bench.is_ttft:
            continue
        group = f"{bench_model(bench)} on {bench.device}"
        for length in sorted({row["length"] for row in bench.rows}):
            sdpa = _bench_row(bench, length, "sdpa_dense")
            pbs = _bench_row(bench, length, "method:pbs:head", "method:pbs")
            if sdpa and pbs and sdpa.get("ms") and pbs.get("attention_ms") is not None:
                items.append((bench, group, length, sdpa, pbs))
    ours = {}
    for (group, length), ((bench, _, _, sdpa, pbs), passed) in newest(items, lambda i: (i[1], i[2]), lambda i: i[0].recency).items():
        total = pbs["permute_ms"] + pbs["select_ms"] + pbs["attention_ms"]
        values = {"SDPA ms": sdpa["ms"], "permutation ms": pbs["permute_ms"], "selection ms": pbs["select_ms"],
                  "attention ms": pbs["attention_ms"], "total ms": total,
                  "overhead %": 100 * (pbs["permute_ms"] + pbs["select_ms"]) / total if total else None,
                  "speedup": sdpa["ms"] / total if total else None, "density": pbs.get("density")}
        source = bench.source(group, passed)
        ours[(group, length_label(length))] = {k: Cell(v, (source,)) for k, v in values.items()}
    paper = load_table("table7_breakdown", paper_dir).assign(model="Llama-3.1-8B")
    long = paper.melt(id_vars=["model", "length"], value_vars=list(BREAKDOWN_COLUMNS), var_name="column")
    long["column"] = long["column"].map(BREAKDOWN_COLUMNS)
    return Comparison(
        "table7_breakdown", "Table 7: attention time breakdown of PBS (ms, one layer)", "length",
        [*BREAKDOWN_COLUMNS.values(), "density"], paper_cells(long, "length", "column", "value"), ours,
        notes=["paper: H100, FlashAttention as the dense time; ours: torch SDPA on the device named in the group",
               "a kernel bench with Llama-3.1-8B's shapes (h32/kv8/d128, B=128, S=256) is compared with the paper whatever its device",
               "overhead % = (permutation + selection) / total; speedup = SDPA / total"],
        match=lambda g: paper_model(g.rsplit(" on ", 1)[0]), order=length_order,
    )


def ttft_table(benches: list[Bench], paper_dir: Path) -> Comparison:
    """Figure 4 / Table 9: end-to-end time-to-first-token speedup over dense SDPA per length."""
    items = [
        (bench, f"{row['model']} on {bench.device}", paper_method(row["method"]), length_label(row.get("target_length", row["length"])), row["speedup_vs_sdpa"])
        for bench in benches if bench.is_ttft
        for row in bench.rows if row.get("speedup_vs_sdpa") is not None and "model" in row and "method" in row
    ]
    ours: dict[tuple[str, str], dict[str, Cell]] = {}
    for (group, method, length), ((bench, *_, speedup), passed) in newest(items, lambda i: i[1:4], lambda i: i[0].recency).items():
        ours.setdefault((group, method), {})[length] = Cell(speedup, (bench.source(group.rsplit(" on ", 1)[0], passed),))
    paper = paper_cells(load_table("ttft_qwen3", paper_dir), "method", "length", "speedup_vs_flashattention")
    lengths = sorted({c for cells in [*paper.values(), *ours.values()] for c in cells}, key=length_order)
    return Comparison(
        "ttft_speedup", "TTFT speedup over dense attention (Figure 4 / Table 9)", "method", lengths, paper, ours,
        notes=["paper: Qwen3-8B vs FlashAttention (256K with tp=4, 512K with tp=8); ours: vs SDPA in the same run"],
        match=lambda g: paper_model(g.rsplit(" on ", 1)[0]),
    )


def comparisons(runs: list[Run], benches: list[Bench], paper_dir: Path = PAPER_DIR) -> list[Comparison]:
    """Every comparison table (each set of a table its own comparison) from these runs and benchmarks."""
    return [
        *longbench_tables(runs, paper_dir),
        *longbench_v2_tables(runs, paper_dir),
        *ruler_tables(runs, paper_dir),
        *selected_blocks_tables(runs, benches, paper_dir),
        breakdown_table(benches, paper_dir),
        ttft_table(benches, paper_dir),
    ]


def build_tables(results: Path, paper_dir: Path = PAPER_DIR, extra_runs: Iterable[Path] = ()) -> list[Comparison]:
    """Every comparison table from the runs (committed roots plus `extra_runs`) and benchmarks under `results`."""
    return comparisons(collect_runs(results, extra_runs), collect_bench(results), paper_dir)


def write_tables(results: Path, out: Path, paper_dir: Path = PAPER_DIR, extra_runs: Iterable[Path] = ()) -> list[Path]:
    """Write <name>.md, .csv and .tex per table (every set of one table in the same files), the
    accuracy-vs-cost table (tradeoff.md, .csv) and tables.md with all of them; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    runs, benches = collect_runs(results, extra_runs), collect_bench(results)
    by_name: dict[str, list[Comparison]] = {}
    for comp in comparisons(runs, benches, paper_dir):
        by_name.setdefault(comp.name, []).append(comp)
    written, sections = [], []
    for name, comps in by_name.items():
        markdown = "\n".join(to_markdown(comp) for comp in comps)
        flats = [(comp, frames(comp)[1]) for comp in comps]
        sections.append(markdown)
        paths = (out / f"{name}.md", out / f"{name}.csv", out / f"{name}.tex")
        paths[0].write_text(markdown)
        pd.concat([flat for _, flat in flats], ignore_index=True).to_csv(paths[1], index=False)
        paths[2].write_text("\n".join(to_latex(flat, f"{comp.title} ({comp.set_text})" if comp.set_text else comp.title)
                                      for comp, flat in flats if len(flat)))
        written += paths
    markdown, flat = tradeoff_markdown(tradeoff_groups(runs, benches))
    sections.append(markdown)
    paths = (out / f"{TABLE_NAME}.md", out / f"{TABLE_NAME}.csv")
    paths[0].write_text(markdown)
    flat.to_csv(paths[1], index=False)
    written += paths
    index = out / "tables.md"
    roots = ", ".join(str(root) for root in run_roots(results, extra_runs))
    index.write_text(f"# Paper vs ours (runs from {roots or 'no run root'})\n\n" + "\n".join(sections))
    return [index, *written]


def main(argv: list[str] | None = None) -> None:
    """CLI: build all tables; a broken results file exits with code 2 and one line naming it."""
    run_report(
        argv,
        description=__doc__,
        default_out="results/tables",
        write=write_tables,
        summary=lambda written, out: f"wrote {len(written)} files to {out} (index: {written[0]})",
    )


if __name__ == "__main__":
    main()
