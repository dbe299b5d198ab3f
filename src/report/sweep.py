"""A sweep's own table: when `python -m src.run -m ...` ends, one combined table of its jobs.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks): each job of a multirun
leaves the path of its run directory in its Hydra output folder (`<sweep dir>/<job>/run_dir.txt`,
written in the job's own process, so any launcher works), and when the sweep ends the launcher's
process reads those runs and writes `<sweep dir>/summary.md` and `summary.csv`: per model, device,
comparable set and length, every job's score with its 95% interval and sample count, its paired
difference to the sweep's dense job, its density and its prefill speedup (src/report/tradeoff.py).
Jobs that left no finished run are listed by their folder. Single runs are left alone.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)

RUN_DIR_FILE = "run_dir.txt"
SUMMARY = "summary"


class SweepSummary(Callback):
    """Writes the combined table of a multirun's jobs into its sweep directory."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Note where the sweep's job folders are (resolved once, as the launcher does)."""
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In a multirun job: leave the job's run directory in its Hydra output folder."""
        hydra = HydraConfig.get()
        if hydra.mode != RunMode.MULTIRUN or "run_dir" not in config:
            return
        output = Path(hydra.runtime.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        (output / RUN_DIR_FILE).write_text(str(Path(str(config.run_dir)).resolve()) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write <sweep dir>/summary.md and summary.csv from the jobs' finished runs."""
        sweep_dir = self.sweep_dir or Path(str(config.hydra.sweep.dir))
        path = write_sweep_summary(sweep_dir)
        print(f"sweep summary: {path}")


def write_sweep_summary(sweep_dir: Path) -> Path:
    """The combined table of the runs the jobs under `sweep_dir` left (see the module docstring)."""
    # Imported here: Hydra builds this callback at the start of every run, and a run needs none of
    # the report's statistics (scipy) until a sweep is over.
    from src.report.collect import read_run
    from src.report.tradeoff import tradeoff_groups, tradeoff_markdown

    runs, missing = [], []
    for marker in sorted(sweep_dir.glob(f"*/{RUN_DIR_FILE}"), key=lambda p: _job_order(p.parent.name)):
        run_json = Path(marker.read_text().strip()) / "run.json"
        if run_json.is_file():
            runs.append(read_run(run_json))
        else:
            missing.append(marker.parent.name)
    markdown, frame = tradeoff_markdown(tradeoff_groups(runs, []), heading=f"Sweep {sweep_dir}: {len(runs)} finished job(s)")
    if missing:
        markdown += f"\nJobs without a finished run (no run.json): {', '.join(missing)}\n"
    path = sweep_dir / f"{SUMMARY}.md"
    path.write_text(markdown + "\n")
    frame.to_csv(sweep_dir / f"{SUMMARY}.csv", index=False)
    return path


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (1 << 30, name)
