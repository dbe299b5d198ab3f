"""Sweeps fan out as cluster jobs through Hydra's submitit launcher (conf/hydra/launcher/slurm.yaml)."""
from __future__ import annotations

import json
from pathlib import Path

from src.configs import compose_config
from tests.cli import TINY, run_cli


def test_slurm_launcher_config_composes() -> None:
    cfg = compose_config({"hydra/launcher": "slurm"}, ["hydra.launcher.partition=gpu"], hydra_node=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node, launcher.max_num_timeout) == ("gpu", 1, 1, 2)


def test_sweep_runs_through_submitit_jobs(tmp_path: Path) -> None:
    """The same launcher plugin, local executor: each sweep point runs as a submitit job."""
    result = run_cli(
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", f"results_root={tmp_path}",
        *TINY[:-1], "dataset.num_samples=1", "dataset.length=384", "method=dense,meanpooling", "method.backend=torch",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(tmp_path.rglob("run.json"))
    assert [json.loads(p.read_text())["method"] for p in runs] == ["dense", "meanpooling"]
    assert list(tmp_path.glob(".sweeps/*/.submitit"))
