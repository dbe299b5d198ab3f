"""run.json says where its numbers came from: every commit that wrote a row, versions, wall time,
the dataset source used and what density means."""
from __future__ import annotations

import json
from pathlib import Path

from src.attention.stats import DENSITY_DEFINITION
from src.provenance import LIBRARIES
from tests.cli import TINY, run_module


def test_resumed_run_records_every_contributing_commit(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    base = [*(a for a in TINY if not a.startswith("dataset.num_samples")), f"run_dir={run_dir}"]
    env = {"HYDRA_FULL_ERROR": "0", "TQDM_DISABLE": "1"}
    first = run_module("src.run", *base, "dataset.num_samples=1", env={**env, "PBS_LAB_COMMIT": "aaa111"})
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_module("src.run", *base, "dataset.num_samples=2", env={**env, "PBS_LAB_COMMIT": "bbb222"})
    assert second.returncode == 0, second.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["commit"] == "bbb222" and record["commits"] == ["aaa111", "bbb222"]
    assert set(record["versions"]) == set(LIBRARIES) and record["wall_s"] > 0
    assert record["dataset_source"] == "generated" and record["density_definition"] == DENSITY_DEFINITION
