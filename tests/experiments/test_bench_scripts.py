"""The GPU benchmark scripts run end to end on CPU in a tiny setting, as `python -m experiments.<name>`,
and write the JSON the report reads."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_module


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m experiments.<name> <args>`, which must succeed."""
    result = run_module(f"experiments.{name}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_bench_ttft_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "ttft.json"
    run_script(
        "bench_ttft", "--model", "tiny_llama", "--methods", "dense", "pbs", "--override", "pbs:backend=torch",
        "pbs:threshold=0.5", "--lengths", "600", "--runs", "1", "--random-tokens", "--out", str(out),
    )
    record = json.loads(out.read_text())
    assert record["device"].startswith("cpu (") and record["device"].endswith(" threads)")  # as a run spells it
    assert record["commit"] and set(record["versions"]) == {"torch", "triton", "transformers"}
    rows = {row["method"]: row for row in record["rows"]}
    assert set(rows) == {"dense", "pbs"}
    assert all(row["length"] == row["target_length"] == 600 and row["ttft_ms"] > 0 for row in rows.values())
    assert rows["dense"]["speedup_vs_sdpa"] == 1.0
    assert 0.0 < rows["pbs"]["density"] <= 1.5
    assert rows["pbs"]["speedup_vs_sdpa"] == round(rows["dense"]["ttft_ms"] / rows["pbs"]["ttft_ms"], 3)


def test_bench_attention_tiny_shapes(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run_script(
        "bench_attention", "--lengths", "256", "--heads", "2", "--kv-heads", "1", "--head-dim", "64",
        "--block", "64", "--segment", "128", "--densities", "0.3", "--methods", "pbs:head", "meanpooling", "--no-flex",
        "--xattn-tiles", "16,16,4,1", "48,16,4,1", "--vs-tiles", "32,32,4,1", "--bc-tiles", "1,1,4,1", "--perm-launches", "16,64,4,16,4,1", "--budget-ms", "1", "--out", str(out),
    )
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert {"sdpa_dense", "triton_dense", "triton_sparse_perm", "method:pbs:head", "method:meanpooling"} <= set(rows)
    assert rows["sdpa_dense"]["ratio_to_sdpa"] == 1.0
    method = rows["method:pbs:head"]
    parts = method["permute_ms"] + method["select_ms"] + method["attention_ms"]
    assert method["ms"] == pytest.approx(parts, abs=2e-4)  # each part is rounded to 4 decimals
    assert 0.0 < method["density"] <= 1.5
    timed = ["xattn_estimate_tile[default]", "xattn_estimate_tile[16,16,4,1]",
             "minference_token_union_tile[default]", "minference_token_union_tile[32,32,4,1]", "minference_index",
             "minference_official_attention_tile[default]", "minference_official_attention_tile[1,1,4,1]",
             "pbs_permute_launch[default]", "pbs_permute_launch[16,64,4,16,4,1]"]
    for name in timed:
        assert rows[name]["ms"] > 0 and rows[name]["ratio_to_sdpa"] == round(rows[name]["ms"] / rows["sdpa_dense"]["ms"], 3)
    assert 0.0 < rows["minference_token_union_tile[32,32,4,1]"]["density"] <= 1.0
    assert 0.0 < rows["minference_official_attention_tile[1,1,4,1]"]["density"] <= 1.0
    refused = rows["xattn_estimate_tile[48,16,4,1]"]
    assert refused["ms"] is None and "power of two" in refused["note"]


def test_coverage_analysis_on_captured_tensors_and_replot(tmp_path: Path) -> None:
    """Fig. 1/5/6/7/8 and Tables 4-6 from two captured layers; --replot redraws them from analysis.json."""
    import torch

    generator = torch.Generator().manual_seed(0)
    files = []
    for layer in range(2):
        path = tmp_path / f"layer{layer}.pt"
        torch.save({n: torch.randn(1, 2, 448, 32, generator=generator) for n in ("q", "k", "v")}, path)
        files.append(str(path))
    out = tmp_path / "analysis"
    run_script(
        "analysis_coverage", "--qkv", *files, "--lengths", "448", "--block", "64", "--segment", "128",
        "--selector-methods", "meanpooling", "--targets", "K", "Q", "K+Q", "Q+K", "--out", str(out),
    )
    results = json.loads((out / "analysis.json").read_text())
    summary = results["448"]["summary"]
    assert summary["table5"]["total_causal_blocks"] == 28
    assert {"none", "last_block"} <= set(summary["figure1"])
    targets = ["K", "Q", "K+Q", "Q+K"]
    for layer in results["448"]["layers"].values():
        assert list(layer["targets"]) == targets
        assert len(layer["targets"]["Q"]["density_at_coverage"]["0.9"]) == 2  # one density per head
    assert set(summary["figure6"]) == {"curves", "density_at_coverage", "gain"}
    assert list(summary["figure6"]["gain"]) == targets
    assert summary["figure6"]["gain"]["K"] == summary["table4"]["last_block"]
    figures = [out / "fig1_coverage_vs_density_448.png", out / "fig6_target_coverage_vs_density_448.png"]
    for figure in figures:
        figure.unlink()
    replot = run_script("analysis_coverage", "--replot", "--out", str(out))
    assert all(figure.is_file() for figure in figures)
    assert "Table 5" in replot.stdout and "per permutation target" in replot.stdout
