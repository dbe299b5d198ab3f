"""What run.json records for comparisons, end to end: an offline LongBench job runs on the fixture
at once, is labelled `longbench-fixture` in its folder, run.json and the tables, never Table 1."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from src.eval.results import comparison_record
from src.report import tables
from tests.cli import run_module


def test_comparison_record_counts_samples_per_task() -> None:
    config = {"dataset": {"name": "ruler", "seed": 7, "length": 4096}}
    rows = [{"task": "vt"}, {"task": "vt"}, {"task": "cwe"}]
    assert comparison_record(config, rows, "generated") == {
        "benchmark": "ruler", "harness": None, "source": "generated", "samples_per_task": {"cwe": 1, "vt": 2}, "seed": 7,
    }


def test_an_offline_longbench_job_is_a_labelled_fixture_run(tmp_path: Path) -> None:
    runs = tmp_path / "results" / "runs" / "cpu"
    result = run_module(
        "src.run", "model=tiny_llama", "dataset=longbench", "dataset.tasks=[trec]", "dataset.max_samples=1",
        f"results_root={runs}", env={"HF_HUB_OFFLINE": "1", "HYDRA_FULL_ERROR": "0", "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert sum("OFFLINE FIXTURE" in line for line in output.splitlines()) == 1 and "Retry" not in output
    run_json, = runs.rglob("run.json")
    assert run_json.parent.parent.parent.name == "longbench-fixture"
    info = json.loads(run_json.read_text())
    assert info["dataset"] == "longbench-fixture" and info["comparison"]["source"] == "fixture"
    assert info["comparison"]["samples_per_task"] == {"trec": 1}

    out = tmp_path / "tables"
    tables.write_tables(tmp_path / "results", out)
    fixture = pd.read_csv(out / "fixture_longbench.csv", dtype=str, keep_default_na=False)
    assert (fixture["model"] == "tiny-llama").any() and fixture["set"].str.contains("OUR SYNTHETIC OFFLINE FIXTURE").all()
    table1 = pd.read_csv(out / "table1_longbench.csv", dtype=str, keep_default_na=False)
    assert not (table1["model"] == "tiny-llama").any()
