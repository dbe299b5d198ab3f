"""`make tables` on a synthetic results tree: cells equal hand-computed means, missing cells read
"not run", the paper's figures sit beside ours with a difference only for the same model."""
from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from src.report import collect, tables
from src.report.paper import load_table
from tests.report.results_tree import DEVICE, SMOL, causal_blocks, ruler_score, write_run


def ours_row(frame: pd.DataFrame, model: str, label_column: str, label: str, source: str = "ours") -> pd.Series:
    match = frame[(frame["model"] == model) & (frame["source"] == source) & (frame[label_column] == label)]
    assert len(match) == 1, f"expected one {source} row for {model}/{label}, got {len(match)}"
    return match.iloc[0]


def test_ruler_table_cells_are_hand_computed_means(tree: dict[str, Any]) -> None:
    tables.write_tables(tree["results"], tree["out"])
    frame = pd.read_csv(tree["out"] / "table3_ruler.csv", dtype=str, keep_default_na=False)
    runs = tree["runs"]
    dense = ours_row(frame, SMOL, "method", "Full")
    dense_4k, dense_8k = ruler_score(runs[("smol", "dense", 4096)]), ruler_score(runs[("smol", "dense", 8192)])
    assert dense["4K"] == f"{dense_4k:.2f}"  # the newer of the two 4K dense runs
    assert dense["4K"] != f"{ruler_score(runs[('smol-old', 'dense', 4096)]):.2f}"
    assert dense["8K"] == f"{dense_8k:.2f}"
    assert dense["Avg"] == f"{(dense_4k + dense_8k) / 2:.2f}*"  # two of six lengths: marked, no difference
    assert dense["density"] == "1.00"
    assert "newest of 2" in dense["provenance"] and DEVICE in dense["provenance"] and "c0ffee01" in dense["provenance"]

    pbs = ours_row(frame, SMOL, "method", "PBS-Attn")
    pbs_rows = runs[("smol", "pbs", 4096)]
    assert pbs["4K"] == f"{ruler_score(pbs_rows):.2f}"
    mean_density = sum(r["method_stats"]["density"] for r in pbs_rows) / len(pbs_rows)
    assert pbs["density"] == f"{mean_density:.2f}"
    assert pbs["8K"] == "not run" and pbs["128K"] == "not run"
    assert ours_row(frame, SMOL, "method", "PBS-Attn [threshold=0.5]")["4K"] == f"{ruler_score(runs[('smol', 'pbs-0.5', 4096)]):.2f}"
    assert set(ours_row(frame, SMOL, "method", "MInference")[["4K", "8K", "Avg"]]) == {"not run"}


def test_paper_figures_beside_ours_and_difference_only_for_the_same_model(tree: dict[str, Any]) -> None:
    tables.write_tables(tree["results"], tree["out"])
    frame = pd.read_csv(tree["out"] / "table3_ruler.csv", dtype=str, keep_default_na=False)
    paper = load_table("table3_ruler")
    published = paper[(paper["model"] == "Llama-3.1-8B") & (paper["method"] == "Full") & (paper["length"] == "4K")]["score"].item()
    assert ours_row(frame, "Llama-3.1-8B", "method", "Full", "paper")["4K"] == f"{published:.2f}"
    ours = ruler_score(tree["runs"][("llama", "dense", 4096)])
    assert ours_row(frame, "llama3.1-8b", "method", "Full")["4K"] == f"{ours:.2f}"
    assert ours_row(frame, "llama3.1-8b", "method", "Full", "ours - paper")["4K"] == f"{ours - published:+.2f}"
    assert not ((frame["model"] == SMOL) & (frame["source"] == "ours - paper")).any()
    markdown = (tree["out"] / "table3_ruler.md").read_text()
    assert "### Qwen-2.5-7B-1M (paper only" in markdown and f"### {SMOL} (ours only" in markdown
    assert "| Qwen-2.5-7B-1M | paper    | PBS-Attn+" in markdown
    assert "commit c0ffee07dead" in markdown  # the llama run's commit in the source list


