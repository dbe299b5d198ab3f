"""experiments/run_jobs.py: jobs N at a time with eval.concurrent_jobs=N, a log each, and a
non-zero exit when one fails (the others still run)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.run_jobs import parse_jobs
from tests.cli import ROOT, TINY, run_module


def test_two_jobs_at_once_record_the_concurrency_and_a_failure_fails_the_batch(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(
        "# a good job and a bad one\n"
        f"eval.decode_batch_size=2 run_dir={tmp_path / 'good'}\n\n"
        f"method=nope run_dir={tmp_path / 'bad'}\n"
    )
    result = run_module("experiments.run_jobs", "--parallel", "2", "--jobs-file", str(jobs),
                        "--common", *TINY, "--log-dir", str(tmp_path / "logs"))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 of 2 jobs ok" in result.stdout and "not ok: 2" in result.stdout
    run = json.loads((tmp_path / "good" / "run.json").read_text())
    assert run["config"]["eval"]["concurrent_jobs"] == 2 and run["config"]["eval"]["decode_batch_size"] == 2
    record = json.loads((tmp_path / "logs" / "jobs.json").read_text())
    assert record["jobs"][0]["returncode"] == 0 and record["jobs"][1]["returncode"] != 0
    bad_log = Path(record["jobs"][1]["log"]).read_text()
    assert "eval.concurrent_jobs=2" in bad_log.splitlines()[0]
    assert "error: unknown method 'nope'; allowed: dense," in bad_log


@pytest.mark.parametrize("line", ["method=pbs eval.concurrent_jobs=3", "-m method=pbs,dense", "method=pbs hydra.job.chdir=true"])
def test_a_job_may_not_set_what_the_launcher_owns(line: str) -> None:
    with pytest.raises(ValueError, match="which run_jobs sets itself"):
        parse_jobs([line])


def test_jobs_file_lines_split_as_a_shell_would() -> None:
    assert parse_jobs(["# comment", "", "method=pbs 'dataset.tasks=[vt, cwe]'  # trailing"]) == [
        ["method=pbs", "dataset.tasks=[vt, cwe]"]
    ]


def test_sigterm_stops_the_running_jobs_and_fails_the_batch(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "experiments.run_jobs", "--job", f"run_dir={tmp_path / 'a'}", "--job", f"run_dir={tmp_path / 'b'}",
         "--common", *TINY, "--log-dir", str(logs)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while not list(logs.glob("001_*.log")) and time.time() < deadline:
        time.sleep(0.2)
    launcher.send_signal(signal.SIGTERM)
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 1
    assert "interrupted: stopped 1 running job(s), 1 not started" in out
    record = json.loads((logs / "jobs.json").read_text())
    assert record["completed"] is False
    assert record["jobs"][0]["returncode"] not in (None, 0) and record["jobs"][1]["returncode"] is None
