"""`make tables` on a synthetic results tree: cells equal hand-computed means with their sample
count and interval, missing cells read "not run", the paper's figures sit beside ours with a
difference only for the same model, and results of different comparable sets never share a table."""
from __future__ import annotations

from typing import Any

import json

import pandas as pd
import pytest

from src.report import collect, tables
from src.report.paper import load_table
from tests.report.results_tree import DEVICE, SMOL, causal_blocks, ruler_score, value_of, write_run


def ours_row(frame: pd.DataFrame, model: str, label_column: str, label: str, source: str = "ours") -> pd.Series:
    match = frame[(frame["model"] == model) & (frame["source"] == source) & (frame[label_column] == label)]
    assert len(match) == 1, f"expected one {source} row for {model}/{label}, got {len(match)}"
    return match.iloc[0]


def table(tree: dict[str, Any], name: str) -> pd.DataFrame:
    return pd.read_csv(tree["out"] / f"{name}.csv", dtype=str, keep_default_na=False)


def test_ruler_table_cells_are_hand_computed_means(tree: dict[str, Any]) -> None:
    tables.write_tables(tree["results"], tree["out"])
    frame = table(tree, "table3_ruler")
    runs = tree["runs"]
    dense = ours_row(frame, SMOL, "method", "Full")
    dense_4k, dense_8k = ruler_score(runs[("smol", "dense", 4096)]), ruler_score(runs[("smol", "dense", 8192)])
    assert value_of(dense["4K"]) == f"{dense_4k:.2f}"  # the newer of the two 4K dense runs of this set
    assert value_of(dense["4K"]) != f"{ruler_score(runs[('smol-old', 'dense', 4096)]):.2f}"
    assert dense["4K"].endswith(" n=6") and "[" in dense["4K"]
    assert value_of(dense["8K"]) == f"{dense_8k:.2f}"
    assert value_of(dense["Avg"]) == f"{(dense_4k + dense_8k) / 2:.2f}*"  # two of six lengths: marked, no difference
    assert dense["Avg"].endswith(" n=12")
    assert dense["density"] == "1.00"
    assert "newest of 2" in dense["provenance"] and DEVICE in dense["provenance"] and "c0ffee01" in dense["provenance"]
    assert "2 tasks (niah_single_1, vt), 3 samples per task (6 per run), seed 42" in dense["set"]

    pbs = ours_row(frame, SMOL, "method", "PBS-Attn")
    pbs_rows = runs[("smol", "pbs", 4096)]
    assert value_of(pbs["4K"]) == f"{ruler_score(pbs_rows):.2f}"
    mean_density = sum(r["method_stats"]["density"] for r in pbs_rows) / len(pbs_rows)
    assert pbs["density"] == f"{mean_density:.2f}"
    assert pbs["8K"] == "not run" and pbs["128K"] == "not run"
    paired = ours_row(frame, SMOL, "method", "PBS-Attn", "ours - Full (paired)")
    assert value_of(paired["4K"]) == f"{ruler_score(pbs_rows) - dense_4k:+.2f}" and paired["4K"].rstrip("*").endswith(" n=6")
    assert paired["8K"] == ""  # PBS did not run at 8K: nothing to pair
    variant = ours_row(frame, SMOL, "method", "PBS-Attn [threshold=0.5]")
    assert value_of(variant["4K"]) == f"{ruler_score(runs[('smol', 'pbs-0.5', 4096)]):.2f}"
    assert set(ours_row(frame, SMOL, "method", "MInference")[["4K", "8K", "Avg"]]) == {"not run"}


