"""The real bundled SmolLM2-135M-Instruct answers single-needle RULER at 2K with dense attention."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run_cli


@pytest.mark.slow
def test_smollm2_dense_finds_single_needles_at_2k(tmp_path: Path) -> None:
    run_dir = tmp_path / "smollm2"
    result = run_cli(
        "dataset.tasks=[niah_single_1,niah_single_2,niah_single_3]",
        "dataset.length=2048",
        "dataset.num_samples=2",
        f"run_dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert all(1900 <= r["input_tokens"] <= 2200 for r in rows)
    mean_score = sum(r["score"] for r in rows) / len(rows)
    assert mean_score >= 0.5, [(r["prediction"], r["references"]) for r in rows]