def test_selected_blocks_and_breakdown_from_runs_and_bench(tree: dict[str, Any]) -> None:
    tables.write_tables(tree["results"], tree["out"])
    blocks = pd.read_csv(tree["out"] / "table5_selected_blocks.csv", dtype=str, keep_default_na=False)
    runs = tree["runs"]
    without = [r["method_stats"]["density"] * causal_blocks(r["input_tokens"], 128) for r in runs[("smol", "meanpooling", 4096)]]
    with_perm = [r["method_stats"]["density"] * causal_blocks(r["input_tokens"], 128) for r in runs[("smol", "pbs", 4096)]]
    row = ours_row(blocks, SMOL, "context", "4K")
    assert row["w/o perm"] == f"{sum(without) / len(without):.0f}"
    assert row["w/ perm"] == f"{sum(with_perm) / len(with_perm):.0f}"
    assert row["reduction %"] == f"{100 * (1 - sum(with_perm) / sum(without)):.1f}"
    bench_group = blocks[blocks["model"].str.contains("kernel bench") & (blocks["context"] == "8K")].iloc[0]
    assert bench_group["w/ perm"] == f"{0.21 * causal_blocks(8192, 128):.0f}"

    breakdown = pd.read_csv(tree["out"] / "table7_breakdown.csv", dtype=str, keep_default_na=False)
    group = "Llama-3.1-8B on NVIDIA H100 80GB HBM3"
    ours = ours_row(breakdown, group, "length", "8K")
    total = 0.4 + 0.3 + 0.6
    assert ours["total ms"] == f"{total:.2f}" and ours["speedup"] == f"{2.0 / total:.2f}"
    assert ours["overhead %"] == f"{100 * 0.7 / total:.2f}"
    assert ours_row(breakdown, group, "length", "8K", "ours - paper")["SDPA ms"] == f"{2.0 - 1.78:+.2f}"
    assert ours_row(breakdown, group, "length", "128K")["SDPA ms"] == "not run"
    ttft = pd.read_csv(tree["out"] / "ttft_speedup.csv", dtype=str, keep_default_na=False)
    qwen = "qwen3-8b on NVIDIA H100 80GB HBM3"
    assert ours_row(ttft, qwen, "method", "PBS-Attn")["16K"] == f"{300 / 260:.2f}"
    assert ours_row(ttft, qwen, "method", "PBS-Attn", "ours - paper")["16K"] == f"{round(300 / 260, 3) - 1.02:+.2f}"


def test_longbench_categories_through_the_registered_summarize(tree: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    rows = write_run(tree["results"], SMOL, "pbs", 0, seed=8, benchmark="longbench")
    categories = {"niah_single_1": "Single-Doc QA", "vt": "Code"}

    def fake_summarize(frame: pd.DataFrame) -> pd.DataFrame:
        by_category = frame.assign(category=frame["task"].map(categories)).groupby("category")["score"].mean().mul(100)
        return pd.DataFrame([{"level": "category", "name": k, "score": v, "n": 3} for k, v in by_category.items()])

    real = collect.summarizer
    monkeypatch.setattr(collect, "summarizer", lambda name: fake_summarize if name == "longbench" else real(name))
    tables.write_tables(tree["results"], tree["out"])
    frame = pd.read_csv(tree["out"] / "table1_longbench.csv", dtype=str, keep_default_na=False)
    row = ours_row(frame, SMOL, "method", "PBS-Attn")
    single = [r["score"] for r in rows if r["task"] == "niah_single_1"]
    code = [r["score"] for r in rows if r["task"] == "vt"]
    assert row["SingleDocQA"] == f"{100 * sum(single) / 3:.2f}" and row["Code"] == f"{100 * sum(code) / 3:.2f}"
    assert row["Summ"] == "not run"
    assert row["Avg"] == f"{50 * (sum(single) + sum(code)) / 3:.2f}*"


def test_longbench_v2_table_through_the_real_summarize(tree: dict[str, Any]) -> None:
    pytest.importorskip("src.data.longbench_v2")
    meta = [{"difficulty": "easy", "length": "short"}, {"difficulty": "hard", "length": "long"}]
    rows = write_run(tree["results"], "qwen2.5-7b-1m", "pbs", 0, seed=11, benchmark="longbench_v2", tasks=("mcq",), meta=meta)
    tables.write_tables(tree["results"], tree["out"])
    frame = pd.read_csv(tree["out"] / "table2_longbench_v2.csv", dtype=str, keep_default_na=False)
    row = ours_row(frame, "qwen2.5-7b-1m", "method", "PBS-Attn")
    scores = [r["score"] for r in rows]
    easy = [r["score"] for r in rows if r["meta"]["difficulty"] == "easy"]
    overall = 100 * sum(scores) / len(scores)
    assert row["Overall"] == f"{overall:.2f}" and row["Easy"] == f"{100 * sum(easy) / len(easy):.2f}"
    assert row["Medium"] == "not run"
    published = ours_row(frame, "Qwen-2.5-7B-1M", "method", "PBS-Attn", "paper")
    assert published["Overall"] == "34.39" and published["Easy"] == "—"
    assert ours_row(frame, "qwen2.5-7b-1m", "method", "PBS-Attn", "ours - paper")["Overall"] == f"{overall - 34.39:+.2f}"