def test_a_smoke_run_next_to_a_full_run_never_changes_the_full_runs_cell(tree: dict[str, Any]) -> None:
    tables.write_tables(tree["results"], tree["out"])
    before = ours_row(table(tree, "table3_ruler"), SMOL, "method", "Full")
    # newer than every run of the tree, same model / method / length, but one task and one sample
    smoke = write_run(tree["results"], SMOL, "dense", 4096, seed=9, overrides="dataset.tasks=[vt]", tasks=("vt",),
                      per_task=1, mtime=1_900_000_000.0, scores=[1.0])
    tables.write_tables(tree["results"], tree["out"])
    frame = table(tree, "table3_ruler")
    full_set = frame[frame["set"].str.contains("2 tasks", regex=False)]
    after = ours_row(full_set, SMOL, "method", "Full")
    assert after[["4K", "8K", "Avg", "provenance"]].tolist() == before[["4K", "8K", "Avg", "provenance"]].tolist()
    smoke_set = frame[frame["set"].str.contains("1 task (vt), 1 sample per task", regex=False)]
    assert value_of(ours_row(smoke_set, SMOL, "method", "Full")["4K"]) == f"{100 * smoke[0]['score']:.2f}"
    assert ours_row(smoke_set, SMOL, "method", "Full")["4K"] == "100.00 n=1"  # one sample: no interval
    markdown = (tree["out"] / "table3_ruler.md").read_text()
    assert markdown.count("## Table 3: RULER") == 2  # one table per comparable set


def test_a_method_better_on_every_sample_is_marked_significant(tree: dict[str, Any]) -> None:
    results = tree["results"]
    write_run(results, "tiny", "dense", 4096, seed=21, scores=[0.0, 1.0])
    write_run(results, "tiny", "xattention", 4096, seed=22, scores=[1.0])  # differences 1, 0, 1, 0, 1, 0
    write_run(results, "tiny", "meanpooling", 4096, seed=23, scores=[1.0, 0.0])  # differences 1, -1, 1, -1, 1, -1
    tables.write_tables(results, tree["out"])
    frame = table(tree, "table3_ruler")
    better = ours_row(frame, "tiny", "method", "XAttention", "ours - Full (paired)")["4K"]
    assert better.startswith("+50.00 [+") and better.endswith(" n=6*")
    mixed = ours_row(frame, "tiny", "method", "MeanPooling", "ours - Full (paired)")["4K"]
    assert mixed.startswith("+0.00 [-") and mixed.endswith(" n=6")  # its interval includes 0: no mark


def test_only_committed_roots_unless_added(tree: dict[str, Any]) -> None:
    write_run(tree["results"], "local-only", "dense", 4096, seed=31, root="local")
    tables.write_tables(tree["results"], tree["out"])
    assert not (table(tree, "table3_ruler")["model"] == "local-only").any()
    tables.main(["--results", str(tree["results"]), "--out", str(tree["out"]), "--runs", str(tree["results"] / "runs" / "local")])
    assert (table(tree, "table3_ruler")["model"] == "local-only").any()


def test_paper_figures_beside_ours_and_difference_only_for_the_same_model(tree: dict[str, Any]) -> None:
    tables.write_tables(tree["results"], tree["out"])
    frame = table(tree, "table3_ruler")
    paper = load_table("table3_ruler")
    published = paper[(paper["model"] == "Llama-3.1-8B") & (paper["method"] == "Full") & (paper["length"] == "4K")]["score"].item()
    assert ours_row(frame, "Llama-3.1-8B", "method", "Full", "paper")["4K"] == f"{published:.2f}"
    ours = ruler_score(tree["runs"][("llama", "dense", 4096)])
    assert value_of(ours_row(frame, "llama3.1-8b", "method", "Full")["4K"]) == f"{ours:.2f}"
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


def test_longbench_categories_through_the_registered_summarize(tree: dict[str, Any]) -> None:
    tasks = ("narrativeqa", "qasper", "lcc")
    hub = {"benchmark": "longbench", "harness": "longbench", "source": "hub", "samples_per_task": dict.fromkeys(tasks, 3), "seed": None}
    rows = write_run(tree["results"], SMOL, "pbs", 0, seed=8, benchmark="longbench", tasks=tasks, recorded=hub)
    tables.write_tables(tree["results"], tree["out"])
    row = ours_row(table(tree, "table1_longbench"), SMOL, "method", "PBS-Attn")
    mean = {task: sum(r["score"] for r in rows if r["task"] == task) / 3 for task in tasks}
    single, code = 100 * (mean["narrativeqa"] + mean["qasper"]) / 2, 100 * mean["lcc"]
    assert value_of(row["SingleDocQA"]) == f"{single:.2f}" and row["SingleDocQA"].endswith(" n=6")
    assert value_of(row["Code"]) == f"{code:.2f}" and row["Code"].endswith(" n=3")
    assert row["Summ"] == "not run"
    assert value_of(row["Avg"]) == f"{(single + code) / 2:.2f}*" and row["Avg"].endswith(" n=9")
    assert "Hugging Face hub" in row["set"]


