"""`make tables` / `make figures` on a synthetic results tree: cells equal hand-computed means,
missing cells read "not run", the paper's figures sit beside ours, broken files exit 2, PNGs exist."""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from src.report import collect, figures, tables
from src.report.paper import load_table

FIXTURES = Path(__file__).parent / "fixtures" / "report"
SMOL = "smollm2-135m-instruct"
DEVICE = "cpu (x86_64, 2 threads)"
TASKS = ("niah_single_1", "vt")


def causal_blocks(tokens: int, block: int) -> int:
    """Blocks on or below the diagonal, counted one by one (the paper's 'total causal blocks')."""
    n = -(-tokens // block)
    return sum(1 for i in range(n) for j in range(n) if j <= i)


def write_run(
    results: Path, model: str, method: str, length: int, *, seed: int, overrides: str = "default",
    mtime: float = 1_700_000_000.0, method_cfg: dict[str, Any] | None = None, benchmark: str = "ruler",
    tasks: tuple[str, ...] = TASKS, meta: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One run directory as src.eval.pipeline writes it, with random non-zero scores and densities."""
    rng = random.Random(seed)
    label = f"{benchmark}-{length}"
    run_dir = results / "runs" / model / label / method / overrides
    run_dir.mkdir(parents=True)
    rows = []
    for task in tasks:
        for i in range(3):
            density = 1.0 if method == "dense" else rng.uniform(0.1, 0.6)
            rows.append({
                "id": f"{task}-{i}", "task": task, "prediction": "x", "references": ["y"],
                "score": rng.uniform(0.05, 1.0), "input_tokens": length - rng.randint(1, 300),
                "prefill_s": 0.1, "decode_s": 0.2,
                "method_stats": {"density": density, "density_per_layer_head": [[density]]}, "meta": {"length": length, **(meta[len(rows) % len(meta)] if meta else {})},
            })
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {
        "run": str(run_dir), "model": model, "method": method, "dataset": label, "device": DEVICE,
        "commit": f"c0ffee{seed:02d}deadbeef", "samples": len(rows),
        "mean_density": sum(r["method_stats"]["density"] for r in rows) / len(rows), "mean_prefill_s": 0.1,
        "config": {"dataset": {"name": benchmark, "label": label, "length": length},
                   "method": {"name": method, "block_size": 128, "threshold": 0.9, **(method_cfg or {})}},
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    os.utime(run_dir / "run.json", (mtime, mtime))
    return rows


def ruler_score(rows: list[dict[str, Any]]) -> float:
    """RULER's number for a run: mean over tasks of the task's mean score, x100."""
    per_task = [sum(r["score"] for r in rows if r["task"] == t) / sum(r["task"] == t for r in rows) for t in TASKS]
    return 100 * sum(per_task) / len(per_task)


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Any]:
    results = tmp_path / "results"
    runs = {
        ("smol", "dense", 4096): write_run(results, SMOL, "dense", 4096, seed=1, mtime=1_700_000_100.0),
        ("smol-old", "dense", 4096): write_run(results, SMOL, "dense", 4096, seed=2, overrides="dataset.num_samples=3"),
        ("smol", "dense", 8192): write_run(results, SMOL, "dense", 8192, seed=3),
        ("smol", "pbs", 4096): write_run(results, SMOL, "pbs", 4096, seed=4),
        ("smol", "pbs-0.5", 4096): write_run(results, SMOL, "pbs", 4096, seed=5, overrides="method.threshold=0.5",
                                             method_cfg={"threshold": 0.5}),
        ("smol", "meanpooling", 4096): write_run(results, SMOL, "meanpooling", 4096, seed=6),
        ("llama", "dense", 4096): write_run(results, "llama3.1-8b", "dense", 4096, seed=7),
    }
    shutil.copytree(FIXTURES / "bench", results / "bench")
    return {"results": results, "runs": runs, "out": tmp_path / "tables"}


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


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"id": "a", "task": "vt", "score": 0.5}\n{"id": "b", "task"\n', "samples.jsonl:2: not valid JSON"),
     ('{"id": "a", "task": "vt", "score": 1.5}\n', "samples.jsonl:1: score 1.5 is not a number in [0, 1]")],
)
def test_malformed_samples_exit_2_with_one_clear_line(
    tree: dict[str, Any], content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tree["results"] / "runs" / SMOL / "ruler-4096" / "pbs" / "default" / "samples.jsonl"
    broken.write_text(content)
    for module in (tables, figures):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--results", str(tree["results"]), "--out", str(tree["out"])])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(broken.parent) in err and message in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_malformed_run_json_names_the_missing_key(tree: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    run_json = tree["results"] / "runs" / SMOL / "ruler-8192" / "dense" / "default" / "run.json"
    info = json.loads(run_json.read_text())
    del info["commit"]
    run_json.write_text(json.dumps(info))
    with pytest.raises(SystemExit) as exit_info:
        tables.main(["--results", str(tree["results"]), "--out", str(tree["out"])])
    assert exit_info.value.code == 2
    assert f"{run_json}: missing key(s) commit" in capsys.readouterr().err


def test_figures_are_written_and_absent_inputs_are_skipped(tree: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures"
    written = figures.write_figures(tree["results"], out)
    names = {f.path.name for f in written}
    assert {
        "speedup_vs_length_bench_attention_h100.png", "kernel_time_vs_density_bench_attention_h100.png",
        "ttft_speedup_ttft_h100.png", f"score_vs_density_{SMOL}_ruler-4096.png", f"ruler_vs_length_{SMOL}.png",
        "ruler_vs_length_llama3.1-8b.png",
    } <= names
    for figure in written:
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.path.stat().st_size > 1000
    index = (out / "index.md").read_text()
    assert all(name in index for name in names)
    curves = figures.sweep_curves([r for r in collect.collect_runs(tree["results"]) if r.method == "pbs"])
    assert [(param, len(runs)) for param, runs in curves] == [("threshold", 2)]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert figures.write_figures(empty, tmp_path / "none") == []
    printed = capsys.readouterr().out
    assert "skipped kernel speedup" in printed and "skipped RULER score vs length" in printed
    assert not list((tmp_path / "none").glob("*.png"))


def test_recorded_write_time_outranks_file_mtime(tmp_path: Path) -> None:
    write_run(tmp_path / "a", SMOL, "dense", 4096, seed=1, mtime=1_800_000_000.0)  # newer file, no write time
    run_dir = tmp_path / "b"
    write_run(run_dir, SMOL, "dense", 4096, seed=2, mtime=1_700_000_000.0)
    run_json = next(run_dir.rglob("run.json"))
    info = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**info, "written_at": "2026-12-01T08:00:00+00:00"}))
    os.utime(run_json, (1_700_000_000.0, 1_700_000_000.0))
    runs = [*collect.collect_runs(tmp_path / "a"), *collect.collect_runs(tmp_path / "b")]
    chosen = collect.newest(runs, lambda run: run.model, lambda run: run.recency)
    best, passed = chosen[SMOL]
    assert best.info["commit"] == "c0ffee02deadbeef" and passed == 1
