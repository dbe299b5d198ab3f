"""experiments/profile_eval.py on a tiny random model: per-sample rows and a summary per decode
group size, the same samples in each pass, and a profile of one prefill."""
from __future__ import annotations

import json
from pathlib import Path

from tests.cli import run_module


def test_profile_eval_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    result = run_module(
        "experiments.profile_eval", "model=tiny_llama", "dataset.tasks=[vt]", "dataset.length=1024",
        "dataset.num_samples=2", "--decode-batch-sizes", "1", "2", "--profile-prefill", "5", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["device"].startswith("cpu (") and record["args"]["decode_batch_sizes"] == [1, 2]
    summaries = [row for row in record["rows"] if row["kind"] == "summary"]
    samples = [row for row in record["rows"] if row["kind"] == "sample"]
    assert [s["decode_batch_size"] for s in summaries] == [1, 2] and all(s["samples"] == 2 for s in summaries)
    assert [r["decode_batch"] for r in samples] == [1, 1, 2, 2]
    assert [r["id"] for r in samples[:2]] == [r["id"] for r in samples[2:]]
    assert all(0 < r["output_tokens"] <= r["max_new_tokens"] == 30 and r["prefill_s"] > 0 for r in samples)
    for summary in summaries:
        tokens = sum(r["output_tokens"] for r in samples if r["decode_batch"] == summary["decode_batch_size"])
        assert summary["output_tokens_per_sample"] == tokens / 2 and summary["decode_ms_per_token"] > 0
    profile, = [row for row in record["rows"] if row["kind"] == "prefill_profile"]
    assert "aten::mm" in profile["table"] and set(profile["counts"]) >= {"aten::_local_scalar_dense", "cudaLaunchKernel"}
    assert result.stdout.strip().splitlines()[-1].startswith("2 | 2 | ")


def test_profile_eval_bad_override_is_one_line() -> None:
    result = run_module("experiments.profile_eval", "model=tiny_llama", "eval.decode_batch_size=0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: eval.decode_batch_size must be a positive integer, got 0"]