def test_fixture_runs_get_a_labelled_table_of_their_own(tree: dict[str, Any]) -> None:
    fixture = {"benchmark": "longbench", "harness": "longbench", "source": "fixture", "samples_per_task": {"trec": 3}, "seed": None}
    write_run(tree["results"], SMOL, "dense", 0, seed=12, benchmark="longbench", tasks=("trec",), recorded=fixture)
    tables.write_tables(tree["results"], tree["out"])
    assert not (table(tree, "table1_longbench")["source"] == "ours").any()  # Table 1 holds the paper only
    row = ours_row(table(tree, "fixture_longbench"), SMOL, "method", "Full")
    assert "OUR SYNTHETIC OFFLINE FIXTURE" in row["set"] and value_of(row["FewShot"]) != "not run"
    markdown = (tree["out"] / "fixture_longbench.md").read_text()
    assert "FIXTURE, not the benchmark" in markdown.splitlines()[0] and "| paper" not in markdown


def test_an_old_auto_run_on_fixture_samples_is_told_apart_by_its_ids(tree: dict[str, Any]) -> None:
    from src.data.longbench import load

    fixture_ids = [sample.id for sample in load(tokenizer=None, tasks=["trec"], max_length=4096, source="fixture")]
    run_dir = tree["results"] / "runs" / "cpu" / SMOL / "longbench" / "dense" / "default"
    run_dir.mkdir(parents=True)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps({"id": i, "task": "trec", "score": 1.0}) + "\n" for i in fixture_ids))
    config = {"dataset": {"name": "longbench", "label": "longbench", "tasks": ["trec"], "max_samples": None,
                          "max_length": 4096, "source": "auto", "local_dir": None, "e": False, "harness": "longbench",
                          "hub_id": "THUDM/LongBench"}, "method": {"name": "dense"}}
    (run_dir / "run.json").write_text(json.dumps({"model": SMOL, "method": "dense", "dataset": "longbench", "device": DEVICE,
                                                   "commit": "abc", "config": config}))
    run = next(r for r in collect.collect_runs(tree["results"]) if r.benchmark == "longbench")
    assert run.comparable_set.source == "fixture" and run.dataset == "longbench-fixture"


def test_longbench_v2_table_through_the_real_summarize(tree: dict[str, Any]) -> None:
    pytest.importorskip("src.data.longbench_v2")
    meta = [{"difficulty": "easy", "length": "short"}, {"difficulty": "hard", "length": "long"}]
    hub = {"benchmark": "longbench_v2", "harness": "longbench", "source": "hub", "samples_per_task": {"mcq": 3}, "seed": None}
    rows = write_run(tree["results"], "qwen2.5-7b-1m", "pbs", 0, seed=11, benchmark="longbench_v2", tasks=("mcq",), meta=meta,
                     recorded=hub)
    tables.write_tables(tree["results"], tree["out"])
    frame = table(tree, "table2_longbench_v2")
    row = ours_row(frame, "qwen2.5-7b-1m", "method", "PBS-Attn")
    scores = [r["score"] for r in rows]
    easy = [r["score"] for r in rows if r["meta"]["difficulty"] == "easy"]
    overall = 100 * sum(scores) / len(scores)
    assert value_of(row["Overall"]) == f"{overall:.2f}" and value_of(row["Easy"]) == f"{100 * sum(easy) / len(easy):.2f}"
    assert row["Medium"] == "not run"
    published = ours_row(frame, "Qwen-2.5-7B-1M", "method", "PBS-Attn", "paper")
    assert published["Overall"] == "34.39" and published["Easy"] == "—"
    assert ours_row(frame, "qwen2.5-7b-1m", "method", "PBS-Attn", "ours - paper")["Overall"] == f"{overall - 34.39:+.2f}"
