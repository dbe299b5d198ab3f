"""A multirun ends with one combined table of its jobs in its sweep directory."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.cli import run_cli


def test_a_sweep_ends_with_one_table_of_its_jobs(tmp_path: Path) -> None:
    result = run_cli(
        "-m", "model=tiny_llama", "dataset.tasks=[niah_single_1]", "dataset.num_samples=2", "dataset.length=512",
        "method=dense,meanpooling", "method.backend=torch", f"results_root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary, = tmp_path.glob(".sweeps/*/summary.md")
    assert f"sweep summary: {summary}" in result.stdout
    text = summary.read_text()
    assert "2 finished job(s)" in text and "1 task (niah_single_1), 2 samples per task" in text
    frame = pd.read_csv(summary.with_suffix(".csv"), dtype=str, keep_default_na=False)
    assert frame["method"].tolist() == ["Full", "MeanPooling"]  # torch on a CPU is what backend auto runs
    assert frame["score [95% CI] n"].str.endswith(" n=2").all()
    assert frame["- Full (paired)"].tolist()[1].rstrip("*").endswith(" n=2")
    assert not list(tmp_path.glob("tiny-llama/**/run_dir.txt"))  # the markers live in the sweep folder only
