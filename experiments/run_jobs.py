"""Run a list of `python -m src.run` jobs N at a time on one device, each with
eval.concurrent_jobs=N (so its run.json says its prefill times were measured while N jobs shared
the device), one log file per job; exit status 1 if any job failed, after all have run, or if
the batch was interrupted (Ctrl-C or SIGTERM, e.g. from `timeout`: the running jobs are stopped;
their finished samples stay, and the same command later resumes them).

    python -m experiments.run_jobs --parallel 6 --jobs-file experiments/jobs/ruler_h200_4k.txt \
        --common dataset.num_samples=20 results_root=results/runs/h200 eval.decode_batch_size=64 \
        --log-dir $OUT/jobs

A jobs file holds one job per line: Hydra overrides as on the `src.run` command line (shell
quoting), e.g. `method=pbs dataset.length=8192 method.threshold=0.7`; blank lines and `#`
comments are skipped. `--job "..."` adds a job (repeatable); `--common` overrides go before every
job's own. Why processes rather than one: a small model's loop is bound by one CPU core's Python
and launches, so several processes keep one GPU busier (measured on the H200 with token-by-token
decoding: 6 processes 1.43 samples/s in all, one alone 0.47). Each process gets
OMP_NUM_THREADS = cores / N unless the environment sets it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

RESERVED = ("eval.concurrent_jobs", "-m", "--multirun", "hydra.")


@dataclass
class Job:
    """One `src.run` invocation: its overrides, and once started its process and log."""

    number: int
    overrides: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None

    @property
    def label(self) -> str:
        return " ".join(self.overrides)


def check_overrides(words: list[str], where: str) -> None:
    """ValueError naming an override the launcher owns (eval.concurrent_jobs, a multirun, hydra.*)."""
    owned = [w for w in words if w.lstrip("+~").startswith(RESERVED)]
    if owned:
        raise ValueError(f"{where} sets {owned[0]!r}, which run_jobs sets itself; a job is one single run")


def parse_jobs(lines: list[str]) -> list[list[str]]:
    """Each non-blank, non-comment line split as a shell would, and checked."""
    jobs = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words:
            check_overrides(words, f"job {line.strip()!r}")
            jobs.append(words)
    return jobs


def log_name(number: int, overrides: list[str]) -> str:
    slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", "_".join(overrides)).strip("_")[:100] or "default"
    return f"{number:03d}_{slug}.log"


def start(job: Job, common: list[str], parallel: int, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "src.run", *common, *job.overrides, f"eval.concurrent_jobs={parallel}"]
    job.log.parent.mkdir(parents=True, exist_ok=True)
    job.log_file = job.log.open("wb")
    job.log_file.write((shlex.join(command) + "\n").encode())
    job.log_file.flush()
    job.started = time.perf_counter()
    job.process = subprocess.Popen(command, stdout=job.log_file, stderr=subprocess.STDOUT, env=env)


def finish(job: Job, returncode: int) -> None:
    job.returncode, job.seconds = returncode, time.perf_counter() - job.started
    assert job.log_file is not None
    job.log_file.close()


def stop_on_sigterm() -> None:
    """SIGTERM (e.g. from `timeout`) ends the batch as Ctrl-C does: running jobs are stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_all(jobs: list[Job], common: list[str], parallel: int, poll_s: float = 0.5) -> bool:
    """Keep `parallel` jobs running until every job has run, reporting each as it ends; on an
    interrupt, stop the running jobs (their finished samples stay in their samples.jsonl, so the
    same batch resumes them) and return False."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": os.environ.get("TQDM_DISABLE", "1")}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    waiting, running = list(jobs), []
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                job = waiting.pop(0)
                start(job, common, parallel, env)
                running.append(job)
            time.sleep(poll_s)
            for job in [j for j in running if j.process is not None and j.process.poll() is not None]:
                finish(job, job.process.returncode)
                running.remove(job)
                state = "ok" if job.returncode == 0 else f"FAILED (exit {job.returncode})"
                print(f"[{job.number}/{len(jobs)}] {state} in {job.seconds:.1f} s: {job.label}  (log {job.log})", flush=True)
    except KeyboardInterrupt:
        for job in running:
            if job.process is not None:
                job.process.terminate()
                finish(job, job.process.wait())
        print(f"interrupted: stopped {len(running)} running job(s), {len(waiting)} not started", flush=True)
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", "-n", type=int, default=1, help="jobs at once on the device")
    parser.add_argument("--jobs-file", type=Path, default=None, help="one job (Hydra overrides) per line")
    parser.add_argument("--job", action="append", default=[], help='one more job, e.g. --job "method=pbs dataset.length=8192"')
    parser.add_argument("--common", nargs="*", default=[], help="overrides put before every job's own")
    parser.add_argument("--log-dir", type=Path, default=None, help="default: results/runs/local/.jobs/<date_time>")
    args = parser.parse_args()
    try:
        if args.parallel < 1:
            raise ValueError(f"--parallel must be a positive integer, got {args.parallel}")
        if args.jobs_file is not None and not args.jobs_file.is_file():
            raise ValueError(f"--jobs-file {args.jobs_file} does not exist")
        lines = (args.jobs_file.read_text().splitlines() if args.jobs_file else []) + args.job
        overrides = parse_jobs(lines)
        check_overrides(args.common, "--common")
        if not overrides:
            raise ValueError("no jobs: give --jobs-file and/or --job")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

    log_dir = args.log_dir or Path("results/runs/local/.jobs") / time.strftime("%Y-%m-%d_%H-%M-%S")
    jobs = [Job(i, words, log_dir / log_name(i, words)) for i, words in enumerate(overrides, 1)]
    print(f"{len(jobs)} jobs, {args.parallel} at a time; logs in {log_dir}", flush=True)
    start_s = time.perf_counter()
    stop_on_sigterm()
    completed = run_all(jobs, args.common, args.parallel)
    wall = time.perf_counter() - start_s
    record = {
        "parallel": args.parallel, "common": args.common, "wall_s": round(wall, 1), "completed": completed,
        "jobs": [{"overrides": j.overrides, "returncode": j.returncode, "seconds": round(j.seconds, 1), "log": str(j.log)} for j in jobs],
    }
    (log_dir / "jobs.json").write_text(json.dumps(record, indent=1) + "\n")
    failed = [j for j in jobs if j.returncode != 0]
    print(f"{len(jobs) - len(failed)} of {len(jobs)} jobs ok in {wall:.1f} s" + (f"; not ok: {', '.join(str(j.number) for j in failed)}" if failed else ""))
    sys.exit(1 if failed or not completed else 0)


if __name__ == "__main__":
    main()
