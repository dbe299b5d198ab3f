"""experiments/run_jobs.py: jobs N at a time with eval.concurrent_jobs=N, a log each, and a
non-zero exit when one fails (the others still run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.run_jobs import parse_jobs
from tests.cli import TINY, run_module


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
    assert "1 of 2 jobs ok" in result.stdout and "failed: 2" in result.stdout
    run = json.loads((tmp_path / "good" / "run.json").read_text())
    assert run["config"]["eval"]["concurrent_jobs"] == 2 and run["config"]["eval"]["decode_batch_size"] == 2
    record = json.loads((tmp_path / "logs" / "jobs.json").read_text())
    assert record["jobs"][0]["returncode"] == 0 and record["jobs"][1]["returncode"] != 0
    bad_log = Path(record["jobs"][1]["log"]).read_text()
    assert "eval.concurrent_jobs=2" in bad_log.splitlines()[0]
    assert "Could not find 'method/nope'" in bad_log


@pytest.mark.parametrize("line", ["method=pbs eval.concurrent_jobs=3", "-m method=pbs,dense", "method=pbs hydra.job.chdir=true"])
def test_a_job_may_not_set_what_the_launcher_owns(line: str) -> None:
    with pytest.raises(ValueError, match="which run_jobs sets itself"):
        parse_jobs([line])


def test_jobs_file_lines_split_as_a_shell_would() -> None:
    assert parse_jobs(["# comment", "", "method=pbs 'dataset.tasks=[vt, cwe]'  # trailing"]) == [
        ["method=pbs", "dataset.tasks=[vt, cwe]"]
    ]
