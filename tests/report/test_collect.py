"""Reading results: the newest result of a cell is the one its writer recorded last."""
from __future__ import annotations

import json
import os
from pathlib import Path

from src.report import collect
from tests.report.results_tree import SMOL, write_run


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
