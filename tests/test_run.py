"""`python -m src.run` end to end: results files, resume and clear errors on a tiny random model;
the real bundled SmolLM2 finding single needles (slow)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.cli import TINY, run_cli


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
    assert provenance["commit"] and provenance["device"].startswith("cpu (")
    assert set(provenance["versions"]) == {"torch", "triton", "transformers"}

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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+dataset.foo=1", "error: unknown key dataset.foo; allowed: name, label, tasks, length, num_samples"),
        ("dataset.name=nope", "error: unknown dataset 'nope'; allowed: longbench, longbench_v2, ruler"),
    ],
)
def test_bad_dataset_key_is_one_config_error_line_before_the_model_loads(tmp_path: Path, override: str, message: str) -> None:
    result = run_cli(*TINY, override, f"run_dir={tmp_path / 'bad'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-3000:]
    assert not (tmp_path / "bad" / "samples.jsonl").exists()


@pytest.mark.slow
def test_smollm2_dense_finds_single_needles_at_2k(tmp_path: Path) -> None:
    """The real bundled SmolLM2-135M-Instruct answers single-needle RULER at 2K with dense attention."""
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
