"""logger=wandb records a run offline (no network): per-sample metrics and the summary table."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import TINY, run_cli


def test_wandb_offline_run_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    result = run_cli(*TINY, "logger=wandb", f"run_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb")), "the offline run holds no event log"
    assert (tmp_path / "run" / "summary.csv").is_file()


def test_sweep_points_get_names_of_their_own() -> None:
    from src.eval.loggers import sweep_point_name

    root = "results/runs/local"
    a = sweep_point_name({"results_root": root, "run_dir": f"{root}/m/ruler-4096/pbs/method.threshold=0.8"})
    b = sweep_point_name({"results_root": root, "run_dir": f"{root}/m/ruler-4096/pbs/method.threshold=0.9"})
    assert (a, b) == ("m/ruler-4096/pbs/method.threshold=0.8", "m/ruler-4096/pbs/method.threshold=0.9")
    assert sweep_point_name({"results_root": root, "run_dir": "/elsewhere/run"}) == "/elsewhere/run"
