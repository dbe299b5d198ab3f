"""run.json says where its numbers came from: every commit that wrote a row, versions, wall time,
the dataset source used and what density means."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.attention.stats import DENSITY_DEFINITION
from src.configs import compose_config
from src.eval.pipeline import run_experiment
from src.provenance import LIBRARIES
from tests.cli import TINY


def test_resumed_run_records_every_contributing_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    base = [a for a in TINY[1:] if not a.startswith("dataset.num_samples")] + [f"run_dir={run_dir}"]
    for commit, samples in (("aaa111", 1), ("bbb222", 2)):  # the second run resumes the first
        monkeypatch.setenv("PBS_LAB_COMMIT", commit)
        run_experiment(compose_config({"model": "tiny_llama"}, [*base, f"dataset.num_samples={samples}"]))
    record = json.loads((run_dir / "run.json").read_text())
    assert record["commit"] == "bbb222" and record["commits"] == ["aaa111", "bbb222"]
    assert record["samples"] == 2 and set(record["versions"]) == set(LIBRARIES) and record["wall_s"] > 0
    assert record["dataset_source"] == "generated" and record["density_definition"] == DENSITY_DEFINITION
