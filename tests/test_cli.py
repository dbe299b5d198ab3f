"""`python -m src.run` end to end on a tiny random model: results files, resume, clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model=tiny_llama", "dataset.tasks=[niah_single_1]", "dataset.num_samples=2", "dataset.length=512"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "src.run", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


def test_run_writes_results_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_cli(*TINY, f"run_dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert {"id", "prediction", "references", "score", "input_tokens", "prefill_s", "method_stats"} <= set(row)
        assert 0.0 <= row["score"] <= 1.0
        assert row["method_stats"]["density"] == 1.0
        assert 300 <= row["input_tokens"] <= 512  # RULER counts the tokens to generate in the length
    summary = pd.read_csv(run_dir / "summary.csv")
    assert "average" in set(summary["task"])
    config = (run_dir / "config.yaml").read_text()
    assert "tiny-llama" in config
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["commit"] and provenance["device"].startswith("cpu")

    second = run_cli(*TINY, f"run_dir={run_dir}")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 already done" in second.stderr + second.stdout
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method=nope", "method"),
        ("dataset.tasks=[not_a_task]", "not_a_task"),
        ("model.dtype=float8", "float8"),
        ("method.backend=cuda", "cuda"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path: Path, override: str, message: str) -> None:
    result = run_cli(*TINY, override, f"run_dir={tmp_path / 'bad'}")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
