"""Where a run's figures go besides results/: nowhere (default) or Weights & Biases.

wandb runs offline unless the user sets WANDB_MODE, so logging works without a network.
"""
from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any

import pandas as pd

from src.registry import Registry


class NullLogger:
    """Logs nothing; the results files are the record."""

    def log_sample(self, row: dict[str, Any]) -> None:
        return None

    def log_summary(self, summary: pd.DataFrame, provenance: dict[str, Any]) -> None:
        return None

    def finish(self) -> None:
        return None


def sweep_point_name(config: dict[str, Any]) -> str:
    """A name of its own for every sweep point: the run folder below the results root
    (<model>/<dataset>/<method>/<overrides>), since run_name alone is shared by a sweep's points."""
    run_dir, root = PurePath(str(config["run_dir"])), PurePath(str(config["results_root"]))
    return str(run_dir.relative_to(root)) if run_dir.is_relative_to(root) else str(run_dir)


class WandbLogger:
    """Per-sample scores, density and timings as wandb metrics; the summary as a wandb Table.

    The wandb run is named after its sweep point (`sweep_point_name`) and grouped by `name`
    (the run_name <model>/<dataset>/<method> the points of one sweep share).
    """

    def __init__(self, project: str, mode: str, config: dict[str, Any], name: str, tags: list[str]) -> None:
        import wandb

        os.environ.setdefault("WANDB_MODE", mode)
        self._wandb = wandb
        self.run = wandb.init(
            project=project, config=config, name=sweep_point_name(config), group=name, tags=list(tags),
            reinit="finish_previous",
        )

    def log_sample(self, row: dict[str, Any]) -> None:
        stats = row.get("method_stats") or {}
        self.run.log(
            {
                f"score/{row['task']}": row["score"],
                "score": row["score"],
                "prefill_s": row["prefill_s"],
                "input_tokens": row["input_tokens"],
                **{f"method/{k}": v for k, v in stats.items() if isinstance(v, (int, float))},
            }
        )

    def log_summary(self, summary: pd.DataFrame, provenance: dict[str, Any]) -> None:
        self.run.log({"summary": self._wandb.Table(dataframe=summary)})
        self.run.summary.update({k: v for k, v in provenance.items() if isinstance(v, (int, float, str))})

    def finish(self) -> None:
        self.run.finish()


LOGGERS: Registry[Any] = Registry("logger")
LOGGERS.register("none")(NullLogger)
LOGGERS.register("wandb")(WandbLogger)
